"""ASE <-> phonopy structures, and the checks every structure passes on its way in (a leaf
module, shared by every stage).

Both directions keep phonopy's VASP units: lengths in Å, masses in amu.

:func:`check_structure` is the one gate a crystal passes before phonft hands it to C code
(spglib, phonopy, the models' neighbour lists): finite lattice and positions, a 3D cell
that is not singular, and no two atoms (periodic images included) closer than
:data:`MIN_DISTANCE_A`. A NaN in a lattice otherwise crashes spglib with a segmentation
fault, and overlapping atoms are otherwise merged or accepted silently.
:func:`check_phonopy_elements` names the elements phonopy cannot give a mass to.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms

from phonft.errors import ConfigError, InputFileError

MIN_DISTANCE_A = 0.5
"""Default smallest distance (Å) allowed between two atoms, periodic images included.
The shortest bond in any crystal (H-H, 0.74 Å) is above it; a closer pair is a duplicated
atom or coordinates in the wrong unit. A material's ``structure: {min_distance_A: ...}``
lowers or raises it."""

_MIN_VOLUME_A3 = 1e-6
"""A cell of smaller volume (Å³) is no 3D cell."""

MAX_LENGTH_A = 1000.0
"""Longest lattice vector (Å) accepted: no phonon calculation uses a longer one, and far
longer ones (coordinates in the wrong unit) overflow neighbour lists and spglib."""


def to_ase(cell: Any) -> Atoms:
    """PhonopyAtoms -> ase.Atoms (periodic)."""
    return Atoms(symbols=cell.symbols, cell=cell.cell, scaled_positions=cell.scaled_positions, pbc=True)


def from_ase(atoms: Atoms, masses: Any = None, wrap: bool = True, origin: str | os.PathLike = "the structure"):
    """ase.Atoms -> PhonopyAtoms in Å, with ``masses`` (amu) when given, else phonopy's table.

    Without ``masses``, an element phonopy has no mass for raises an
    :class:`~phonft.errors.InputFileError` naming ``origin`` (see :func:`check_phonopy_elements`).
    """
    from phonopy.structure.atoms import PhonopyAtoms

    if masses is None:
        check_phonopy_elements(atoms.get_chemical_symbols(), origin)
    return PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=np.asarray(atoms.cell, dtype=np.float64),
                        scaled_positions=atoms.get_scaled_positions(wrap=wrap),
                        masses=None if masses is None else np.asarray(masses, dtype=np.float64))


def check_phonopy_elements(symbols: Sequence[str], origin: str | os.PathLike) -> None:
    """Raise when phonopy's element table lacks a symbol or its standard mass (amu).

    phonopy knows no ``Og`` (it lists element 118 as ``Uuo``) and gives no mass to
    elements without a stable isotope (Po, At, Rn, Fr, Ra, Pu and beyond); a phonon
    calculation needs one, and phonft does not guess an isotope.
    """
    from phonopy.structure.atoms import get_atomic_data

    data = get_atomic_data()
    unknown = sorted({s for s in symbols if s not in data.symbol_map})
    if unknown:
        raise InputFileError(origin, f"holds element(s) {', '.join(unknown)}, which phonopy's element table does "
                                     "not list, so no phonons can be computed.", "drop this material.")
    massless = sorted({s for s in symbols if data.atom_data[data.symbol_map[s]][3] is None})
    if massless:
        raise InputFileError(origin, f"holds element(s) {', '.join(massless)}, for which phonopy has no standard "
                                     "atomic mass (no stable isotope), and a structure file carries no masses.",
                             "give the material a reference whose phonopy yaml lists every atom's mass "
                             "(phonopy --mass), or drop the material.")


def check_structure(atoms: Atoms, origin: str | os.PathLike, *, min_distance_A: float | None = MIN_DISTANCE_A,
                    periodic: bool = True, setting: str | None = None) -> Atoms:
    """``atoms`` when it is a usable structure, else an :class:`InputFileError` naming ``origin``.

    Checks, in order: at least one atom; a finite lattice (Å) and finite positions; no
    lattice vector longer than :data:`MAX_LENGTH_A` (nor coordinates beyond ten times
    that); with ``periodic``, periodic boundaries along all three axes, and with any
    periodic direction a cell that is not singular (volume ≥ 1e-6 Å³); no two atoms,
    periodic images included, closer than ``min_distance_A`` (Å; None or 0 skips the
    check). ``setting`` names the config key that changes ``min_distance_A``, for the
    error's fix. Nothing here calls C code that a NaN could crash.
    """
    if len(atoms) == 0:
        raise InputFileError(origin, "holds no atoms.", "give a structure with at least one atom.")
    _check_finite(atoms, origin)
    _check_lengths(atoms, origin)
    if periodic or atoms.pbc.any():  # any periodic direction needs a full 3D cell
        _check_cell(atoms, origin, require_pbc=periodic)
    if min_distance_A is not None:
        if not (np.isfinite(min_distance_A) and min_distance_A >= 0):
            raise ConfigError(f"min_distance_A must be a finite distance ≥ 0 Å, not {min_distance_A!r}")
        if min_distance_A > 0:
            _check_distances(atoms, origin, float(min_distance_A), setting)
    return atoms


def _check_finite(atoms: Atoms, origin: str | os.PathLike) -> None:
    cell = np.asarray(atoms.cell.array, dtype=np.float64)
    bad_rows = [i for i in range(3) if not np.all(np.isfinite(cell[i]))]
    if bad_rows:
        raise InputFileError(origin, f"has a lattice with NaN or infinite values (lattice vector {bad_rows[0] + 1}: "
                                     f"{cell[bad_rows[0]].tolist()}).",
                             "repair the cell (a NaN often comes from a failed relaxation or a broken export).")
    positions = np.asarray(atoms.arrays["positions"], dtype=np.float64)
    bad = np.flatnonzero(~np.all(np.isfinite(positions), axis=1))
    if bad.size:
        i = int(bad[0])
        raise InputFileError(origin, f"has NaN or infinite coordinates: atom {i + 1} ({atoms[i].symbol}) at "
                                     f"{positions[i].tolist()}.", "repair the atomic positions.")


def _check_cell(atoms: Atoms, origin: str | os.PathLike, require_pbc: bool = True) -> None:
    cell = np.asarray(atoms.cell.array, dtype=np.float64)
    with np.errstate(all="ignore"):
        volume = abs(float(np.linalg.det(cell)))
    if (require_pbc and not atoms.pbc.all()) or not np.isfinite(volume) or volume < _MIN_VOLUME_A3:
        raise InputFileError(origin, f"does not describe a 3D periodic crystal (pbc {atoms.pbc.tolist()}, cell "
                                     f"volume {volume:.3g} Å³: no cell, no pbc or a singular cell).",
                             "give a bulk crystal structure with a full 3D cell.")


def _check_lengths(atoms: Atoms, origin: str | os.PathLike) -> None:
    """No lattice vector, and no atom's distance from the origin, beyond :data:`MAX_LENGTH_A`."""
    lengths = np.linalg.norm(np.asarray(atoms.cell.array, dtype=np.float64), axis=1)
    reach = float(np.max(np.abs(atoms.positions))) if len(atoms) else 0.0
    if lengths.max() > MAX_LENGTH_A or reach > 10 * MAX_LENGTH_A:
        raise InputFileError(origin, f"has lattice vectors of {', '.join(f'{x:.4g}' for x in lengths)} Å or "
                                     f"coordinates up to {reach:.4g} Å, beyond the {MAX_LENGTH_A:g} Å a crystal's "
                                     "unit cell can have.", "check the length unit and the scale factor of the file.")


