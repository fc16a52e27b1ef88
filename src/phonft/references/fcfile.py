"""Force constants computed by the DFT code (DFPT), ``format: force_constants``, read by phonopy.

The force constants come from one file, by its name:

- ``*.hdf5``: phonopy's ``force_constants.hdf5``
  (:func:`phonopy.file_IO.read_force_constants_hdf5`), in the unit its ``physical_unit``
  attribute names, else the interface's;
- ``*.xml`` (``vasprun.xml`` of a VASP DFPT run, ``IBRION = 7, 8``; compressed or not):
  the Hessian, converted by phonopy (:func:`phonopy.interface.vasp.parse_force_constants`)
  to eV/Å²; its atoms must be those of the supercell;
- anything else: phonopy's text ``FORCE_CONSTANTS`` (:func:`phonopy.file_IO.parse_FORCE_CONSTANTS`),
  in the interface's force-constant unit (eV/Å² for VASP).

The unit cell is read with phonopy's reader for the interface
(:func:`phonopy.interface.calculator.read_crystal_structure`) and the supercell built with
``supercell_matrix``; the force constants must belong to that supercell, full (N, N, 3, 3)
or compact (n_primitive, N, 3, 3). Everything is converted to Å and eV/Å².
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from phonopy import Phonopy

from phonft.errors import InputFileError
from phonft.phonopy_files import decompressed, read_code_unitcell, reading, require_file

_FIX_FC = "give the force constants of the supercell that unitcell and supercell_matrix make (phonopy's atom order)."


def _fc_unit_factor(unit: str | None, interface: str) -> float:
    """The factor that converts force constants in ``unit`` (default: the interface's) to eV/Å²."""
    from phonopy.interface.calculator import get_force_constant_conversion_factor

    if unit is None:  # the interface's default unit -> eV/Å²: the inverse of eV/Å² -> default
        return 1.0 / get_force_constant_conversion_factor("eV/angstrom^2", interface)
    return get_force_constant_conversion_factor(unit, "vasp")


def _read_fc_file(path: Path, interface: str) -> tuple[np.ndarray, list[str] | None]:
    """(force constants in eV/Å², the file's element symbols when it names them)."""
    from phonopy.file_IO import parse_FORCE_CONSTANTS, read_force_constants_hdf5

    if path.suffix == ".hdf5":
        import h5py

        with reading(path, "phonopy force constants (hdf5)", _FIX_FC):
            fc = read_force_constants_hdf5(str(path))
            with h5py.File(path, "r") as f:
                unit = f.attrs.get("physical_unit") or (f["physical_unit"][0] if "physical_unit" in f else None)
            unit = unit.decode() if isinstance(unit, bytes) else unit
        return np.asarray(fc, dtype=np.float64) * _fc_unit_factor(unit, interface), None
    if ".xml" in path.suffixes:
        from phonopy.interface.vasp import parse_force_constants

        with reading(path, "a VASP DFPT vasprun.xml (force constants)",
                     "give the vasprun.xml of a DFPT run (IBRION = 7 or 8) on the supercell."):
            fc, elements = parse_force_constants(path)
        return np.asarray(fc, dtype=np.float64), [str(e).strip() for e in elements]
    with decompressed(path) as plain, reading(path, "a phonopy FORCE_CONSTANTS file", _FIX_FC):
        fc = parse_FORCE_CONSTANTS(str(plain))
    return np.asarray(fc, dtype=np.float64) * _fc_unit_factor(None, interface), None


def _full_fc(ph: Phonopy, fc: np.ndarray, path: Path) -> np.ndarray:
    """Full (N, N, 3, 3) force constants of ``ph``'s supercell, from full or compact ones."""
    from phonopy.harmonic.force_constants import compact_fc_to_full_fc

    n, n_prim = len(ph.supercell), len(ph.primitive)
    if fc.shape == (n_prim, n, 3, 3) and n_prim != n:
        return np.asarray(compact_fc_to_full_fc(ph.primitive, fc), dtype=np.float64)
    if fc.shape != (n, n, 3, 3):
        raise InputFileError(path, f"holds force constants of shape {fc.shape}, but the supercell has {n} atoms "
                             f"({n_prim} in the primitive cell).", _FIX_FC)
    if not np.all(np.isfinite(fc)):
        raise InputFileError(path, "contains NaN or infinite force constants.", _FIX_FC)
    return fc


def _check_elements(ph: Phonopy, elements: list[str] | None, path: Path) -> None:
    """The atom types a vasprun.xml lists must be the supercell's, in its order."""
    if elements is None:
        return
    expected = list(dict.fromkeys(ph.supercell.symbols))
    found = [e.split("_")[0] for e in elements]
    if found != expected:
        raise InputFileError(path, f"holds the atom types {' '.join(found)}, not the {' '.join(expected)} of the "
                             "supercell (in its order); it was computed for another structure.", _FIX_FC)


def read_force_constants(fc_file: str | os.PathLike, unitcell: str | os.PathLike, interface: str,
                         supercell_matrix: Any, primitive_matrix: Any = "auto") -> Phonopy:
    """A phonopy object (Å) with the file's force constants (eV/Å², full) and no dataset."""
    fc_file, unitcell = require_file(Path(fc_file)), Path(unitcell)
    cell = read_code_unitcell(unitcell, interface)
    smat = np.asarray(supercell_matrix, dtype=int)
    smat = np.diag(smat) if smat.shape == (3,) else smat
    with warnings.catch_warnings():  # 'auto' is asked for explicitly; phonopy warns that v3 defaulted to 'P'
        warnings.filterwarnings("ignore", message="primitive_matrix defaulted", category=Warning)
        ph = Phonopy(cell, supercell_matrix=smat, primitive_matrix=primitive_matrix, log_level=0)
    fc, elements = _read_fc_file(fc_file, interface)
    _check_elements(ph, elements, fc_file)
    ph.force_constants = _full_fc(ph, fc, fc_file)
    return ph
