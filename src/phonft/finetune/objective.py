"""The PFT objective on one screen: the phonon loss of a batch, and the replay loss beside it.

The phonon objective of a batch of reference supercells, with ``w = settings.phonon_weights``::

    loss = w.hessian · L_H(predicted columns, DFT columns; atom weights)   eV/Å² entries
         + w.forces  · L_F(forces, labels)    if w.forces > 0             eV/Å components
         + w.stress  · L_S(stress, labels)    if w.stress > 0             eV/Å³ components

Each ``L`` is a mean absolute error, or a mean Huber loss with ``w.huber_delta``
(``w.energy_huber_delta`` for the replay and rattled energy terms;
:mod:`phonft.finetune.losses`). Its three switches are read in one place each:

* **column mode** (``settings.column``, :func:`predicted_columns`): ``hvp``, the exact
  Hessian column by one Hessian-vector product through the batched graph; ``fd``, the
  central difference of forces at ±``settings.fd_distance_A``, differentiable in the
  parameters (what phonopy evaluates). The mechanics live in :mod:`phonft.finetune.columns`.
* **normalisation** (``settings.hessian_norm``, :func:`atom_weights`): ``plain`` pools
  every entry of the sampled columns; ``near_field`` keeps the atoms within
  ``settings.near_field_radius_A`` of the displaced atom; ``distance`` weights every atom
  by ``exp(-d / near_field_radius_A)``. The logged ``hessian_mae`` is the MAE under the
  same weights, so it is the quantity the loss optimises (for ``plain``, the plain MAE).
* **column sampling** (``settings.column_sampling``, the ``draws`` of
  :func:`phonon_objective`): ``uniform`` pools the sampled columns' entries; ``symmetry``
  replaces the Hessian term by the orbit-averaged, multiplicity-weighted estimator of
  :mod:`phonft.finetune.symmetry` (same target, the full-Hessian loss).
* **E/F/S terms** (``settings.phonon_weights``, :func:`phonon_labels`): the reference
  supercell is the DFT equilibrium geometry, so its force and stress labels are zero.
  The references hold force constants, not total energies, so the phonon step has no
  energy term; :class:`~phonft.finetune.settings.TrainSettings` rejects
  ``phonon_weights.energy > 0``.

The replay objective (:func:`replay_objective`) is the same E/F/S terms (:func:`label_terms`)
on labelled structures, with the replay weights; the rattled objective
(:func:`phonft.finetune.rattled.rattled_objective`, ``objective: rattled`` or ``both``) is
them again on the augment frames, each term masked to the frames that carry its label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from phonft.finetune import losses
from phonft.finetune.columns import fd_columns, hvp_columns
from phonft.finetune.data import PhononSample, ReplaySample
from phonft.finetune.graphs import cache_for
from phonft.finetune.settings import LossWeights, TrainSettings
from phonft.finetune.symmetry import orbit_column_loss
from phonft.models.base import Batch, Model, Outputs


@dataclass
class ObjectiveValue:
    """A batch's weighted loss (differentiable) and its detached parts, in their units.

    ``parts`` holds ``loss`` and the MAE of every term present (``hessian_mae`` eV/Å²,
    ``energy_mae`` eV/atom, ``force_mae`` eV/Å, ``stress_mae`` eV/Å³); the phonon
    objective adds ``hessian_loss``, its unweighted Hessian term.
    """

    loss: torch.Tensor
    parts: dict[str, float]
    #: term (``hessian``, ``energy``, ``forces``, ``stress``) -> (its weighted loss, the
    #: number of entries its mean pools, or its weights' sum): what lets data-parallel
    #: ranks combine their shards into the loss of the union (:mod:`phonft.finetune.distributed`).
    terms: dict[str, tuple[torch.Tensor, float]] = field(default_factory=dict)


@dataclass
class Labels:
    """Reference labels of a batch, as tensors on the model; None where no term is fitted.

    ``energy_eV`` shape (B,); ``forces_eV_A`` (N_total, 3); ``stress_eV_A3`` (B, 3, 3).
    """

    energy_eV: torch.Tensor | None
    forces_eV_A: torch.Tensor | None
    stress_eV_A3: torch.Tensor | None


def _f(t: torch.Tensor) -> float:
    return float(t.detach())


def _tensor(x, model: Model) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=model.dtype, device=model.device)


# ------------------------------------------------------------------ switch 1: column mode


def predicted_columns(model: Model, samples: Sequence[PhononSample], columns: np.ndarray, settings: TrainSettings,
                      *, stress: bool, create_graph: bool = True) -> tuple[torch.Tensor, Batch, Outputs]:
    """Model columns (k, N_total, 3) eV/Å², and the undisplaced batch and its outputs.

    ``columns`` holds ``k`` column indices per structure, shape (B, k). With
    ``settings.graph_cache`` the structures' graphs come from :func:`~phonft.finetune.graphs.cache_for`.
    """
    structures = [s.atoms for s in samples]
    graphs = cache_for(model) if settings.graph_cache else None
    if settings.column == "fd":
        return fd_columns(model, structures, columns, settings.fd_distance_A, stress=stress,
                          create_graph=create_graph, graphs=graphs, reuse=settings.fd_graph_reuse)
    batch = model.prepare(structures) if graphs is None else graphs.prepare(model, structures)
    out = model.evaluate(batch, stress=stress, create_graph=True)
    return hvp_columns(model, batch, columns, out, create_graph=create_graph), batch, out


def reference_columns(samples: Sequence[PhononSample], columns: np.ndarray) -> np.ndarray:
    """DFT columns (k, N_total, 3) eV/Å², in the layout of :func:`predicted_columns`."""
    return np.stack([np.concatenate([s.column(c) for s, c in zip(samples, columns[:, slot])])
                     for slot in range(columns.shape[1])])


# ------------------------------------------------------------------ switch 2: normalisation


def atom_weights(distances_A: np.ndarray, j: int, mode: str, radius_A: float) -> np.ndarray:
    """Weight of each atom's entries in the column of displaced atom ``j``, shape (N, 1).

    ``plain``: all ones. ``near_field``: 1 within ``radius_A`` (Å) of atom ``j`` (minimum
    image), else 0. ``distance``: ``exp(-d / radius_A)``.
    """
    d = distances_A[j]
    if mode == "plain":
        w = np.ones_like(d)
    elif mode == "near_field":
        w = (d <= radius_A).astype(float)
    elif mode == "distance":
        w = np.exp(-d / radius_A)
    else:
        raise ValueError(f"unknown hessian_norm {mode!r}")
    return w[:, None]


def column_weights(samples: Sequence[PhononSample], columns: np.ndarray, settings: TrainSettings
                   ) -> np.ndarray | None:
    """Atom weights (k, N_total, 1) of the sampled columns; None for ``plain`` (all entries equal)."""
    if settings.hessian_norm == "plain":
        return None
    return np.stack([np.concatenate([atom_weights(s.distances_A, int(c) // 3, settings.hessian_norm,
                                                  settings.near_field_radius_A)
                                     for s, c in zip(samples, columns[:, slot])])
                     for slot in range(columns.shape[1])])


# ------------------------------------------------------------------ switch 3: E/F/S terms


def phonon_labels(samples: Sequence[PhononSample], w: LossWeights, model: Model) -> Labels:
    """The labels the phonon step fits: forces and stress when weighted, never an energy.

    The references carry no total energy (settings reject ``phonon_weights.energy > 0``).
    """
    forces = _tensor(np.concatenate([s.forces_eV_A for s in samples]), model) if w.forces > 0 else None
    stress = _tensor(np.stack([s.stress_eV_A3 for s in samples]), model) if w.stress > 0 else None
    return Labels(energy_eV=None, forces_eV_A=forces, stress_eV_A3=stress)


def replay_labels(samples: Sequence[ReplaySample], w: LossWeights, model: Model,
                  has_stress: bool | None = None) -> Labels:
    """Energies and forces always (they measure forgetting); stress when weighted and every
    frame has one (``has_stress``: decided by the caller, for a shard of a larger batch)."""
    if has_stress is None:
        has_stress = w.stress > 0 and all(s.stress_eV_A3 is not None for s in samples)
    return Labels(energy_eV=_tensor([s.energy_eV for s in samples], model),
                  forces_eV_A=_tensor(np.concatenate([s.forces_eV_A for s in samples]), model),
                  stress_eV_A3=_tensor(np.stack([s.stress_eV_A3 for s in samples]), model) if has_stress else None)


def label_terms(out: Outputs, labels: Labels, n_atoms: torch.Tensor, w: LossWeights
                ) -> tuple[dict[str, tuple[torch.Tensor, float]], dict[str, float]]:
    """The weighted E/F/S loss terms of the labels present (in that order), each with the
    number of entries its mean pools, and their MAEs."""
    terms: dict[str, tuple[torch.Tensor, float]] = {}
    parts: dict[str, float] = {}
    if labels.energy_eV is not None:
        n = n_atoms.to(out.energy.dtype)
        energy = losses.energy_loss(out.energy, labels.energy_eV, n_atoms, w.energy_huber_delta)
        terms["energy"] = (w.energy * energy, float(labels.energy_eV.numel()))
        parts["energy_mae"] = _f(torch.abs((out.energy - labels.energy_eV) / n).mean())
    if labels.forces_eV_A is not None:
        terms["forces"] = (w.forces * losses.force_loss(out.forces, labels.forces_eV_A, w.huber_delta),
                           float(labels.forces_eV_A.numel()))
        parts["force_mae"] = _f(torch.abs(out.forces - labels.forces_eV_A).mean())
    if labels.stress_eV_A3 is not None:
        terms["stress"] = (w.stress * losses.stress_loss(out.stress, labels.stress_eV_A3, w.huber_delta),
                           float(labels.stress_eV_A3.numel()))
        parts["stress_mae"] = _f(torch.abs(out.stress - labels.stress_eV_A3).mean())
    return terms, parts


# ------------------------------------------------------------------ the two objectives


def _orbit_loss(pred: torch.Tensor, ref: torch.Tensor, samples: Sequence[PhononSample], draws: np.ndarray,
                weights_np: np.ndarray | None, settings: TrainSettings) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The symmetry-sampled Hessian loss, its MAE, and its denominator ``Σ 9 Ā`` (the
    entries its mean pools), :func:`phonft.finetune.symmetry.orbit_column_loss`."""
    syms = [s.site_symmetry() for s in samples]
    n_atoms = [s.n_atoms for s in samples]
    mean_weight = None
    if weights_np is not None:  # Ā = (1/N) Σ_r m_r A_r, A_r the weight sum of representative r's column
        mean_weight = [float(sum(m * atom_weights(s.distances_A, int(r), settings.hessian_norm,
                                                  settings.near_field_radius_A).sum()
                                 for r, m in zip(sym.representatives, sym.multiplicities))) / s.n_atoms
                       for s, sym in zip(samples, syms)]
    args = (syms, draws, n_atoms, weights_np, mean_weight)
    hessian = orbit_column_loss(pred, ref, *args, huber_delta=settings.phonon_weights.huber_delta)
    mae = orbit_column_loss(pred.detach(), ref, *args)
    count = 9.0 * draws.shape[1] * float(sum(mean_weight if mean_weight is not None else n_atoms))
    return hessian, mae, count