def _check_distances(atoms: Atoms, origin: str | os.PathLike, min_distance_A: float, setting: str | None) -> None:
    """No pair (periodic images included) closer than ``min_distance_A``; name the closest.

    Cells have passed :func:`_check_lengths` (and periodic ones :func:`_check_cell`), so
    the neighbour list's bins are bounded."""
    from ase.neighborlist import neighbor_list

    fix = "remove the duplicated atom or correct the coordinates (Cartesian vs fractional, Bohr vs Å)"
    fix += f"; if the distance is real, lower {setting}." if setting else "."
    if atoms.pbc.any():
        cell = np.asarray(atoms.cell.array, dtype=np.float64)
        volume = abs(float(np.linalg.det(cell)))
        for k in np.flatnonzero(atoms.pbc):
            j, m = (k + 1) % 3, (k + 2) % 3
            spacing = volume / float(np.linalg.norm(np.cross(cell[j], cell[m])))  # between lattice planes
            if spacing < min_distance_A:
                raise InputFileError(origin, f"has lattice planes {spacing:.3g} Å apart along lattice vector "
                                             f"{k + 1}, so every atom is closer than {min_distance_A:g} Å to its "
                                             "own periodic image.", "check the lattice vectors (their unit and "
                                             "scale factor, Bohr vs Å).")
    # without periodic directions the cell plays no part (and may be empty or singular)
    i, j, d = neighbor_list("ijd", atoms if atoms.pbc.any() else Atoms(atoms.numbers, atoms.positions),
                            min_distance_A)
    if len(d):
        k = int(np.argmin(d))
        a, b = int(i[k]), int(j[k])
        pair = (f"atom {a + 1} ({atoms[a].symbol}) is {d[k]:.3g} Å from a periodic image of itself" if a == b else
                f"atoms {min(a, b) + 1} ({atoms[min(a, b)].symbol}) and {max(a, b) + 1} ({atoms[max(a, b)].symbol}) "
                f"are {d[k]:.3g} Å apart")
        raise InputFileError(origin, f"has overlapping atoms: {pair}, closer than the minimum of "
                                     f"{min_distance_A:g} Å.", fix)
