"""Training data: phonon structures with DFT force constants, and replay structures.

A :class:`PhononSample` is one material's reference supercell (from
``results/references/<m>/phonopy_params.yaml``) with its full DFT force constants
(``fc2.hdf5``, shape (N, N, 3, 3), eV/Å²), or the larger supercell of its ``labels/``
with force constants interpolated from them (``supercell_labels``): column ``c = 3 j + b`` of the supercell
Hessian is ``fc2[:, j, :, b]``. The supercell is the DFT equilibrium geometry, so its
force and stress labels are zero. A :class:`ReplaySample` is a labelled structure from
an extxyz file with ``REF_energy`` (eV), ``REF_forces`` (eV/Å) and ``REF_stress`` (eV/Å³);
its ``replay_split`` tag (``train`` or ``val``, default ``train``) says whether it trains
or measures forgetting.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from ase import Atoms

from phonft.errors import InputFileError


@dataclass
class PhononSample:
    material: str
    atoms: Atoms
    fc2_eV_A2: np.ndarray
    distances_A: np.ndarray
    independent_atoms: np.ndarray
    forces_eV_A: np.ndarray | None = None
    stress_eV_A3: np.ndarray | None = None
    _site_symmetry: Any = field(default=None, repr=False, compare=False)

    @property
    def n_atoms(self) -> int:
        return len(self.atoms)

    def site_symmetry(self):
        """Orbits and point-group rotations of the supercell
        (:class:`~phonft.finetune.symmetry.SiteSymmetry`), computed once."""
        if self._site_symmetry is None:
            from phonft.finetune.symmetry import site_symmetry

            self._site_symmetry = site_symmetry(self.atoms)
        return self._site_symmetry

    def column(self, c: int) -> np.ndarray:
        """Reference Hessian column ``c`` (eV/Å²), shape (N, 3)."""
        j, b = divmod(int(c), 3)
        return self.fc2_eV_A2[:, j, :, b]


@dataclass
class ReplaySample:
    atoms: Atoms
    energy_eV: float
    forces_eV_A: np.ndarray
    stress_eV_A3: np.ndarray | None
    tag: str = ""
    split: str = "train"
    info: dict = field(default_factory=dict, repr=False)

    @property
    def n_atoms(self) -> int:
        return len(self.atoms)


def _sample(material: str, atoms: Atoms, fc2_eV_A2: np.ndarray, independent_atoms: np.ndarray) -> PhononSample:
    """A :class:`PhononSample` at equilibrium: zero force and stress labels."""
    n = len(atoms)
    return PhononSample(material=material, atoms=atoms, fc2_eV_A2=fc2_eV_A2,
                        distances_A=atoms.get_all_distances(mic=True), independent_atoms=independent_atoms,
                        forces_eV_A=np.zeros((n, 3)), stress_eV_A3=np.zeros((3, 3)))


def load_phonon_sample(ref_dir: str | os.PathLike, material: str | None = None) -> PhononSample:
    """The training sample of a references folder: its supercell and ``fc2.hdf5``, or, when
    the folder has ``labels/`` (``supercell_labels``), the larger supercell and its fc2.

    Missing or corrupt files raise an :class:`~phonft.errors.InputFileError` naming the
    file (:meth:`phonft.references.folder.ReferenceFolder.load`).
    """
    from phonft.references.folder import ReferenceFolder

    ref = ReferenceFolder.load(ref_dir)
    return _sample(material or ref.material, ref.training_supercell(), ref.training_fc2_eV_A2(),
                   ref.training_independent_atoms())


def real_size_sample(ref_dir: str | os.PathLike, supercell_matrix, material: str | None = None,
                     max_atoms: int | None = None) -> PhononSample:
    """The training sample of a references folder's DFT fc2 expanded, in memory, to the
    ``supercell_matrix`` supercell (3 integers, 9, or 3 rows of 3, unit-cell basis), e.g.
    ``[4, 4, 4]`` for 512-atom MgO (:mod:`phonft.references.supercell_labels`); for
    benchmarks and tests at real sizes. A bad matrix raises a :class:`~phonft.errors.ConfigError`.
    """
    from phonft.atoms import to_ase
    from phonft.references.folder import ReferenceFolder
    from phonft.references.supercell_labels import supercell_labels

    ref = ReferenceFolder.load(ref_dir)
    labels = supercell_labels(ref.phonon, ref.fc2_eV_A2, supercell_matrix, max_atoms)
    atoms = to_ase(labels.phonon.supercell)
    independent = np.asarray(labels.phonon.symmetry.get_independent_atoms(), dtype=int)
    return _sample(material or ref.material, atoms, labels.fc2_eV_A2, independent)


def reference_unitcell(ref_dir: str | os.PathLike) -> Atoms:
    """The unit cell of a references folder (from its ``phonopy_params.yaml``)."""
    from phonft.references.folder import ReferenceFolder

    return ReferenceFolder.load(ref_dir).unitcell()


def _stress_3x3(value) -> np.ndarray:
    """A Voigt (6) or 3x3 (9) stress as a 3x3 array; ValueError on any other size."""
    from ase.stress import voigt_6_to_full_3x3_stress

    arr = np.asarray(value, dtype=np.float64).ravel()
    if arr.size == 6:
        return voigt_6_to_full_3x3_stress(arr)
    if arr.size == 9:
        return arr.reshape(3, 3)
    raise ValueError(f"has {arr.size} components; expected 6 (Voigt) or 9 (3x3)")


def _label(a: Atoms, key: str, kind: str):
    """A label from ``info``/``arrays`` under ``key``, else from an attached calculator's results."""
    holder = a.arrays if kind == "forces" else a.info
    if key in holder:
        return holder[key]
    return (getattr(a.calc, "results", None) or {}).get(key)


