"""How a conductivity is computed (:class:`KappaProtocol`) and what it is computed on
(:class:`KappaTask`: structure, phono3py supercells and q-mesh), with the task parsers
(:func:`task_from_atoms`, :func:`task_from_phono3py_params`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from ase import Atoms

from phonft.errors import ConfigError
from phonft.evaluate import srme as metrics
from phonft.protocols import Protocol

CONDUCTIVITY_TYPES = ("wigner", "particle")


# --------------------------------------------------------------------------- protocol


@dataclass(frozen=True)
class KappaProtocol(Protocol):
    """How a lattice thermal conductivity is computed (Matbench Discovery ``phonondb-v1``).

    Attributes
    ----------
    temperature_K
        Temperature of the conductivity, K (one temperature: SRME uses the first).
    displacement_distance_A
        Finite-displacement amplitude for both fc2 and fc3 sets, Å.
    relax_fmax_eV_A
        Force criterion of the relaxation, eV/Å (cell forces included through the
        FrechetCellFilter).
    relax_max_steps
        Maximum FIRE steps; 0 skips the relaxation. Not converging is recorded, not fatal.
    relax_cell
        Relax the cell as well as the positions.
    symprec
        spglib tolerance, Å, for FixSymmetry, the space-group check and phono3py.
    conductivity_type
        ``"wigner"``: Wigner transport equation, particle + coherence (phono3py
        ``transport_type="SMM19"``); ``"particle"``: the Peierls-Boltzmann (particle-like)
        conductivity only.
    method
        ``"rta"``: relaxation-time approximation (the only method implemented).
    is_isotope
        Include isotope scattering (natural abundances).
    boundary_mfp_um
        Boundary-scattering mean free path, µm (1e6: effectively none).
    symmetrize_fc
        Symmetrize fc2 and fc3 (translational and permutation invariance) after building.
    remove_force_drift
        Subtract each displaced supercell's mean force before building force constants.
    gamma_acoustic_threshold_THz
        Lowest frequency, THz, tolerated for the three acoustic modes at Γ; every other mode
        on the q-mesh must be non-negative.
    skip_flagged
        Skip fc3 and the conductivity of a material with imaginary modes or broken
        symmetry (it scores SRME 2 anyway).
    degenerate_threshold_THz
        Modes closer than this at one q-point are degenerate; their band-pair term counts as
        particle-like (phono3py 2-3 convention of the reference data).
    """

    name: ClassVar[str] = "kappa"
    temperature_K: float = 300.0
    displacement_distance_A: float = 0.03
    relax_fmax_eV_A: float = 1e-4
    relax_max_steps: int = 300
    relax_cell: bool = True
    symprec: float = 1e-5
    conductivity_type: str = "wigner"
    method: str = "rta"
    is_isotope: bool = True
    boundary_mfp_um: float = 1e6
    symmetrize_fc: bool = True
    remove_force_drift: bool = False
    gamma_acoustic_threshold_THz: float = -0.01
    skip_flagged: bool = True
    degenerate_threshold_THz: float = metrics.DEGENERATE_THRESHOLD_THZ

    def __post_init__(self) -> None:
        if self.conductivity_type not in CONDUCTIVITY_TYPES:
            raise ConfigError(f"kappa protocol: conductivity_type must be one of {CONDUCTIVITY_TYPES}, "
                              f"not {self.conductivity_type!r}")
        if self.method != "rta":
            raise ConfigError(f"kappa protocol: method {self.method!r} is not implemented; use 'rta'")
        if self.displacement_distance_A <= 0 or self.temperature_K <= 0:
            raise ConfigError("kappa protocol: displacement_distance_A and temperature_K must be positive")


# --------------------------------------------------------------------------- tasks


Matrix3 = tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]


@dataclass(frozen=True)
class KappaTask:
    """One material to compute: structure, phono3py supercells and q-mesh.

    Attributes
    ----------
    id
        Material id (the Materials Project id for kappa103).
    atoms
        Unit cell, Å (the conventional cell for kappa103). Not copied: do not mutate.
    fc2_supercell, fc3_supercell
        3x3 integer supercell matrices (rows: supercell vectors in unit-cell vectors) for
        fc2 (phonon supercell) and fc3.
    primitive_matrix
        3x3 matrix from the unit cell to the primitive cell, or ``"auto"``.
    q_mesh
        Sampling mesh of the conductivity, three integers.
    name
        Formula or label, for logs.
    spacegroup
        Space-group number stated by the data set, when it states one.
    """

    id: str
    atoms: Atoms = field(compare=False, repr=False)
    fc2_supercell: tuple[tuple[int, int, int], ...]
    fc3_supercell: tuple[tuple[int, int, int], ...]
    primitive_matrix: Matrix3 | str
    q_mesh: tuple[int, int, int]
    name: str = ""
    spacegroup: int | None = None

    def describe(self) -> dict[str, Any]:
        """JSON-ready settings of the task (no structure)."""
        return {"id": self.id, "name": self.name or self.atoms.get_chemical_formula(),
                "fc2_supercell": [list(r) for r in self.fc2_supercell],
                "fc3_supercell": [list(r) for r in self.fc3_supercell],
                "primitive_matrix": self.primitive_matrix if isinstance(self.primitive_matrix, str)
                else [list(r) for r in self.primitive_matrix],
                "q_mesh": list(self.q_mesh), "n_atoms_unit_cell": len(self.atoms),
                "spacegroup_stated": self.spacegroup}


def int_matrix(value: Any, where: str, key: str) -> tuple[tuple[int, int, int], ...]:
    """A 3x3 integer matrix (3 integers: its diagonal); :class:`ValueError` naming ``where`` and ``key``."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape == (3,):
        arr = np.diag(arr)
    if arr.shape != (3, 3) or not np.allclose(arr, np.rint(arr)) or round(abs(np.linalg.det(arr))) < 1:
        raise ValueError(f"{where}: '{key}' must be a 3x3 integer matrix with a non-zero determinant "
                         f"(or 3 integers), got {np.asarray(value).tolist()}")
    return tuple(tuple(int(x) for x in row) for row in np.rint(arr))  # type: ignore[return-value]


