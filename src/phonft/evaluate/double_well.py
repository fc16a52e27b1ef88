"""Energy along the most unstable phonon mode: the model's double well against the DFT
harmonic model.

For a dynamically unstable reference (CaTiO3's octahedral tilts), the mode with the most
negative eigenvalue of the DFT dynamical matrix at the supercell-commensurate q-points is
frozen into the supercell with normal-coordinate amplitude Q (amu^½·Å):
``u_i = Q w_i / sqrt(m_i)`` with the mass-weighted pattern ``w`` of unit norm. The DFT
harmonic energy is ``½ uᵀ Φ u = ½ λ Q²`` (λ < 0: an inverted parabola); the model energy
``E(u) − E(0)`` on the model's own relaxed cell bends back up, and the depth of its well
is ``−min_Q (E(Q) − E(0))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from phonft.phonons import commensurate_qpoints

VASP_TO_THZ = 15.633302
"""phonopy's factor: f (THz) = VASP_TO_THZ · sqrt(λ in eV/Å²/amu)."""


@dataclass(frozen=True)
class UnstableMode:
    """The most unstable commensurate mode of a reference."""

    qpoint: np.ndarray  # reduced coordinates of the primitive reciprocal lattice
    band_index: int
    frequency_THz: float  # negative: imaginary
    eigenvalue_eV_A2_amu: float  # λ, negative
    pattern: np.ndarray  # (n_supercell, 3) mass-weighted, unit norm, real


def most_unstable_mode(phonon) -> UnstableMode:
    """The commensurate mode with the lowest eigenvalue, as a real supercell pattern."""
    qpoints = commensurate_qpoints(phonon)
    phonon.run_qpoints(qpoints, with_eigenvectors=True)
    d = phonon.get_qpoints_dict()
    freqs = np.asarray(d["frequencies"], dtype=np.float64)
    iq, band = np.unravel_index(np.argmin(freqs), freqs.shape)
    q = qpoints[iq]
    evec = np.asarray(d["eigenvectors"][iq][:, band]).reshape(-1, 3)
    pattern = _supercell_pattern(phonon, q, evec)
    f = float(freqs[iq, band])
    return UnstableMode(qpoint=q, band_index=int(band), frequency_THz=f,
                        eigenvalue_eV_A2_amu=float(np.sign(f) * (f / VASP_TO_THZ) ** 2), pattern=pattern)


def _supercell_pattern(phonon, q: np.ndarray, evec: np.ndarray) -> np.ndarray:
    """Real mass-weighted supercell pattern of eigenvector ``evec`` at ``q``, unit norm.

    phonopy's dynamical matrix carries the phase of atomic positions, so the supercell
    displacement of atom s (primitive atom p) is ``Re[c e_p exp(2πi q·x_s)]/sqrt(m_p)``
    with ``x_s`` in reduced coordinates of the primitive cell. The global phase ``c`` makes
    the real part as large as possible: ``|Re(c w)|² = (|w|² + Re(c² Σ w²))/2`` peaks at
    ``c = exp(-i arg(Σ w²)/2)``.
    """
    sc, prim = phonon.supercell, phonon.primitive
    s2p = np.asarray(prim.s2p_map)
    p2p = {int(k): int(v) for k, v in prim.p2p_map.items()}
    x = sc.positions @ np.linalg.inv(prim.cell)
    wave = evec[[p2p[int(p)] for p in s2p]] * np.exp(2j * np.pi * (x @ q))[:, None]
    pattern = (np.exp(-0.5j * np.angle(np.sum(wave * wave))) * wave).real
    return pattern / np.linalg.norm(pattern)


def displacements_A(phonon, mode: UnstableMode, q_amp: float) -> np.ndarray:
    """Cartesian displacements (Å) of amplitude ``q_amp`` (amu^½·Å) along ``mode``."""
    masses = np.asarray(phonon.supercell.masses, dtype=np.float64)
    return q_amp * mode.pattern / np.sqrt(masses)[:, None]


def harmonic_energy_eV(fc: np.ndarray, u: np.ndarray) -> float:
    """½ uᵀ Φ u (eV) for full supercell force constants ``fc`` (N, N, 3, 3) eV/Å²."""
    return 0.5 * float(np.einsum("ia,ijab,jb->", u, fc, u))


def double_well_record(model, phonon_ref, phonon_model, amplitudes: np.ndarray) -> dict[str, Any]:
    """Energies along the DFT's most unstable mode: DFT harmonic and the model (eV per
    primitive cell), with the model's well depth and the amplitude of its minimum.

    ``phonon_model`` is the model's phonopy object on its relaxed cell, with the same
    supercell and primitive matrices as ``phonon_ref`` (so atoms are in the same order).
    """
    from phonft.atoms import to_ase

    mode = most_unstable_mode(phonon_ref)
    n_cells = len(phonon_ref.supercell) / len(phonon_ref.primitive)
    fc = np.asarray(phonon_ref.force_constants, dtype=np.float64)
    e_dft = [harmonic_energy_eV(fc, displacements_A(phonon_ref, mode, a)) / n_cells for a in amplitudes]
    base = to_ase(phonon_model.supercell)
    cells = []
    for a in amplitudes:
        cell = base.copy()
        cell.positions = cell.positions + displacements_A(phonon_model, mode, a)
        cells.append(cell)
    energies = np.array([float(r["energy"]) for r in model.predict([base, *cells], batch_size=4)])
    e_model = (energies[1:] - energies[0]) / n_cells
    i_min = int(np.argmin(e_model))
    return {
        "qpoint": mode.qpoint.tolist(),
        "band_index": mode.band_index,
        "dft_frequency_THz": mode.frequency_THz,
        "dft_eigenvalue_eV_A2_amu": mode.eigenvalue_eV_A2_amu,
        "amplitudes_amu_half_A": [float(a) for a in amplitudes],
        "max_displacement_A": [float(np.linalg.norm(displacements_A(phonon_ref, mode, a), axis=1).max())
                               for a in amplitudes],
        "energy_dft_harmonic_eV_per_cell": e_dft,
        "energy_model_eV_per_cell": e_model.tolist(),
        "model_well_depth_meV_per_cell": float(-min(e_model.min(), 0.0) * 1000.0),
        "model_minimum_amplitude_amu_half_A": float(abs(amplitudes[i_min])) if e_model.min() < 0 else 0.0,
        "units": {"energy": "eV per primitive cell", "amplitude": "normal coordinate Q, amu^1/2 Å"},
    }
