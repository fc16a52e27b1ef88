"""Plausibility checks of DFT forces, run before they become a material's references.

Two mistakes give phonons that look like data and are wrong:

- **forces in another unit** read as eV/Å (Ry/Bohr numbers make NaCl's omega_max 59 K
  instead of 300 K, meV/Å numbers 9473 K). :func:`check_force_units` bounds the on-site
  stiffness energy k·d² (:func:`onsite_stiffness_eV`) and omega_max, and names the units
  that would explain a value outside the bounds;
- **forces that do not belong to the displacement set** (another structure, another atom
  order, energy gradients instead of forces, a displacement-ordered set read in another
  order). :func:`check_force_directions` requires that in each single-atom displacement the
  displaced atom feels a restoring force, and the largest force, within a tolerance.

Both raise :class:`ImplausibleForces`; :func:`enforce` turns it into a logged warning and a
provenance note when the reference block says ``on_implausible: warn``. Force files whose
geometry differs from the displacement set are :mod:`phonft.references.positions`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from phonopy import Phonopy

from phonft.errors import InputFileError

log = logging.getLogger(__name__)

RESTORING_FRACTION = 0.5
"""The displaced atom's force must be at least this fraction of the largest force in its
supercell. On every vendored data set it is the largest (fraction 1)."""

STIFFNESS_RANGE_eV = (3.0, 2000.0)
"""Plausible on-site stiffness energy k·d² of a solid's stiffest site, in eV. The vendored
data span 18 (NaCl) to 141 eV (SiO2 stishovite). The softest solids bound by more than
dispersion, the alkali metals, have about 5-8 eV (CHGNet estimates: Rb 5.4, Li 6.9, Na 7.5;
diamond 72); stiff molecular bonds (C≡N, N≡N) some 150-200 eV. Forces in Ry/Bohr read as
eV/Å fall below the lower bound for materials up to 77 eV (NaCl, MgO, ZnO, Si, ...), not
for stiffer ones (SnO2, SiO2); forces in meV/Å exceed the upper bound for every solid."""

OMEGA_MAX_RANGE_K = (10.0, 6000.0)
"""Plausible omega_max in K. O-H and N-H stretches reach about 5000 K."""

FORCE_UNITS_eV_A = {
    "Ry/Bohr": 25.71104309541616,
    "Hartree/Bohr": 51.42208619083232,
    "meV/Å": 1.0e-3,
    "kcal/mol/Å": 0.0433641042,
    "kJ/mol/Å": 0.0103642688,
}
"""Force units a DFT or MD code may write, in eV/Å per unit."""

NEIGHBOUR_CUTOFF_A = 6.0
"""Nearest neighbours are searched up to this distance (Cs: 5.2 Å); a site with none uses it."""

_FIX = ("pair the forces with the displacement set they were computed from (same structure, atom order and "
        "displacement order); if the values are right, set `on_implausible: warn` in the material's reference block.")


class ImplausibleForces(InputFileError):
    """DFT forces that cannot be right for the displacement set they are read with."""


@dataclass(frozen=True)
class OnsiteStiffness:
    """The stiffest site of a supercell: its on-site force constant k (the largest eigenvalue
    of the 3x3 on-site block, eV/Å²), its nearest-neighbour distance d (Å), and k·d² (eV)."""

    value_eV: float
    k_eV_A2: float
    d_A: float
    atom: int  # supercell index, from 0
    symbol: str


def enforce(check: Callable[[], None], on_implausible: str, notes: list[str]) -> None:
    """Run ``check``; with ``on_implausible`` ``warn`` an :class:`ImplausibleForces` is logged
    as a warning and recorded in ``notes`` (thermal.json provenance) instead of raised."""
    try:
        check()
    except ImplausibleForces as exc:
        if on_implausible != "warn":
            raise
        log.warning("%s: %s Continuing, as the reference block says on_implausible: warn.", exc.path, exc.problem)
        notes.append(f"plausibility check overridden (on_implausible: warn): {exc.problem}")


# --------------------------------------------------------------------------- force directions


def common_path(paths: Sequence[Path]) -> Path:
    """The one path, or the deepest folder holding them all."""
    return paths[0] if len(paths) == 1 else Path(os.path.commonpath([str(p) for p in paths]))


def check_force_directions(dataset: dict, where: Sequence[Path] | Path) -> None:
    """Each single-atom displacement's forces must restore the displaced atom.

    For every entry of a type-1 ``dataset`` (phonopy's ``first_atoms``: one atom displaced by
    u, forces F in eV/Å): F·u < 0 on the displaced atom, and its force is at least
    :data:`RESTORING_FRACTION` of the largest. Type-2 sets (all atoms displaced) have no
    single displaced atom and are not checked. ``where`` names the force file, or the files
    (one per displacement, else their folder is named).
    """
    first = dataset.get("first_atoms") or []
    paths = [where] if isinstance(where, Path) else list(where)
    paths = paths if len(paths) == len(first) else [common_path(paths)] * len(first)
    for i, (d, path) in enumerate(zip(first, paths, strict=True)):
        _check_one_displacement(i, int(d["number"]), np.asarray(d["displacement"], dtype=float),
                                np.asarray(d["forces"], dtype=float), path)


def _check_one_displacement(i: int, atom: int, u_A: np.ndarray, forces_eV_A: np.ndarray, path: Path) -> None:
    where = f"displacement {i + 1} (atom {atom + 1})"
    norms = np.linalg.norm(forces_eV_A, axis=1)
    if not norms.max() > 0.0:
        raise ImplausibleForces(path, f"{where}: every force is zero; the calculation did not produce forces.", _FIX)
    work = float(forces_eV_A[atom] @ u_A)
    if not work < 0.0:
        raise ImplausibleForces(
            path, f"{where}: the displaced atom's force points along its displacement (F·u = {work:+.2e} eV), "
                  "not a restoring force; these are energy gradients (forces with the wrong sign) or the forces of "
                  "another structure.", _FIX)
    largest = int(np.argmax(norms))
    if norms[atom] < RESTORING_FRACTION * norms[largest]:
        raise ImplausibleForces(
            path, f"{where}: the displaced atom feels {norms[atom]:.2e} eV/Å, but atom {largest + 1} feels the "
                  f"largest force, {norms[largest]:.2e} eV/Å; the forces belong to another structure, atom order "
                  "or displacement.", _FIX)


# --------------------------------------------------------------------------- units


def nearest_neighbour_distances_A(phonon: Phonopy) -> np.ndarray:
    """Each unit-cell atom's nearest-neighbour distance in Å (periodic images included)."""
    from ase.neighborlist import neighbor_list

    from phonft.atoms import to_ase

    i, d = neighbor_list("id", to_ase(phonon.unitcell), NEIGHBOUR_CUTOFF_A, self_interaction=False)
    out = np.full(len(phonon.unitcell), NEIGHBOUR_CUTOFF_A)
    np.minimum.at(out, i, d)
    return out


