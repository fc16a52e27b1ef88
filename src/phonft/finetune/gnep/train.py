"""GNEP: a NEP trained by minibatch Adam/AdamW on the exact gradient of its E/F/V loss.

Each epoch shuffles the training frames (``numpy.random.default_rng(seed)``), steps once
per minibatch of ``batch_size`` frames on the loss of :mod:`phonft.finetune.gnep.data`
(forces by autograd, the parameter gradient through them by double backward), and then
evaluates the RMSEs of the whole training (and validation) set. The learning rate decays
per step from ``lr`` to ``lr_final`` over all the steps of ``epochs`` epochs.

With a ``checkpoint`` path, the module, optimiser, scheduler, shuffle generator, history
and elapsed time are saved atomically after every epoch, and a run that finds the file
resumes from it: an interrupted run ends bitwise equal to an uninterrupted one.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Callable, Sequence

import numpy as np
import torch

from phonft.finetune.gnep.data import FrameSet, dataset_rmse, squared_errors, weighted_rmse
from phonft.finetune.gnep.frames import LabelledFrame
from phonft.finetune.gnep.history import Clock, GNEPHistory, load_checkpoint, save_checkpoint
from phonft.finetune.gnep.settings import GNEPSettings


def lr_factor(settings: GNEPSettings, total_steps: int):
    """Multiplier of ``lr`` at step t (0-based): ``lr_final / lr`` at the last step."""
    ratio = settings.lr_final / settings.lr
    span = max(total_steps - 1, 1)

    def factor(step: int) -> float:
        x = min(step, span) / span
        if settings.schedule == "cosine":
            return ratio + (1.0 - ratio) * 0.5 * (1.0 + math.cos(math.pi * x))
        return ratio ** x

    return factor


def make_optimizer(params: list[torch.nn.Parameter], settings: GNEPSettings) -> torch.optim.Optimizer:
    kind = torch.optim.AdamW if settings.optimizer == "adamw" else torch.optim.Adam
    return kind(params, lr=settings.lr, weight_decay=settings.weight_decay)


def metrics_row(model, train: FrameSet, validation: FrameSet | None, weights, batch_size: int) -> dict:
    """Training-set (and ``val_``-prefixed validation) RMSEs and the weighted loss."""
    row = dataset_rmse(model, train, batch_size)
    row["loss"] = sum(w * row[k] / 1000.0 for w, k in ((weights.energy, "energy_rmse_meV_atom"),
                                                        (weights.forces, "force_rmse_meV_A"),
                                                        (weights.virial, "virial_rmse_meV_atom"))
                      if w > 0 and not math.isnan(row[k]))
    if validation is not None:
        row.update({f"val_{k}": v for k, v in dataset_rmse(model, validation, batch_size).items()})
    return row


def _epoch(model, data: FrameSet, order: np.ndarray, settings: GNEPSettings, optimizer, scheduler) -> int:
    """One pass over ``order`` in minibatches; returns the structures evaluated."""
    virial = settings.weights.virial > 0
    evaluated = 0
    for start in range(0, len(order), settings.batch_size):
        batch, labels = data.batch(order[start:start + settings.batch_size])
        optimizer.zero_grad(set_to_none=True)
        loss = weighted_rmse(squared_errors(model, batch, labels, virial=virial, create_graph=True),
                             settings.weights)
        if loss is not None:
            loss.backward()
            optimizer.step()
        scheduler.step()
        evaluated += batch.n_structures
    return evaluated


def _progress(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="gnep", unit="epoch", disable=not enabled, file=sys.stderr,
                mininterval=2.0)


def _restore(checkpoint, model, optimizer, scheduler) -> dict | None:
    state = load_checkpoint(checkpoint, model) if checkpoint else None
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    return state


def train_gnep(model, frames: Sequence[LabelledFrame], settings: GNEPSettings, *,
               validation: Sequence[LabelledFrame] | None = None, progress: bool = True,
               checkpoint: str | os.PathLike | None = None,
               stop: Callable[[dict], bool] | None = None) -> GNEPHistory:
    """Train ``model`` (an initialised :class:`~phonft.models.nep.backend.NEPModel`) in place.

    ``stop`` (optional) sees each epoch's history row; True ends training there
    (``history.stopped = "stop"``), as ``max_seconds`` does (``"max_seconds"``).
    """
    data = FrameSet.build(model, frames)
    val = FrameSet.build(model, validation) if validation else None
    params = [p for p in model.module.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, settings)
    steps = settings.epochs * math.ceil(len(data) / settings.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(settings, steps))
    rng = np.random.default_rng(settings.seed)
    history = GNEPHistory("gnep", settings.as_dict())
    state = _restore(checkpoint, model, optimizer, scheduler)
    if state is not None:
        rng.bit_generator.state = state["rng"]
        history = GNEPHistory(**state["history"])
        history.resumed_from = history.last["epoch"]
    clock = Clock(history.last["wall_s"] if history.rows else 0.0)
    if not history.rows:
        history.rows.append({"epoch": 0, "structure_evaluations": 0, "wall_s": 0.0, "lr": settings.lr,
                             **metrics_row(model, data, val, settings.weights, settings.batch_size)})
    with _progress(settings.epochs, history.last["epoch"], progress) as bar:
        for epoch in range(history.last["epoch"] + 1, settings.epochs + 1):
            lr = optimizer.param_groups[0]["lr"]
            evaluated = _epoch(model, data, rng.permutation(len(data)), settings, optimizer, scheduler)
            row = metrics_row(model, data, val, settings.weights, settings.batch_size)
            history.rows.append({"epoch": epoch, "structure_evaluations": history.last["structure_evaluations"]
                                 + evaluated, "wall_s": clock(), "lr": lr, **row})
            bar.update(1)
            bar.set_postfix(E=f"{row['energy_rmse_meV_atom']:.3g}", F=f"{row['force_rmse_meV_A']:.3g}")
            out_of_time = settings.max_seconds is not None and clock() >= settings.max_seconds
            if out_of_time or (stop is not None and stop(history.last)):
                history.stopped = "max_seconds" if out_of_time else "stop"
                out_of_time = True
            if checkpoint:
                save_checkpoint(checkpoint, model, {"optimizer": optimizer.state_dict(),
                                                    "scheduler": scheduler.state_dict(),
                                                    "rng": rng.bit_generator.state, "history": history.as_dict()})
            if out_of_time:
                break
    return history
