"""Load a written ``results/references/<material>/`` folder back: :class:`ReferenceFolder`.

:meth:`Reference.write <phonft.references.reference.Reference.write>` writes the folder;
every later stage (fine-tuning data, held-out phonons, model evaluation) reads it back
here. A missing, truncated or corrupt file is raised as an
:class:`~phonft.errors.InputFileError` naming the file.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from phonopy import Phonopy

from phonft.errors import InputFileError
from phonft.io import read_json, sha256_file
from phonft.phonopy_files import load_phonopy_yaml, reading

PARAMS, FC2, THERMAL = "phonopy_params.yaml", "fc2.hdf5", "thermal.json"
"""The files of a references folder that :meth:`ReferenceFolder.load` reads."""
LABELS = "labels"
"""Its optional sub-folder with a larger supercell's ``phonopy_params.yaml`` and ``fc2.hdf5``
(:mod:`phonft.references.supercell_labels`)."""

_FIX_MISSING = "run `snakemake results/references/<material>/thermal.json` first."
_FIX_CORRUPT = "delete the references folder and run `snakemake results/references/<material>/thermal.json` again."


def _require(path: Path) -> Path:
    if not path.is_file():
        raise InputFileError(path, "is missing from the references folder.", _FIX_MISSING)
    return path


def _has_forces(phonon: Phonopy) -> bool:
    """Whether every displacement of ``phonon``'s dataset has its forces."""
    ds = phonon.dataset or {}
    if "first_atoms" in ds:
        return bool(ds["first_atoms"]) and all("forces" in d for d in ds["first_atoms"])
    return ds.get("forces") is not None


def read_fc2(path: Path, n_atoms: int, n_rows: int | None = None) -> np.ndarray:
    """Force constants (n_rows, N, 3, 3) in eV/Å² (float64) from ``fc2.hdf5``: full
    (n_rows = N, the default) or compact (n_rows: the primitive cell's atom count)."""
    from phonopy.file_IO import read_force_constants_hdf5

    rows = n_atoms if n_rows is None else n_rows
    with reading(_require(path), "phonopy force constants (hdf5)", _FIX_CORRUPT):
        fc2 = np.asarray(read_force_constants_hdf5(str(path)), dtype=np.float64)
    if fc2.shape != (rows, n_atoms, 3, 3):
        raise InputFileError(path, f"has shape {fc2.shape}, but the supercell has {n_atoms} atoms "
                             f"(force constants of shape ({rows}, {n_atoms}, 3, 3) are needed).",
                             "regenerate the references with this version of phonft.")
    if not np.all(np.isfinite(fc2)):
        raise InputFileError(path, "contains NaN or infinite force constants.", _FIX_CORRUPT)
    return fc2


def read_labels(folder: Path) -> tuple[Phonopy | None, np.ndarray | None]:
    """``labels/`` of a references folder (written for ``supercell_labels``): its phonopy
    object (structure only) and full fc2 in eV/Å²; ``(None, None)`` when there is none."""
    from phonopy.harmonic.force_constants import compact_fc_to_full_fc

    if not folder.is_dir():
        return None, None
    phonon = load_phonopy_yaml(_require(folder / PARAMS))
    compact = read_fc2(folder / FC2, len(phonon.supercell), n_rows=len(phonon.primitive))
    return phonon, np.asarray(compact_fc_to_full_fc(phonon.primitive, compact), dtype=np.float64)


def read_thermal(path: Path) -> dict[str, Any]:
    """The ``thermal.json`` record of a references folder."""
    with reading(_require(path), "a thermal.json record", _FIX_CORRUPT):
        record = read_json(path)
    if not isinstance(record, dict) or "omega_max_K" not in record:
        raise InputFileError(path, "is not a references thermal.json (no omega_max_K).", _FIX_CORRUPT)
    return record


