"""ASE <-> phonopy structures (a leaf module, shared by every stage).

Both directions keep phonopy's VASP units: lengths in Å, masses in amu.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ase import Atoms


def to_ase(cell: Any) -> Atoms:
    """PhonopyAtoms -> ase.Atoms (periodic)."""
    return Atoms(symbols=cell.symbols, cell=cell.cell, scaled_positions=cell.scaled_positions, pbc=True)


def from_ase(atoms: Atoms, masses: Any = None, wrap: bool = True):
    """ase.Atoms -> PhonopyAtoms in Å, with ``masses`` (amu) when given, else phonopy's table."""
    from phonopy.structure.atoms import PhonopyAtoms

    return PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=np.asarray(atoms.cell, dtype=np.float64),
                        scaled_positions=atoms.get_scaled_positions(wrap=wrap),
                        masses=None if masses is None else np.asarray(masses, dtype=np.float64))
