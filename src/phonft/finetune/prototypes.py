"""Built-in replay structures: bulk prototypes of elements and binaries (ASE builders).

The offline pseudo-label replay set keeps the fine-tuned model close to its base model
*away from* the phonon structures. Its structures therefore come from a fixed list of
diverse crystals that lie inside a foundation model's domain (elements in their ASE
reference states; common binaries at their experimental room-temperature lattice
constants, Å), never from the run's own materials. Which of them a run uses is decided
by :func:`phonft.finetune.replay.replay_pool` (compositions of the run's materials are
excluded, and the model must know every element).
"""

from __future__ import annotations

from dataclasses import dataclass

from ase import Atoms

#: Elements built with ``ase.build.bulk(symbol)`` at ASE's reference lattice constants.
ELEMENTS = ("Al", "Cu", "Ni", "Ag", "Pt", "Fe", "W", "Mo", "V", "Li", "Na", "Ti", "Zn", "Co", "Mg", "C", "Ge")

#: (formula, ASE crystal structure, a (Å), c (Å) or None); experimental lattice constants.
BINARIES = (
    ("LiF", "rocksalt", 4.03, None), ("NaF", "rocksalt", 4.63, None), ("KCl", "rocksalt", 6.29, None),
    ("CaO", "rocksalt", 4.81, None), ("PbS", "rocksalt", 5.94, None), ("TiN", "rocksalt", 4.24, None),
    ("TiC", "rocksalt", 4.33, None), ("AgCl", "rocksalt", 5.55, None),
    ("GaAs", "zincblende", 5.65, None), ("InP", "zincblende", 5.87, None), ("ZnS", "zincblende", 5.41, None),
    ("SiC", "zincblende", 4.36, None), ("AlP", "zincblende", 5.46, None), ("CdTe", "zincblende", 6.48, None),
    ("BN", "zincblende", 3.62, None), ("CuCl", "zincblende", 5.41, None),
    ("GaN", "wurtzite", 3.19, 5.19), ("AlN", "wurtzite", 3.11, 4.98), ("CdS", "wurtzite", 4.14, 6.71),
    ("CsCl", "cesiumchloride", 4.12, None), ("NiAl", "cesiumchloride", 2.89, None),
    ("CuZn", "cesiumchloride", 2.95, None),
    ("CaF2", "fluorite", 5.46, None), ("CeO2", "fluorite", 5.41, None), ("Li2O", "fluorite", 4.61, None),
)


@dataclass(frozen=True)
class Prototype:
    """One built-in replay structure: a name and its primitive cell."""

    name: str
    atoms: Atoms


def prototypes() -> list[Prototype]:
    """Every built-in prototype, in a fixed order (elements, then binaries)."""
    from ase.build import bulk

    out = [Prototype(f"{sym}-{_structure_of(sym)}", bulk(sym)) for sym in ELEMENTS]
    for formula, kind, a, c in BINARIES:
        kwargs = {"a": a} if c is None else {"a": a, "c": c}
        out.append(Prototype(f"{formula}-{kind}", bulk(formula, kind, **kwargs)))
    return out


def _structure_of(symbol: str) -> str:
    from ase.data import atomic_numbers, reference_states

    return str(reference_states[atomic_numbers[symbol]]["symmetry"])
