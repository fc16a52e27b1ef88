"""Symmetry-constrained relaxation of a structure under a model (FIRE + FrechetCellFilter).

Used by both evaluation protocols: the MDR phonon protocol relaxes positions and cell with
FixSymmetry to ``fmax`` 0.005 eV/Å, and the phonondb-v1 kappa protocol does the same and
checks the space group before and after.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from phonft.errors import PhonftError

log = logging.getLogger(__name__)


class RelaxationError(PhonftError):
    """The relaxation failed: NaN forces, or the optimiser blew up."""


@dataclass(frozen=True)
class RelaxResult:
    """A relaxed structure and how it got there."""

    atoms: Atoms
    n_steps: int
    converged: bool
    max_force_eV_A: float
    energy_eV: float
    spacegroup_before: int
    spacegroup_after: int

    @property
    def symmetry_kept(self) -> bool:
        return self.spacegroup_before == self.spacegroup_after

    def as_dict(self) -> dict:
        """JSON-ready summary (no structure)."""
        return {"n_steps": self.n_steps, "converged": self.converged, "max_force_eV_A": self.max_force_eV_A,
                "energy_eV": self.energy_eV, "spacegroup_before": self.spacegroup_before,
                "spacegroup_after": self.spacegroup_after, "symmetry_kept": self.symmetry_kept,
                "cell_A": np.asarray(self.atoms.cell, dtype=float).tolist()}


def spacegroup_number(atoms: Atoms, symprec: float = 1e-5) -> int:
    """International space-group number from spglib (0 when spglib finds none)."""
    import spglib

    cell = (np.asarray(atoms.cell), atoms.get_scaled_positions(), atoms.numbers)
    data = spglib.get_symmetry_dataset(cell, symprec=symprec)
    return int(data.number) if data is not None else 0


def relax(atoms: Atoms, calculator, *, fmax_eV_A: float = 0.005, max_steps: int = 500,
          relax_cell: bool = True, symprec: float = 1e-5, where: str = "") -> RelaxResult:
    """Relax ``atoms`` (a copy) with FIRE under ``calculator``, keeping its symmetry.

    Positions always relax; with ``relax_cell`` the cell relaxes too through ASE's
    FrechetCellFilter (log-strain, no unit-cell drift). FixSymmetry keeps the space group
    found with ``symprec``. Not converging in ``max_steps`` is reported, not raised; NaN
    forces raise :class:`RelaxationError` naming ``where``.
    """
    from ase.constraints import FixSymmetry
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    atoms = atoms.copy()
    atoms.calc = calculator
    sg_before = spacegroup_number(atoms, symprec)
    atoms.set_constraint(FixSymmetry(atoms, symprec=symprec))
    target = FrechetCellFilter(atoms) if relax_cell else atoms
    opt = FIRE(target, logfile=None)
    converged = bool(opt.run(fmax=fmax_eV_A, steps=max_steps))
    forces = atoms.get_forces()
    if not np.all(np.isfinite(forces)):
        raise RelaxationError(f"{where or atoms.get_chemical_formula()}: the model gave non-finite forces during "
                              "relaxation; check that the model knows every element and the structure is sane")
    fmax_now = float(np.sqrt((target.get_forces() ** 2).sum(axis=1)).max())
    energy = float(atoms.get_potential_energy())
    atoms.set_constraint()
    atoms.calc = None
    sg_after = spacegroup_number(atoms, symprec)
    if not converged:
        log.warning("%s: relaxation did not reach fmax %.4g eV/Å in %d steps (now %.4g)",
                    where, fmax_eV_A, max_steps, fmax_now)
    return RelaxResult(atoms=atoms, n_steps=int(opt.get_number_of_steps()), converged=converged,
                       max_force_eV_A=fmax_now, energy_eV=energy, spacegroup_before=sg_before,
                       spacegroup_after=sg_after)
