"""The MDR phonon protocol (Loew et al. 2024; hyllios/utils ``benchmark_ph``) for a model.

:class:`ModelPhonons` is the facade: relax the reference's unit cell under the model
(FIRE + FrechetCellFilter + FixSymmetry, to fmax/2 in up to 15 runs of 500 steps, as
MDR's ``umlip.relax_structure``), rebuild phonopy with the reference's supercell and
primitive matrices, displace by 0.01 Å along x, y, z only (``is_diagonal=False``, as
MDR), evaluate every displaced supercell in batches, remove the force drift and build symmetrized force constants. Its
:meth:`~ModelPhonons.thermal_record` has the keys of the references' ``thermal.json``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from phonft.errors import ConfigError
from phonft.evaluate.relax import RelaxResult, relax
from phonft.protocols import THZ_TO_K, Protocol, ReferenceProtocol
from phonft.references.folder import ReferenceFolder

log = logging.getLogger(__name__)


def _check_count(key: str, value: Any, default: int) -> None:
    """A one-line :class:`ConfigError` unless ``value`` is an integer of at least 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"mdr: setting {key!r} must be an integer of at least 1, not {value!r}. "
                          f"Fix: give a positive count (MDR's reference scripts: {default})")


def _check_range(key: str, value: Any, low: float, high: float, default: float) -> None:
    """A one-line :class:`ConfigError` unless ``value`` is a number in (``low``, ``high``]."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and low < value <= high
    if not ok:
        raise ConfigError(f"mdr: setting {key!r} must be a number in ({low:g}, {high:g}], not {value!r}. "
                          f"Fix: give e.g. {default} (MDR's reference scripts relax to fmax/2)")


@dataclass(frozen=True)
class MDRProtocol(Protocol):
    """Settings of the MDR phonon evaluation of a model.

    Attributes
    ----------
    fmax_eV_A
        A relaxation is converged when every force (and the FrechetCellFilter's cell
        force) is below this, in eV/Å (MDR: 0.005).
    relax_fmax_factor
        FIRE aims at ``fmax_eV_A`` times this (MDR: 0.5, i.e. 0.0025 eV/Å), in (0, 1].
    max_steps
        FIRE steps at most per run (MDR: 500).
    relax_runs
        FIRE runs at most; each restart has fresh velocities and FixSymmetry detected
        again on the current structure (MDR: 15). A relaxation that does not converge is
        recorded, not fatal (MDR drops the material).
    relax_cell
        Relax the cell as well as the positions (FrechetCellFilter).
    fix_symmetry_symprec
        FixSymmetry's tolerance in Å during the relaxation (MDR: ASE's default 0.01).
    distance_A
        Finite-displacement amplitude in Å (phonopy's default 0.01 Å).
    is_diagonal
        phonopy's ``is_diagonal``: ``False`` (MDR) displaces along x, y, z only; ``True``
        (phonopy's default) lets phonopy pick diagonal directions, often fewer supercells.
    remove_drift
        Subtract the mean force of each displaced supercell.
    symmetrize_fc
        Symmetrize the force constants (translational and permutational invariance).
    temperatures_K
        Temperatures in K of the thermal properties.
    mesh
        phonopy mesh for thermal properties: a length in Å or three integers.
    gamma_acoustic_tolerance_K
        The MDR stability rule's tolerance (K) for the three acoustic modes at Gamma.
    symprec
        spglib tolerance in Å of the phonopy symmetry and the recorded space groups.
    band_npoints
        q-points per segment of the seekpath band path.
    batch_atoms
        Atoms per batched force evaluation; ``None`` picks 128 on a CPU and 4096 on a GPU
        (a speed and memory knob: the forces do not depend on it).
    """

    name: ClassVar[str] = "mdr"
    checks: ClassVar[Mapping[str, Callable[[Any], Any]]] = {
        "relax_fmax_factor": lambda v: _check_range("relax_fmax_factor", v, 0.0, 1.0, 0.5),
        "max_steps": lambda v: _check_count("max_steps", v, 500),
        "relax_runs": lambda v: _check_count("relax_runs", v, 15)}
    fmax_eV_A: float = 0.005
    relax_fmax_factor: float = 0.5
    max_steps: int = 500
    relax_runs: int = 15
    relax_cell: bool = True
    fix_symmetry_symprec: float = 0.01
    distance_A: float = 0.01
    is_diagonal: bool = False
    remove_drift: bool = True
    symmetrize_fc: bool = True
    temperatures_K: tuple[float, ...] = (0.0, 75.0, 150.0, 300.0, 600.0)
    mesh: float | tuple[int, int, int] = 100.0
    gamma_acoustic_tolerance_K: float = -35.0
    symprec: float = 1e-5
    band_npoints: int = 51
    batch_atoms: int | None = None

    def __post_init__(self) -> None:
        for key, check in self.checks.items():
            check(getattr(self, key))

    def phonon_protocol(self) -> ReferenceProtocol:
        """The thermal/stability part, in the references' own protocol type."""
        return ReferenceProtocol(temperatures_K=tuple(self.temperatures_K), mesh=self.mesh,
                                 symmetrize_fc=self.symmetrize_fc, use_nac=False,
                                 gamma_acoustic_tolerance_K=self.gamma_acoustic_tolerance_K,
                                 symprec=self.symprec, thz_to_K=THZ_TO_K)


@dataclass
class ModelPhonons:
    """A model's phonons on one reference material under the MDR protocol."""

    material: str
    model_spec: str
    phonon: Any  # phonopy.Phonopy with force constants
    relaxation: RelaxResult
    protocol: MDRProtocol
    reference: Any  # the reference's phonopy.Phonopy, with its DFT fc2 and no NAC
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time (s, ``time.perf_counter``) of the protocol's parts: ``relax``, ``forces``
    (displaced supercells) and ``phonopy`` (force constants; :meth:`thermal_record` adds
    the thermal properties). Model loading is not included."""

    @classmethod
    def compute(cls, model, ref_dir: str | os.PathLike | ReferenceFolder, material: str,
                protocol: MDRProtocol | None = None) -> ModelPhonons:
        """Relax, displace, evaluate in batches and build force constants (float64), on the
        references folder ``ref_dir`` (its DFT fc2, without the Born charges)."""
        folder = ref_dir if isinstance(ref_dir, ReferenceFolder) else ReferenceFolder.load(ref_dir)
        return cls.from_phonopy(model, folder.phonopy(with_nac=False), material, protocol,
                                where=f"{material} ({folder.path})")

    @classmethod
    def from_phonopy(cls, model, ref, material: str, protocol: MDRProtocol | None = None,
                     where: str | None = None) -> ModelPhonons:
        """:meth:`compute` on the reference's ``phonopy.Phonopy`` ``ref`` (unit cell, supercell
        and primitive matrices, masses; its force constants, in eV/Å², are the DFT side of
        the band comparison). ``ref`` is kept, not modified; ``where`` names it in logs."""
        from phonft.forces import set_model_forces
        from phonft.phonons import produce_force_constants

        protocol = protocol or MDRProtocol()
        t0 = time.perf_counter()
        ph, result = relaxed_phonopy(model, ref, where or material, protocol)
        t1 = time.perf_counter()
        ph.generate_displacements(distance=protocol.distance_A, is_diagonal=protocol.is_diagonal)
        set_model_forces(model, ph, batch_atoms=protocol.batch_atoms, remove_drift=protocol.remove_drift,
                         where=material)
        t2 = time.perf_counter()
        ph.force_constants = produce_force_constants(ph, protocol.phonon_protocol())
        seconds = {"relax": t1 - t0, "forces": t2 - t1, "phonopy": time.perf_counter() - t2}
        return cls(material=material, model_spec=model.spec, phonon=ph, relaxation=result, protocol=protocol,
                   reference=ref, seconds=seconds)

    def thermal_record(self) -> dict[str, Any]:
        """``thermal.json``: the references' keys, plus the model, relaxation, the wall time of
        the protocol's parts (``seconds``: relax, forces, phonopy, total; the cost of one
        phonon calculation, with ``relaxation.n_steps``) and protocol."""
        from phonft.phonons import phonon_summary, thermal_json_record

        t0 = time.perf_counter()
        summary = phonon_summary(self.phonon, self.protocol.phonon_protocol())
        seconds = {**self.seconds, "phonopy": self.seconds.get("phonopy", 0.0) + time.perf_counter() - t0}
        details = {"relaxation": self.relaxation.as_dict(), "n_displacements": len(self.phonon.displacements),
                   "seconds": {**seconds, "total": sum(seconds.values())}}
        return thermal_json_record(self.material, "model", summary, self.protocol,
                                   identity={"model": self.model_spec}, details=details)


def relaxed_phonopy(model, ref, where: str, protocol: MDRProtocol):
    """Relax the unit cell of ``ref`` (the reference's phonopy object) under ``model``
    (float64) and rebuild phonopy on it with the reference's supercell and primitive
    matrices (no displacements yet). ``where`` names the material in errors and logs."""
    from phonopy import Phonopy

    from phonft.atoms import from_ase, to_ase

    model.set_dtype("float64")
    unitcell = to_ase(ref.unitcell)
    model.check_elements(unitcell, where)
    result = relax(unitcell, model.as_ase_calculator(), fmax_eV_A=protocol.fmax_eV_A,
                   fmax_factor=protocol.relax_fmax_factor, max_steps=protocol.max_steps, runs=protocol.relax_runs,
                   relax_cell=protocol.relax_cell, symprec=protocol.symprec,
                   fix_symmetry_symprec=protocol.fix_symmetry_symprec, where=where)
    log.info("%s: relaxed in %d steps (converged=%s, space group %d -> %d)", where, result.n_steps,
             result.converged, result.spacegroup_before, result.spacegroup_after)
    # the reference's masses (phonopy's table, or the DFT code's), not ASE's: same dynamical matrix weights
    ph = Phonopy(from_ase(result.atoms, ref.unitcell.masses), supercell_matrix=ref.supercell_matrix,
                 primitive_matrix=ref.primitive_matrix, symprec=protocol.symprec, log_level=0)
    return ph, result

