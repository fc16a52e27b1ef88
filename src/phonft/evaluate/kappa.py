"""Lattice thermal conductivity and its SRME: Matbench Discovery's ``phonondb-v1`` kappa task.

One protocol (:class:`KappaProtocol`) turns a structure and a model into a conductivity
record, and the same protocol turns stored DFT forces into the reference record, so that
:func:`score_kappa` compares like with like. The metric functions are in
:mod:`phonft.evaluate.srme`.

Model side (:func:`model_kappa`), as Matbench Discovery's ``calc_kappa_for_structure``:

1. relax positions and cell with FIRE + FrechetCellFilter + FixSymmetry to 1e-4 eV/Å
   (300 steps at most) and compare the spglib space group (symprec 1e-5) before and after;
2. phono3py with the task's fc3 supercell, fc2 (phonon) supercell and primitive matrix,
   0.03 Å displacements; fc2 forces of every displaced supercell in batches
   (:func:`phonft.evaluate.forces.displaced_forces`), fc2 built and symmetrized;
3. frequencies on the whole q-mesh (Brillouin-zone grid): imaginary modes flag the
   material (an acoustic mode at Γ below −0.01 THz, or any other negative frequency);
4. unless flagged (imaginary modes or broken symmetry), the fc3 forces, fc3 built and
   symmetrized, and the conductivity at 300 K: relaxation-time approximation of the Wigner
   transport equation (particle + coherence, SMM19), isotope scattering, on the task's
   q-mesh.

The forces are **not** drift-corrected (``remove_force_drift=False``): Matbench Discovery
hands the calculator's forces to phono3py unchanged, and phono3py's API does not subtract
the drift; a conservative MLIP's forces sum to zero anyway.

DFT side (:func:`dft_kappa`): the same steps 2-4 from the forces stored in a
``phono3py_params.yaml``, on the structure as given (no relaxation).

A failure anywhere in one material (an exception in the model, phono3py or spglib) gives
a ``failed`` record with the error message, which scores SRME 2; it never stops a run.

Records are JSON-ready dicts (:func:`write_kappa_record`); the keys SRME needs are
``kappa_tot_avg_W_mK`` (per temperature), ``mode_kappa_tot_avg_W_mK`` (T, q, s),
``mode_weights`` and ``qpoints`` (irreducible q-points, reduced coordinates of the
primitive reciprocal cell), plus the flags ``has_imaginary_modes``, ``broken_symmetry``,
``spacegroup_initial``/``spacegroup_final`` and ``failed``/``error``.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import time
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from ase import Atoms

from phonft.errors import ConfigError, InputFileError, NetworkError, PhonftError
from phonft.evaluate import srme as metrics
from phonft.io import atomic_write_bytes, sha256_file, to_json
from phonft.protocols import Protocol

log = logging.getLogger(__name__)

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


def _int_matrix(value: Any, where: str, key: str) -> tuple[tuple[int, int, int], ...]:
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
        fc2_supercell=_int_matrix(info["fc2_supercell"], label, "fc2_supercell"),
        fc3_supercell=_int_matrix(info["fc3_supercell"], label, "fc3_supercell"),
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
    fc3 = _int_matrix(ph3.supercell_matrix, str(path), "supercell_matrix")
    fc2 = fc3 if ph3.phonon_supercell_matrix is None else _int_matrix(
        ph3.phonon_supercell_matrix, str(path), "phonon_supercell_matrix")
    pm = ph3.primitive_matrix
    prim: Matrix3 | str = "auto" if pm is None else tuple(tuple(float(x) for x in r) for r in np.asarray(pm))  # type: ignore[assignment]
    atoms = to_ase(ph3.unitcell)
    return KappaTask(id=material, atoms=atoms, fc2_supercell=fc2, fc3_supercell=fc3, primitive_matrix=prim,
                     q_mesh=mesh, name=atoms.get_chemical_formula(), spacegroup=None)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- kappa103 data

KAPPA103_FILES = {
    "structures": "phononDB-PBE-structures.extxyz",
    "kappas": "kappas_phononDB_PBE_noNAC.json.gz",
    "ids": "mp_id-phonondb_id.txt",
}
KAPPA103_SHA256 = {
    "phononDB-PBE-structures.extxyz": "63e012fdafc61702ab22cdbda7e9c0603f57f54c2e464666585a9159e0ce5b38",
    "kappas_phononDB_PBE_noNAC.json.gz": "442f651d3272e8a104baab3e53241220bf66afc90559f593fb3d7697874506ea",
    "mp_id-phonondb_id.txt": "f4a5a4e464d557760bb37eaea9bd8a687acc12bfd44bd375410cd7a4600515bb",
}
KAPPA103_URL = "https://raw.githubusercontent.com/MPA2suite/k_SRME/1f853887434c860d93b0c13dd575a08d13fe0e4c/data/{file}"
"""Public address of the kappa103 files (MPA2suite/k_SRME ``data/``, GPL-3), pinned to a
commit; downloads are checked against :data:`KAPPA103_SHA256`."""
KAPPA103_ENV = "PHONFT_KAPPA103_DIR"


def _shared_candidates() -> list[Path]:
    repo_root = Path(__file__).resolve().parents[3]
    return [Path.cwd().parent / "shared" / "data" / "kappa103", repo_root.parent / "shared" / "data" / "kappa103"]


def _has_files(folder: Path) -> bool:
    return all((folder / f).is_file() for f in (KAPPA103_FILES["structures"], KAPPA103_FILES["kappas"]))


def kappa103_dir(data_dir: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                 download: bool = True) -> Path:
    """The folder holding the kappa103 files.

    Looked up in this order: ``data_dir``; ``$PHONFT_KAPPA103_DIR``; ``../shared/data/kappa103``
    (beside the working directory, then beside the repository); the download cache
    ``cache_dir/kappa103`` (default ``$PHONFT_CACHE`` or ``~/.cache/phonft``), downloading
    the files there when ``download`` (GPL-3 data: never copied into the repository).
    """
    for given, what in ((data_dir, "the kappa103 folder given"), (os.environ.get(KAPPA103_ENV), f"${KAPPA103_ENV}")):
        if given:
            folder = Path(given)
            if not _has_files(folder):
                raise InputFileError(folder, f"({what}) lacks {KAPPA103_FILES['structures']} or "
                                     f"{KAPPA103_FILES['kappas']}.",
                                     "point it at a copy of MPA2suite/k_SRME data/, or leave it unset to download.")
            return folder
    for folder in _shared_candidates():
        if _has_files(folder):
            return folder
    from phonft.cache import default_cache_dir

    folder = Path(cache_dir) if cache_dir else default_cache_dir()
    folder = folder / "kappa103"
    if not _has_files(folder):
        if not download:
            raise InputFileError(folder, "holds no kappa103 files.", "allow the download, or set "
                                 f"${KAPPA103_ENV} to a folder with them.")
        download_kappa103(folder)
    return folder


def download_kappa103(folder: str | os.PathLike) -> Path:
    """Download the kappa103 files into ``folder`` (checked by SHA-256); :class:`NetworkError` offline."""
    from phonft.cache import download

    folder = Path(folder)
    for fname in KAPPA103_FILES.values():
        dest = folder / fname
        if dest.is_file() and sha256_file(dest) == KAPPA103_SHA256[fname]:
            continue
        url = KAPPA103_URL.format(file=fname)
        log.info("downloading %s", url)
        try:
            download("kappa103", url, dest)
        except NetworkError as exc:
            raise NetworkError("kappa103", f"could not download {url}.",
                               f"connect to the network, or copy MPA2suite/k_SRME data/ into {folder}, or set "
                               f"${KAPPA103_ENV} to a folder holding {', '.join(KAPPA103_FILES.values())}.") from exc
        digest = sha256_file(dest)
        if digest != KAPPA103_SHA256[fname]:
            dest.unlink(missing_ok=True)
            raise NetworkError("kappa103", f"{url} has SHA-256 {digest}, not the expected "
                               f"{KAPPA103_SHA256[fname]}; the file was removed.",
                               f"check the address, or place the right file in {folder} by hand.")
    return folder


def _select(items: Sequence[Any], key, ids: Sequence[str] | None, first_n: int | None, where: Path) -> list[Any]:
    if ids is not None:
        by_id = {key(it): it for it in items}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise InputFileError(where, f"has no material {', '.join(map(str, missing))}.",
                                 f"use ids from the file, e.g. {', '.join(list(by_id)[:3])}.")
        items = [by_id[i] for i in ids]
    if first_n is not None:
        if first_n < 1:
            raise ConfigError(f"first_n must be at least 1, not {first_n}")
        items = list(items)[:first_n]
    return list(items)


def load_kappa103(data_dir: str | os.PathLike | None = None, ids: Sequence[str] | None = None,
                  first_n: int | None = None, cache_dir: str | os.PathLike | None = None) -> list[KappaTask]:
    """The kappa103 structures (103 PhononDB PBE binaries) as :class:`KappaTask` s.

    ``ids`` (Materials Project ids, in the order wanted) and/or ``first_n`` (the first N in
    file order, after ``ids``) select a subset. See :func:`kappa103_dir` for where the
    files are looked for.
    """
    import ase.io

    folder = kappa103_dir(data_dir, cache_dir)
    path = folder / KAPPA103_FILES["structures"]
    try:
        structures = ase.io.read(path, index=":", format="extxyz")
    except Exception as exc:
        raise InputFileError(path, f"is not a readable extxyz file ({exc}).",
                             "re-download it (delete it first), or check the copy.") from exc
    tasks = []
    for i, atoms in enumerate(structures):
        try:
            tasks.append(task_from_atoms(atoms, where=str(path), index=i))
        except ValueError as exc:
            raise InputFileError(path, str(exc).removeprefix(f"{path}: "), "fix the extxyz header of that structure.") from exc
    return _select(tasks, lambda t: t.id, ids, first_n, path)


def _read_kappa_table(path: Path) -> Any:
    import pandas as pd

    try:
        return pd.read_json(path)
    except Exception as exc:
        raise InputFileError(path, f"is not a readable kappa table ({exc}).", "re-download it.") from exc


def kappa103_references(ids: Iterable[str] | None = None, data_dir: str | os.PathLike | None = None,
                        cache_dir: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """DFT reference records of kappa103 (PhononDB PBE, no NAC), keyed by material id.

    Each record has the keys :func:`score_kappa` reads: ``kappa_tot_avg_W_mK`` (per
    temperature, W/m/K), ``mode_kappa_tot_avg_W_mK`` (T, q, s; W/m/K, weighted),
    ``mode_weights``, ``qpoints``, ``frequencies_THz``, ``temperatures_K``, ``q_mesh``,
    ``spacegroup_initial``/``spacegroup_final`` (the stated space group) and the flags
    (all false). ``ids`` selects materials (default: all 103).
    """
    folder = kappa103_dir(data_dir, cache_dir)
    path = folder / KAPPA103_FILES["kappas"]
    df = _read_kappa_table(path)
    need = {"mp_id", "kappa_TOT_ave", "mode_kappa_TOT_ave", "weights", "qpoints"}
    if not need <= set(df.columns):
        raise InputFileError(path, f"lacks the columns {sorted(need - set(df.columns))}.", "re-download it.")
    rows = {str(r["mp_id"]): r for _, r in df.iterrows()}
    wanted = list(rows) if ids is None else list(ids)
    missing = [i for i in wanted if i not in rows]
    if missing:
        raise InputFileError(path, f"has no DFT kappa for {', '.join(missing)}.", "use kappa103 material ids.")
    out = {}
    for mid in wanted:
        r = rows[mid]
        sg = int(r["symm.no"]) if "symm.no" in r and r["symm.no"] is not None else None
        out[mid] = {
            "id": mid, "kind": "dft", "name": str(r.get("name", "")), "source": f"kappa103:{path.name}",
            "failed": False, "error": None, "has_imaginary_modes": False, "broken_symmetry": False,
            "spacegroup_initial": sg, "spacegroup_final": sg,
            "temperatures_K": np.asarray(r.get("temperatures", [300.0]), dtype=np.float64).tolist(),
            "q_mesh": np.asarray(r.get("q_mesh"), dtype=int).tolist() if r.get("q_mesh") is not None else None,
            "kappa_tot_avg_W_mK": np.asarray(r["kappa_TOT_ave"], dtype=np.float64).tolist(),
            "mode_kappa_tot_avg_W_mK": np.asarray(r["mode_kappa_TOT_ave"], dtype=np.float64).tolist(),
            "mode_weights": np.asarray(r["weights"], dtype=np.float64).tolist(),
            "qpoints": np.asarray(r["qpoints"], dtype=np.float64).tolist(),
            "frequencies_THz": np.asarray(r["frequencies"], dtype=np.float64).tolist()
            if "frequencies" in r else None,
        }
    return out


# --------------------------------------------------------------------------- phono3py steps


def _init_phono3py(atoms: Atoms, task: KappaTask, protocol: KappaProtocol):
    from phono3py import Phono3py

    from phonft.atoms import from_ase

    pm = task.primitive_matrix if isinstance(task.primitive_matrix, str) else np.asarray(task.primitive_matrix)
    ph3 = Phono3py(from_ase(atoms, wrap=False), supercell_matrix=np.asarray(task.fc3_supercell),
                   phonon_supercell_matrix=np.asarray(task.fc2_supercell), primitive_matrix=pm,
                   symprec=protocol.symprec, log_level=0)
    ph3.mesh_numbers = list(task.q_mesh)
    ph3.generate_displacements(distance=protocol.displacement_distance_A)
    return ph3


def _cells(supercells: Sequence[Any]) -> tuple[list[Atoms], list[int]]:
    """Displaced supercells as ASE atoms, and the indices that exist (``None``: skipped pair)."""
    from phonft.atoms import to_ase

    present = [i for i, c in enumerate(supercells) if c is not None]
    return [to_ase(supercells[i]) for i in present], present


def _model_forces(model, supercells: Sequence[Any], n_atoms: int, protocol: KappaProtocol, where: str,
                  batch_atoms: int | None, progress: bool) -> np.ndarray:
    from phonft.evaluate.forces import displaced_forces

    cells, present = _cells(supercells)
    forces = np.zeros((len(supercells), n_atoms, 3), dtype=np.float64)
    if cells:
        forces[present] = displaced_forces(model, cells, batch_atoms=batch_atoms,
                                           remove_drift=protocol.remove_force_drift, where=where, progress=progress)
    return forces


def _produce_fc2(ph3, protocol: KappaProtocol) -> None:
    ph3.produce_fc2()
    if protocol.symmetrize_fc:
        ph3.symmetrize_fc2()


def _produce_fc3(ph3, protocol: KappaProtocol) -> None:
    """fc3 (and fc2 when the file has no separate phonon supercell), symmetrized."""
    ph3.produce_fc3()
    if protocol.symmetrize_fc:
        ph3.symmetrize_fc3()
        if ph3.phonon_supercell_matrix is None:
            ph3.symmetrize_fc2()


def imaginary_modes(frequencies_THz: np.ndarray, gamma_acoustic_threshold_THz: float = -0.01) -> bool:
    """Matbench Discovery's imaginary-mode rule on a q-mesh whose first point is Γ.

    ``frequencies_THz`` has shape (n_q, n_bands). True when all are NaN, an optical mode at
    Γ is negative, an acoustic mode at Γ is below the threshold, or any mode elsewhere is
    negative.
    """
    f = np.asarray(frequencies_THz, dtype=np.float64)
    if np.all(np.isnan(f)):
        return True
    return bool(np.any(f[0, 3:] < 0) or np.any(f[0, :3] < gamma_acoustic_threshold_THz) or np.any(f[1:] < 0))


def _mesh_frequencies(ph3) -> np.ndarray:
    """Harmonic frequencies (THz) on the whole Brillouin-zone grid of the q-mesh (Γ first)."""
    ph3.init_phph_interaction(symmetrize_fc3q=False)
    ph3.run_phonon_solver()
    freqs, _, _ = ph3.get_phonon_data()
    return np.asarray(freqs, dtype=np.float64)


def _conductivity(ph3, protocol: KappaProtocol) -> dict[str, Any]:
    """Run phono3py's RTA conductivity; return the record's conductivity fields."""
    ph3.init_phph_interaction(symmetrize_fc3q=False)
    wigner = protocol.conductivity_type == "wigner"
    ph3.run_thermal_conductivity(temperatures=[protocol.temperature_K], is_isotope=protocol.is_isotope,
                                 boundary_mfp=protocol.boundary_mfp_um,
                                 transport_type="SMM19" if wigner else None)
    cond = ph3.thermal_conductivity
    cv = np.asarray(cond.mode_heat_capacities, dtype=np.float64)  # (T, q, s), eV/K
    freqs = np.asarray(cond.frequencies, dtype=np.float64)
    weights = np.asarray(cond.grid_weights, dtype=np.float64)
    if freqs.shape[0] != weights.shape[0]:
        freqs = freqs[np.asarray(cond.grid_points)]
    n_mesh = float(np.prod(ph3.mesh_numbers))
    if wigner:
        parts = metrics.split_mode_kappa_matrix(
            np.asarray(cond.mode_kappa_matrix, dtype=np.float64)[0], cv, freqs,
            cutoff_frequency_THz=float(ph3.phph_interaction.cutoff_frequency),
            degenerate_threshold_THz=protocol.degenerate_threshold_THz)
        mode_tot = parts["mode_kappa_tot"]
        kappa_p = parts["mode_kappa_p"].sum(axis=(1, 2)) / n_mesh
        kappa_c = parts["mode_kappa_c"].sum(axis=(1, 2, 3)) / n_mesh
    else:
        mode_tot = np.asarray(cond.mode_kappa, dtype=np.float64)[0]
        kappa_p = mode_tot.sum(axis=(1, 2)) / n_mesh
        kappa_c = np.zeros_like(kappa_p)
    kappa_tot = kappa_p + kappa_c
    if not np.allclose(mode_tot.sum(axis=(1, 2)) / n_mesh, kappa_tot, rtol=1e-8, atol=1e-8):
        raise PhonftError("per-mode conductivities do not add up to the total")  # a bug, not an input error
    return {
        "kappa_tot_W_mK": kappa_tot, "kappa_p_W_mK": kappa_p, "kappa_c_W_mK": kappa_c,
        "kappa_tot_avg_W_mK": metrics.kappa_average(kappa_tot),
        "mode_kappa_tot_avg_W_mK": metrics.kappa_average(mode_tot),
        "mode_weights": weights, "qpoints": np.asarray(cond.qpoints, dtype=np.float64),
        "frequencies_THz": freqs, "mode_heat_capacity_eV_K": cv,
    }


def _base_record(task: KappaTask, kind: str, protocol: KappaProtocol, **extra: Any) -> dict[str, Any]:
    return {
        "id": task.id, "kind": kind, **extra, "task": task.describe(),
        "status": "running", "failed": False, "error": None, "error_traceback": None,
        "has_imaginary_modes": None, "broken_symmetry": None,
        "spacegroup_initial": None, "spacegroup_final": None, "min_frequency_THz": None,
        "relaxation": None, "temperatures_K": [protocol.temperature_K], "q_mesh": list(task.q_mesh),
        "kappa_tot_W_mK": None, "kappa_p_W_mK": None, "kappa_c_W_mK": None, "kappa_tot_avg_W_mK": None,
        "mode_kappa_tot_avg_W_mK": None, "mode_weights": None, "qpoints": None, "frequencies_THz": None,
        "timings_s": {}, **protocol.record(),
    }


def _fail(record: dict[str, Any], exc: BaseException, stage: str) -> dict[str, Any]:
    log.error("%s: kappa failed during %s: %s: %s", record["id"], stage, type(exc).__name__, exc)
    record.update(status="failed", failed=True, error=f"{stage}: {type(exc).__name__}: {exc}",
                  error_traceback=traceback.format_exc())
    return record


def _finish(record: dict[str, Any], t0: float) -> dict[str, Any]:
    record["timings_s"]["total"] = time.perf_counter() - t0
    return _jsonable(record)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    return obj


def _flags_and_conductivity(ph3, record: dict[str, Any], protocol: KappaProtocol, fc3_step) -> dict[str, Any]:
    """Steps 3-4 once fc2 is set: imaginary modes, then (unless flagged) ``fc3_step(ph3)``
    (forces and fc3) and the conductivity."""
    timings = record["timings_s"]
    t = time.perf_counter()
    freqs = _mesh_frequencies(ph3)
    record["has_imaginary_modes"] = imaginary_modes(freqs, protocol.gamma_acoustic_threshold_THz)
    record["min_frequency_THz"] = float(np.nanmin(freqs))
    timings["frequencies"] = time.perf_counter() - t
    if protocol.skip_flagged and (record["has_imaginary_modes"] or record["broken_symmetry"]):
        record["status"] = "flagged"
        log.warning("%s: %s; fc3 and conductivity skipped (SRME 2)", record["id"],
                    "imaginary modes" if record["has_imaginary_modes"] else "symmetry broken by the relaxation")
        return record
    t = time.perf_counter()
    fc3_step(ph3)
    timings["fc3"] = time.perf_counter() - t
    t = time.perf_counter()
    record.update(_conductivity(ph3, protocol))
    timings["conductivity"] = time.perf_counter() - t
    record["status"] = "flagged" if record["has_imaginary_modes"] or record["broken_symmetry"] else "ok"
    return record


# --------------------------------------------------------------------------- public API


def model_kappa(model, task: KappaTask, protocol: KappaProtocol | None = None, *, batch_atoms: int | None = None,
                progress: bool = True) -> dict[str, Any]:
    """The conductivity record of ``model`` on ``task`` (never raises for the material).

    ``model`` is a :class:`phonft.models.Model` (evaluate it in float64). Returns the record
    described in the module docstring, with ``kind: "model"``, ``model`` (its spec),
    ``relaxation`` (steps, convergence, residual force, space groups, relaxed cell in Å),
    ``n_supercells`` and ``timings_s``. Any error gives ``status: "failed"`` with the
    message in ``error``.
    """
    from phonft.evaluate.relax import relax, spacegroup_number

    protocol = protocol or KappaProtocol()
    t0 = time.perf_counter()
    record = _base_record(task, "model", protocol, model=getattr(model, "spec", str(model)))
    timings = record["timings_s"]
    stage = "setup"
    try:
        model.check_elements(task.atoms, task.id)
        stage = "relaxation"
        t = time.perf_counter()
        if protocol.relax_max_steps > 0:
            rr = relax(task.atoms, model.as_ase_calculator(), fmax_eV_A=protocol.relax_fmax_eV_A,
                       max_steps=protocol.relax_max_steps, relax_cell=protocol.relax_cell,
                       symprec=protocol.symprec, where=task.id)
            atoms = rr.atoms
            record["relaxation"] = rr.as_dict()
            sg0, sg1 = rr.spacegroup_before, rr.spacegroup_after
        else:
            atoms = task.atoms.copy()
            sg0 = sg1 = spacegroup_number(atoms, protocol.symprec)
        timings["relaxation"] = time.perf_counter() - t
        record.update(spacegroup_initial=sg0, spacegroup_final=sg1, broken_symmetry=bool(sg0 != sg1))

        stage = "fc2"
        ph3 = _init_phono3py(atoms, task, protocol)
        fc2_cells = ph3.phonon_supercells_with_displacements
        fc3_cells = ph3.supercells_with_displacements
        record["n_supercells"] = {"fc2": len(fc2_cells), "fc3": len(fc3_cells),
                                  "fc2_atoms": len(ph3.phonon_supercell), "fc3_atoms": len(ph3.supercell)}
        t = time.perf_counter()
        ph3.phonon_forces = _model_forces(model, fc2_cells, len(ph3.phonon_supercell), protocol,
                                          f"{task.id} fc2", batch_atoms, progress)
        timings["fc2_forces"] = time.perf_counter() - t
        _produce_fc2(ph3, protocol)

        def fc3_step(p) -> None:
            t3 = time.perf_counter()
            p.forces = _model_forces(model, fc3_cells, len(p.supercell), protocol, f"{task.id} fc3",
                                     batch_atoms, progress)
            timings["fc3_forces"] = time.perf_counter() - t3
            _produce_fc3(p, protocol)

        stage = "fc3 and conductivity"
        _flags_and_conductivity(ph3, record, protocol, fc3_step)
    except Exception as exc:  # one material must never stop a benchmark run
        _fail(record, exc, stage)
    return _finish(record, t0)


def model_kappa_many(model, tasks: Sequence[KappaTask], protocol: KappaProtocol | None = None, *,
                     out_dir: str | os.PathLike | None = None, batch_atoms: int | None = None,
                     progress: bool = True) -> dict[str, dict[str, Any]]:
    """:func:`model_kappa` over many tasks, with a progress bar; records keyed by id.

    With ``out_dir`` each record is written to ``out_dir/<id>.json.gz`` as soon as it is
    done, and a record already there with the same model spec and protocol digest (and not
    failed) is reused, so that a killed run continues where it stopped.
    """
    from tqdm.auto import tqdm

    protocol = protocol or KappaProtocol()
    spec = getattr(model, "spec", str(model))
    records: dict[str, dict[str, Any]] = {}
    bar = tqdm(tasks, desc=f"kappa {spec}", unit="material", disable=not progress, mininterval=5.0)
    for task in bar:
        bar.set_postfix_str(task.id)
        path = Path(out_dir) / f"{task.id}.json.gz" if out_dir is not None else None
        if path is not None and path.is_file():
            old = read_kappa_record(path)
            if old.get("model") == spec and old.get("protocol_digest") == protocol.digest() and not old.get("failed"):
                records[task.id] = old
                continue
        records[task.id] = rec = model_kappa(model, task, protocol, batch_atoms=batch_atoms, progress=False)
        if path is not None:
            write_kappa_record(path, rec)
        log.info("%s: %s, kappa %s W/m/K, %.0f s", task.id, rec["status"], rec["kappa_tot_avg_W_mK"],
                 rec["timings_s"]["total"])
    return records


def dft_kappa(phono3py_params_path: str | os.PathLike, task: KappaTask,
              protocol: KappaProtocol | None = None) -> dict[str, Any]:
    """The conductivity record of the DFT forces stored in ``phono3py_params_path``.

    The structure is used as given (no relaxation); the supercells, primitive matrix and
    displacements are those of the file (``task`` must agree on the supercells) and the
    mesh is ``task.q_mesh``. The relaxation settings of ``protocol`` are unused; everything
    else is applied as on the model side, so that the record compares with
    :func:`model_kappa` records. A file that cannot be read raises
    :class:`~phonft.errors.InputFileError`; a failure after that gives a ``failed`` record.
    """
    from phonft.evaluate.relax import spacegroup_number
    from phonft.atoms import to_ase
    from phonft.phonopy_files import load_phono3py_yaml

    protocol = protocol or KappaProtocol()
    path = Path(phono3py_params_path)
    t0 = time.perf_counter()
    ph3 = load_phono3py_yaml(path)
    fc3 = _int_matrix(ph3.supercell_matrix, str(path), "supercell_matrix")
    if fc3 != task.fc3_supercell:
        raise InputFileError(path, f"has the fc3 supercell {fc3}, the task '{task.id}' {task.fc3_supercell}.",
                             "build the task from this file with task_from_phono3py_params.")
    if not ph3.dataset:
        raise InputFileError(path, "holds no fc3 displacement dataset with forces.",
                             "use the phono3py_params.yaml written by `phonft references`.")
    ph3.mesh_numbers = list(task.q_mesh)
    record = _base_record(task, "dft", protocol, source={"file": str(path), "sha256": sha256_file(path)})
    stage = "force constants"
    try:
        sg = spacegroup_number(to_ase(ph3.unitcell), protocol.symprec)
        record.update(spacegroup_initial=sg, spacegroup_final=sg, broken_symmetry=False)
        t = time.perf_counter()
        if ph3.phonon_supercell_matrix is not None and ph3.phonon_dataset:
            _produce_fc2(ph3, protocol)
            fc3_done = False
        else:  # fc2 comes from the fc3 set's first displacements
            _produce_fc3(ph3, protocol)
            fc3_done = True
        record["timings_s"]["fc2"] = time.perf_counter() - t
        stage = "conductivity"
        _flags_and_conductivity(ph3, record, protocol,
                                (lambda p: None) if fc3_done else (lambda p: _produce_fc3(p, protocol)))
    except Exception as exc:
        _fail(record, exc, stage)
    return _finish(record, t0)


def score_kappa(model_records: Mapping[str, Mapping[str, Any]], ref_records: Mapping[str, Mapping[str, Any]]
                ) -> tuple[Any, dict[str, Any]]:
    """Per-material SRD/SRE/SRME with Matbench Discovery's penalties, and their means.

    Every reference material is scored; one without a model record counts as failed
    (SRME 2, SRE 2). A model record without a reference is an error.

    Returns
    -------
    table : pandas.DataFrame
        Indexed by material id: ``srme``, ``sre``, ``srd``, ``kappa_model_W_mK``,
        ``kappa_dft_W_mK`` (averaged, first temperature), ``penalty`` (reason or None),
        ``has_imaginary_modes``, ``broken_symmetry``, ``failed``, ``error``.
    summary : dict
        ``srme``, ``sre`` (means), ``n_materials``, ``n_penalised``, ``n_failed``,
        ``n_imaginary``, ``n_broken_symmetry``, ``n_missing``.
    """
    import pandas as pd

    extra = sorted(set(model_records) - set(ref_records))
    if extra:
        raise ConfigError(f"kappa scoring: no reference for {', '.join(extra)}; compute or load the DFT "
                          "records of the same materials")
    rows = []
    for mid, ref in ref_records.items():
        pred = model_records.get(mid)
        missing = pred is None
        if missing:
            pred = {"failed": True, "error": "no model record"}
        try:
            m = metrics.material_metrics(pred, ref)
        except ValueError as exc:
            raise PhonftError(f"kappa scoring, material {mid}: {exc}. Fix: compute the model and the reference "
                              "with the same q_mesh, supercells and primitive cell.") from exc
        kp = pred.get("kappa_tot_avg_W_mK")
        rows.append({
            "id": mid, "srme": m["srme"], "sre": m["sre"], "srd": m["srd"],
            "kappa_model_W_mK": float(kp[0]) if kp is not None and not pred.get("failed") else np.nan,
            "kappa_dft_W_mK": float(np.atleast_1d(ref["kappa_tot_avg_W_mK"])[0]),
            "penalty": m["penalty"], "has_imaginary_modes": pred.get("has_imaginary_modes"),
            "broken_symmetry": pred.get("broken_symmetry"), "failed": bool(pred.get("failed")),
            "missing": missing, "error": pred.get("error"),
        })
    table = pd.DataFrame(rows).set_index("id") if rows else pd.DataFrame(
        columns=["srme", "sre", "srd", "penalty"]).rename_axis("id")
    summary = {
        "srme": float(table["srme"].mean()) if rows else float("nan"),
        "sre": float(table["sre"].mean()) if rows else float("nan"),
        "n_materials": len(rows),
        "n_penalised": int(table["penalty"].notna().sum()) if rows else 0,
        "n_failed": int((table["penalty"] == "failed").sum()) if rows else 0,
        "n_imaginary": int((table["penalty"] == "imaginary_modes").sum()) if rows else 0,
        "n_broken_symmetry": int((table["penalty"] == "broken_symmetry").sum()) if rows else 0,
        "n_missing": int(table["missing"].sum()) if rows else 0,
    }
    return table, summary


def write_kappa_record(path: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    """Write a record as JSON, atomically; gzip-compressed when ``path`` ends in ``.gz``."""
    path = Path(path)
    data = to_json(_jsonable(dict(record))).encode("utf-8")
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    return atomic_write_bytes(path, data)


def read_kappa_record(path: str | os.PathLike) -> dict[str, Any]:
    """Read a record written by :func:`write_kappa_record` (plain or ``.gz``)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "does not exist.", "run the kappa evaluation that writes it.")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        return json.loads(raw)
    except (OSError, ValueError) as exc:
        raise InputFileError(path, f"is not a kappa record ({exc}).", "delete it and run the evaluation again.") from exc

