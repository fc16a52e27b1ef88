"""Force-constant labels of a larger commensurate supercell, from a reference's own fc2.

phonopy's dynamical matrix of a material, built from its DFT force constants (no
non-analytical correction), is sampled at the commensurate q-points of any supercell of
the same primitive cell and transformed back to force constants of that supercell
(:meth:`phonopy.Phonopy.ph2ph`: :class:`phonopy.harmonic.dynmat_to_fc.DynmatToForceConstants`
at :func:`~phonopy.harmonic.dynmat_to_fc.get_commensurate_points`). MgO's 2x2x2 DFT set
(64 atoms) so gives the full (512, 512, 3, 3) fc2 of its 4x4x4 supercell, in float64.

The new force constants are a Fourier interpolation of the DFT ones: at the q-points
commensurate with both supercells (all of the DFT supercell's when the new supercell is
a multiple of it, e.g. 4x4x4 from 2x2x2) the dynamical matrix is the DFT one exactly;
between them, and for force constants beyond the DFT supercell's reach, it is phonopy's
interpolation, no new DFT. The references stage writes such labels under
``results/references/<m>/labels/`` when a material's reference has
``supercell_labels: [4, 4, 4]`` (:func:`write_labels`); the fine-tuning data read them
(:class:`~phonft.references.folder.ReferenceFolder`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from phonopy import Phonopy

from phonft.errors import ConfigError
from phonft.protocols import supercell_rows

LABELS_DIR = "labels"
"""The sub-folder of a references folder that holds the expanded supercell's labels."""

KEY = "supercell_labels"
"""The ``reference`` key that asks for them."""


def label_matrix(values: Any, what: str = f"reference: {KEY}") -> np.ndarray:
    """A supercell matrix (3 integers, the diagonal; 9; or 3 rows of 3), relative to the
    unit cell like a material's ``supercell:``, as a (3, 3) int array; a
    :class:`ConfigError` naming ``what`` unless it is integer with a positive determinant.

    Such a matrix is always commensurate with the primitive cell (the unit cell is made of
    whole primitive cells); a non-integer one, the only kind that is not, is refused here."""
    return np.array(supercell_rows(values.tolist() if isinstance(values, np.ndarray) else values, what), dtype=int)


def check_label_size(phonon: Phonopy, matrix: np.ndarray, max_atoms: int | None,
                     what: str = f"reference: {KEY}") -> int:
    """The atom count of the ``matrix`` supercell; a :class:`ConfigError` when it exceeds
    ``max_atoms`` (``displacements.max_supercell_atoms_fc2``), before anything is built."""
    cells = round(abs(float(np.linalg.det(matrix))))
    n_atoms = len(phonon.unitcell) * cells
    if max_atoms is not None and n_atoms > max_atoms:
        raise ConfigError(f"{what} {matrix.tolist()} holds {n_atoms} atoms ({len(phonon.unitcell)} per unit cell x "
                          f"{cells} cells), more than displacements.max_supercell_atoms_fc2 = {max_atoms}. "
                          "Fix: give a smaller supercell, or raise max_supercell_atoms_fc2 if you mean it")
    return n_atoms


def expand_phonopy(phonon: Phonopy, fc2_eV_A2: np.ndarray, matrix: Any, max_atoms: int | None = None) -> Phonopy:
    """A :class:`Phonopy` of the ``matrix`` supercell (unit-cell basis, like ``supercell:``)
    holding its full force constants (N, N, 3, 3) in eV/Å², float64, Fourier-interpolated
    from ``fc2_eV_A2`` (full, of ``phonon``'s supercell) without NAC."""
    matrix = label_matrix(matrix)
    check_label_size(phonon, matrix, max_atoms)
    source = copy.deepcopy(phonon)
    source.nac_params = None
    source.force_constants = np.asarray(fc2_eV_A2, dtype=np.float64)
    expanded = source.ph2ph(matrix, with_nac=False)
    expanded.force_constants = np.ascontiguousarray(expanded.force_constants, dtype=np.float64)
    return expanded


