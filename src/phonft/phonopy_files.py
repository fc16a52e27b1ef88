"""phonopy and phono3py yaml files in phonopy's VASP units (a leaf module).

Every yaml file is parsed with PyYAML's safe loader (:func:`safe_yaml`) before phonopy or
phono3py, whose own parser would run code named in the file, reads it.

Loading a (possibly compressed) phonopy or phono3py yaml and normalising it to Å and eV/Å
is needed both by the structures stage (the unit cell of a reference) and by the
references stage's readers (:mod:`phonft.references.readers`), so it lives here. Any
failure while reading a file is raised as an :class:`~phonft.errors.InputFileError`
naming the file.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from phonopy import Phonopy
from phonopy.interface.calculator import get_calculator_physical_units
from phonopy.structure.atoms import PhonopyAtoms

from phonft.errors import InputFileError
from phonft.io import COMPRESSED_SUFFIXES, read_text


@contextlib.contextmanager
def reading(path: str | os.PathLike, what: str, fix: str | None = None) -> Iterator[None]:
    """Turn any failure while reading ``path`` into an :class:`InputFileError`."""
    try:
        yield
    except InputFileError:
        raise
    except (Exception, SystemExit) as exc:  # phonopy's CLI helpers may sys.exit()
        detail = " ".join(f"{type(exc).__name__}: {exc}".split()).rstrip(":")  # one line
        raise InputFileError(
            path,
            f"could not be read as {what} ({detail}); the file may be truncated or corrupt.",
            fix or "re-export or re-copy the file from the DFT run.",
        ) from exc


def require_file(path: Path) -> Path:
    """``path``, or an :class:`InputFileError` when it is not a file."""
    if not path.is_file():
        raise InputFileError(path, "does not exist.", "check the path in the config's reference entry.")
    return path


@contextlib.contextmanager
def decompressed(path: Path) -> Iterator[Path]:
    """Yield a plain-text copy of a compressed file (or the file itself), for phonopy readers
    that open plain files only (FORCE_CONSTANTS, most codes' force outputs)."""
    if path.suffix not in COMPRESSED_SUFFIXES:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="phonft-") as tmp:
        plain = Path(tmp) / path.with_suffix("").name
        with reading(path, f"{path.suffix[1:]}-compressed text"):
            plain.write_text(read_text(path), encoding="utf-8")
        yield plain


# --------------------------------------------------------------------------- safe yaml


def _tag_refused(blamed: Path, exc: Exception) -> InputFileError:
    """The error for a yaml tag that PyYAML's safe loader has no constructor for."""
    problem = str(getattr(exc, "problem", "") or exc)
    found = re.search(r"tag '([^']*)'", problem)
    tag = found.group(1).replace("tag:yaml.org,2002:", "!!") if found else problem
    mark = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 1})" if mark is not None else ""
    return InputFileError(
        blamed,
        f"holds the YAML tag '{tag}'{where}, which could run code when phonopy or phono3py "
        "reads the file; phonft refuses it.",
        "remove the tag: phonopy and phono3py files hold only plain data (numbers, strings, lists, "
        "mappings); do not use files from untrusted sources.",
    )


def safe_yaml(path: str | os.PathLike, blamed: str | os.PathLike | None = None,
              what: str = "a YAML file") -> Any:
    """Parse a (possibly compressed) yaml file with PyYAML's safe loader.

    phonopy and phono3py parse yaml with the unsafe ``yaml.CLoader``, which runs code
    named by ``!!python/...`` tags; every file handed to them is parsed here first, with the
    same libyaml parser, so that a file with any tag beyond plain data is refused before
    they see it. Errors name ``blamed`` (default ``path``), e.g. the user's compressed file
    rather than its decompressed copy.
    """
    blamed = Path(blamed if blamed is not None else path)
    with reading(blamed, what):
        text = read_text(path)
    return safe_yaml_text(text, blamed, what)


