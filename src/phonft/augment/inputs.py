"""DFT inputs of the rattled frames, through phonopy's own writers (as the displacements
stage writes its supercells), for users who label the frames elsewhere:

- ``inputs/vasp/``: ``SPOSCAR`` (the reference supercell) and ``POSCAR-001``... (frame 0,
  1, ...), in Å;
- ``inputs/qe/``: ``supercell.in`` and ``supercell-001.in``...: pw.x ``CELL_PARAMETERS`` /
  ``ATOMIC_POSITIONS`` blocks in Bohr; add your own ``&control`` and pseudopotential header.

Computed outputs come back with ``materials.<m>.augment.labels: {format: vasprun | qe,
path: ..., files: [...]}``, one per frame in this order.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from phonopy.interface.calculator import (
    get_calculator_physical_units,
    write_supercells_with_displacements,
)
from phonopy.structure.atoms import PhonopyAtoms

CALCULATORS = ("vasp", "qe")
"""The codes whose inputs are written, as phonopy names them."""


def _phonopy_cell(atoms: Atoms, calculator: str) -> PhonopyAtoms:
    """``atoms`` as PhonopyAtoms in ``calculator``'s length unit (Å for VASP, Bohr for QE)."""
    to_A = get_calculator_physical_units(calculator).distance_to_A
    return PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=np.asarray(atoms.cell) / to_A,
                        scaled_positions=atoms.cell.scaled_positions(atoms.positions), masses=atoms.get_masses())


def write_inputs(folder: Path, supercell: Atoms, frames: Sequence[Atoms]) -> dict[str, list[str]]:
    """Write each code's inputs of ``frames`` under ``folder/<code>/``; return the files, by code."""
    written = {}
    for calc in CALCULATORS:
        sub = folder / calc
        sub.mkdir(parents=True, exist_ok=True)
        cells = [_phonopy_cell(a, calc) for a in frames]
        with contextlib.chdir(sub), warnings.catch_warnings():
            # QE inputs carry phonopy's placeholder pseudopotential names (README: augment).
            warnings.filterwarnings("ignore", message="Optional structure information", category=UserWarning)
            write_supercells_with_displacements(calc, _phonopy_cell(supercell, calc), cells,
                                                displacement_ids=np.arange(len(cells)) + 1,
                                                zfill_width=3 if len(cells) < 1000 else 5)
        written[calc] = sorted(p.name for p in sub.iterdir())
    return written