def task_from_atoms(atoms: Atoms, *, where: str = "", index: int | None = None) -> KappaTask:
    """A :class:`KappaTask` from a structure whose ``info`` carries the phono3py settings.

    Required ``info`` keys: ``fc2_supercell``, ``fc3_supercell`` and ``q_mesh`` (or
    Matbench Discovery's ``q_point_mesh``). Optional: ``primitive_matrix`` (default
    ``"auto"``), ``mp_id``/``material_id`` (default ``structure-<index>``), ``name``,
    ``symm.no``. Raises :class:`ValueError` naming the structure and the key.
    """
    info = atoms.info
    ident = str(info.get("mp_id") or info.get("material_id") or f"structure-{index if index is not None else 0}")
    label = f"{where}: structure {ident}" + (f" (#{index})" if index is not None else "") \
        + f" ({atoms.get_chemical_formula()})"
    for key in ("fc2_supercell", "fc3_supercell"):
        if key not in info:
            raise ValueError(f"{label} has no '{key}' in its info (extxyz header); every structure needs "
                             "fc2_supercell, fc3_supercell and q_mesh")
    mesh_key = "q_mesh" if "q_mesh" in info else "q_point_mesh" if "q_point_mesh" in info else None
    if mesh_key is None:
        raise ValueError(f"{label} has no 'q_mesh' in its info (extxyz header); every structure needs "
                         "fc2_supercell, fc3_supercell and q_mesh")
    mesh = np.asarray(info[mesh_key]).ravel()
    if mesh.shape != (3,) or not np.all(mesh >= 1) or not np.allclose(mesh, np.rint(mesh)):
        raise ValueError(f"{label}: '{mesh_key}' must be three positive integers, got {mesh.tolist()}")
    pm_raw = info.get("primitive_matrix", "auto")
    if isinstance(pm_raw, str):
        pm: Matrix3 | str = pm_raw
    else:
        pm_arr = np.asarray(pm_raw, dtype=np.float64)
        if pm_arr.shape != (3, 3) or abs(np.linalg.det(pm_arr)) < 1e-8:
            raise ValueError(f"{label}: 'primitive_matrix' must be an invertible 3x3 matrix, got {pm_arr.tolist()}")
        pm = tuple(tuple(float(x) for x in row) for row in pm_arr)  # type: ignore[assignment]
    sg = info.get("symm.no")
    return KappaTask(
        id=ident, atoms=atoms,
        fc2_supercell=int_matrix(info["fc2_supercell"], label, "fc2_supercell"),
        fc3_supercell=int_matrix(info["fc3_supercell"], label, "fc3_supercell"),
        primitive_matrix=pm, q_mesh=tuple(int(x) for x in mesh),  # type: ignore[arg-type]
        name=str(info.get("name", atoms.get_chemical_formula())),
        spacegroup=int(sg) if sg is not None else None,
    )


def task_from_phono3py_params(path: str | os.PathLike, material: str,
                              q_mesh: Sequence[int] = (11, 11, 11)) -> KappaTask:
    """A :class:`KappaTask` from a ``phono3py_params.yaml`` (or ``phono3py_disp.yaml``).

    The unit cell, fc3 supercell, fc2 supercell (the phonon supercell, or the fc3 one when
    the file has none) and primitive matrix come from the file; ``q_mesh`` is the
    conductivity mesh (11x11x11 suits Si-PBE-fc3).
    """
    from phonft.atoms import to_ase
    from phonft.phonopy_files import load_phono3py_yaml

    path = Path(path)
    ph3 = load_phono3py_yaml(path)
    mesh = tuple(int(x) for x in q_mesh)
    if len(mesh) != 3 or min(mesh) < 1:
        raise ConfigError(f"{material}: q_mesh must be three positive integers, got {list(q_mesh)}")
    fc3 = int_matrix(ph3.supercell_matrix, str(path), "supercell_matrix")
    fc2 = fc3 if ph3.phonon_supercell_matrix is None else int_matrix(
        ph3.phonon_supercell_matrix, str(path), "phonon_supercell_matrix")
    pm = ph3.primitive_matrix
    prim: Matrix3 | str = "auto" if pm is None else tuple(tuple(float(x) for x in r) for r in np.asarray(pm))  # type: ignore[assignment]
    atoms = to_ase(ph3.unitcell)
    return KappaTask(id=material, atoms=atoms, fc2_supercell=fc2, fc3_supercell=fc3, primitive_matrix=prim,
                     q_mesh=mesh, name=atoms.get_chemical_formula(), spacegroup=None)  # type: ignore[arg-type]
