"""The augment stage's settings: how frames are made (:class:`AugmentSettings`) and where
their labels come from (:class:`LabelSettings`), both frozen protocols with a digest.

Defaults equal the schema's (``workflow/schemas/config.schema.yaml``, block ``augment`` and
``materials.<m>.augment.labels``); ``tests/test_plan.py`` checks that they agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from phonft.errors import ConfigError, short_repr
from phonft.protocols import Protocol
from phonft.specs import LABEL_FORMATS


def _positive_list(key: str) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in value):
            raise ConfigError(f"augment: setting {key!r} must be a list of positive numbers, not {short_repr(value)}. "
                              "Fix: e.g. [0.01, 0.03]")
    return check


def _non_negative(key: str) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"augment: setting {key!r} must be 0 or more, not {short_repr(value)}")
    return check


def _at_least_one(key: str) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            raise ConfigError(f"augment: setting {key!r} must be 1 or more, not {value}")
    return check


@dataclass(frozen=True)
class AugmentSettings(Protocol):
    """How the rattled supercells of a material's reference supercell are made.

    Attributes
    ----------
    n_frames
        Rattled supercells per material (autoplex's and George et al.'s 10).
    rattle_std_A
        Standard deviation(s) in Å of the Gaussian displacement of every Cartesian
        component (ASE's ``Atoms.rattle``). With several, frame k takes
        ``rattle_std_A[k % len(rattle_std_A)]``.
    volume_factors
        Volume scale factors V/V0 (e.g. 0.95, 1.0, 1.05); empty: the reference volume.
        Frame k takes ``volume_factors[(k // len(rattle_std_A)) % len(volume_factors)]``, so
        that ``n_frames >= len(rattle_std_A) * len(volume_factors)`` covers every pair. The
        cell is scaled isotropically by ``factor ** (1/3)``, atoms with it.
    angle_std_deg
        Standard deviation in degrees of a Gaussian change of each cell angle (alpha, beta,
        gamma); lengths are kept, atoms follow the cell. 0: no angle distortion.
    mc
        Monte-Carlo rattle instead of the plain Gaussian one: ``mc_sweeps`` sweeps over
        the atoms, each proposing a Gaussian step of ``rattle_std_A / sqrt(mc_sweeps)``
        that is rejected when it brings the atom closer than ``min_distance_A`` to any
        other (periodic images included); hiphive's ``mc_rattle`` with a hard wall.
    min_distance_A
        The Monte-Carlo rattle's smallest interatomic distance, in Å.
    mc_sweeps
        Sweeps of the Monte-Carlo rattle.
    seed
        Seed of the random numbers; the generator is
        ``numpy.random.default_rng([seed, material_key(material)])``, so each material has
        its own reproducible stream.
    """

    name: ClassVar[str] = "augment"
    checks: ClassVar[Mapping[str, Callable[[Any], Any]]] = {
        "rattle_std_A": _positive_list("rattle_std_A"), "volume_factors": _positive_list("volume_factors"),
        "angle_std_deg": _non_negative("angle_std_deg"), "n_frames": _at_least_one("n_frames"),
        "mc_sweeps": _at_least_one("mc_sweeps")}
    n_frames: int = 10
    rattle_std_A: tuple[float, ...] = (0.01,)
    volume_factors: tuple[float, ...] = ()
    angle_std_deg: float = 0.0
    mc: bool = False
    min_distance_A: float = 1.5
    mc_sweeps: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.rattle_std_A:
            raise ConfigError("augment: rattle_std_A is empty. Fix: give at least one standard deviation in Å, "
                              "e.g. [0.01]")

    @property
    def distorts_cell(self) -> bool:
        """Whether frames leave the reference cell (volume factors other than 1, or angles)."""
        return any(f != 1.0 for f in self.volume_factors) or self.angle_std_deg > 0


@dataclass(frozen=True)
class LabelSettings(Protocol):
    """Where a material's frame labels come from (``materials.<m>.augment.labels``).

    Attributes
    ----------
    format
        ``harmonic`` (F = -Phi u from the material's DFT fc2, forces only; the default),
        ``vasprun`` or ``qe`` (one DFT output per written input, in frame order),
        ``extxyz`` (a user's own labelled frames) or ``engine`` (an ASE calculator,
        synthetic).
    path
        ``vasprun``/``qe``: the folder of the outputs; ``extxyz``: the file. Relative to
        the workflow folder.
    files
        ``vasprun``/``qe``: the outputs, one per frame in order, relative to ``path``.
    calculator
        ``engine``: ``emt``, ``lj``, ``morse`` or ``module:Class``.
    calculator_kwargs
        ``engine``: the calculator's keyword arguments.
    """

    name: ClassVar[str] = "augment.labels"
    checks: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"format": lambda v: _check_format(v)}
    format: str = "harmonic"
    path: str | None = None
    files: tuple[str, ...] = ()
    calculator: str | None = None
    calculator_kwargs: tuple[tuple[str, Any], ...] = field(default=())

    def __post_init__(self) -> None:
        needs = {"vasprun": ("path", "files"), "qe": ("path", "files"), "extxyz": ("path",), "engine": ("calculator",)}
        missing = [k for k in needs.get(self.format, ()) if not getattr(self, k)]
        if missing:
            raise ConfigError(f"augment.labels: format {self.format!r} needs {' and '.join(missing)}. Fix: add "
                              f"{', '.join(missing)} to the material's augment.labels (config/README.md)")


def _check_format(value: Any) -> None:
    if value not in LABEL_FORMATS:
        raise ConfigError(f"augment.labels: format {short_repr(value)} is not one of {', '.join(LABEL_FORMATS)}")
