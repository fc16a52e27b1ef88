"""Thermal-conductivity metrics of Matbench Discovery: SRD, SRE and SRME (pure functions).

Definitions (Póta, Ahlawat, Csányi, Simoncelli, arXiv:2408.00755; Matbench Discovery's
``phonondb-v1`` kappa task), for one material at one temperature:

- κ: the directionally averaged conductivity, (κ_xx + κ_yy + κ_zz)/3, in W/m/K;
- κ̃_q,s: the *per-mode* averaged conductivity of mode s at irreducible q-point q, as
  phono3py's ``mode_kappa``: it already carries the q-point weight, so that
  κ = Σ_q,s κ̃_q,s / N_q with N_q = Σ_q w_q the number of mesh points;
- SRD = 2 (κ_ML − κ_DFT) / (κ_ML + κ_DFT); SRE = |SRD|;
- SRME = 2 Σ_q,s |κ̃_ML − κ̃_DFT| / (N_q (κ_ML + κ_DFT)), with N_q from the model's weights.

Penalties and edge cases, as Matbench Discovery's later ``metrics/phonons.py`` applies
them (janosh/matbench-discovery 0519808; the arithmetic is unchanged from 023dca9):

- SRME = 2 (*censored*) for a material with imaginary modes, whose relaxation changed the
  space group, or without a valid model conductivity;
- a model conductivity is valid when it is one finite, non-negative value per
  temperature; per-mode values must be finite and the q-point weights finite,
  non-negative and of positive sum; anything else counts as a failure;
- SRD = −2 (SRE = 2) for an invalid model conductivity (0 predicted conductivity);
- SRD = 0 when both conductivities are 0; SRME = 0 then when the per-mode values agree
  too, else 2; an SRME outside [0, 2] is censored to 2;
- a reference conductivity that is NaN or negative is an error (``ValueError``).

The benchmark score is the mean over materials; ``failure_rate`` is the fraction of
censored materials and ``imaginary_mode_rate`` the fraction flagged for imaginary modes
(see :mod:`phonft.evaluate.kappa.scores`). :func:`spectrum_w1` is the Wasserstein-1
distance between the two phonon-frequency spectra that Matbench Discovery now reports.

Imaginary modes are decided by Matbench Discovery's rule on the q-mesh frequencies
(:func:`imaginary_modes`).

Everything here is float64 numpy, with no phono3py and no I/O, so that it can be checked
against Matbench Discovery's ``matbench_discovery.metrics.phonons`` on identical inputs
(``tests/test_evaluate_kappa.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

PENALTY = 2.0
"""SRME (and SRE) of a material that is penalised: the largest possible value."""

DEGENERATE_THRESHOLD_THZ = 1e-4
"""Two modes at one q-point closer than this (THz) are degenerate: their coherence
term is counted with the populations, as phono3py's Wigner RTA did (versions 2-3)."""


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return True
    return arr.size == 0 or bool(np.isnan(arr).any())


def kappa_average(kappa: ArrayLike | None) -> NDArray[np.float64]:
    """Directional average (κ_xx + κ_yy + κ_zz)/3 of Voigt-ordered conductivities.

    ``kappa`` has shape (..., 6) (xx, yy, zz, yz, xz, xy) in W/m/K; the result has shape
    (...). Any NaN (or ``None``) gives ``[nan]``, as Matbench Discovery's
    ``calculate_kappa_avg`` does.
    """
    if _is_missing(kappa):
        return np.array([np.nan])
    return np.asarray(kappa, dtype=np.float64)[..., :3].mean(axis=-1)


