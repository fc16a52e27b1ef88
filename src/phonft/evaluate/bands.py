"""Phonon band structures along the seekpath path: DFT against a model, MAE in THz.

The path is built once, from the reference's primitive cell (phonopy's seekpath
interface), and both force-constant sets are evaluated at the same reduced q-points, so a
model's relaxed lattice cannot change the path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class BandPath:
    """q-point segments in reduced coordinates of the primitive reciprocal lattice."""

    segments: list[np.ndarray]
    labels: list[str]
    connections: list[bool]


def seekpath_path(phonon, npoints: int = 51) -> BandPath:
    """The seekpath band path of ``phonon``'s primitive cell, ``npoints`` per segment."""
    from phonopy.phonon.band_structure import get_band_qpoints_by_seekpath

    segments, labels, connections = get_band_qpoints_by_seekpath(phonon.primitive, npoints,
                                                                 is_const_interval=False)
    return BandPath(segments=[np.asarray(s, dtype=np.float64) for s in segments], labels=list(labels),
                    connections=[bool(c) for c in connections])


def band_frequencies_THz(phonon, path: BandPath) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frequencies (THz, per segment (n_q, n_bands), sorted) and distances (1/Å) along ``path``."""
    phonon.run_band_structure(path.segments, path_connections=path.connections, labels=path.labels)
    bs = phonon.get_band_structure_dict()
    freqs = [np.sort(np.asarray(f, dtype=np.float64), axis=1) for f in bs["frequencies"]]
    dists = [np.asarray(d, dtype=np.float64) for d in bs["distances"]]
    return freqs, dists


def band_mae_THz(freqs_model: list[np.ndarray], freqs_ref: list[np.ndarray]) -> float:
    """Mean |f_model − f_ref| (THz) over every q-point and band of the path."""
    diff = np.concatenate([np.abs(a - b).ravel() for a, b in zip(freqs_model, freqs_ref, strict=True)])
    return float(diff.mean())


def band_record(phonon_model, phonon_ref, npoints: int = 51) -> dict[str, Any]:
    """``bands.json`` content: the path, DFT and model frequencies (THz) and their MAE."""
    path = seekpath_path(phonon_ref, npoints)
    f_ref, d_ref = band_frequencies_THz(phonon_ref, path)
    f_model, _ = band_frequencies_THz(phonon_model, path)
    return {
        "labels": path.labels,
        "connections": path.connections,
        "qpoints": [s.tolist() for s in path.segments],
        "distances_inv_A": [d.tolist() for d in d_ref],
        "frequencies_dft_THz": [f.tolist() for f in f_ref],
        "frequencies_model_THz": [f.tolist() for f in f_model],
        "band_mae_THz": band_mae_THz(f_model, f_ref),
        "units": {"frequencies": "THz", "distances": "1/Å (reference reciprocal lattice, 2π not included)"},
    }