def expand_force_constants(phonon: Phonopy, matrix: Any, fc2_eV_A2: np.ndarray | None = None,
                           max_atoms: int | None = None) -> tuple[Atoms, np.ndarray]:
    """The ``matrix`` supercell (ase Atoms, Å) and its full fc2 (N, N, 3, 3) in eV/Å².

    ``phonon`` is a reference's :class:`Phonopy` (or a
    :class:`~phonft.references.folder.ReferenceFolder`, whose ``fc2.hdf5`` is then used);
    ``fc2_eV_A2`` defaults to the force constants ``phonon`` holds.
    """
    from phonft.atoms import to_ase

    if not isinstance(phonon, Phonopy):  # a ReferenceFolder
        fc2_eV_A2 = phonon.fc2_eV_A2 if fc2_eV_A2 is None else fc2_eV_A2
        phonon = phonon.phonon
    if fc2_eV_A2 is None:
        fc2_eV_A2 = phonon.force_constants
    if fc2_eV_A2 is None:
        raise ValueError("the Phonopy object holds no force constants; pass fc2_eV_A2")
    expanded = expand_phonopy(phonon, fc2_eV_A2, matrix, max_atoms)
    return to_ase(expanded.supercell), np.asarray(expanded.force_constants, dtype=np.float64)


@dataclass(frozen=True)
class SupercellLabels:
    """Expanded labels of one reference: the :class:`Phonopy` of the new supercell with its
    full fc2 (eV/Å²), and the matrix of the DFT supercell it came from."""

    phonon: Phonopy
    source_matrix: np.ndarray

    @property
    def matrix(self) -> np.ndarray:
        """The new supercell matrix (unit-cell basis), (3, 3) int."""
        return np.asarray(self.phonon.supercell_matrix, dtype=int)

    @property
    def fc2_eV_A2(self) -> np.ndarray:
        """Full force constants of the new supercell, (N, N, 3, 3), eV/Å²."""
        return np.asarray(self.phonon.force_constants, dtype=np.float64)

    @property
    def exact_on_source_qpoints(self) -> bool:
        """Whether every q-point commensurate with the DFT supercell is commensurate with
        the new one (the new matrix is an integer multiple of the DFT one), so that the
        phonons there are the DFT ones exactly."""
        ratio = np.linalg.solve(self.source_matrix.astype(np.float64), self.matrix.astype(np.float64))
        return bool(np.allclose(ratio, np.rint(ratio), atol=1e-6))

    def record(self) -> dict[str, Any]:
        """``labels.json``: what was expanded from what (the protocol record is added by the writer)."""
        return {"supercell_matrix": self.matrix.tolist(), "n_atoms": len(self.phonon.supercell),
                "source_supercell_matrix": self.source_matrix.tolist(),
                "exact_on_source_qpoints": self.exact_on_source_qpoints,
                "method": "phonopy Phonopy.ph2ph (DynmatToForceConstants at the commensurate q-points), no NAC",
                "unit": "eV/angstrom^2"}


def supercell_labels(phonon: Phonopy, fc2_eV_A2: np.ndarray, matrix: Any, max_atoms: int | None = None
                     ) -> SupercellLabels:
    """:class:`SupercellLabels` of ``matrix`` from ``phonon``'s supercell and its full ``fc2_eV_A2``."""
    return SupercellLabels(phonon=expand_phonopy(phonon, fc2_eV_A2, matrix, max_atoms),
                           source_matrix=np.asarray(phonon.supercell_matrix, dtype=int))


def write_labels(labels: SupercellLabels, folder: Path, protocol_record: dict[str, Any]) -> Path:
    """Write ``folder/labels/``: ``phonopy_params.yaml`` (structure and compact force
    constants, eV/Å²; ``phonopy-load`` opens it), ``fc2.hdf5`` (the same compact force
    constants (n_primitive, N, 3, 3), eV/Å², with phonopy's ``p2s_map``: 74 kB instead of
    19 MB for 512-atom MgO; :func:`~phonft.references.folder.read_labels` expands them) and
    ``labels.json``. ``folder`` is the references stage's temporary folder (atomic write)."""
    from phonopy.file_IO import write_force_constants_to_hdf5

    from phonft.io import atomic_write_json

    out = Path(folder) / LABELS_DIR
    out.mkdir()
    ph = copy.deepcopy(labels.phonon)
    p2s_map = ph.primitive.p2s_map
    ph.force_constants = compact = labels.fc2_eV_A2[p2s_map]
    ph.save(out / "phonopy_params.yaml", settings={"force_sets": False, "displacements": False,
                                                     "force_constants": True, "born_effective_charge": False,
                                                     "dielectric_constant": False})
    write_force_constants_to_hdf5(compact, str(out / "fc2.hdf5"), p2s_map=p2s_map, physical_unit="eV/angstrom^2")
    atomic_write_json(out / "labels.json", {**labels.record(), **protocol_record})
    return out
