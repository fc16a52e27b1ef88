"""Symmetry-constrained relaxation of a structure under a model (FIRE + FrechetCellFilter).

Used by both evaluation protocols: the MDR phonon protocol relaxes positions and cell with
FixSymmetry as MDR's reference scripts do (FIRE to fmax/2 = 0.0025 eV/Å, up to 15 runs of
500 steps, FixSymmetry at 0.01 Å), and the phonondb-v1 kappa protocol relaxes once to its
own fmax and checks the space group before and after.
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
    steps_per_run: tuple[int, ...] = ()
    """FIRE steps of each run (restarts after the first); empty when not recorded."""
    target_fmax_eV_A: float | None = None
    """The force FIRE aimed at (eV/Å): ``fmax_eV_A`` times the protocol's factor."""

    @property
    def symmetry_kept(self) -> bool:
        return self.spacegroup_before == self.spacegroup_after

    def as_dict(self) -> dict:
        """JSON-ready summary (no structure)."""
        return {"n_steps": self.n_steps, "converged": self.converged, "max_force_eV_A": self.max_force_eV_A,
                "energy_eV": self.energy_eV, "spacegroup_before": self.spacegroup_before,
                "spacegroup_after": self.spacegroup_after, "symmetry_kept": self.symmetry_kept,
                "steps_per_run": list(self.steps_per_run), "target_fmax_eV_A": self.target_fmax_eV_A,
                "cell_A": np.asarray(self.atoms.cell, dtype=float).tolist()}


def spacegroup_number(atoms: Atoms, symprec: float = 1e-5) -> int:
    """International space-group number from spglib (0 when spglib finds none)."""
    import spglib

    cell = (np.asarray(atoms.cell), atoms.get_scaled_positions(), atoms.numbers)
    data = spglib.get_symmetry_dataset(cell, symprec=symprec)
    return int(data.number) if data is not None else 0


def relax(atoms: Atoms, calculator, *, fmax_eV_A: float = 0.005, max_steps: int = 500,
          relax_cell: bool = True, symprec: float = 1e-5, where: str = "", fmax_factor: float = 1.0,
          runs: int = 1, fix_symmetry_symprec: float | None = None) -> RelaxResult:
    """Relax ``atoms`` (a copy) with FIRE under ``calculator``, keeping its symmetry.

    Positions always relax; with ``relax_cell`` the cell relaxes too through ASE's
    FrechetCellFilter (log-strain, no unit-cell drift). FixSymmetry keeps the space group
    found with ``fix_symmetry_symprec`` (Å; ``None``: ``symprec``, which also names the
    space groups recorded before and after). FIRE aims at ``fmax_eV_A * fmax_factor`` in
    at most ``max_steps`` steps, and is restarted (fresh velocities, FixSymmetry detected
    again on the current structure) until it gets there or ``runs`` runs are spent: the
    MDR reference's scheme is factor 0.5, 500 steps, 15 runs. The result counts as
    converged when the final force (the filter's, cell included) is below ``fmax_eV_A``.
    Not converging is reported, not raised; NaN forces raise :class:`RelaxationError`
    naming ``where``.
    """
    atoms = atoms.copy()
    atoms.calc = calculator
    sg_before = spacegroup_number(atoms, symprec)
    target_eV_A = fmax_eV_A * fmax_factor
    steps: list[int] = []
    for _ in range(runs):
        reached, fmax_now, n = _fire_run(atoms, target_eV_A, max_steps, relax_cell,
                                         symprec if fix_symmetry_symprec is None else fix_symmetry_symprec)
        steps.append(n)
        _check_finite(atoms, where)
        if reached:
            break
    energy = float(atoms.get_potential_energy())
    atoms.set_constraint()
    atoms.calc = None
    sg_after = spacegroup_number(atoms, symprec)
    converged = bool(fmax_now < fmax_eV_A)
    if not converged:
        log.warning("%s: relaxation did not reach fmax %.4g eV/Å in %d runs of at most %d steps (now %.4g)",
                    where, fmax_eV_A, runs, max_steps, fmax_now)
    return RelaxResult(atoms=atoms, n_steps=sum(steps), converged=converged, max_force_eV_A=fmax_now,
                       energy_eV=energy, spacegroup_before=sg_before, spacegroup_after=sg_after,
                       steps_per_run=tuple(steps), target_fmax_eV_A=target_eV_A)


def _fire_run(atoms: Atoms, target_eV_A: float, max_steps: int, relax_cell: bool,
              fix_symprec: float) -> tuple[bool, float, int]:
    """One FIRE run on ``atoms`` (changed in place; constraint FixSymmetry at ``fix_symprec``
    Å): (target reached, final max force in eV/Å of what FIRE moved, steps taken)."""
    from ase.constraints import FixSymmetry
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    atoms.set_constraint()
    atoms.set_constraint(FixSymmetry(atoms, symprec=fix_symprec))
    target = FrechetCellFilter(atoms) if relax_cell else atoms
    opt = FIRE(target, logfile=None)
    reached = bool(opt.run(fmax=target_eV_A, steps=max_steps))
    fmax_now = float(np.sqrt((target.get_forces() ** 2).sum(axis=1)).max())
    return reached, fmax_now, int(opt.get_number_of_steps())


def _check_finite(atoms: Atoms, where: str) -> None:
    """A :class:`RelaxationError` naming ``where`` when the model's forces are not finite."""
    if not np.all(np.isfinite(atoms.get_forces())):
        raise RelaxationError(f"{where or atoms.get_chemical_formula()}: the model gave non-finite forces during "
                              "relaxation; check that the model knows every element and the structure is sane")
