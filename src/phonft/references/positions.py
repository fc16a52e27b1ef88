"""Cross-check of force files against the displacement set, where the files carry geometry.

A ``vasprun.xml`` holds the supercell it was computed for. Listed as displacement k, it must
hold the k-th displaced supercell of ``phonopy_disp.yaml``: the same atoms in the same order,
the same lattice, and the same positions modulo lattice translations, within
:data:`POSITION_TOLERANCE_A`. This catches files of another structure, files listed in the
wrong order (naming the two files) and the perfect-supercell run listed as a displacement.
On every vendored vasprun.xml the positions agree to 1e-7 Å.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from phonopy import Phonopy
from phonopy.structure.atoms import PhonopyAtoms

from phonft.errors import InputFileError

POSITION_TOLERANCE_A = 1.0e-3
"""Largest position difference accepted, in Å; a quarter of the smallest displacement when
that is smaller, so that two displacements are never confused."""

LATTICE_TOLERANCE_A = 1.0e-3
"""Largest difference of a lattice-vector component accepted, in Å."""


@dataclass(frozen=True)
class ForceFile:
    """One force output: ``readable`` is what to parse (the file, a decompressed copy, or a tar
    member's bytes), ``blamed`` the file named in errors (the archive for a member), ``label``
    how it is named, ``index`` its displacement (0-based)."""

    blamed: Path
    readable: Path | bytes
    label: str
    index: int = 0


def _open_binary(source: Path | bytes) -> IO[bytes]:
    """A binary file object of a (possibly compressed) file, or of in-memory bytes."""
    from phonopy.file_IO import get_io_module_to_decompress

    if isinstance(source, bytes):
        return io.BytesIO(source)
    return get_io_module_to_decompress(source).open(source, "rb")


def vasprun_cell(source: Path | bytes) -> PhonopyAtoms | None:
    """The last structure of a ``vasprun.xml`` (Å; a file, compressed or not, or its bytes),
    or None when it has none to compare."""
    from phonopy.interface.vasp import VasprunxmlExpat

    try:
        with _open_binary(source) as fp:
            vasprun = VasprunxmlExpat(fp)
            vasprun.parse()
        if not vasprun.symbols or not len(vasprun.points):
            return None
        return PhonopyAtoms(symbols=[s.strip() for s in vasprun.symbols], cell=vasprun.lattice[-1],
                            scaled_positions=vasprun.points[-1])
    except Exception:  # the forces were read by phonopy; a file without a parsable structure is not compared
        return None


def position_offsets_A(found_frac: np.ndarray, expected_frac: np.ndarray, cell_A: np.ndarray) -> np.ndarray:
    """Per-atom distance (Å) between two sets of fractional positions in the lattice
    ``cell_A`` (rows in Å), modulo lattice translations."""
    diff = np.asarray(found_frac) - np.asarray(expected_frac)
    diff -= np.rint(diff)
    return np.linalg.norm(diff @ np.asarray(cell_A), axis=1)


def _position_offsets_A(found: PhonopyAtoms, expected: PhonopyAtoms) -> np.ndarray:
    """Per-atom distance (Å) between the two cells' positions, modulo lattice translations."""
    return position_offsets_A(found.scaled_positions, expected.scaled_positions, expected.cell)


def _matches(found: PhonopyAtoms, expected: PhonopyAtoms, tol_A: float) -> bool:
    return bool(_position_offsets_A(found, expected).max() <= tol_A)


def _structure_problem(found: PhonopyAtoms, expected: PhonopyAtoms, disp_yaml: Path) -> str | None:
    """Why ``found`` is not a cell of ``expected``'s structure (atoms, lattice), or None."""
    if _elements(found) != _elements(expected):
        have, want = _formula(found), _formula(expected)
        atoms = "its atoms in another order than" if have == want else f"the atoms {have}, not the {want} of"
        return f"holds {atoms} the supercell of {disp_yaml.name}; it was computed for another structure."
    lattice = float(np.abs(found.cell - expected.cell).max())
    if lattice > LATTICE_TOLERANCE_A:
        return (f"has a lattice that differs from the supercell of {disp_yaml.name} by up to {lattice:.3g} Å; it was "
                "computed for another structure.")
    return None


def _elements(cell: PhonopyAtoms) -> list[str]:
    """The element of each atom (a symbol like ``Fe1`` or ``Na_pv`` without its suffix)."""
    return [(re.match(r"[A-Z][a-z]?", s) or re.match(".*", s)).group(0) for s in cell.symbols]


def _formula(cell: PhonopyAtoms) -> str:
    symbols, counts = np.unique(_elements(cell), return_counts=True)
    return "".join(f"{s}{c}" for s, c in zip(symbols, counts, strict=True))


def check_positions(phonon: Phonopy, files: Sequence[ForceFile], disp_yaml: Path) -> None:
    """Each vasprun.xml of ``files`` (one per displacement, in order) must hold the displaced
    supercell of its displacement in ``phonon`` (see the module docstring)."""
    expected = phonon.supercells_with_displacements
    disps = [np.asarray(c.positions) - np.asarray(phonon.supercell.positions) for c in expected]
    smallest = min((np.linalg.norm(d, axis=1).max() for d in disps), default=POSITION_TOLERANCE_A)
    tol_A = min(POSITION_TOLERANCE_A, 0.25 * smallest)
    cells = [vasprun_cell(f.readable) for f in files]
    for k, (f, cell) in enumerate(zip(files, cells, strict=True)):
        if cell is None or len(cell) != len(expected[k]):
            continue
        problem = _structure_problem(cell, expected[k], disp_yaml)
        if problem is None and not _matches(cell, expected[k], tol_A):
            problem = _misplaced(k, cell, expected, phonon, files, tol_A, disp_yaml)
        if problem is not None:
            raise InputFileError(
                f.blamed, problem if f.blamed.name == f.label else f"member {f.label} {problem}",
                f"list one vasprun.xml per displaced supercell of {disp_yaml.name}, in its order (disp-001, "
                "disp-002, ...), computed from that file's supercells.")


def _misplaced(k: int, cell: PhonopyAtoms, expected: Sequence[PhonopyAtoms], phonon: Phonopy,
               files: Sequence[ForceFile], tol_A: float, disp_yaml: Path) -> str:
    """What file ``k``, whose positions are not displacement k's, holds instead."""
    listed = f"is listed for displacement {k + 1}"
    for j, other in enumerate(expected):
        if j != k and _matches(cell, other, tol_A):
            there = files[j].label if j < len(files) else "none"
            return (f"{listed} but holds the supercell of displacement {j + 1}, which is listed as {there}: the "
                    "files are out of order.")
    if _matches(cell, phonon.supercell, tol_A):
        return f"{listed} but holds the undisplaced supercell (a perfect-supercell run, not a displacement)."
    offsets = _position_offsets_A(cell, expected[k])
    atom = int(np.argmax(offsets))
    return (f"{listed}, but its atom {atom + 1} lies {offsets[atom]:.3g} Å from where {disp_yaml.name} puts it; it "
            "was computed for another displacement set.")
