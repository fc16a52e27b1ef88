"""The training loop: phonon and/or rattled steps, replay co-training, EMA, model selection, resume.

Per epoch, the training set is shuffled and packed into node-budget batches; for each
batch the trainer takes one step of the run's objective (``pft``: sampled Hessian columns
plus force and stress terms, :func:`~phonft.finetune.objective.phonon_objective`;
``rattled``: the E/F/S loss on rattled frames, :mod:`phonft.finetune.rattled`; ``both``:
the sum), then ``replay_steps`` replay steps
(:func:`~phonft.finetune.objective.replay_objective`); the steps live in
:mod:`phonft.finetune.steps`. Every random choice of an epoch is drawn from generators
seeded by ``[seed, epoch]``, so a run resumed from an epoch checkpoint takes exactly the
steps an uninterrupted one would.

The trainer runs with TorchScript's graph optimiser off (:func:`reproducible`): MACE's
e3nn layers are TorchScript, and the optimised graphs the JIT swaps in after a function's
first calls round differently, so a resumed process, whose JIT starts cold mid-run, would
drift from an uninterrupted one (float32: 4e-9 in the weights after 5 epochs of a small
MACE, more over longer runs). With it off, a resumed run's weights are bitwise those of
an uninterrupted run, in float32 as in float64, given the same device and thread count
and a process that ran no TorchScript model with the optimiser on before training (an
optimised graph, once made, is kept for the process): ``phonft finetune train`` is such
a process.

After every epoch the EMA weights are scored on the validation structures (``val_columns``
fixed columns each, under every objective; without validation materials, the training
structures' held-back columns, :mod:`phonft.finetune.runlength`) and on the held-back
replay frames; the best EMA weights by phonon validation loss among the epochs within the
forgetting budget (``max_drift``) are kept, the lr schedule and early stopping follow, and
a checkpoint (schedule state included) is written atomically.

Under ``torchrun`` (``dist``, :mod:`phonft.finetune.distributed`) each rank fits its shard
of every batch and the gradients are summed so that a step is the single-process step on
the whole batch; every rank validates on the full sets (with equal weights, equal
results), and only rank 0 writes the checkpoint and shows progress.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from phonft.errors import ConfigError
from phonft.finetune.checkpoint import load_checkpoint
from phonft.finetune.data import PhononSample, ReplaySample, pack_batches
from phonft.finetune.distributed import SINGLE, DistContext, broadcast_weights
from phonft.finetune.objective import phonon_objective, replay_objective
from phonft.finetune.rattled import RATTLED_PARTS, RattledSample
from phonft.finetune.runlength import HeldColumns, LRSchedule, should_stop, validation_columns
from phonft.finetune.settings import TrainSettings
from phonft.finetune.steps import Steps
from phonft.finetune.strategies import apply_strategy
from phonft.io import atomic_torch_save, atomic_write_text
from phonft.models.base import Model

log = logging.getLogger(__name__)

#: Columns of metrics.csv. ``train_hessian_mae`` and ``val_hessian_mae`` are the sampled
#: columns' MAE (eV/Å²) under ``hessian_norm``'s atom weights: the quantity the phonon loss
#: optimises (:mod:`phonft.finetune.objective`); for ``plain``, the plain MAE.
METRIC_COLUMNS = ("epoch", "steps", "train_loss", "train_hessian_mae", "train_force_mae",
                  "val_loss", "val_hessian_mae", "replay_energy_mae", "replay_force_mae",
                  "replay_stress_mae", "drift_energy_mae", "drift_force_mae", "drift_stress_mae", "lr", "seconds")
#: Columns metrics.csv adds when the rattled objective ran (``rattled``, ``both``): the
#: training steps' mean rattled MAEs (eV/atom over frames with energies, eV/Å, eV/Å³).
RATTLED_COLUMNS = tuple(f"train_{part}" for part in RATTLED_PARTS.values())
#: Forgetting metrics: error against the replay labels and drift from the base model's own
#: predictions, on the validation frames (eV/atom, eV/Å, eV/Å³).
FORGETTING_KEYS = ("replay_energy_mae", "replay_force_mae", "replay_stress_mae",
                   "drift_energy_mae", "drift_force_mae", "drift_stress_mae")


class EMA:
    """Exponential moving average of the trainable weights.

    Uses the warm-up ``min(decay, (1 + t) / (10 + t))`` of ``torch_ema`` (which MACE uses),
    so short runs are not dominated by the initial weights.
    """

    def __init__(self, params: Sequence[torch.nn.Parameter], decay: float):
        self.params = list(params)
        self.decay = decay
        self.updates = 0
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for s, p in zip(self.shadow, self.params):
            s.mul_(d).add_(p.detach(), alpha=1 - d)

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange live and EMA weights (call twice to restore)."""
        for s, p in zip(self.shadow, self.params):
            tmp = p.detach().clone()
            p.copy_(s)
            s.copy_(tmp)

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "shadow": [s.clone() for s in self.shadow]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = state["updates"]
        for s, v in zip(self.shadow, state["shadow"]):
            s.copy_(v)


