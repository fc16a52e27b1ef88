"""How the replay set is built: :class:`ReplaySettings` (a frozen protocol with a digest).

Kept beside :mod:`phonft.finetune.settings`, which re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from phonft.ase_calculators import check_trainable
from phonft.errors import ConfigError
from phonft.protocols import Protocol

REPLAY_STRUCTURES = ("disjoint", "training")


@dataclass(frozen=True)
class ReplaySettings(Protocol):
    """How the replay set is built (see :mod:`phonft.finetune.replay`).

    Attributes
    ----------
    structures
        ``disjoint`` (default): the built-in prototypes (``prototypes``) and the
        configured materials the run neither trains on nor is scored on (``materials``;
        None lets the workflow choose them), minus any composition of the run's materials.
        ``training``: the run's own training structures (the former default; it replays
        the base model's curvature and cancels the phonon loss; for ablations).
    copies, rattle_std_A, strain_max, min_atoms, max_atoms
        Each structure gives ``copies`` supercells of at least ``min_atoms`` (at most
        ``max_atoms``) atoms with Gaussian position noise of ``rattle_std_A`` (Å) and a
        random symmetric strain of up to ``strain_max`` per component; the frozen base
        model labels them (energy, forces, stress).
    val_fraction
        Fraction of the structures (whole compositions, never frames of a training
        structure) held back to measure forgetting.
    seed
        Seeds the rattles, the strains, the held-back structures and upstream subsampling.
    """

    name: ClassVar[str] = "replay"
    base_model: str = "chgnet"
    structures: str = "disjoint"
    prototypes: bool = True
    materials: tuple[str, ...] | None = None
    copies: int = 4
    rattle_std_A: float = 0.05
    strain_max: float = 0.02
    min_atoms: int = 8
    max_atoms: int = 64
    val_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        check_trainable(self.base_model, "finetune.runs.<run>.base_model (the replay set's labeller)")
        if self.structures not in REPLAY_STRUCTURES:
            raise ConfigError(f"replay.structures must be one of {REPLAY_STRUCTURES}, not {self.structures!r}")
        if self.copies < 1 or not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError("replay.copies must be positive and replay.val_fraction in [0, 1)")