def read_replay(path: str | os.PathLike, energy_key: str = "REF_energy", forces_key: str = "REF_forces",
                stress_key: str = "REF_stress") -> list[ReplaySample]:
    """Labelled structures from an extxyz: energy (eV), forces (eV/Å), optional stress (eV/Å³).

    Labels are read under the given keys (mace's ``REF_*`` by default); plain ``energy``,
    ``forces`` and ``stress`` keys that ASE moves into a calculator are found there too.
    Every frame must pass :func:`phonft.atoms.check_structure` (finite cell and positions,
    no overlapping atoms) and carry finite labels of the right shape; the first that does
    not raises an :class:`InputFileError` naming the file, the frame and the key.
    """
    import ase.io

    path = Path(path)
    try:
        frames = ase.io.read(path, index=":", format="extxyz")
    except Exception as exc:  # ase raises many kinds on a corrupt file
        raise InputFileError(path, f"is not a readable extxyz file ({exc}).",
                             "regenerate it, or point upstream.file at a valid extxyz.") from exc
    samples = [_replay_sample(a, i, path, (energy_key, forces_key, stress_key)) for i, a in enumerate(frames)]
    if not samples:
        raise InputFileError(path, "holds no structures.", "regenerate the replay set.")
    return samples


def _replay_sample(a: Atoms, i: int, path: Path, keys: tuple[str, str, str]) -> ReplaySample:
    """Frame ``i`` of ``path`` as a checked :class:`ReplaySample`."""
    from phonft.atoms import check_structure

    energy_key, forces_key, stress_key = keys
    check_structure(a, f"{path} (frame {i})", periodic=bool(a.pbc.all()))
    energy, forces = _label(a, energy_key, "energy"), _label(a, forces_key, "forces")
    if energy is None or forces is None:
        raise InputFileError(path, f"frame {i} lacks {energy_key} or {forces_key}.",
                             f"label every frame with {energy_key} (eV), {forces_key} (eV/Å) and optionally "
                             f"{stress_key} (eV/Å³, Voigt or 3x3), or name the keys under upstream.")
    fix = "drop that frame or fix its labels."
    try:
        energy = float(energy)
        forces = np.asarray(forces, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputFileError(path, f"frame {i} has a non-numeric {energy_key} or {forces_key}.", fix) from None
    if forces.shape != (len(a), 3) or not np.all(np.isfinite(forces)) or not np.isfinite(energy):
        raise InputFileError(path, f"frame {i} has non-finite or misshaped {energy_key} or {forces_key}.", fix)
    stress = _label(a, stress_key, "stress")
    if stress is not None:
        try:
            stress = _stress_3x3(stress)
        except (TypeError, ValueError) as exc:
            raise InputFileError(path, f"frame {i}: {stress_key} is not a stress ({exc}).", fix) from None
        if not np.all(np.isfinite(stress)):
            raise InputFileError(path, f"frame {i}: {stress_key} holds NaN or infinite values.", fix)
    clean = Atoms(a.numbers, positions=a.positions, cell=a.cell, pbc=a.pbc)
    return ReplaySample(clean, energy, forces, stress, tag=str(a.info.get("config_type", "")),
                        split=str(a.info.get("replay_split", "train")), info=dict(a.info))


def pack_batches(sizes: Sequence[int], budget: int, order: Sequence[int]) -> list[list[int]]:
    """Greedy node-budget batching: consecutive items of ``order`` while atoms fit ``budget``.

    A structure larger than the budget forms a batch of its own.
    """
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i in order:
        if current and used + sizes[i] > budget:
            batches.append(current)
            current, used = [], 0
        current.append(int(i))
        used += sizes[i]
    if current:
        batches.append(current)
    return batches