@dataclass
class TrainResult:
    best_epoch: int
    best_val_loss: float
    metrics: list[dict[str, float]]
    resumed_from: int | None
    state: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)
    #: Early stopping: ``{"epoch", "reason"}`` when the run stopped before ``epochs``, else None.
    stopped: dict[str, Any] | None = None


def reproducible() -> contextlib.AbstractContextManager:
    """Run TorchScript modules unoptimised, so each call rounds the same way (see the module docstring)."""
    return torch.jit.optimized_execution(False)


def _mean(rows: list[dict[str, float]], key: str) -> float:
    vals = [r[key] for r in rows if key in r]
    return float(np.mean(vals)) if vals else float("nan")


class Trainer(Steps):
    """Fine-tunes ``model`` on phonon samples and/or rattled frames with replay co-training.

    ``rattled_train``: the training materials' rattled frames (``objective`` ``rattled``
    or ``both``). ``checkpoint`` is written after every epoch and holds ``key`` (default: the settings'
    digest; :mod:`phonft.finetune.checkpoint` keys it by every input); a resumed
    checkpoint must hold the same key. ``dist``: this process's data-parallel rank.
    """

    def __init__(self, model: Model, settings: TrainSettings, train: Sequence[PhononSample],
                 val: Sequence[PhononSample], replay_train: Sequence[ReplaySample] = (),
                 replay_val: Sequence[ReplaySample] = (), checkpoint: str | Path | None = None,
                 dft_labels: bool = False, key: str | None = None, dist: DistContext = SINGLE,
                 rattled_train: Sequence[RattledSample] = ()):
        if not train:
            raise ConfigError("the training split holds no phonon structures")
        if settings.objective != "pft" and not rattled_train:
            raise ConfigError(f"objective is {settings.objective} but no rattled frames were given. Fix: pass "
                              "--augment <the augment root, results/augment>, or set objective: pft.")
        self.model, self.settings = model, settings
        self.train_set, self.val_set, self.rattled_train = list(train), list(val), list(rattled_train)
        self.replay_train, self.replay_val = list(replay_train), list(replay_val)
        if settings.replay_steps and not self.replay_train:
            raise ConfigError("replay_steps > 0 but the replay set is empty. Fix: give upstream data, "
                              "build the pseudo-label set, or set replay_steps: 0.")
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.key = key or settings.digest()
        self.dft_labels = dft_labels  # replay labels are DFT (upstream), not the base model's
        self.dist = dist
        if dist.active:
            broadcast_weights(model.module)
        with reproducible():
            self.replay_val_base = base_predictions(model, self.replay_val, settings.replay_batch_atoms)
        self.params = apply_strategy(model, settings)
        self.optimizer = torch.optim.AdamW(self.params, lr=settings.lr, weight_decay=settings.weight_decay)
        self.ema = EMA(self.params, settings.ema_decay)
        self.held, self.val_cols = self._validation_columns()
        self.schedule = LRSchedule(self.optimizer, settings, len(self.epoch_plan(1)[1]))

    def _validation_columns(self) -> tuple[HeldColumns | None, np.ndarray | None]:
        """The held-back training columns and the validation columns
        (:func:`~phonft.finetune.runlength.validation_columns`); sets :attr:`validation_source`
        and, for held-back columns, makes the training structures the validation set."""
        held, cols, self.validation_source = validation_columns(self.settings, self.train_set, self.val_set)
        if held is not None:
            self.val_set = list(self.train_set)
        return held, cols

    # ------------------------------------------------------------------ evaluation
    def validate(self) -> dict[str, float]:
        """Phonon validation loss (fixed columns) and replay MAEs of the current weights."""
        out: dict[str, float] = {}
        if self.val_set:
            rows = []
            sizes = [s.n_atoms for s in self.val_set]
            for idx in pack_batches(sizes, self.settings.batch_atoms, range(len(sizes))):
                res = phonon_objective(self.model, [self.val_set[i] for i in idx], self.val_cols[idx], self.settings,
                                       create_graph=False)
                rows.append({**res.parts, "n": len(idx)})
            n = sum(r["n"] for r in rows)
            out["val_loss"] = sum(r["loss"] * r["n"] for r in rows) / n
            out["val_hessian_mae"] = sum(r["hessian_mae"] * r["n"] for r in rows) / n
        with self.model.replay_head():  # forgetting is measured through the original head
            for prefix, frames in (("replay", self.replay_val), ("drift", self.replay_val_base)):
                out.update(self._frame_errors(prefix, frames))
        return out

    def _frame_errors(self, prefix: str, frames: Sequence[ReplaySample]) -> dict[str, float]:
        """Energy/force/stress MAE of the current weights on labelled frames, atom-weighted."""
        if not frames:
            return {}
        sizes = [s.n_atoms for s in frames]
        rows = []
        for idx in pack_batches(sizes, self.settings.replay_batch_atoms, range(len(sizes))):
            res = replay_objective(self.model, [frames[i] for i in idx], self.settings.replay_weights,
                                   create_graph=False)
            rows.append({**res.parts, "n": len(idx), "atoms": sum(sizes[i] for i in idx)})
        weight = {"energy_mae": "n", "force_mae": "atoms", "stress_mae": "n"}
        return {f"{prefix}_{key}": sum(r[key] * r[w] for r in rows) / sum(r[w] for r in rows)
                for key, w in weight.items() if all(key in r for r in rows)}

    def validate_ema(self) -> dict[str, float]:
        self.ema.swap()
        try:
            return self.validate()
        finally:
            self.ema.swap()

    # ------------------------------------------------------------------ checkpoints
    def _state(self, epoch: int, best: dict[str, Any], metrics: list[dict[str, float]],
               stopped: dict[str, Any] | None) -> dict[str, Any]:
        state = {"key": self.key, "epoch": epoch, "model": self.model.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "ema": self.ema.state_dict(), "best": best,
                 "metrics": metrics, "world_size": self.dist.world_size}
        if self.schedule.scheduler is not None:
            state["schedule"] = self.schedule.state_dict()
        if stopped is not None:
            state["stopped"] = stopped
        return state

    def _load(self, state: dict[str, Any]) -> None:
        if state["key"] != self.key:
            raise ConfigError(f"{self.checkpoint}: checkpoint was written for other settings or inputs "
                              f"(key {state['key']} != {self.key}). Fix: delete it to start afresh, or "
                              "resume with the settings and inputs that wrote it.")
        if state.get("world_size", 1) != self.dist.world_size:
            log.info("%s was written by %d rank(s), resumed on %d: the steps are the same (a step's shards "
                     "together are the single-process batch)", self.checkpoint, state.get("world_size", 1),
                     self.dist.world_size)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.ema.load_state_dict(state["ema"])
        self.schedule.load_state_dict(state.get("schedule") or {})

    # ------------------------------------------------------------------ loop
    def fit(self, resume: bool = False, stop_after: int | None = None) -> TrainResult:
        """Train for ``settings.epochs``; with ``resume``, continue from the checkpoint.

        A finished checkpoint trains nothing: its result is returned as it was.
        ``stop_after`` ends the run after that many epochs of this call (a stand-in for a
        killed job, used by the tests).
        """
        with reproducible():
            return self._fit(resume, stop_after)

    def _resume(self, resume: bool) -> tuple[int, list[dict[str, float]], dict[str, Any], int | None,
                                             dict[str, Any] | None]:
        """Start epoch, metrics, kept candidate, resumed epoch and early stop of the checkpoint (or afresh)."""
        s = self.settings
        best: dict[str, Any] = {"epoch": 0, "val_loss": float("inf"), "state": None}
        if not (resume and self.checkpoint and self.checkpoint.is_file()):
            return 1, [], best, None, None
        state = load_checkpoint(self.checkpoint, self.model.device)
        self._load(state)
        stopped = state.get("stopped")
        if stopped is not None:
            log.info("%s stopped early after epoch %d (%s): nothing to train; the outputs are written from it",
                     self.checkpoint, state["epoch"], stopped["reason"])
        elif state["epoch"] >= s.epochs:
            log.info("%s already holds all %d epochs for these settings and inputs: nothing to train; "
                     "the outputs are written from it", self.checkpoint, s.epochs)
        else:
            log.info("resumed from %s after epoch %d", self.checkpoint, state["epoch"])
        return state["epoch"] + 1, state["metrics"], state["best"], state["epoch"], stopped

    def _epoch_row(self, epoch: int, rows: list[dict[str, float]]) -> dict[str, float]:
        """An epoch's metrics row: the training steps' means, validation of the EMA weights, lr."""
        return {"epoch": epoch, "steps": len(rows), "train_loss": _mean(rows, "loss"),
                "train_hessian_mae": _mean(rows, "hessian_mae"), "train_force_mae": _mean(rows, "force_mae"),
                **{f"train_{k}": _mean(rows, k) for k in RATTLED_PARTS.values() if any(k in r for r in rows)},
                **self.validate_ema(), "lr": rows[-1]["lr"] if rows else self.optimizer.param_groups[0]["lr"]}

    def _fit(self, resume: bool, stop_after: int | None) -> TrainResult:
        s = self.settings
        start, metrics, best, resumed_from, stopped = self._resume(resume)
        if not metrics:
            t0 = time.perf_counter()
            row = {"epoch": 0, "steps": 0, **self.validate(), "lr": s.lr, "seconds": 0.0}
            row["seconds"] = time.perf_counter() - t0
            metrics.append(row)
            best = self._consider(best, row, 0, row)
            log.info("epoch 0 (base model): %s", _fmt(row))
        n_batches = len(self.epoch_plan(1)[1])
        bar = tqdm(total=s.epochs * n_batches, initial=(start - 1) * n_batches, desc="finetune", unit="step",
                   file=sys.stderr, dynamic_ncols=True, mininterval=1.0, disable=not self.dist.is_main)
        ran = 0
        for epoch in range(start, s.epochs + 1):
            if stopped is not None or (stop_after is not None and ran >= stop_after):
                break
            t0 = time.perf_counter()
            row = self._epoch_row(epoch, self.train_epoch(epoch, bar))
            row["seconds"] = time.perf_counter() - t0
            metrics.append(row)
            best = self._consider(best, row, epoch, metrics[0])
            self.schedule.epoch_end(row.get("val_loss", float("nan")))
            log.info("epoch %d: %s", epoch, _fmt(row))
            if should_stop(s.early_stopping_patience, epoch, best["epoch"]) and epoch < s.epochs:
                stopped = {"epoch": epoch, "reason": f"no new kept model for {s.early_stopping_patience} epoch(s) "
                                                     f"since epoch {best['epoch']} (early_stopping_patience)"}
                log.info("early stop after epoch %d: %s", epoch, stopped["reason"])
            if self.checkpoint and self.dist.is_main:
                atomic_torch_save(self._state(epoch, best, metrics, stopped), self.checkpoint)
            ran += 1
        bar.close()
        return TrainResult(best_epoch=best["epoch"], best_val_loss=best["val_loss"], metrics=metrics,
                           resumed_from=resumed_from, state=best["state"], stopped=stopped)

    def _consider(self, best: dict[str, Any], row: dict[str, float], epoch: int, base: dict[str, float]
                  ) -> dict[str, Any]:
        """Keep the EMA weights of the epoch with the lowest phonon validation loss.

        Only epochs within the forgetting budget (``settings.max_drift`` on the held-back
        replay frames, against the base model's metrics row ``base``) are candidates;
        epoch 0 (the base model) is one. Without validation structures, the last epoch
        within the budget is kept.
        """
        val = row.get("val_loss", float("nan"))
        if not self.settings.max_drift.allows(row, base, self.dft_labels):
            log.info("epoch %d is outside the forgetting budget %s: not a candidate", epoch,
                     self.settings.max_drift.as_dict())
            return best
        if np.isfinite(val) and val >= best["val_loss"]:
            return best
        self.ema.swap()
        state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.ema.swap()
        return {"epoch": epoch, "val_loss": float(val) if np.isfinite(val) else float("inf"), "state": state}


