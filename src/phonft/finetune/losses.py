"""Loss terms: pure functions of model outputs and labels.

Each returns a scalar tensor. ``huber_delta=None`` gives the mean absolute error;
otherwise the mean Huber loss with that delta (in the quantity's own unit). The trainer
combines the terms with :class:`~phonft.finetune.settings.LossWeights`; replay steps use
the same functions with their own weights.
"""

from __future__ import annotations

import torch


def _mean_error(pred: torch.Tensor, ref: torch.Tensor, huber_delta: float | None,
                weights: torch.Tensor | None = None) -> torch.Tensor:
    if huber_delta is None:
        err = torch.abs(pred - ref)
    else:
        err = torch.nn.functional.huber_loss(pred, ref, reduction="none", delta=huber_delta)
    if weights is None:
        return err.mean()
    weights = weights.expand_as(err)
    return (err * weights).sum() / weights.sum().clamp_min(torch.finfo(err.dtype).tiny)


def energy_loss(energy_eV: torch.Tensor, ref_eV: torch.Tensor, n_atoms: torch.Tensor,
                huber_delta: float | None = None) -> torch.Tensor:
    """Per-atom energy error (eV/atom) over the structures of a batch."""
    n = n_atoms.to(energy_eV.dtype)
    return _mean_error(energy_eV / n, ref_eV / n, huber_delta)


def force_loss(forces_eV_A: torch.Tensor, ref_eV_A: torch.Tensor, huber_delta: float | None = None
               ) -> torch.Tensor:
    """Force error per Cartesian component (eV/Å), pooled over the batch's atoms."""
    return _mean_error(forces_eV_A, ref_eV_A, huber_delta)


def stress_loss(stress_eV_A3: torch.Tensor, ref_eV_A3: torch.Tensor, huber_delta: float | None = None
                ) -> torch.Tensor:
    """Stress error per tensor component (eV/Å³), over the batch's structures."""
    return _mean_error(stress_eV_A3, ref_eV_A3, huber_delta)


def hessian_column_loss(pred_cols: torch.Tensor, ref_cols: torch.Tensor, weights: torch.Tensor | None = None,
                        huber_delta: float | None = None) -> torch.Tensor:
    """Error of sampled Hessian columns (eV/Å²), pooled over every entry of the batch.

    ``pred_cols`` and ``ref_cols`` have shape (N_total, 3) per column (stacked columns
    are fine). ``weights`` (shape (N_total, 1) or broadcastable) selects or weights atoms,
    for the near-field variants; None is the paper's plain column MAE.
    """
    return _mean_error(pred_cols, ref_cols, huber_delta, weights)
