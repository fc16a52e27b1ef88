"""Protocols: frozen settings dataclasses with a stable digest.

Every result JSON phonft writes carries the protocol that produced it
(:meth:`Protocol.record`): its fields, a SHA-256 digest of them, and the versions of the
packages that did the physics. Two results with the same digest were computed the same
way. Settings arrive as JSON or YAML mappings and are decoded by one classmethod,
:meth:`Protocol.from_dict`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, ClassVar, TypeVar

from phonft.errors import ConfigError

THZ_TO_K = 47.99243073366221
"""Conversion of a phonon frequency from THz to K: h·10¹²/k_B (CODATA 2018)."""

_VERSIONED_PACKAGES = (
    "phonft",
    "phonopy",
    "phono3py",
    "spglib",
    "numpy",
    "scipy",
    "ase",
    "pymatgen",
    "h5py",
    "torch",
    "chgnet",
    "mace-torch",
)


def package_versions() -> dict[str, str]:
    """Versions of the packages that take part in phonft's numbers (absent ones omitted)."""
    out = {"python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _canonical(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, float) and value.is_integer():
        return value  # keep floats as floats; json writes 300.0
    return value


def _deep_tuple(value: Any) -> Any:
    """Lists (at any depth) as tuples; mappings as sorted ``(key, value)`` pairs."""
    if isinstance(value, (list, tuple)):
        return tuple(_deep_tuple(v) for v in value)
    if isinstance(value, Mapping):
        return tuple(sorted((k, _deep_tuple(v)) for k, v in value.items()))
    return value


def _coerce(value: Any, hint: Any) -> Any:
    """A JSON/YAML value as the field type ``hint`` wants it.

    Lists become tuples (element types followed), mappings become sorted ``(key, value)``
    pairs, and an integer where the type says ``float`` becomes a float, so that a digest
    never depends on whether a number was written ``10`` or ``10.0``.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        wants_sequence = isinstance(value, (list, tuple))
        for alt in args:
            if (typing.get_origin(alt) is tuple) == wants_sequence and alt is not type(None):
                return _coerce(value, alt)
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin is tuple and isinstance(value, (list, tuple)):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0]) for v in value)
        if len(args) == len(value):
            return tuple(_coerce(v, a) for v, a in zip(value, args))
    return _deep_tuple(value)


P = TypeVar("P", bound="Protocol")


@dataclass(frozen=True)
class Protocol:
    """Base class of phonft's protocols: frozen, hashable, with a content digest."""

    name: ClassVar[str] = "protocol"

    @classmethod
    def from_dict(cls: type[P], fields: Mapping[str, Any] | None) -> P:
        """Build from JSON/YAML fields, the one decoder of every settings slice.

        Omitted keys keep the dataclass defaults. Lists become tuples and integers become
        floats where the field is a float (:func:`_coerce`). A field whose default is itself
        a protocol takes a mapping, laid over that default and built recursively. An
        unknown key raises :class:`~phonft.errors.ConfigError` naming it and the known ones.
        """
        fields = dict(fields or {})
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - set(known))
        if unknown:
            raise ConfigError(f"{cls.name}: unknown setting {', '.join(map(repr, unknown))}; "
                              f"known: {', '.join(sorted(known))}")
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for key, value in fields.items():
            default = _field_default(known[key])
            if isinstance(default, Protocol) and not isinstance(value, Protocol):
                kwargs[key] = type(default).from_dict({**default.as_dict(), **(value or {})})
            else:
                kwargs[key] = _coerce(value, hints[key])
        return cls(**kwargs)

    def as_dict(self) -> dict[str, Any]:
        """Fields as plain JSON-ready values (tuples become lists)."""
        return {k: _canonical(v) for k, v in dataclasses.asdict(self).items()}

    def digest(self) -> str:
        """SHA-256 (first 16 hex digits) of the protocol's name and canonical fields."""
        payload = json.dumps({"protocol": self.name, **self.as_dict()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def record(self) -> dict[str, Any]:
        """The block every result JSON carries: settings, digest and package versions."""
        return {
            "protocol": {"name": self.name, **self.as_dict()},
            "protocol_digest": self.digest(),
            "versions": package_versions(),
        }


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


@dataclass(frozen=True)
class DisplacementProtocol(Protocol):
    """How finite-displacement supercells are generated (phonopy / phono3py).

    Attributes
    ----------
    supercell_matrix
        3x3 integer matrix (rows are supercell vectors in unit-cell vectors), or ``None``
        to derive a diagonal one from ``min_length_A``.
    min_length_A
        Minimum length (Å) of each supercell lattice vector when no matrix is given.
    distance_A
        Displacement amplitude in Å (phonopy's default 0.01 Å).
    symprec
        Symmetry tolerance in Å passed to spglib.
    primitive_matrix
        ``"auto"`` or a 3x3 matrix, as in phonopy.
    fc3
        Also generate phono3py's third-order displacement set.
    fc3_distance_A
        Displacement amplitude in Å for the fc3 set (phono3py's default 0.03 Å).
    """

    name: ClassVar[str] = "displacements"
    supercell_matrix: tuple[tuple[int, int, int], ...] | None = None
    min_length_A: float = 10.0
    distance_A: float = 0.01
    symprec: float = 1e-5
    primitive_matrix: str | tuple[tuple[float, float, float], ...] = "auto"
    fc3: bool = False
    fc3_distance_A: float = 0.03


@dataclass(frozen=True)
class ReferenceProtocol(Protocol):
    """How normalised force constants and thermal properties are computed.

    Follows the MDR phonon benchmark (Loew et al. 2024): force constants rebuilt from the
    forces and symmetrized, no non-analytical correction, thermal properties on phonopy's
    default mesh with imaginary modes left out of the sums, and the MDR stability rule.

    Attributes
    ----------
    temperatures_K
        Temperatures in K at which S, F and C_V are reported.
    mesh
        phonopy mesh: a length in Å (phonopy's default is 100.0) or three integers.
    symmetrize_fc
        Symmetrize fc2 (translational and permutational invariance) after building it.
    fc_calculator
        phonopy's force-constants solver: ``"traditional"`` or ``"symfc"``.
    use_nac
        Apply the non-analytical term correction from BORN when available. The MDR
        protocol, and every MLIP comparison, uses ``False``.
    gamma_acoustic_tolerance_K
        Lowest frequency (K) tolerated for the three acoustic modes at Gamma; every other
        mode at the supercell-commensurate q-points must be non-negative.
    symprec
        Symmetry tolerance in Å.
    """

    name: ClassVar[str] = "references"
    temperatures_K: tuple[float, ...] = (0.0, 75.0, 150.0, 300.0, 600.0)
    mesh: float | tuple[int, int, int] = 100.0
    symmetrize_fc: bool = True
    fc_calculator: str = "traditional"
    use_nac: bool = False
    gamma_acoustic_tolerance_K: float = -35.0
    symprec: float = 1e-5
    thz_to_K: float = field(default=THZ_TO_K)
