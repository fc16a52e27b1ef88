"""kappa103, Matbench Discovery's 103 PhononDB PBE structures and their DFT conductivities.

The files (MPA2suite/k_SRME ``data/``, GPL-3) are never copied into the repository: they
are looked up in a given folder, ``$PHONFT_KAPPA103_DIR`` or ``../shared/data/kappa103``,
else downloaded into the cache from a pinned commit and checked by SHA-256.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from phonft.errors import ConfigError, InputFileError, NetworkError
from phonft.evaluate.kappa.protocol import KappaTask, task_from_atoms
from phonft.io import sha256_file

log = logging.getLogger(__name__)

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
    repo_root = Path(__file__).resolve().parents[4]
    return [Path.cwd().parent / "shared" / "data" / "kappa103", repo_root.parent / "shared" / "data" / "kappa103"]


def _has_files(folder: Path) -> bool:
    return all((folder / f).is_file() for f in (KAPPA103_FILES["structures"], KAPPA103_FILES["kappas"]))


def _cache_verified(folder: Path) -> bool:
    """Whether the cache holds every kappa103 file with its pinned SHA-256."""
    return all((folder / f).is_file() and sha256_file(folder / f) == KAPPA103_SHA256[f] for f in KAPPA103_SHA256)


def kappa103_dir(data_dir: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                 download: bool = True) -> Path:
    """The folder holding the kappa103 files.

    Looked up in this order: ``data_dir``; ``$PHONFT_KAPPA103_DIR``; ``../shared/data/kappa103``
    (beside the working directory, then beside the repository); the download cache
    ``cache_dir/kappa103`` (default ``$PHONFT_CACHE`` or ``~/.cache/phonft``), downloading
    the files there when ``download`` (GPL-3 data: never copied into the repository). Cached
    files are checked against :data:`KAPPA103_SHA256` on every use and fetched again when
    they differ.
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
    if not _cache_verified(folder):  # a changed or damaged cached file is fetched again
        if not download:
            raise InputFileError(folder, "holds no kappa103 files with the pinned SHA-256 values.",
                                 f"allow the download, or set ${KAPPA103_ENV} to a folder with them.")
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
    from phonft.atoms import check_structure

    tasks = []
    for i, atoms in enumerate(structures):
        check_structure(atoms, f"{path} (structure {i})")  # before phono3py's C code sees it
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
