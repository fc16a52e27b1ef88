"""Protocols: frozen settings dataclasses with a stable digest.

Every result JSON phonft writes carries the protocol that produced it
(:meth:`Protocol.record`): its fields, a SHA-256 digest of them, and the versions of the
packages that did the physics. Two results with the same digest were computed the same
way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, ClassVar

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


@dataclass(frozen=True)
class Protocol:
    """Base class of phonft's protocols: frozen, hashable, with a content digest."""

    name: ClassVar[str] = "protocol"

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
