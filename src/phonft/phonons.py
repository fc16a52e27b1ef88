"""Phonon quantities shared by every stage: drift removal, force constants, frequencies,
stability, thermal properties and the ``thermal.json`` record, following the MDR protocol
(:class:`~phonft.protocols.ReferenceProtocol`).

Everything here works in float64 and phonopy's VASP units (Å, eV/Å, eV/Å², THz).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from phonopy import Phonopy
from phonopy.harmonic.dynmat_to_fc import get_commensurate_points

from phonft.protocols import Protocol, ReferenceProtocol


def remove_drift(forces_eV_A: np.ndarray) -> np.ndarray:
    """Subtract each supercell's mean force (the drift), as ``phonopy -f`` does.

    ``forces_eV_A`` has shape (n_supercells, n_atoms, 3); a new array is returned.
    """
    return forces_eV_A - forces_eV_A.mean(axis=1, keepdims=True)


def produce_force_constants(phonon: Phonopy, protocol: ReferenceProtocol) -> np.ndarray:
    """Build full (N, N, 3, 3) supercell force constants in eV/Å² from the dataset's forces.

    The full (not compact) layout is kept because its rows are the Hessian columns that
    phonon fine-tuning matches: ``fc[i, j, a, b] = d²E / du_ia du_jb``.
    """
    fc_calculator = None if protocol.fc_calculator == "traditional" else protocol.fc_calculator
    phonon.produce_force_constants(fc_calculator=fc_calculator, calculate_full_force_constants=True)
    if protocol.symmetrize_fc:
        phonon.symmetrize_force_constants()
    return np.asarray(phonon.force_constants, dtype=np.float64)


def commensurate_qpoints(phonon: Phonopy) -> np.ndarray:
    """q-points (reduced coordinates of the primitive reciprocal lattice) commensurate with
    the supercell. Gamma comes first."""
    smat_prim = np.linalg.inv(phonon.primitive_matrix) @ phonon.supercell_matrix
    smat_int = np.rint(smat_prim).astype(int)
    if not np.allclose(smat_prim, smat_int, atol=1e-5):
        raise ValueError("the supercell is not an integer multiple of the primitive cell")
    return np.asarray(get_commensurate_points(smat_int), dtype=np.float64)


def commensurate_frequencies_THz(phonon: Phonopy) -> np.ndarray:
    """Sorted frequencies (THz), shape (n_q, 3 n_prim), at :func:`commensurate_qpoints`.

    Imaginary frequencies are returned as negative numbers (phonopy's convention).
    """
    qpoints = commensurate_qpoints(phonon)
    phonon.run_qpoints(qpoints)
    return np.sort(np.asarray(phonon.get_qpoints_dict()["frequencies"], dtype=np.float64), axis=1)


@dataclass(frozen=True)
class Stability:
    """Dynamical stability by the MDR rule on the supercell-commensurate q-points.

    The three lowest modes at Gamma may be as low as ``gamma_acoustic_tolerance_K``; every
    other mode must be non-negative.
    """

    dynamically_stable: bool
    n_imaginary: int
    min_frequency_THz: float
    omega_max_K: float


def assess_stability(freqs_THz: np.ndarray, protocol: ReferenceProtocol) -> Stability:
    """Apply the MDR stability rule to commensurate frequencies (Gamma in row 0)."""
    freqs_K = freqs_THz * protocol.thz_to_K
    gamma_acoustic = freqs_K[0, :3] < protocol.gamma_acoustic_tolerance_K
    gamma_optical = freqs_K[0, 3:] < 0.0
    others = freqs_K[1:] < 0.0
    n_bad = int(gamma_acoustic.sum() + gamma_optical.sum() + others.sum())
    return Stability(
        dynamically_stable=n_bad == 0,
        n_imaginary=n_bad,
        min_frequency_THz=float(freqs_THz.min()),
        omega_max_K=float(freqs_K.max()),
    )


@dataclass(frozen=True)
class ThermalProperties:
    """Harmonic thermal properties per mole of primitive cell on a q-point mesh."""

    temperatures_K: list[float]
    entropy_J_per_K_mol: list[float]
    free_energy_kJ_per_mol: list[float]
    heat_capacity_J_per_K_mol: list[float]
    mesh: list[int]
    n_negative_mesh_modes: int


def thermal_properties(phonon: Phonopy, protocol: ReferenceProtocol) -> ThermalProperties:
    """S, F and C_V on the protocol's mesh; modes below 0 THz are left out of the sums."""
    mesh = protocol.mesh if isinstance(protocol.mesh, (int, float)) else list(protocol.mesh)
    phonon.run_mesh(mesh)
    freqs = np.asarray(phonon.mesh.frequencies)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # phonopy's GammaAcousticWarning: MDR keeps them
        phonon.run_thermal_properties(temperatures=list(protocol.temperatures_K))
    tp = phonon.thermal_properties
    return ThermalProperties(
        temperatures_K=[float(t) for t in tp.temperatures],
        entropy_J_per_K_mol=[float(x) for x in tp.entropy],
        free_energy_kJ_per_mol=[float(x) for x in tp.free_energy],
        heat_capacity_J_per_K_mol=[float(x) for x in tp.heat_capacity],
        mesh=[int(m) for m in phonon.mesh.mesh_numbers],
        n_negative_mesh_modes=int((freqs < 0.0).sum()),
    )


def phonon_summary(phonon: Phonopy, protocol: ReferenceProtocol) -> dict:
    """The physics part of a ``thermal.json``: stability, omega_max and thermal properties.

    ``phonon`` must hold force constants. NAC is switched off unless the protocol asks.
    """
    nac = phonon.nac_params
    if not protocol.use_nac:
        phonon.nac_params = None
    try:
        freqs = commensurate_frequencies_THz(phonon)
        stab = assess_stability(freqs, protocol)
        thermal = thermal_properties(phonon, protocol)
    finally:
        if nac is not None:
            phonon.nac_params = nac  # keep the Born charges with the data
    return {
        "omega_max_K": stab.omega_max_K,
        "min_frequency_THz": stab.min_frequency_THz,
        "n_imaginary": stab.n_imaginary,
        "dynamically_stable": stab.dynamically_stable,
        **asdict(thermal),
        "n_atoms_primitive": len(phonon.primitive),
        "n_atoms_supercell": len(phonon.supercell),
        "n_commensurate_qpoints": int(freqs.shape[0]),
        "units": {
            "thermal": "per mole of primitive cell",
            "omega_max_K": "K (THz x h/k_B)",
        },
    }


def thermal_json_record(material: str, kind: str, summary: dict[str, Any], protocol: Protocol, *,
                        synthetic: bool = False, identity: dict[str, Any] | None = None,
                        details: dict[str, Any] | None = None, has_fc3: bool = False) -> dict[str, Any]:
    """The content of a ``thermal.json``, the same layout for a reference and for a model.

    Keys, in order: ``material``, ``kind`` (``dft``, ``engine`` or ``model``), ``synthetic``,
    the ``identity`` entries (which engine or model made the forces), the
    :func:`phonon_summary` ``summary``, the ``details`` entries (source files, relaxation,
    scores), ``has_fc3`` and ``protocol.record()`` (settings, digest, package versions).
    """
    return {
        "material": material,
        "kind": kind,
        "synthetic": synthetic,
        **(identity or {}),
        **summary,
        **(details or {}),
        "has_fc3": has_fc3,
        **protocol.record(),
    }
