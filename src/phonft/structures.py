"""structures stage: one unit cell per material, from wherever it comes.

Sources (the ``structure`` mapping of a material in the config):

- ``{file: path}``: any file ase or pymatgen reads (CIF, POSCAR, extxyz; ``index`` picks a
  frame of a multi-frame file);
- ``{mp_id: mp-149}``: Materials Project, through mp-api; needs ``MP_API_KEY`` and a
  network;
- ``{mdr_id: mp-149}``: an MDR phonon file, downloaded by URL into the cache; the file is
  kept next to the structure so that ``references`` can read it;
- nothing: the unit cell of the material's reference DFT data (vendored data sets).

Output, ``results/structures/<m>/``: ``POSCAR`` (Å), ``structure.json`` (provenance,
formula, space group) and, for MDR ids, ``mdr.yaml.bz2``.
"""

from __future__ import annotations

import bz2
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import spglib
from ase import Atoms

from phonft.cache import check_sha256, default_cache_dir, fetch
from phonft.errors import ConfigError, InputFileError, NetworkError
from phonft.io import atomic_directory, atomic_write_json, sha256_file

MDR_URL_TEMPLATE = "https://alexandria.icams.rub.de/data/phonon_benchmark/pbe/{mdr_id}.yaml.bz2"
"""Default download address of MDR phonon files; override with ``sources.mdr_url``."""


def read_structure_file(path: str | os.PathLike, index: int | str = -1) -> Atoms:
    """Read a CIF, POSCAR, extxyz (or any ase/pymatgen format) into ``ase.Atoms``."""
    import ase.io

    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "does not exist.", "check the 'structure: file:' path in the config.")
    try:
        atoms = ase.io.read(path, index=index)
    except Exception as ase_exc:  # fall back on pymatgen's readers
        try:
            from pymatgen.core import Structure
            from pymatgen.io.ase import AseAtomsAdaptor

            atoms = AseAtomsAdaptor.get_atoms(Structure.from_file(path))
        except Exception:
            raise InputFileError(
                path,
                f"could not be read as a crystal structure by ase or pymatgen ({ase_exc}).",
                "give a CIF, POSCAR or extxyz file with a periodic cell.",
            ) from ase_exc
    if isinstance(atoms, list):
        raise InputFileError(path, "holds several frames.", "set 'index' to pick one.")
    return check_periodic(atoms, path)


def check_periodic(atoms: Atoms, origin: str | os.PathLike) -> Atoms:
    if len(atoms) == 0 or not atoms.pbc.all() or abs(atoms.cell.volume) < 1e-6:
        raise InputFileError(origin, "does not describe a 3D periodic crystal (no atoms, no cell or no pbc).",
                             "give a bulk crystal structure with a full 3D cell.")
    return Atoms(atoms.get_chemical_symbols(), cell=np.array(atoms.cell), scaled_positions=atoms.get_scaled_positions(), pbc=True)


def fetch_mp(material: str, mp_id: str) -> tuple[Atoms, dict[str, Any]]:
    """Download a structure from the Materials Project (needs ``MP_API_KEY``)."""
    key = os.environ.get("MP_API_KEY")
    if not key:
        raise NetworkError(material, f"Materials Project id '{mp_id}' needs an API key, and MP_API_KEY is not set.",
                           "export MP_API_KEY=<your key from materialsproject.org/api>, or give a local "
                           "'structure: {file: ...}' instead.")
    try:
        from mp_api.client import MPRester
        from pymatgen.io.ase import AseAtomsAdaptor
    except ImportError as exc:
        raise NetworkError(material, "the mp-api package is not installed.", "pip install 'phonft[mp]'.") from exc
    try:
        with MPRester(key) as mpr:
            structure = mpr.get_structure_by_material_id(mp_id)
    except Exception as exc:
        raise NetworkError(material, f"could not fetch '{mp_id}' from the Materials Project ({exc}).",
                           "check the network, the key and the id, or give a local structure file.") from exc
    atoms = AseAtomsAdaptor.get_atoms(structure)
    return check_periodic(atoms, mp_id), {"kind": "mp", "mp_id": mp_id}