@dataclass(frozen=True)
class ReferenceFolder:
    """A material's written references folder, loaded.

    Attributes
    ----------
    path
        The folder, ``results/references/<material>/``.
    phonon
        :class:`phonopy.Phonopy` from ``phonopy_params.yaml`` (Å, eV/Å): unit cell,
        supercell and primitive matrices, the DFT displacements and forces as the
        references stage stored them, and the Born charges when known. A folder read from
        force constants (``format: force_constants``, DFPT) has no displacements: its yaml
        holds the force constants instead (compact in the file, attached here full). Use :meth:`phonopy` for a private
        copy with the fc2 of ``fc2.hdf5``.
    fc2_eV_A2
        Full supercell force constants from ``fc2.hdf5``, shape (N, N, 3, 3), eV/Å².
    thermal
        The ``thermal.json`` record (summary, provenance, ``protocol_digest``).
    sha256
        SHA-256 of ``thermal.json`` and ``fc2.hdf5``, by file name.

    A folder written for ``supercell_labels`` also has ``labels/``, read (on first use) by
    :attr:`labels_phonon` and :attr:`labels_fc2_eV_A2`. Only the ``training_*`` methods use
    them; everything else here (and so augment, the held-out phonons and evaluate) is the
    DFT reference as is.
    """

    path: Path
    phonon: Phonopy = field(repr=False)
    fc2_eV_A2: np.ndarray = field(repr=False)
    thermal: dict[str, Any] = field(repr=False)
    sha256: dict[str, str]

    @cached_property
    def _labels(self) -> tuple[Phonopy | None, np.ndarray | None]:
        return read_labels(self.path / LABELS)

    @property
    def labels_phonon(self) -> Phonopy | None:
        """The :class:`Phonopy` of the ``labels/`` supercell (``labels/phonopy_params.yaml``,
        structure only), or ``None`` when the folder has no ``labels/``."""
        return self._labels[0]

    @property
    def labels_fc2_eV_A2(self) -> np.ndarray | None:
        """Full force constants (N, N, 3, 3), eV/Å², of the ``labels/`` supercell (from the
        compact ``labels/fc2.hdf5``), or ``None``."""
        return self._labels[1]

    @classmethod
    def load(cls, ref_dir: str | os.PathLike) -> ReferenceFolder:
        """Read ``phonopy_params.yaml``, ``fc2.hdf5`` and ``thermal.json`` from ``ref_dir``."""
        path = Path(ref_dir)
        phonon = load_phonopy_yaml(_require(path / PARAMS))
        thermal = read_thermal(path / THERMAL)
        fc_only = thermal.get("source", {}).get("format") == "force_constants"
        if not (fc_only or _has_forces(phonon)):
            raise InputFileError(path / PARAMS, "holds no DFT forces.", _FIX_CORRUPT)
        fc2 = read_fc2(path / FC2, len(phonon.supercell))
        return cls(path=path, phonon=phonon, fc2_eV_A2=fc2, thermal=thermal,
                   sha256={name: sha256_file(path / name) for name in (THERMAL, FC2)})

    def training_supercell(self) -> Atoms:
        """The supercell fine-tuning trains on: the ``labels/`` one when present, else the
        DFT supercell."""
        from phonft.atoms import to_ase

        return self.supercell() if self.labels_phonon is None else to_ase(self.labels_phonon.supercell)

    def training_fc2_eV_A2(self) -> np.ndarray:
        """Full force constants (N, N, 3, 3), eV/Å², of :meth:`training_supercell`."""
        return self.fc2_eV_A2 if self.labels_fc2_eV_A2 is None else self.labels_fc2_eV_A2

    def training_independent_atoms(self) -> np.ndarray:
        """Symmetry-independent atoms of :meth:`training_supercell` (phonopy's symmetry)."""
        ph = self.phonon if self.labels_phonon is None else self.labels_phonon
        return np.asarray(ph.symmetry.get_independent_atoms(), dtype=int)

    @property
    def material(self) -> str:
        """The material id: the folder's name."""
        return self.path.name

    @property
    def protocol_digest(self) -> str | None:
        """Digest of the :class:`~phonft.protocols.ReferenceProtocol` that made the folder."""
        return self.thermal.get("protocol_digest")

    @property
    def dynamically_stable(self) -> bool:
        """The DFT phonons' stability by the MDR rule (from ``thermal.json``)."""
        return bool(self.thermal["dynamically_stable"])

    def phonopy(self, *, with_fc: bool = True, with_nac: bool = True) -> Phonopy:
        """A private copy of :attr:`phonon`, with the DFT fc2 attached when ``with_fc`` and
        without the Born charges unless ``with_nac``."""
        ph = copy.deepcopy(self.phonon)
        if with_fc:
            ph.force_constants = self.fc2_eV_A2.copy()
        if not with_nac:
            ph.nac_params = None
        return ph

    def supercell(self) -> Atoms:
        """The undisplaced DFT supercell (the equilibrium geometry) as ``ase.Atoms``."""
        from phonft.atoms import to_ase

        return to_ase(self.phonon.supercell)

    def unitcell(self) -> Atoms:
        """The unit cell as ``ase.Atoms``."""
        from phonft.atoms import to_ase

        return to_ase(self.phonon.unitcell)

    def displaced_supercells(self) -> list[Atoms]:
        """The DFT displaced supercells as ``ase.Atoms``, in the dataset's order (none for a
        force-constants folder)."""
        from phonft.atoms import to_ase

        if not self.phonon.dataset:
            return []
        return [to_ase(c) for c in self.phonon.supercells_with_displacements]

    @property
    def forces_eV_A(self) -> np.ndarray:
        """DFT forces (eV/Å) on :meth:`displaced_supercells`, shape (n_disp, N, 3); (0, N, 3)
        for a force-constants folder."""
        if not self.phonon.dataset:
            return np.zeros((0, len(self.phonon.supercell), 3))
        return np.asarray(self.phonon.forces, dtype=np.float64)

    def independent_atoms(self) -> np.ndarray:
        """Indices of the symmetry-independent supercell atoms (phonopy's symmetry)."""
        return np.asarray(self.phonon.symmetry.get_independent_atoms(), dtype=int)
