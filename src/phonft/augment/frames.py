"""The augment frames file, ``rattled.extxyz``: its contract, writer and checked reader.

One ASE extxyz frame per rattled supercell of a material's reference supercell (same atom
order). Labels use mace's keys, and a key is absent when its label is unknown:

- ``REF_forces`` (per-atom array, eV/Å), always present;
- ``REF_energy`` (info, total energy in eV);
- ``REF_stress`` (info, 3x3 flattened row-major to 9 values, eV/Å³, ASE's sign
  convention: positive under tension; the convention of the replay set's ``REF_stress``).

Per-atom arrays (positions, ``REF_forces``) are stored with 8 decimals (ASE's extxyz
writer); the frames' positions are rounded to that before labelling, so positions read back
are exactly those labelled.

Info keys: ``label_source`` (:data:`LABEL_SOURCES`), ``material``, ``frame`` (0-based),
``rattle_std_A``, ``volume_factor`` and ``config_type`` = ``rattled``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

from phonft.errors import InputFileError

FRAMES_FILE = "rattled.extxyz"
"""The frames' file name in ``results/augment/<m>/``."""

LABEL_SOURCES = ("harmonic_dft", "dft", "user", "engine")
"""Values of the ``label_source`` info key."""

UNITS = {"REF_energy": "eV", "REF_forces": "eV/Å", "REF_stress": "eV/Å³ (ASE sign, 3x3 row-major)"}
"""The labels' units, as ``manifest.json`` records them."""

_FIX = "label every frame with REF_forces (eV/Å, per atom) and optionally REF_energy (eV) and REF_stress (eV/Å³)."


def stress_3x3(value: object) -> np.ndarray:
    """A stress as a 3x3 array: from 9 values (row-major) or 6 (Voigt: xx yy zz yz xz xy)."""
    s = np.asarray(value, dtype=np.float64).reshape(-1)
    if s.size == 9:
        return s.reshape(3, 3)
    if s.size == 6:
        xx, yy, zz, yz, xz, xy = s
        return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    raise ValueError(f"{s.size} values, not 6 (Voigt) or 9 (3x3)")


def check_frame(a: Atoms, where: str, blamed: str | os.PathLike, fix: str = _FIX) -> None:
    """Frame ``a``'s labels follow the contract: ``REF_forces`` present, (N, 3) and finite;
    ``REF_energy`` and ``REF_stress`` finite where present. Stress is normalised to 9 values."""
    forces = a.arrays.get("REF_forces")
    if forces is None:
        raise InputFileError(blamed, f"{where} has no REF_forces.", fix)
    forces = np.asarray(forces, dtype=np.float64)
    if forces.shape != (len(a), 3):
        raise InputFileError(blamed, f"{where} has REF_forces of shape {forces.shape}, not ({len(a)}, 3).", fix)
    if not np.all(np.isfinite(forces)):
        raise InputFileError(blamed, f"{where} has NaN or infinite REF_forces.", fix)
    if "REF_energy" in a.info:
        try:
            energy = float(a.info["REF_energy"])
        except (TypeError, ValueError):
            raise InputFileError(blamed, f"{where} has a non-numeric REF_energy.", fix) from None
        if not np.isfinite(energy):
            raise InputFileError(blamed, f"{where} has a NaN or infinite REF_energy.", fix)
    if "REF_stress" in a.info:
        try:
            stress = stress_3x3(a.info["REF_stress"])
        except (TypeError, ValueError) as exc:
            raise InputFileError(blamed, f"{where}: REF_stress is not a stress ({exc}).", fix) from None
        if not np.all(np.isfinite(stress)):
            raise InputFileError(blamed, f"{where} has NaN or infinite REF_stress.", fix)
        a.info["REF_stress"] = stress.reshape(9)


def read_frames(path: str | os.PathLike) -> list[Atoms]:
    """The frames of an augment ``rattled.extxyz`` (or any extxyz under the same contract),
    each checked by :func:`check_frame`; an unreadable file, an empty one or a frame that
    breaks the contract raises :class:`InputFileError` naming the file and the frame."""
    import ase.io

    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "does not exist.", "run `snakemake results/augment/<material>/rattled.extxyz`, "
                             "or give the path of an extxyz file.")
    try:
        frames = ase.io.read(path, index=":", format="extxyz")
    except Exception as exc:  # ase raises many kinds on a corrupt file
        raise InputFileError(path, f"is not a readable extxyz file ({type(exc).__name__}: {exc}).",
                             "regenerate it, or give a valid extxyz file.") from exc
    if not frames:
        raise InputFileError(path, "holds no frames.", "give an extxyz file with at least one labelled frame.")
    for i, a in enumerate(frames):
        check_frame(a, f"frame {i}", path)
    return frames


def check_supercell(frames: Sequence[Atoms], supercell: Atoms, blamed: str | os.PathLike) -> None:
    """Every frame holds the reference supercell's atoms, in its order."""
    want = supercell.get_chemical_formula()
    for i, a in enumerate(frames):
        if len(a) != len(supercell) or not np.array_equal(a.numbers, supercell.numbers):
            have = a.get_chemical_formula()
            what = f"{len(a)} atoms ({have})" if have != want or len(a) != len(supercell) else \
                f"the atoms of {have} in another order"
            raise InputFileError(blamed, f"frame {i} holds {what}, but the material's reference supercell has "
                                 f"{len(supercell)} atoms ({want}) in the order of phonopy_params.yaml.",
                                 "label rattled copies of the reference supercell, atoms in its order (the "
                                 "inputs under results/augment/<material>/inputs/ have it).")


def write_frames(path: str | os.PathLike, frames: Sequence[Atoms]) -> None:
    """Write ``frames`` as extxyz (labels as info/arrays keys, no calculator results)."""
    import ase.io

    ase.io.write(path, list(frames), format="extxyz", write_results=False)
