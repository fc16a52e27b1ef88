"""Run length from the data: the learning-rate schedule, the validation columns and early stopping.

* :class:`LRSchedule` (``lr_schedule``): ``constant`` (no scheduler: the optimiser's lr
  is never touched), ``cosine`` (from ``lr`` to ``lr_final`` over the run's phonon steps)
  or ``plateau`` (``lr`` times ``plateau_factor`` after ``plateau_patience`` epochs
  without a lower validation loss, as torch's ``ReduceLROnPlateau``), each after a linear
  warm-up of ``warmup_steps`` phonon steps. It is a :class:`torch.optim.lr_scheduler.LambdaLR`
  stepped once per phonon step (its replay steps use the same lr); its state and the
  plateau counters go into the checkpoint, so a resumed run takes the same steps.
* :func:`fixed_columns`: ``val_columns`` fixed columns per validation structure (distinct;
  ``val_columns: 1`` draws exactly today's single column).
* :class:`HeldColumns`: when the run has no validation material, a fixed set of held-back
  columns per training structure (``val_columns`` each) is the validation set
  (``val_from_train``), and the training steps draw their columns from the complement.
* :func:`should_stop`: early stopping after ``early_stopping_patience`` epochs without a
  new kept candidate.

Every draw comes from seeded generators, so resumes stay bitwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from phonft.errors import ConfigError
from phonft.finetune.columns import sample_columns


class LRSchedule:
    """The learning-rate schedule of a run (``settings.lr_schedule``); a no-op for ``constant``
    without warm-up."""

    def __init__(self, optimizer: torch.optim.Optimizer, settings: Any, steps_per_epoch: int):
        self.settings = settings
        self.total = max(1, settings.epochs * steps_per_epoch)
        self.scale = 1.0
        self.best = math.inf
        self.bad_epochs = 0
        active = settings.lr_schedule != "constant" or settings.warmup_steps > 0
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self.factor) if active else None

    def factor(self, step: int) -> float:
        """The lr of phonon step ``step`` (0-based) over ``settings.lr``."""
        s, warm = self.settings, self.settings.warmup_steps
        f = (step + 1) / (warm + 1) if step < warm else 1.0
        if s.lr_schedule == "cosine" and step >= warm:
            progress = min(1.0, (step - warm) / max(1, self.total - warm))
            low = s.lr_final / s.lr
            f = low + (1.0 - low) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return f * self.scale

    def step(self) -> None:
        """After a phonon step (and its replay steps)."""
        if self.scheduler is not None:
            self.scheduler.step()

    def epoch_end(self, val_loss: float) -> None:
        """``plateau``: after an epoch's validation; the next step's lr follows."""
        if self.settings.lr_schedule != "plateau" or not np.isfinite(val_loss):
            return
        if val_loss < self.best:
            self.best, self.bad_epochs = float(val_loss), 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > self.settings.plateau_patience:
            self.scale *= self.settings.plateau_factor
            self.bad_epochs = 0
            for group, base in zip(self.scheduler.optimizer.param_groups, self.scheduler.base_lrs):
                group["lr"] = base * self.factor(self.scheduler.last_epoch)

    def state_dict(self) -> dict[str, Any]:
        if self.scheduler is None:
            return {}
        return {"scheduler": self.scheduler.state_dict(), "scale": self.scale, "best": self.best,
                "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scheduler is None or not state:
            return
        self.scheduler.load_state_dict(state["scheduler"])
        self.scale, self.best, self.bad_epochs = state["scale"], state["best"], state["bad_epochs"]


def fixed_columns(n_atoms: Sequence[int], k: int, rng: np.random.Generator, where: str) -> np.ndarray:
    """``k`` distinct column indices per structure, shape (B, k); ``k == 1`` is
    :func:`~phonft.finetune.columns.sample_columns`'s draw (today's single column)."""
    if k == 1:
        return sample_columns(n_atoms, 1, rng)
    if any(3 * n < k for n in n_atoms):
        raise ConfigError(f"finetune.runs.<run>.val_columns is {k}, but a {where} structure has only "
                          f"{3 * min(n_atoms)} columns. Fix: set val_columns to at most that.")
    return np.stack([np.sort(rng.choice(3 * n, size=k, replace=False)) for n in n_atoms]).astype(int)


class HeldColumns:
    """Held-back columns of the training structures: the validation set of a run without
    validation materials; training columns are drawn from the complement."""

    def __init__(self, n_atoms: Sequence[int], k: int, seed: int):
        if any(3 * n <= k for n in n_atoms):
            raise ConfigError(f"finetune.runs.<run>.val_columns is {k}, but holding that many columns back "
                              f"leaves none to train on in a {min(n_atoms)}-atom training structure. Fix: lower "
                              "val_columns, or set val_from_train: false.")
        self.n_atoms = list(n_atoms)
        rng = np.random.default_rng([seed, 2**31 - 2])
        self.held = np.stack([np.sort(rng.choice(3 * n, size=k, replace=False)) for n in n_atoms]).astype(int)

    def sample(self, idx: Sequence[int], k: int, rng: np.random.Generator) -> np.ndarray:
        """``k`` training columns per structure ``idx``, uniform over the columns not held back."""
        out = []
        for i in idx:
            held = self.held[i]
            draws = rng.integers(0, 3 * self.n_atoms[i] - len(held), size=k)
            # the r-th column of the complement: step over every held column at or below it
            for h in held:
                draws = draws + (draws >= h)
            out.append(draws)
        return np.stack(out).astype(int)


def should_stop(patience: int | None, epoch: int, best_epoch: int) -> bool:
    """Early stopping: ``patience`` epochs have passed since the kept candidate's epoch."""
    return patience is not None and epoch - best_epoch >= patience


def validation_columns(settings: Any, train_set: Sequence[Any], val_set: Sequence[Any]
                       ) -> tuple[HeldColumns | None, np.ndarray | None, str]:
    """What a run validates on: ``(held, columns, source)``.

    With validation structures (``source`` ``materials``): their ``val_columns`` fixed
    columns, drawn once from ``default_rng([seed, 2**31 - 1])``. Without, and with
    ``val_from_train`` (not under ``objective: rattled``): ``training_columns``, a
    :class:`HeldColumns` of the training structures, whose held-back columns the caller
    validates on (and the training steps never draw). Otherwise ``none``; early stopping
    and the ``plateau`` schedule then have no loss to watch, a :class:`ConfigError`, as is
    ``column_sampling: symmetry`` with held-back columns (an atom's 3 columns would reach them).
    """
    s = settings
    if val_set:
        vrng = np.random.default_rng([s.seed, 2**31 - 1])
        return None, fixed_columns([x.n_atoms for x in val_set], s.val_columns, vrng, "validation"), "materials"
    if s.val_from_train and s.objective != "rattled":
        if s.column_sampling == "symmetry":
            raise ConfigError("column_sampling: symmetry cannot be combined with validation from held-back training "
                              "columns (the run has no validation material, val_from_train is true). Fix: give the "
                              "split validation materials, set val_from_train: false, or use column_sampling: uniform.")
        held = HeldColumns([x.n_atoms for x in train_set], s.val_columns, s.seed)
        return held, held.held, "training_columns"
    if s.early_stopping_patience is not None or s.lr_schedule == "plateau":
        raise ConfigError("early_stopping_patience and lr_schedule: plateau need a validation loss, but the run has no "
                          "validation material and val_from_train is false (or objective is rattled). Fix: set "
                          "val_from_train: true, or give the split validation materials.")
    return None, None, "none"
