"""Labelled training frames for NEP training, from GPUMD's ``train.xyz`` or phonft's extxyz.

Two key conventions are read (keys matched case-insensitively):

* GPUMD's ``train.xyz``: info ``energy`` (total, eV), per-atom ``force`` or ``forces``
  (eV/Å), info ``virial`` (total, eV; 9 values ``xx xy xz yx yy yz zx zy zz``) or,
  instead, ``stress`` (eV/Å³, ASE sign). ASE's extxyz reader, which reads the file, takes
  ``virial`` as a 3x3 matrix: a 6-value virial is reported as an unreadable file;
* phonft's and mace's: ``REF_energy``, ``REF_forces``, ``REF_stress`` (eV/Å³, ASE sign;
  9 values or Voigt ``xx yy zz yz xz xy``), as the augment stage writes them.

A ``REF_*`` key wins over its GPUMD counterpart. Virials use GPUMD's sign: ``W = -σ V``
with σ the ASE stress (positive under tension) and V the cell volume, so a compressed
cell (σ < 0) has a positive virial.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from ase import Atoms

from phonft.errors import InputFileError

_FIX = ("label every frame with an energy (eV), per-atom forces (eV/Å) and/or a virial (eV) or stress "
        "(eV/Å³): GPUMD's energy/force/virial keys or phonft's REF_energy/REF_forces/REF_stress.")


@dataclass
class LabelledFrame:
    """One training structure and its labels; a label is None where the frame lacks it.

    ``energy_eV`` is the total energy, ``forces_eV_A`` (N, 3), ``virial_eV`` the total
    3x3 virial in GPUMD's sign (``W = -stress * volume``).
    """

    atoms: Atoms
    energy_eV: float | None = None
    forces_eV_A: np.ndarray | None = None
    virial_eV: np.ndarray | None = None

    @property
    def n_atoms(self) -> int:
        return len(self.atoms)


def stress_to_virial(stress_eV_A3: np.ndarray, atoms: Atoms) -> np.ndarray:
    """GPUMD's total virial (eV) from an ASE-sign stress (eV/Å³): ``-stress * volume``."""
    return -np.asarray(stress_eV_A3, dtype=np.float64) * abs(float(np.linalg.det(atoms.cell.array)))


def _virial_3x3(value: Any) -> np.ndarray:
    """A virial as 3x3 from 9 values row-major (ASE hands a 9-value key back as a 3x3 read
    column-major, which is transposed back here)."""
    v = np.asarray(value, dtype=np.float64)
    if v.shape == (3, 3):
        return v.T.copy()
    if v.size == 9:
        return v.reshape(3, 3)
    raise ValueError(f"virial has {v.size} values, not 9")


def _lookup(a: Atoms, keys: tuple[str, ...], per_atom: bool) -> tuple[str, Any] | None:
    """The first of ``keys`` (case-insensitive) in the frame's arrays or info, then in the
    single-point calculator ASE builds from ``energy``/``forces``/``stress`` keys."""
    store = a.arrays if per_atom else a.info
    lowered = {k.lower(): k for k in store}
    for key in keys:
        if key.lower() in lowered:
            return key, store[lowered[key.lower()]]
    results = a.calc.results if a.calc is not None else {}
    for key in keys:
        if key in results:
            return key, results[key]
    return None


def _energy(a: Atoms) -> float | None:
    found = _lookup(a, ("REF_energy", "energy"), per_atom=False)
    return None if found is None else float(found[1])


def _forces(a: Atoms) -> np.ndarray | None:
    found = _lookup(a, ("REF_forces", "force", "forces"), per_atom=True)
    if found is None:
        return None
    forces = np.asarray(found[1], dtype=np.float64)
    if forces.shape != (len(a), 3):
        raise ValueError(f"{found[0]} has shape {forces.shape}, not ({len(a)}, 3)")
    return forces


def _virial(a: Atoms) -> np.ndarray | None:
    from phonft.augment.frames import stress_3x3

    found = _lookup(a, ("REF_stress",), per_atom=False)
    if found is not None:
        return stress_to_virial(stress_3x3(found[1]), a)
    found = _lookup(a, ("virial",), per_atom=False)
    if found is not None:
        return _virial_3x3(found[1])
    found = _lookup(a, ("stress",), per_atom=False)
    if found is not None:
        return stress_to_virial(stress_3x3(found[1]), a)
    return None


def frame_from_atoms(a: Atoms, where: str, path: str | os.PathLike) -> LabelledFrame:
    """The labels of one read frame; a missing, malformed or non-finite label is an
    :class:`InputFileError` naming ``path`` and ``where`` (the frame)."""
    try:
        frame = LabelledFrame(Atoms(a.numbers, positions=a.positions, cell=a.cell, pbc=a.pbc),
                              _energy(a), _forces(a), _virial(a))
    except (TypeError, ValueError) as exc:
        raise InputFileError(path, f"{where}: a label is malformed ({exc}).", _FIX) from None
    labels = [x for x in (frame.energy_eV, frame.forces_eV_A, frame.virial_eV) if x is not None]
    if not labels:
        raise InputFileError(path, f"{where} carries no energy, forces, virial or stress.", _FIX)
    if not all(np.all(np.isfinite(x)) for x in labels):
        raise InputFileError(path, f"{where} has a NaN or infinite label.", _FIX)
    if frame.virial_eV is not None and abs(np.linalg.det(a.cell.array)) == 0:
        raise InputFileError(path, f"{where} has a virial or stress but no cell.", "give the Lattice of the frame.")
    return frame


def read_training_frames(path: str | os.PathLike) -> list[LabelledFrame]:
    """Every labelled frame of an extxyz file in either key convention (module docstring).

    A missing or unreadable file, one with no frames, or a frame without any label or with
    a malformed one raises one :class:`InputFileError` naming the file and the frame.
    """
    import ase.io

    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "(training frames) does not exist.", "give the path of an extxyz file.")
    try:
        frames = ase.io.read(path, index=":", format="extxyz")
    except Exception as exc:  # ase raises many kinds on a corrupt file
        fix = "give a valid extxyz file (GPUMD's train.xyz or phonft's augment frames)."
        if "virial" in str(exc):
            fix = "write each virial as 9 numbers, xx xy xz yx yy yz zx zy zz (eV)."
        raise InputFileError(path, f"is not a readable extxyz file ({type(exc).__name__}: {exc}).", fix) from exc
    if not frames:
        raise InputFileError(path, "holds no frames.", "give an extxyz file with at least one labelled frame.")
    return [frame_from_atoms(a, f"frame {i}", path) for i, a in enumerate(frames)]


def from_rattled(samples: Sequence[Any]) -> list[LabelledFrame]:
    """:class:`~phonft.finetune.rattled.RattledSample` s as labelled frames (stress -> virial)."""
    return [LabelledFrame(s.atoms, s.energy_eV, np.asarray(s.forces_eV_A, dtype=np.float64),
                          None if s.stress_eV_A3 is None else stress_to_virial(s.stress_eV_A3, s.atoms))
            for s in samples]