def safe_yaml_text(text: str, blamed: str | os.PathLike, what: str = "a YAML file") -> Any:
    """Parse the yaml ``text`` of the file ``blamed`` with PyYAML's safe loader (see :func:`safe_yaml`)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with reading(blamed, what):
        try:
            return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
        except yaml.constructor.ConstructorError as exc:
            raise _tag_refused(Path(blamed), exc) from exc


# --------------------------------------------------------------------------- units


def scale_atoms(atoms: PhonopyAtoms, to_A: float) -> PhonopyAtoms:
    """A copy of ``atoms`` with its lattice multiplied by ``to_A`` (e.g. Bohr to Å)."""
    return PhonopyAtoms(
        cell=np.asarray(atoms.cell) * to_A,
        scaled_positions=atoms.scaled_positions,
        symbols=atoms.symbols,
        masses=atoms.masses,
        magnetic_moments=atoms.magnetic_moments,
    )


def _scale_dataset(dataset: dict, to_A: float, to_eV_per_A: float) -> dict:
    ds = copy.deepcopy(dataset)
    if "first_atoms" in ds:
        for d in ds["first_atoms"]:
            d["displacement"] = np.asarray(d["displacement"], dtype=float) * to_A
            if "forces" in d:
                d["forces"] = np.asarray(d["forces"], dtype=float) * to_eV_per_A
    else:
        ds["displacements"] = np.asarray(ds["displacements"], dtype=float) * to_A
        if "forces" in ds:
            ds["forces"] = np.asarray(ds["forces"], dtype=float) * to_eV_per_A
    return ds


def read_code_unitcell(path: Path, interface: str) -> PhonopyAtoms:
    """The unit cell in the structure file ``path`` of code ``interface`` (phonopy's reader,
    :func:`phonopy.interface.calculator.read_crystal_structure`), in Å."""
    from phonopy.interface.calculator import read_crystal_structure

    path = require_file(Path(path))
    with decompressed(path) as plain, reading(path, f"a {interface} unit cell"):
        cell, _ = read_crystal_structure(str(plain), interface_mode=interface)
        if cell is None:
            raise ValueError("no structure found")
    return scale_atoms(cell, get_calculator_physical_units(interface).distance_to_A)


def normalised_phonopy(phonon: Phonopy, dataset: dict | None = None) -> Phonopy:
    """A copy of ``phonon`` in VASP units (Å, eV/Å) with ``dataset`` (default: its own).

    Data from other codes (Quantum ESPRESSO writes Bohr and Ry/Bohr) are converted with
    phonopy's own unit factors, so that everything downstream is code-independent.
    """
    units = get_calculator_physical_units(phonon.calculator or "vasp")
    to_A, to_eVA = units.distance_to_A, units.force_to_eVperA
    dataset = phonon.dataset if dataset is None else dataset
    out = Phonopy(
        scale_atoms(phonon.unitcell, to_A),
        supercell_matrix=phonon.supercell_matrix,
        primitive_matrix=phonon.primitive_matrix,
        symprec=phonon.symmetry.tolerance,
        log_level=0,
    )
    if dataset:
        out.dataset = _scale_dataset(dataset, to_A, to_eVA)
    if phonon.nac_params is not None:
        out.nac_params = vasp_unit_nac(phonon.nac_params)
    return out


def vasp_unit_nac(nac_params: dict) -> dict:
    """NAC parameters for VASP units: Born charges and dielectric tensor are unitless;
    only the unit-conversion factor depends on the code's units."""
    nac = {k: v for k, v in nac_params.items() if k != "factor"}
    nac["factor"] = get_calculator_physical_units("vasp").nac_factor
    return nac


# --------------------------------------------------------------------------- loaders


@contextlib.contextmanager
def _empty_cwd() -> Iterator[None]:
    """Run phonopy's loaders in an empty folder.

    With no force or NAC data in the yaml, ``phonopy.load`` falls back to ``BORN``,
    ``FORCE_SETS``, ``FORCE_CONSTANTS`` and ``force_constants.hdf5`` in the *current
    directory*: a run started in another material's DFT folder would quietly take its
    files. phonft passes every companion file explicitly, so the loaders see none.
    """
    with tempfile.TemporaryDirectory(prefix="phonft-load-") as tmp, contextlib.chdir(tmp):
        yield


def _checked_text(path: Path, what: str) -> tuple[str, Any]:
    """The text of a (possibly compressed) yaml file, read and decompressed once, and its
    content as the safe loader parses it (refusing tags before phonopy sees the text)."""
    path = require_file(Path(path))
    with reading(path, what):
        text = read_text(path)
    return text, safe_yaml_text(text, path, what)


def load_phonopy_yaml_data(path: Path, validate: Callable[[Any], None] | None = None,
                           what: str = "a phonopy yaml") -> tuple[Phonopy, Any]:
    """``phonopy.load`` a (possibly compressed) phonopy yaml, blaming ``path`` on failure;
    also return the file's content as parsed by the safe loader, which ``validate`` (when
    given) checks before phonopy reads it.

    The file is read and decompressed once, with no temporary copy: phonopy parses the
    checked text from memory."""
    import phonopy

    text, data = _checked_text(Path(path), what)
    if validate is not None:
        validate(data)
    with reading(path, "a phonopy yaml"), _empty_cwd():
        ph = phonopy.load(io.StringIO(text), produce_fc=False, log_level=0, is_compact_fc=False)
    check_unitcell(ph, Path(path))
    return ph, data


def load_phonopy_yaml(path: Path) -> Phonopy:
    """``phonopy.load`` a (possibly compressed) phonopy yaml, blaming ``path`` on failure."""
    return load_phonopy_yaml_data(path)[0]


def load_phono3py_yaml(path: Path) -> Any:
    """``phono3py.load`` a (possibly compressed) phono3py yaml in VASP units, blaming ``path``."""
    import phono3py

    text, _ = _checked_text(Path(path), "a phono3py yaml")
    with reading(path, "a phono3py yaml"), _empty_cwd():
        ph3 = phono3py.load(io.StringIO(text), produce_fc=False, log_level=0, is_compact_fc=True)
    if (ph3.calculator or "vasp") != "vasp":
        raise InputFileError(path, f"uses calculator '{ph3.calculator}' units.", "convert it to VASP units first.")
    check_unitcell(ph3, Path(path))
    return ph3


def check_unitcell(phonon: Any, path: Path) -> None:
    """The unit cell of a loaded phonopy/phono3py object passes :func:`phonft.atoms.check_structure`
    in Å (finite, 3D, no atoms closer than the default minimum distance)."""
    from phonft.atoms import check_structure, to_ase

    atoms = to_ase(phonon.unitcell)
    to_A = get_calculator_physical_units(phonon.calculator or "vasp").distance_to_A
    atoms.set_cell(np.asarray(atoms.cell) * to_A, scale_atoms=True)
    check_structure(atoms, path)
