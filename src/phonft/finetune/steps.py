"""The phonon and replay objectives of one batch, built from :mod:`losses` and :mod:`columns`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from phonft.finetune import losses
from phonft.finetune.columns import atom_weights, fd_columns, hvp_columns
from phonft.finetune.data import PhononSample, ReplaySample
from phonft.finetune.settings import LossWeights, TrainSettings
from phonft.models.base import Model


@dataclass
class StepResult:
    """A batch's weighted loss (differentiable) and its detached parts (in their units)."""

    loss: torch.Tensor
    parts: dict[str, float]


def _f(t: torch.Tensor) -> float:
    return float(t.detach())


def _tensor(x, model: Model) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=model.dtype, device=model.device)


def phonon_columns(model: Model, samples: Sequence[PhononSample], cols: np.ndarray, settings: TrainSettings,
                   *, stress: bool, create_graph: bool = True):
    """Predicted columns (k, N_total, 3) and the undisplaced outputs, in the configured mode."""
    structures = [s.atoms for s in samples]
    if settings.column == "hvp":
        batch = model.prepare(structures)
        out = model.evaluate(batch, stress=stress, create_graph=True)
        return hvp_columns(model, batch, cols, out, create_graph=create_graph), batch, out
    return fd_columns(model, structures, cols, settings.fd_distance_A, stress=stress, create_graph=create_graph)


def reference_columns(samples: Sequence[PhononSample], cols: np.ndarray, settings: TrainSettings
                      ) -> tuple[np.ndarray, np.ndarray | None]:
    """DFT columns (k, N_total, 3) eV/Å² and atom weights (k, N_total, 1) or None (plain)."""
    pairs = [list(zip(samples, cols[:, slot])) for slot in range(cols.shape[1])]
    refs = np.stack([np.concatenate([s.column(c) for s, c in slot]) for slot in pairs])
    if settings.hessian_norm == "plain":
        return refs, None
    weights = np.stack([np.concatenate([atom_weights(s.distances_A, int(c) // 3, settings.hessian_norm,
                                                     settings.near_field_radius_A) for s, c in slot])
                        for slot in pairs])
    return refs, weights


def phonon_step(model: Model, samples: Sequence[PhononSample], cols: np.ndarray, settings: TrainSettings,
                create_graph: bool = True) -> StepResult:
    """PFT objective of one batch: Hessian columns plus energy/force/stress terms."""
    w: LossWeights = settings.phonon_weights
    pred, batch, out = phonon_columns(model, samples, cols, settings, stress=w.stress > 0,
                                      create_graph=create_graph)
    ref_np, weights_np = reference_columns(samples, cols, settings)
    ref = _tensor(ref_np, model)
    weights = None if weights_np is None else _tensor(weights_np, model)
    hess = losses.hessian_column_loss(pred, ref, weights, w.huber_delta)
    total = w.hessian * hess
    parts = {"hessian_loss": _f(hess), "hessian_mae": _f(torch.abs(pred - ref).mean())}
    if w.forces > 0:
        ref_f = _tensor(np.concatenate([s.forces_eV_A for s in samples]), model)
        f = losses.force_loss(out.forces, ref_f, w.huber_delta)
        total = total + w.forces * f
        parts["force_mae"] = _f(torch.abs(out.forces - ref_f).mean())
    if w.stress > 0:
        ref_s = _tensor(np.stack([s.stress_eV_A3 for s in samples]), model)
        s_loss = losses.stress_loss(out.stress, ref_s, w.huber_delta)
        total = total + w.stress * s_loss
        parts["stress_mae"] = _f(torch.abs(out.stress - ref_s).mean())
    if w.energy > 0 and all(s.energy_eV is not None for s in samples):
        ref_e = _tensor([s.energy_eV for s in samples], model)
        total = total + w.energy * losses.energy_loss(out.energy, ref_e, batch.n_atoms, w.huber_delta)
    parts["loss"] = _f(total)
    return StepResult(total, parts)


def replay_step(model: Model, samples: Sequence[ReplaySample], w: LossWeights, create_graph: bool = True
                ) -> StepResult:
    """Co-training objective on labelled upstream (or pseudo-labelled) structures."""
    batch = model.prepare([s.atoms for s in samples])
    has_stress = w.stress > 0 and all(s.stress_eV_A3 is not None for s in samples)
    out = model.evaluate(batch, stress=has_stress, create_graph=create_graph)
    ref_e = _tensor([s.energy_eV for s in samples], model)
    ref_f = _tensor(np.concatenate([s.forces_eV_A for s in samples]), model)
    n = batch.n_atoms.to(model.dtype)
    e = losses.energy_loss(out.energy, ref_e, batch.n_atoms, w.huber_delta)
    f = losses.force_loss(out.forces, ref_f, w.huber_delta)
    total = w.energy * e + w.forces * f
    parts = {"energy_mae": _f(torch.abs((out.energy - ref_e) / n).mean()),
             "force_mae": _f(torch.abs(out.forces - ref_f).mean())}
    if has_stress:
        ref_s = _tensor(np.stack([s.stress_eV_A3 for s in samples]), model)
        total = total + w.stress * losses.stress_loss(out.stress, ref_s, w.huber_delta)
        parts["stress_mae"] = _f(torch.abs(out.stress - ref_s).mean())
    parts["loss"] = _f(total)
    return StepResult(total, parts)
