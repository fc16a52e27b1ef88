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
import math
import platform
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, ClassVar, TypeVar

from phonft.errors import ConfigError, short_repr

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


def _deep_list(value: Any) -> Any:
    """Tuples (at any depth) as lists, as the user wrote them in JSON or YAML."""
    return [_deep_list(v) for v in value] if isinstance(value, (list, tuple)) else value


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

POSITIVE_SUFFIXES = ("distance_A", "length_A", "radius_A", "fmax_eV_A", "symprec")
"""Fields whose names end so are lengths, distances or tolerances: finite and positive."""


def _type_ok(value: Any, hint: Any) -> bool:
    """Whether a JSON/YAML ``value`` can stand for a field of type ``hint`` (before coercion).

    An integer stands for a float; a mapping for a tuple of ``(key, value)`` pairs or for a
    nested protocol; hints not spelled out here accept anything.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, alt) for alt in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint in (int, float, str):
        wanted = (int, float) if hint is float else hint
        return isinstance(value, wanted) and not isinstance(value, bool)
    if isinstance(hint, type) and issubclass(hint, Protocol):
        return value is None or isinstance(value, (Mapping, Protocol))
    if origin is tuple:
        if isinstance(value, Mapping):
            value = tuple(value.items())
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_type_ok(v, args[0]) for v in value)
        return len(args) == len(value) and all(_type_ok(v, a) for v, a in zip(value, args))
    return True


_NAMES = {bool: ("true or false", "booleans"), int: ("an integer", "integers"), float: ("a number", "numbers"),
          str: ("a string", "strings"), type(None): ("null", "nulls")}


def _type_name(hint: Any, plural: bool = False) -> str:
    """``hint`` in words, for error messages: ``float | None`` -> "a number or null"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a, plural) for a in args)
    if hint in _NAMES:
        return _NAMES[hint][plural]
    if origin is tuple and args[-1] is Ellipsis and args[0] == tuple[str, Any]:
        return "mappings" if plural else "a mapping"
    if origin is tuple:
        count = "" if args[-1] is Ellipsis else f"{len(args)} "
        return "lists" if plural else f"a list of {count}{_type_name(args[0], True)}"
    if isinstance(hint, type) and issubclass(hint, Protocol):
        return "mappings" if plural else "a mapping"
    return "values" if plural else str(hint)


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` with tuples shown as lists, cut to ``limit`` characters (:func:`short_repr`)."""
    return short_repr(_deep_list(value), limit)


def _check_field(where: str, f: dataclasses.Field, value: Any, hint: Any) -> None:
    """A :class:`ConfigError` when ``value`` has the wrong type for field ``f``, or is not
    positive where the field's name says it must be (:data:`POSITIVE_SUFFIXES`)."""
    if not _type_ok(value, hint):
        raise ConfigError(f"{where}: setting {f.name!r} must be {_type_name(hint)}, not {_short(value)}")
    if f.name.endswith(POSITIVE_SUFFIXES) and value is not None and not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{where}: setting {f.name!r} must be positive and finite, not {_short(value)}. "
                          f"Fix: give a number above 0 (default {_field_default(f)!r})")


@dataclass(frozen=True)
class Protocol:
    """Base class of phonft's protocols: frozen, hashable, with a content digest."""

    name: ClassVar[str] = "protocol"
    checks: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}
    """Field -> a check of its raw value that raises :class:`ConfigError` with a message of its own."""

    @classmethod
    def from_dict(cls: type[P], fields: Mapping[str, Any] | None) -> P:
        """Build from JSON/YAML fields, the one decoder of every settings slice.

        Omitted keys keep the dataclass defaults. Lists become tuples and integers become
        floats where the field is a float (:func:`_coerce`). A field whose default is itself
        a protocol takes a mapping, laid over that default and built recursively. An
        unknown key, a value of the wrong type, or a length or tolerance that is not positive
        (:data:`POSITIVE_SUFFIXES`) raises :class:`~phonft.errors.ConfigError` naming it
        (and, for an unknown key, the known ones).
        """
        if fields is not None and not isinstance(fields, Mapping):
            raise ConfigError(f"{cls.name}: the settings must be a mapping of setting -> value, not {_short(fields)}")
        fields = dict(fields or {})
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(map(str, set(fields) - set(known)))
        if unknown:
            raise ConfigError(f"{cls.name}: unknown setting {', '.join(map(repr, unknown))}; "
                              f"known: {', '.join(sorted(known))}")
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for key, value in fields.items():
            if key in cls.checks:
                cls.checks[key](value)
            _check_field(cls.name, known[key], value, hints[key])
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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _det3(m: tuple[tuple[int, ...], ...]) -> int:
    return (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]))


def supercell_rows(values: Any, what: str = "supercell") -> tuple[tuple[int, int, int], ...]:
    """A supercell matrix as 3 integer rows, from 3 integers (the diagonal), 9 integers (row
    by row) or 3 rows of 3; rows are supercell vectors in unit-cell vectors.

    Raises :class:`ConfigError` naming ``what`` unless every entry is an integer and the
    determinant (the number of unit cells in the supercell) is positive: zero is a singular
    matrix (no supercell), a negative one a left-handed set of vectors, which phonopy rejects.
    """
    fix = "Fix: give 3 positive integers (a diagonal, e.g. [2, 2, 2]) or a 3x3 integer matrix with determinant > 0"
    if not isinstance(values, (list, tuple)):
        raise ConfigError(f"{what} must be a list of integers, not {_short(values)}. {fix}")
    nested = bool(values) and all(isinstance(row, (list, tuple)) for row in values)
    if nested and len(values) == 3 and all(len(row) == 3 for row in values):
        flat = [v for row in values for v in row]
    elif not nested and len(values) in (3, 9):
        flat = list(values)
    else:
        raise ConfigError(f"{what} must be 3 integers, 9, or a 3x3 matrix, not {_short(values)}. {fix}")
    if not all(_is_int(v) for v in flat):
        raise ConfigError(f"{what} must hold integers only, not {_short(values)}. {fix}")
    if len(flat) == 3:
        flat = [flat[0], 0, 0, 0, flat[1], 0, 0, 0, flat[2]]
    rows = (tuple(flat[0:3]), tuple(flat[3:6]), tuple(flat[6:9]))
    det = _det3(rows)
    if det <= 0:
        kind = "singular (no supercell)" if det == 0 else "left-handed"
        raise ConfigError(f"{what} {_short(values)} has determinant {det}: {kind}. {fix}")
    return rows  # type: ignore[return-value]


@dataclass(frozen=True)
class DisplacementProtocol(Protocol):
    """How finite-displacement supercells are generated (phonopy / phono3py).

    Attributes
    ----------
    supercell_matrix
        3x3 integer matrix (rows are supercell vectors in unit-cell vectors) or 3 integers
        (its diagonal), with a positive determinant; ``None`` derives a diagonal one from
        ``min_length_A``.
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
    checks: ClassVar[Mapping[str, Callable[[Any], Any]]] = {
        "supercell_matrix": lambda v: v is None or supercell_rows(v, "displacements: supercell_matrix")}
    supercell_matrix: tuple[tuple[int, int, int], ...] | tuple[int, int, int] | None = None
    min_length_A: float = 10.0
    distance_A: float = 0.01
    symprec: float = 1e-5
    primitive_matrix: str | tuple[tuple[float, float, float], ...] = "auto"
    fc3: bool = False
    fc3_distance_A: float = 0.03

    def __post_init__(self) -> None:
        if self.supercell_matrix is not None:
            supercell_rows(self.supercell_matrix, "displacements: supercell_matrix")


@dataclass(frozen=True)
class SupercellLimits(Protocol):
    """The largest supercells the displacements stage generates: a guard against a typo
    (``supercell: [20, 20, 20]``, a huge ``min_length_A``) that would otherwise run for
    minutes or hours and write millions of files. Not part of any result.

    Attributes
    ----------
    max_supercell_atoms_fc2
        Most atoms in an fc2 (phonopy) supercell.
    max_supercell_atoms_fc3
        Most atoms in an fc3 (phono3py) supercell; its displacement pairs grow with the
        square of the atom count.
    """

    name: ClassVar[str] = "displacements"
    max_supercell_atoms_fc2: int = 2000
    max_supercell_atoms_fc3: int = 500

    def __post_init__(self) -> None:
        for key in ("max_supercell_atoms_fc2", "max_supercell_atoms_fc3"):
            if getattr(self, key) < 1:
                raise ConfigError(f"displacements: {key} must be a positive number of atoms, not {getattr(self, key)}")


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