def phonon_objective(model: Model, samples: Sequence[PhononSample], columns: np.ndarray, settings: TrainSettings,
                     create_graph: bool = True, draws: np.ndarray | None = None) -> ObjectiveValue:
    """PFT objective of one batch: sampled Hessian columns plus the force and stress terms.

    ``columns`` holds the column indices ``3 j + b`` drawn per structure, shape (B, k).
    ``draws`` (``column_sampling: symmetry``, :func:`phonft.finetune.symmetry.sample_atoms`):
    the orbits drawn, shape (B, k/3), whose 3 columns each ``columns`` holds; the Hessian
    term is then the orbit-averaged, multiplicity-weighted estimator of the full-Hessian loss.
    With ``create_graph`` the loss is differentiable in the parameters (training);
    without, it is only evaluated (validation).
    """
    w = settings.phonon_weights
    pred, batch, out = predicted_columns(model, samples, columns, settings, stress=w.stress > 0,
                                         create_graph=create_graph)
    ref = _tensor(reference_columns(samples, columns), model)
    weights_np = column_weights(samples, columns, settings)
    weights = None if weights_np is None else _tensor(weights_np, model)
    if draws is None:
        hessian = losses.hessian_column_loss(pred, ref, weights, w.huber_delta)
        mae = losses.hessian_column_loss(pred.detach(), ref, weights)
        count = _f(weights.expand_as(ref).sum()) if weights is not None else float(ref.numel())
    else:
        hessian, mae, count = _orbit_loss(pred, ref, samples, draws, weights_np, settings)
    parts = {"hessian_loss": _f(hessian), "hessian_mae": _f(mae)}
    terms, label_parts = label_terms(out, phonon_labels(samples, w, model), batch.n_atoms, w)
    total = sum((t for t, _ in terms.values()), start=w.hessian * hessian)
    return ObjectiveValue(total, {**parts, **label_parts, "loss": _f(total)},
                          {"hessian": (w.hessian * hessian, count), **terms})


def replay_objective(model: Model, samples: Sequence[ReplaySample], w: LossWeights, create_graph: bool = True,
                     has_stress: bool | None = None) -> ObjectiveValue:
    """Co-training objective on labelled upstream (or pseudo-labelled) structures: E/F/S terms.

    ``has_stress`` fits the stress term or not (default: when weighted and every frame has one).
    """
    labels = replay_labels(samples, w, model, has_stress)
    batch = model.prepare([s.atoms for s in samples])
    out = model.evaluate(batch, stress=labels.stress_eV_A3 is not None, create_graph=create_graph)
    terms, parts = label_terms(out, labels, batch.n_atoms, w)
    values = [t for t, _ in terms.values()]
    total = sum(values[1:], start=values[0])
    return ObjectiveValue(total, {**parts, "loss": _f(total)}, terms)
