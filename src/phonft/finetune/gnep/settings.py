"""Settings of NEP training: GNEP (Adam/AdamW on exact gradients) and the SNES baseline.

Both are frozen :class:`~phonft.protocols.Protocol` dataclasses, so a run records them
with a digest. The loss of both trainers is the same weighted sum of root-mean-square
errors (:class:`GNEPWeights`): energy per atom (eV/atom), force components (eV/Å) and
virial per atom (eV/atom), each over the frames that carry that label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from phonft.errors import ConfigError
from phonft.protocols import Protocol

OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("cosine", "exponential")


def _require(ok: bool, name: str, key: str, value: object, want: str) -> None:
    """A :class:`ConfigError` naming ``name.key`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{name}: setting {key!r} must be {want}, not {value!r}")


def _check_budget(name: str, max_seconds: float | None) -> None:
    _require(max_seconds is None or (math.isfinite(max_seconds) and max_seconds > 0), name, "max_seconds",
             max_seconds, "a positive number of seconds or null (no limit)")


@dataclass(frozen=True)
class GNEPWeights(Protocol):
    """Weights of the loss terms (GNEP's defaults): energy, forces, virial RMSE."""

    name: ClassVar[str] = "gnep.weights"
    energy: float = 1.0
    forces: float = 2.0
    virial: float = 0.1

    def __post_init__(self) -> None:
        for key in ("energy", "forces", "virial"):
            value = getattr(self, key)
            _require(math.isfinite(value) and value >= 0, self.name, key, value, "a finite number >= 0")
        _require(self.energy + self.forces + self.virial > 0, self.name, "forces", self.forces,
                 "positive when the energy and virial weights are 0 (nothing would be fitted)")


@dataclass(frozen=True)
class GNEPSettings(Protocol):
    """GNEP: minibatch Adam/AdamW on the exact gradient of the E/F/V RMSE loss.

    Attributes
    ----------
    epochs
        Passes over the training frames.
    batch_size
        Structures per minibatch (the last minibatch of an epoch may be smaller).
    optimizer
        ``adam`` or ``adamw`` (decoupled ``weight_decay``).
    lr, lr_final
        Learning rate at the first step and at the end of the decay (the last step). The
        default 3e-2 was measured on GPUMD's PbTe set (benchmarks/gnep_pbte.py): after 150
        epochs of 4-frame minibatches, force RMSE 43 meV/Å against 57 with 1e-2.
    schedule
        ``cosine`` (half a cosine from lr to lr_final) or ``exponential`` (geometric).
    weight_decay
        L2 penalty (Adam) or decoupled decay (AdamW).
    weights
        Loss weights (:class:`GNEPWeights`).
    seed
        Seeds the minibatch shuffle (``numpy.random.default_rng(seed)``).
    max_seconds
        Stop after the epoch during which this many seconds have passed (None: no limit).
    """

    name: ClassVar[str] = "gnep"
    epochs: int = 100
    batch_size: int = 8
    optimizer: str = "adam"
    lr: float = 3e-2
    lr_final: float = 1e-4
    schedule: str = "cosine"
    weight_decay: float = 0.0
    weights: GNEPWeights = field(default_factory=GNEPWeights)
    seed: int = 0
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        _require(self.epochs >= 1, self.name, "epochs", self.epochs, "a positive integer")
        _require(self.batch_size >= 1, self.name, "batch_size", self.batch_size, "a positive integer")
        _require(self.optimizer in OPTIMIZERS, self.name, "optimizer", self.optimizer, f"one of {OPTIMIZERS}")
        _require(self.schedule in SCHEDULES, self.name, "schedule", self.schedule, f"one of {SCHEDULES}")
        _require(math.isfinite(self.lr) and self.lr > 0, self.name, "lr", self.lr, "a positive number")
        _require(math.isfinite(self.lr_final) and 0 < self.lr_final <= self.lr, self.name, "lr_final",
                 self.lr_final, f"a positive number no larger than lr ({self.lr:g})")
        _require(math.isfinite(self.weight_decay) and self.weight_decay >= 0, self.name, "weight_decay",
                 self.weight_decay, "a number >= 0")
        _check_budget(self.name, self.max_seconds)


@dataclass(frozen=True)
class SNESSettings(Protocol):
    """The SNES baseline (separable natural evolution strategy, Schaul et al. 2011), GPUMD's
    optimiser, on the same model and loss as GNEP.

    Attributes
    ----------
    generations
        SNES generations (GPUMD's ``generation``; its default is 100000).
    population
        Individuals per generation (GPUMD's ``population``, default 50).
    lambda_1, lambda_2
        Weights of the L1 and L2 regularisation terms ``lambda_1 mean|w|`` and
        ``lambda_2 sqrt(mean w^2)`` over the trained parameters; None is
        ``sqrt(number of trained parameters) * 1e-3`` (GPUMD's nep.in default as this
        project recalls its documentation).
    batch
        Structures per generation (GPUMD's ``batch``, default 1000: every frame of a
        smaller training set).
    sigma0
        Initial search width of every parameter.
    weights
        Loss weights; GPUMD's ``lambda_e``, ``lambda_f``, ``lambda_v`` defaults are 1, 1, 0.1.
    seed
        Seeds the samples and the batch order.
    max_seconds
        Stop after the generation during which this many seconds have passed.
    """

    name: ClassVar[str] = "snes"
    generations: int = 1000
    population: int = 50
    lambda_1: float | None = None
    lambda_2: float | None = None
    batch: int = 1000
    sigma0: float = 0.1
    weights: GNEPWeights = field(default_factory=lambda: GNEPWeights(energy=1.0, forces=1.0, virial=0.1))
    seed: int = 0
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        _require(self.generations >= 1, self.name, "generations", self.generations, "a positive integer")
        _require(self.population >= 2, self.name, "population", self.population, "an integer >= 2")
        _require(self.batch >= 1, self.name, "batch", self.batch, "a positive integer")
        _require(math.isfinite(self.sigma0) and self.sigma0 > 0, self.name, "sigma0", self.sigma0,
                 "a positive number")
        for key in ("lambda_1", "lambda_2"):
            value = getattr(self, key)
            _require(value is None or (math.isfinite(value) and value >= 0), self.name, key, value,
                     "a number >= 0 or null (GPUMD's default)")
        _check_budget(self.name, self.max_seconds)
