"""The phono3py steps of a kappa calculation, shared by the model and the DFT side:
set-up and displacements, forces of the displaced supercells, fc2/fc3, frequencies on the
q-mesh, the imaginary-mode and symmetry flags, and the RTA conductivity."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms

from phonft.errors import PhonftError
from phonft.evaluate import srme as metrics
from phonft.evaluate.kappa.protocol import KappaProtocol, KappaTask
from phonft.evaluate.srme import imaginary_modes

log = logging.getLogger(__name__)


def init_phono3py(atoms: Atoms, task: KappaTask, protocol: KappaProtocol):
    """phono3py on ``atoms`` with the task's supercells, primitive matrix and q-mesh, displacements generated."""
    from phono3py import Phono3py

    from phonft.atoms import from_ase

    pm = task.primitive_matrix if isinstance(task.primitive_matrix, str) else np.asarray(task.primitive_matrix)
    ph3 = Phono3py(from_ase(atoms, wrap=False), supercell_matrix=np.asarray(task.fc3_supercell),
                   phonon_supercell_matrix=np.asarray(task.fc2_supercell), primitive_matrix=pm,
                   symprec=protocol.symprec, log_level=0)
    ph3.mesh_numbers = list(task.q_mesh)
    ph3.generate_displacements(distance=protocol.displacement_distance_A)
    return ph3


def _cells(supercells: Sequence[Any]) -> tuple[list[Atoms], list[int]]:
    """Displaced supercells as ASE atoms, and the indices that exist (``None``: skipped pair)."""
    from phonft.atoms import to_ase

    present = [i for i, c in enumerate(supercells) if c is not None]
    return [to_ase(supercells[i]) for i in present], present


def model_forces(model, supercells: Sequence[Any], n_atoms: int, protocol: KappaProtocol, where: str,
                 batch_atoms: int | None, progress: bool) -> np.ndarray:
    """The model's forces (eV/Å) on displaced supercells; zeros for pairs phono3py skips."""
    from phonft.forces import displaced_forces

    cells, present = _cells(supercells)
    forces = np.zeros((len(supercells), n_atoms, 3), dtype=np.float64)
    if cells:
        forces[present] = displaced_forces(model, cells, batch_atoms=batch_atoms,
                                           remove_drift=protocol.remove_force_drift, where=where, progress=progress)
    return forces


def produce_fc2(ph3, protocol: KappaProtocol) -> None:
    """fc2 from the phonon supercells' forces, symmetrized when the protocol says so."""
    ph3.produce_fc2()
    if protocol.symmetrize_fc:
        ph3.symmetrize_fc2()


def produce_fc3(ph3, protocol: KappaProtocol) -> None:
    """fc3 (and fc2 when the file has no separate phonon supercell), symmetrized."""
    ph3.produce_fc3()
    if protocol.symmetrize_fc:
        ph3.symmetrize_fc3()
        if ph3.phonon_supercell_matrix is None:
            ph3.symmetrize_fc2()

def _mesh_frequencies(ph3) -> np.ndarray:
    """Harmonic frequencies (THz) on the whole Brillouin-zone grid of the q-mesh (Γ first)."""
    ph3.init_phph_interaction(symmetrize_fc3q=False)
    ph3.run_phonon_solver()
    freqs, _, _ = ph3.get_phonon_data()
    return np.asarray(freqs, dtype=np.float64)


def _conductivity(ph3, protocol: KappaProtocol) -> dict[str, Any]:
    """Run phono3py's RTA conductivity; return the record's conductivity fields."""
    ph3.init_phph_interaction(symmetrize_fc3q=False)
    wigner = protocol.conductivity_type == "wigner"
    ph3.run_thermal_conductivity(temperatures=[protocol.temperature_K], is_isotope=protocol.is_isotope,
                                 boundary_mfp=protocol.boundary_mfp_um,
                                 transport_type="SMM19" if wigner else None)
    cond = ph3.thermal_conductivity
    cv = np.asarray(cond.mode_heat_capacities, dtype=np.float64)  # (T, q, s), eV/K
    freqs = np.asarray(cond.frequencies, dtype=np.float64)
    weights = np.asarray(cond.grid_weights, dtype=np.float64)
    if freqs.shape[0] != weights.shape[0]:
        freqs = freqs[np.asarray(cond.grid_points)]
    n_mesh = float(np.prod(ph3.mesh_numbers))
    if wigner:
        parts = metrics.split_mode_kappa_matrix(
            np.asarray(cond.mode_kappa_matrix, dtype=np.float64)[0], cv, freqs,
            cutoff_frequency_THz=float(ph3.phph_interaction.cutoff_frequency),
            degenerate_threshold_THz=protocol.degenerate_threshold_THz)
        mode_tot = parts["mode_kappa_tot"]
        kappa_p = parts["mode_kappa_p"].sum(axis=(1, 2)) / n_mesh
        kappa_c = parts["mode_kappa_c"].sum(axis=(1, 2, 3)) / n_mesh
    else:
        mode_tot = np.asarray(cond.mode_kappa, dtype=np.float64)[0]
        kappa_p = mode_tot.sum(axis=(1, 2)) / n_mesh
        kappa_c = np.zeros_like(kappa_p)
    kappa_tot = kappa_p + kappa_c
    if not np.allclose(mode_tot.sum(axis=(1, 2)) / n_mesh, kappa_tot, rtol=1e-8, atol=1e-8):
        raise PhonftError("per-mode conductivities do not add up to the total")  # a bug, not an input error
    return {
        "kappa_tot_W_mK": kappa_tot, "kappa_p_W_mK": kappa_p, "kappa_c_W_mK": kappa_c,
        "kappa_tot_avg_W_mK": metrics.kappa_average(kappa_tot),
        "mode_kappa_tot_W_mK": mode_tot, "mode_kappa_tot_avg_W_mK": metrics.kappa_average(mode_tot),
        "mode_weights": weights, "qpoints": np.asarray(cond.qpoints, dtype=np.float64),
        "frequencies_THz": freqs, "mode_heat_capacity_eV_K": cv,
    }

def flags_and_conductivity(ph3, record: dict[str, Any], protocol: KappaProtocol, fc3_step) -> dict[str, Any]:
    """Steps 3-4 once fc2 is set: imaginary modes, then (unless flagged) ``fc3_step(ph3)``
    (forces and fc3) and the conductivity."""
    timings = record["timings_s"]
    t = time.perf_counter()
    freqs = _mesh_frequencies(ph3)
    record["has_imaginary_modes"] = imaginary_modes(freqs, protocol.gamma_acoustic_threshold_THz)
    record["min_frequency_THz"] = float(np.nanmin(freqs))
    timings["frequencies"] = time.perf_counter() - t
    if protocol.skip_flagged and (record["has_imaginary_modes"] or record["broken_symmetry"]):
        record["status"] = "flagged"
        log.warning("%s: %s; fc3 and conductivity skipped (SRME 2)", record["id"],
                    "imaginary modes" if record["has_imaginary_modes"] else "symmetry broken by the relaxation")
        return record
    t = time.perf_counter()
    fc3_step(ph3)
    timings["fc3"] = time.perf_counter() - t
    t = time.perf_counter()
    record.update(_conductivity(ph3, protocol))
    timings["conductivity"] = time.perf_counter() - t
    record["status"] = "flagged" if record["has_imaginary_modes"] or record["broken_symmetry"] else "ok"
    return record