def mode_kappa_total(mode_kappa_p: ArrayLike, mode_kappa_c: ArrayLike, heat_capacity: ArrayLike
                     ) -> NDArray[np.float64]:
    """Per-mode total Wigner conductivity from the particle and coherence parts.

    Parameters
    ----------
    mode_kappa_p
        Particle (population) conductivity per mode, shape (T, q, s, 6), W/m/K (weighted).
    mode_kappa_c
        Coherence conductivity per mode pair, shape (T, q, s, s', 6), W/m/K (weighted).
    heat_capacity
        Mode heat capacities, shape (T, q, s) (any unit: only ratios enter).

    Each pair's coherence term is shared between its two modes by heat-capacity ratios,
    with the index order of k_SRME's ``calculate_mode_kappa_TOT`` and Matbench Discovery's
    ``calc_mode_kappa_tot`` (with which the kappa103 reference was made):
    κ_s' = κ^P_s' + Σ_s 2 C_s / (C_s + C_s') κ^C_ss' (terms where both C vanish are 0).
    For a symmetric κ^C the coherence total is conserved. Returns shape (T, q, s, 6).
    """
    p = np.asarray(mode_kappa_p, dtype=np.float64)
    c = np.asarray(mode_kappa_c, dtype=np.float64)
    cv = np.asarray(heat_capacity, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = 2.0 * cv[:, :, :, None] / (cv[:, :, :, None] + cv[:, :, None, :])  # [T, q, s, s']
        per_mode = (c * share[..., None]).sum(axis=2)  # summed over the first band index s
    per_mode[np.isnan(per_mode)] = 0.0
    return per_mode + p


def split_mode_kappa_matrix(
    matrix: ArrayLike,
    heat_capacity: ArrayLike,
    frequencies_THz: ArrayLike,
    *,
    cutoff_frequency_THz: float,
    degenerate_threshold_THz: float = DEGENERATE_THRESHOLD_THZ,
) -> dict[str, NDArray[np.float64]]:
    """Particle/coherence split of a Wigner band-pair conductivity matrix.

    phono3py ≥ 4.8 returns the SMM19 RTA conductivity as one band-pair matrix
    M[T, q, s, s', 6] (W/m/K, weighted, diagonal = the particle-like term). phono3py 2-3,
    with which the kappa103 DFT reference was computed, counted a pair (s ≠ s') as
    coherence only when both frequencies exceed ``cutoff_frequency_THz`` and they differ
    by more than ``degenerate_threshold_THz``; degenerate pairs went half to each mode's
    particle term, and pairs with a mode at or below the cutoff were left out. This
    function applies that convention, so that per-mode values are comparable with the
    reference.

    Parameters
    ----------
    matrix
        shape (T, q, s, s, 6), W/m/K.
    heat_capacity
        shape (T, q, s), eV/K.
    frequencies_THz
        shape (q, s), THz.

    Returns
    -------
    dict
        ``mode_kappa_p`` (T, q, s, 6), ``mode_kappa_c`` (T, q, s, s, 6) (zero diagonal and
        degenerate pairs), and ``mode_kappa_tot`` (T, q, s, 6) from
        :func:`mode_kappa_total`.
    """
    m = np.asarray(matrix, dtype=np.float64)
    f = np.asarray(frequencies_THz, dtype=np.float64)
    nb = f.shape[-1]
    active = f > cutoff_frequency_THz
    pair_ok = active[:, :, None] & active[:, None, :]  # (q, s, s')
    same = np.abs(f[:, :, None] - f[:, None, :]) < degenerate_threshold_THz
    off = ~np.eye(nb, dtype=bool)[None]
    populations = pair_ok & (same | ~off)
    coherences = pair_ok & ~same & off
    m_pop = np.where(populations[None, ..., None], m, 0.0)
    # a degenerate pair (s, s') adds half of M[s, s'] to s and half to s'
    mode_kappa_p = 0.5 * (m_pop.sum(axis=3) + m_pop.sum(axis=2))
    mode_kappa_c = np.where(coherences[None, ..., None], m, 0.0)
    return {"mode_kappa_p": mode_kappa_p, "mode_kappa_c": mode_kappa_c,
            "mode_kappa_tot": mode_kappa_total(mode_kappa_p, mode_kappa_c, heat_capacity)}


def finite_array(value: Any, *, nonnegative: bool = False) -> NDArray[np.float64] | None:
    """``value`` as a float64 array when it is non-empty and finite (and ``>= 0`` with
    ``nonnegative``), else ``None``."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if arr.size == 0 or not np.all(np.isfinite(arr)) or (nonnegative and np.any(arr < 0)):
        return None
    return arr


def _reference_kappa(kappa_true_avg: ArrayLike) -> NDArray[np.float64]:
    true = finite_array(kappa_true_avg, nonnegative=True)
    if true is None:
        raise ValueError(f"the reference kappa_tot_avg must be finite and non-negative, got {kappa_true_avg!r}")
    return np.atleast_1d(true)


def srd(kappa_pred_avg: ArrayLike | None, kappa_true_avg: ArrayLike) -> NDArray[np.float64]:
    """Symmetric relative difference 2 (κ_ML − κ_DFT)/(κ_ML + κ_DFT) per temperature.

    An invalid model conductivity (missing, NaN, infinite or negative) gives −2 (0
    predicted conductivity); both conductivities 0 give 0. An invalid reference raises
    ``ValueError``.
    """
    true = _reference_kappa(kappa_true_avg)
    pred = finite_array(kappa_pred_avg, nonnegative=True)
    if pred is None or np.atleast_1d(pred).shape != true.shape:
        return np.full(true.shape, -PENALTY)
    pred = np.atleast_1d(pred)
    denominator = pred + true
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator == 0, 0.0, PENALTY * (pred - true) / denominator)


def sre(kappa_pred_avg: ArrayLike | None, kappa_true_avg: ArrayLike) -> NDArray[np.float64]:
    """Symmetric relative error |SRD| per temperature (2 for an invalid prediction)."""
    return np.abs(srd(kappa_pred_avg, kappa_true_avg))


def srme(
    mode_kappa_pred_avg: ArrayLike | None,
    mode_kappa_true_avg: ArrayLike,
    weights_pred: ArrayLike | None,
    kappa_pred_avg: ArrayLike | None,
    kappa_true_avg: ArrayLike,
) -> NDArray[np.float64]:
    """Symmetric relative mean error per temperature, NaN where the prediction is invalid.

    Parameters
    ----------
    mode_kappa_pred_avg, mode_kappa_true_avg
        Averaged per-mode conductivities κ̃, shape (T, q, s), W/m/K (weighted), with the
        same q-point order.
    weights_pred
        q-point weights of the model's mesh, shape (q,); their sum is N_q.
    kappa_pred_avg, kappa_true_avg
        Averaged total conductivities, shape (T,), W/m/K.

    Returns NaN (which :func:`material_metrics` censors to 2) when the model's
    conductivity is missing, not finite or negative, its per-mode values are missing or not
    finite, its weights are invalid, or the shapes differ; 0 when both totals are 0 and the
    per-mode values agree (2 if they do not). An invalid reference raises ``ValueError``.
    """
    true_tot = _reference_kappa(kappa_true_avg)
    true = finite_array(mode_kappa_true_avg)
    if true is None:
        raise ValueError("the reference per-mode conductivities are missing or not finite")
    invalid = np.full(true_tot.shape, np.nan)
    pred = finite_array(mode_kappa_pred_avg)
    pred_tot = finite_array(kappa_pred_avg, nonnegative=True)
    weights = finite_array(weights_pred, nonnegative=True)
    if pred is None or pred_tot is None or weights is None or weights.sum() <= 0 \
            or np.atleast_1d(pred_tot).shape != true_tot.shape or pred.shape != true.shape:
        return invalid
    micro = np.atleast_1d(np.abs(pred - true).sum(axis=tuple(range(1, pred.ndim))) / weights.sum())
    denominator = np.atleast_1d(pred_tot) + true_tot
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(denominator == 0, np.where(micro == 0, 0.0, PENALTY), PENALTY * micro / denominator)
    return np.where(np.isfinite(scores) & (scores >= 0) & (scores <= PENALTY), scores, np.nan)


def _spectrum(frequencies_THz: ArrayLike | None, q_weights: ArrayLike | None
              ) -> tuple[NDArray[np.float64], NDArray[np.float64] | None] | None:
    freqs = finite_array(frequencies_THz)
    if freqs is None or freqs.ndim != 2:
        return None
    w = finite_array(q_weights, nonnegative=True)
    if w is None or w.sum() <= 0 or w.ravel().shape != (freqs.shape[0],):
        return freqs, None  # a full, uniformly weighted mesh
    return freqs, np.repeat(w.ravel(), freqs.shape[1])


def spectrum_w1(freqs_pred_THz: ArrayLike | None, weights_pred: ArrayLike | None,
                freqs_true_THz: ArrayLike | None, weights_true: ArrayLike | None) -> float | None:
    """Wasserstein-1 distance (THz) between two phonon-frequency spectra, or ``None``.

    Each spectrum is the set of frequencies (q, s) of a q-mesh, every mode weighted by its
    q-point's weight (irreducible mesh; uniform when the weights do not match the q axis),
    i.e. W1 = ∫ |F_ML(ω) − F_DFT(ω)| dω of the two cumulative mode distributions, as
    Matbench Discovery's ``phonon_spectrum_w1``. ``None`` when either spectrum is missing
    or not finite.
    """
    from scipy.stats import wasserstein_distance

    pred, true = _spectrum(freqs_pred_THz, weights_pred), _spectrum(freqs_true_THz, weights_true)
    if pred is None or true is None:
        return None
    return float(wasserstein_distance(pred[0].ravel(), true[0].ravel(), pred[1], true[1]))


def _flag(value: Any) -> bool:
    """A flag that may be missing or NaN (a JSON/pandas gap counts as not flagged)."""
    return value is not None and not (isinstance(value, float) and np.isnan(value)) and bool(value)


def penalty_reason(pred: Mapping[str, Any], true: Mapping[str, Any] | None = None) -> str | None:
    """Why a model record scores SRME 2 before any arithmetic, or ``None``.

    ``"imaginary_modes"``, ``"broken_symmetry"`` (relaxed space group differs from the
    initial one; when the initial one is unknown, from the reference's
    ``spacegroup_initial``), ``"failed"`` (an error, or no valid conductivity, per-mode
    values or weights: see :func:`srd` and :func:`srme`).
    """
    if _flag(pred.get("has_imaginary_modes")):
        return "imaginary_modes"
    final = pred.get("spacegroup_final")
    if final:
        initial = pred.get("spacegroup_initial") or (true or {}).get("spacegroup_initial")
        if initial and final != initial:
            return "broken_symmetry"
    if pred.get("failed") or finite_array(pred.get("kappa_tot_avg_W_mK"), nonnegative=True) is None \
            or finite_array(pred.get("mode_kappa_tot_avg_W_mK")) is None \
            or finite_array(pred.get("mode_weights"), nonnegative=True) is None:
        return "failed"
    return None


def imaginary_modes(frequencies_THz: np.ndarray, gamma_acoustic_threshold_THz: float = -0.01) -> bool:
    """Matbench Discovery's imaginary-mode rule on a q-mesh whose first point is Γ.

    ``frequencies_THz`` has shape (n_q, n_bands). True when all are NaN, an optical mode at
    Γ is negative, an acoustic mode at Γ is below the threshold, or any mode elsewhere is
    negative.
    """
    f = np.asarray(frequencies_THz, dtype=np.float64)
    if np.all(np.isnan(f)):
        return True
    return bool(np.any(f[0, 3:] < 0) or np.any(f[0, :3] < gamma_acoustic_threshold_THz) or np.any(f[1:] < 0))


def align_qpoints(pred_qpoints: ArrayLike, true_qpoints: ArrayLike, atol: float = 1e-6) -> NDArray[np.int64]:
    """Index array ``idx`` with ``pred_qpoints[idx]`` ≡ ``true_qpoints`` (modulo reciprocal
    lattice vectors, reduced coordinates). Raises ``ValueError`` when the two irreducible
    sets differ (another mesh or another symmetry reduction).
    """
    p = np.asarray(pred_qpoints, dtype=np.float64)
    t = np.asarray(true_qpoints, dtype=np.float64)
    if p.shape != t.shape:
        raise ValueError(f"{len(p)} model q-points, {len(t)} reference q-points")
    diff = t[:, None, :] - p[None, :, :]
    same = np.all(np.abs(diff - np.rint(diff)) < atol, axis=-1)  # (true, pred)
    if not np.all(same.sum(axis=1) == 1):
        raise ValueError("the model's irreducible q-points are not those of the reference")
    return np.argmax(same, axis=1)


def material_metrics(pred: Mapping[str, Any], true: Mapping[str, Any]) -> dict[str, Any]:
    """SRD, SRE and SRME of one material at the first temperature, with penalties.

    ``pred`` and ``true`` are kappa records (see :mod:`phonft.evaluate.kappa`) with keys
    ``kappa_tot_avg_W_mK`` (T,), ``mode_kappa_tot_avg_W_mK`` (T, q, s), ``mode_weights``
    (q,), optionally ``qpoints`` (q, 3) and the flags ``has_imaginary_modes``,
    ``spacegroup_initial``, ``spacegroup_final``, ``failed``. When both carry q-points in a
    different order, the model's modes are reordered to the reference's first.

    Returns ``{"srd", "sre", "srme", "penalty"}`` (floats; ``penalty`` is the reason the
    SRME was censored to 2, or ``None``).
    """
    kp = None if pred.get("failed") else pred.get("kappa_tot_avg_W_mK")
    d = float(srd(kp, true["kappa_tot_avg_W_mK"])[0])
    reason = penalty_reason(pred, true)
    if reason is not None:
        return {"srd": d, "sre": abs(d), "srme": PENALTY, "penalty": reason}
    mode_pred = np.asarray(pred["mode_kappa_tot_avg_W_mK"], dtype=np.float64)
    if pred.get("qpoints") is not None and true.get("qpoints") is not None:
        idx = align_qpoints(pred["qpoints"], true["qpoints"])
        mode_pred = mode_pred[:, idx]
    value = float(srme(mode_pred, true["mode_kappa_tot_avg_W_mK"], pred["mode_weights"],
                       pred["kappa_tot_avg_W_mK"], true["kappa_tot_avg_W_mK"])[0])
    if not np.isfinite(value):  # censored: an invalid prediction
        return {"srd": d, "sre": abs(d), "srme": PENALTY, "penalty": "failed"}
    return {"srd": d, "sre": abs(d), "srme": value, "penalty": None}