def fetch_mdr(material: str, mdr_id: str, cache_dir: Path, url_template: str = MDR_URL_TEMPLATE,
              sha256: str | None = None) -> Path:
    """Return the cached MDR file for ``mdr_id``, downloading it when missing.

    The cache is keyed by the full URL (``<cache_dir>/mdr/<url key>/<id>.yaml.bz2``, see
    :mod:`phonft.cache`); with ``sha256`` the file must have that digest. MDR publishes no
    checksums, so none is pinned.
    """
    dest = fetch(material, url_template.format(mdr_id=mdr_id), cache_dir, "mdr",
                 sha256=check_sha256(sha256, f"material '{material}': structure.sha256"),
                 name=f"{mdr_id}.yaml.bz2")
    try:
        with bz2.open(dest, "rb") as fh:
            while fh.read(1 << 20):
                pass
    except (OSError, EOFError) as exc:
        dest.unlink(missing_ok=True)
        raise InputFileError(dest, f"is not a valid bz2 file ({exc}); it was removed.", "run again to re-download.") from exc
    return dest


def unitcell_from_reference(spec: dict[str, Any], base_dir: Path) -> tuple[Atoms, dict[str, Any]]:
    """The unit cell stored with a material's reference DFT data, in Å."""
    from phonft.atoms import to_ase
    from phonft.phonopy_files import load_phono3py_yaml, load_phonopy_yaml, normalised_phonopy
    from phonft.specs import SpecError, resolve

    try:
        rs = resolve(spec, base_dir)
    except SpecError as exc:
        raise ConfigError(str(exc)) from exc
    if rs.format == "engine":
        raise ConfigError("an 'engine' reference has no structure of its own: give 'structure: {file: ...}'")
    if rs.format == "phono3py":
        cell = load_phono3py_yaml(rs.main).unitcell  # the forces are not needed for the cell
    else:
        cell = normalised_phonopy(load_phonopy_yaml(rs.main), dataset={}).unitcell
    return to_ase(cell), {"kind": "reference", "format": rs.format, "file": str(rs.main)}


def symmetry_info(atoms: Atoms, symprec: float = 1e-5) -> dict[str, Any]:
    cell = (np.array(atoms.cell), atoms.get_scaled_positions(), atoms.numbers)
    ds = spglib.get_symmetry_dataset(cell, symprec=symprec)
    if ds is None:
        return {"spacegroup": None, "spacegroup_number": None}
    return {"spacegroup": ds.international, "spacegroup_number": int(ds.number)}


def load_structure(
    material: str, entry: dict[str, Any], base_dir: str | os.PathLike = ".",
    cache_dir: str | os.PathLike | None = None, mdr_url: str = MDR_URL_TEMPLATE,
) -> tuple[Atoms, dict[str, Any], Path | None]:
    """Resolve a material's structure source; return (atoms, provenance, MDR file or None)."""
    base = Path(base_dir)
    src = entry.get("structure") or {}
    if "file" in src:
        path = Path(src["file"])
        path = path if path.is_absolute() else base / path
        atoms = read_structure_file(path, src.get("index", -1))
        return atoms, {"kind": "file", "file": str(path), "sha256": sha256_file(path)}, None
    if "mp_id" in src:
        atoms, prov = fetch_mp(material, src["mp_id"])
        return atoms, prov, None
    if "mdr_id" in src:
        mdr_file = fetch_mdr(material, src["mdr_id"], Path(cache_dir or default_cache_dir()), mdr_url,
                             src.get("sha256"))
        atoms, _ = unitcell_from_reference({"format": "mdr", "path": str(mdr_file)}, base)
        return atoms, {"kind": "mdr", "mdr_id": src["mdr_id"], "url": mdr_url.format(mdr_id=src["mdr_id"]),
                       "sha256": sha256_file(mdr_file)}, mdr_file
    if "reference" in entry:
        atoms, prov = unitcell_from_reference(entry["reference"], base)
        return atoms, prov, None
    raise ConfigError(f"material '{material}' has neither 'structure' nor 'reference'; give one of "
                      "structure: {file: ...}, {mp_id: ...}, {mdr_id: ...}, or a reference.")


def write_structure(out_dir: str | os.PathLike, material: str, atoms: Atoms, provenance: dict[str, Any],
                    mdr_file: Path | None = None) -> Path:
    """Write ``POSCAR``, ``structure.json`` (and the MDR file) atomically."""
    import ase.io

    from phonft.protocols import package_versions

    record = {
        "material": material,
        "formula": atoms.get_chemical_formula(mode="metal"),
        "n_atoms": len(atoms),
        "volume_A3": float(atoms.cell.volume),
        "lattice_A": np.array(atoms.cell).tolist(),
        **symmetry_info(atoms),
        "source": provenance,
        "versions": package_versions(),
    }
    with atomic_directory(out_dir) as tmp:
        ase.io.write(tmp / "POSCAR", atoms, format="vasp", direct=True, sort=False)
        if mdr_file is not None:
            shutil.copyfile(mdr_file, tmp / "mdr.yaml.bz2")
        atomic_write_json(tmp / "structure.json", record)
    return Path(out_dir)
