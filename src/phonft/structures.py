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
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import spglib
import spglib.error
from ase import Atoms

from phonft.atoms import MIN_DISTANCE_A, check_phonopy_elements, check_structure
from phonft.cache import check_sha256, default_cache_dir, fetch
from phonft.errors import ConfigError, InputFileError, NetworkError
from phonft.io import atomic_directory, atomic_write_json, sha256_file

MDR_URL_TEMPLATE = "https://alexandria.icams.rub.de/data/phonon_benchmark/pbe/{mdr_id}.yaml.bz2"
"""Default download address of MDR phonon files; override with ``sources.mdr_url``."""


def read_structure_file(path: str | os.PathLike, index: int | str = -1,
                        min_distance_A: float | None = MIN_DISTANCE_A) -> Atoms:
    """Read a CIF, POSCAR, extxyz (or any ase/pymatgen format) into ``ase.Atoms``.

    The structure must pass :func:`check_periodic` (``min_distance_A`` in Å) and hold only
    elements phonopy has a mass for (:func:`phonft.atoms.check_phonopy_elements`).
    """
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
    atoms = check_periodic(atoms, path, min_distance_A)
    check_phonopy_elements(atoms.get_chemical_symbols(), path)
    return atoms


def check_periodic(atoms: Atoms, origin: str | os.PathLike, min_distance_A: float | None = MIN_DISTANCE_A) -> Atoms:
    """A clean periodic copy of ``atoms`` once it passes :func:`phonft.atoms.check_structure`
    (finite, 3D periodic, not singular, no atoms closer than ``min_distance_A`` Å)."""
    check_structure(atoms, origin, min_distance_A=min_distance_A, setting="the material's structure.min_distance_A")
    return Atoms(atoms.get_chemical_symbols(), cell=np.array(atoms.cell), scaled_positions=atoms.get_scaled_positions(), pbc=True)


def fetch_mp(material: str, mp_id: str, min_distance_A: float | None = MIN_DISTANCE_A
             ) -> tuple[Atoms, dict[str, Any]]:
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
    atoms = check_periodic(AseAtomsAdaptor.get_atoms(structure), mp_id, min_distance_A)
    check_phonopy_elements(atoms.get_chemical_symbols(), mp_id)
    return atoms, {"kind": "mp", "mp_id": mp_id}


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


def unitcell_from_reference(spec: dict[str, Any], base_dir: Path, min_distance_A: float | None = MIN_DISTANCE_A
                            ) -> tuple[Atoms, dict[str, Any]]:
    """The unit cell stored with a material's reference DFT data, in Å (checked by
    :func:`phonft.atoms.check_structure`)."""
    from phonft.atoms import to_ase
    from phonft.phonopy_files import (
        load_phono3py_yaml,
        load_phonopy_yaml,
        normalised_phonopy,
        read_code_unitcell,
    )
    from phonft.specs import SpecError, resolve

    try:
        rs = resolve(spec, base_dir)
    except SpecError as exc:
        raise ConfigError(str(exc)) from exc
    if rs.format == "engine":
        raise ConfigError("an 'engine' reference has no structure of its own: give 'structure: {file: ...}'")
    source = rs.unitcell if rs.format == "force_constants" else rs.main
    if rs.format == "phono3py":
        cell = load_phono3py_yaml(rs.main).unitcell  # the forces are not needed for the cell
    elif rs.format == "force_constants":
        cell = read_code_unitcell(rs.unitcell, rs.interface)
    else:
        cell = normalised_phonopy(load_phonopy_yaml(rs.main), dataset={}).unitcell
    atoms = check_structure(to_ase(cell), source, min_distance_A=min_distance_A,
                            setting="the material's structure.min_distance_A")
    return atoms, {"kind": "reference", "format": rs.format, "file": str(source)}


def symmetry_info(atoms: Atoms, symprec: float = 1e-5) -> dict[str, Any]:
    cell = (np.array(atoms.cell), atoms.get_scaled_positions(), atoms.numbers)
    try:
        ds = spglib.get_symmetry_dataset(cell, symprec=symprec)
    except spglib.error.SpglibError:  # a search that failed, reported as an exception by spglib >= 2.5
        ds = None
    if ds is None:
        return {"spacegroup": None, "spacegroup_number": None}
    return {"spacegroup": ds.international, "spacegroup_number": int(ds.number)}


def load_structure(
    material: str, entry: dict[str, Any], base_dir: str | os.PathLike = ".",
    cache_dir: str | os.PathLike | None = None, mdr_url: str = MDR_URL_TEMPLATE,
) -> tuple[Atoms, dict[str, Any], Path | None]:
    """Resolve a material's structure source; return (atoms, provenance, MDR file or None).

    ``structure.min_distance_A`` (Å, default :data:`~phonft.atoms.MIN_DISTANCE_A`) is the
    smallest interatomic distance accepted; a value the user set is kept in the provenance,
    where the displacements stage finds it.
    """
    base = Path(base_dir)
    src = entry.get("structure") or {}
    min_d = min_distance_setting(material, src)
    extra = {"min_distance_A": min_d} if "min_distance_A" in src else {}
    if "file" in src:
        path = Path(src["file"])
        path = path if path.is_absolute() else base / path
        atoms = read_structure_file(path, src.get("index", -1), min_d)
        return atoms, {"kind": "file", "file": str(path), "sha256": sha256_file(path), **extra}, None
    if "mp_id" in src:
        atoms, prov = fetch_mp(material, src["mp_id"], min_d)
        return atoms, {**prov, **extra}, None
    if "mdr_id" in src:
        mdr_file = fetch_mdr(material, src["mdr_id"], Path(cache_dir or default_cache_dir()), mdr_url,
                             src.get("sha256"))
        atoms, _ = unitcell_from_reference({"format": "mdr", "path": str(mdr_file)}, base, min_d)
        return atoms, {"kind": "mdr", "mdr_id": src["mdr_id"], "url": mdr_url.format(mdr_id=src["mdr_id"]),
                       "sha256": sha256_file(mdr_file), **extra}, mdr_file
    if "reference" in entry:
        atoms, prov = unitcell_from_reference(entry["reference"], base, min_d)
        return atoms, {**prov, **extra}, None
    raise ConfigError(f"material '{material}' has neither 'structure' nor 'reference'; give one of "
                      "structure: {file: ...}, {mp_id: ...}, {mdr_id: ...}, or a reference.")


def min_distance_setting(material: str, src: dict[str, Any]) -> float:
    """The material's ``structure.min_distance_A`` (Å), checked, or the default."""
    value = src.get("min_distance_A", MIN_DISTANCE_A)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
        raise ConfigError(f"materials.{material}.structure.min_distance_A must be a distance ≥ 0 in Å, not {value!r}. "
                          f"Fix: give a number such as {MIN_DISTANCE_A} (0 turns the check off).")
    return float(value)


def recorded_min_distance(poscar: str | os.PathLike) -> float:
    """The ``min_distance_A`` (Å) recorded in the ``structure.json`` beside a POSCAR that
    this stage wrote, else the default :data:`~phonft.atoms.MIN_DISTANCE_A`."""
    record = Path(poscar).with_name("structure.json")
    try:
        value = json.loads(record.read_text())["source"]["min_distance_A"]
    except (OSError, ValueError, KeyError, TypeError):
        return MIN_DISTANCE_A
    return float(value) if isinstance(value, (int, float)) and value >= 0 else MIN_DISTANCE_A


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