def onsite_stiffness_eV(phonon: Phonopy, fc2_eV_A2: np.ndarray) -> OnsiteStiffness:
    """The supercell site with the largest k·d² (see :class:`OnsiteStiffness`).

    k·d² is an energy scale of the bonds around a site, nearly independent of the element
    and the structure, which the force unit scales directly: forces in Ry/Bohr read as
    eV/Å make it 25.7 times too small, forces in meV/Å 1000 times too large.
    """
    blocks = np.einsum("iiab->iab", fc2_eV_A2)
    k = np.linalg.eigvalsh(0.5 * (blocks + blocks.transpose(0, 2, 1)))[:, -1]
    sc = phonon.supercell
    unit = np.array([sc.u2u_map[s] for s in sc.s2u_map])
    d = nearest_neighbour_distances_A(phonon)[unit]
    a = int(np.argmax(k * d**2))
    return OnsiteStiffness(float(k[a] * d[a] ** 2), float(k[a]), float(d[a]), a, str(sc.symbols[a]))


def likely_units(value_eV: float) -> list[str]:
    """Units of :data:`FORCE_UNITS_eV_A` whose conversion would bring ``value_eV`` into
    :data:`STIFFNESS_RANGE_eV`, as ``"Ry/Bohr (1 Ry/Bohr = 25.71 eV/Å)"``."""
    lo, hi = STIFFNESS_RANGE_eV
    return [f"{name} (1 {name} = {f:.4g} eV/Å)" for name, f in FORCE_UNITS_eV_A.items() if lo <= value_eV * f <= hi]


_UNIT_FIX = ("give the forces in the unit of the displacement file's calculator (eV/Å; Ry/Bohr for a "
             "phonopy_disp.yaml made with --qe); if the values are right, set `on_implausible: warn` in the "
             "material's reference block.")


def check_force_units(phonon: Phonopy, fc2_eV_A2: np.ndarray, omega_max_K: float, where: Path) -> None:
    """The stiffest site's k·d² must lie in :data:`STIFFNESS_RANGE_eV` and omega_max in
    :data:`OMEGA_MAX_RANGE_K`; the error names the units that would explain the value."""
    s = onsite_stiffness_eV(phonon, fc2_eV_A2)
    lo, hi = STIFFNESS_RANGE_eV
    if not lo <= s.value_eV <= hi:
        side = f"below the {lo:g} eV of the softest solids" if s.value_eV < lo \
            else f"above the {hi:g} eV of the stiffest bonds"
        units = likely_units(s.value_eV)[:2]
        cause = f"forces in {' or '.join(units)} read as eV/Å would give this" if units else "check the force unit"
        raise ImplausibleForces(
            where, f"the forces give implausible force constants (omega_max {omega_max_K:.0f} K): the stiffest site, "
                   f"atom {s.atom + 1} ({s.symbol}), has an on-site force constant of {s.k_eV_A2:.3g} eV/Å² and its "
                   f"nearest neighbour at {s.d_A:.2f} Å, so k·d² = {s.value_eV:.3g} eV, {side}; {cause}.", _UNIT_FIX)
    lo_K, hi_K = OMEGA_MAX_RANGE_K
    if not lo_K <= omega_max_K <= hi_K:
        raise ImplausibleForces(
            where, f"omega_max is {omega_max_K:.0f} K, outside the {lo_K:g}-{hi_K:g} K of solids; check the force "
                   "unit and the masses.", _UNIT_FIX)