def base_predictions(model: Model, frames: Sequence[ReplaySample], batch_atoms: int) -> list[ReplaySample]:
    """``frames`` relabelled with ``model``'s own predictions (the base model, before training).

    Scoring a later model against these measures its drift from the base model.
    """
    if not frames:
        return []
    out: list[ReplaySample] = []
    with_stress = all(s.stress_eV_A3 is not None for s in frames)
    for idx in pack_batches([s.n_atoms for s in frames], batch_atoms, range(len(frames))):
        chunk = [frames[i] for i in idx]
        for s, res in zip(chunk, model.predict([c.atoms for c in chunk], batch_size=len(chunk), stress=with_stress)):
            out.append(ReplaySample(s.atoms, float(res["energy"]), res["forces"],
                                    res["stress"] if with_stress else None, tag=s.tag, split=s.split))
    return out


def _fmt(row: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in row.items() if k not in ("epoch",) and isinstance(v, float))


def metrics_csv(metrics: Sequence[dict[str, float]]) -> str:
    """The metrics as CSV: :data:`METRIC_COLUMNS`, plus :data:`RATTLED_COLUMNS` when present."""
    rattled = tuple(c for c in RATTLED_COLUMNS if any(c in r for r in metrics))
    columns = METRIC_COLUMNS[:-2] + rattled + METRIC_COLUMNS[-2:]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in metrics:
        writer.writerow({k: row.get(k, "") for k in columns})
    return buf.getvalue()


def write_metrics(metrics: Sequence[dict[str, float]], path: str | Path) -> None:
    atomic_write_text(path, metrics_csv(metrics))
