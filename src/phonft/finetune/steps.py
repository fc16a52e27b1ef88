"""One epoch of training steps, per objective (the :class:`~phonft.finetune.trainer.Trainer`'s steps).

Every random choice of an epoch is drawn from ``numpy.random.default_rng([seed, epoch])``
(``rng``), in the order of the steps, so a resumed run takes exactly the steps an
uninterrupted one would:

* ``pft``: the phonon training set is shuffled and packed into ``batch_atoms`` batches;
  each batch takes one phonon step (its Hessian columns drawn from ``rng``: uniform
  columns, or irreducible atoms under ``column_sampling: symmetry``),
  :func:`~phonft.finetune.objective.phonon_objective`.
* ``rattled``: the rattled frames of the training materials are shuffled and packed into
  ``rattled_batch_atoms`` batches; each batch takes one rattled step
  (:func:`~phonft.finetune.rattled.rattled_objective`), no Hessian term. An epoch is one
  pass over the frames.
* ``both``: the ``pft`` steps, each with the loss of the next rattled batch added (one
  optimiser step); the rattled batches cycle through the frames, reshuffled on every pass,
  from their own generator ``default_rng([seed, epoch, 1])``.

After each step, ``replay_steps`` replay steps
(:func:`~phonft.finetune.objective.replay_objective`) on replay batches cycling like the
rattled ones, drawn from ``rng``. Under ``dist`` every batch is sharded over the ranks
(:mod:`phonft.finetune.distributed`).
"""

from __future__ import annotations

from typing import Iterator, Sequence, TypeVar

import numpy as np
import torch
from tqdm.auto import tqdm

from phonft.finetune.columns import sample_columns
from phonft.finetune.data import PhononSample, ReplaySample, pack_batches
from phonft.finetune.distributed import allreduce_grads, shard, shard_indices, union_objective
from phonft.finetune.objective import ObjectiveValue, phonon_objective, replay_objective
from phonft.finetune.rattled import RattledSample, combine, rattled_objective
from phonft.finetune.symmetry import sample_atoms

T = TypeVar("T")


def cycle_batches(items: Sequence[T], budget: int, rng: np.random.Generator) -> Iterator[list[T]]:
    """Node-budget batches of ``items`` without end, reshuffled by ``rng`` on every pass."""
    sizes = [s.n_atoms for s in items]
    while True:
        for idx in pack_batches(sizes, budget, rng.permutation(len(sizes))):
            yield [items[i] for i in idx]


class Steps:
    """The optimiser steps of :class:`~phonft.finetune.trainer.Trainer` (a mixin).

    Uses the trainer's ``model``, ``settings``, ``dist``, ``params``, ``optimizer``, ``ema``,
    ``schedule`` (stepped after every step and its replay steps), ``held`` (the training
    columns held back for validation, or None), ``train_set``, ``replay_train`` and
    ``rattled_train``.
    """

    def _optimise(self, result: ObjectiveValue | None) -> dict[str, float]:
        """One optimiser step on ``result`` (this rank's shard under ``dist``); the logged parts."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.dist.active:
            loss, parts = union_objective(result, self.model.device)
            if loss is not None:
                loss.backward()
            allreduce_grads(self.params)
            value = torch.tensor(parts["loss"])
        else:
            assert result is not None
            result.loss.backward()
            value, parts = result.loss, dict(result.parts)
        if not torch.isfinite(value):
            raise FloatingPointError(f"non-finite loss {float(value)}; lower lr or check the labels")
        torch.nn.utils.clip_grad_norm_(self.params, self.settings.grad_clip)
        self.optimizer.step()
        self.ema.update()
        return parts

    def _rattled_shard(self, samples: list[RattledSample]) -> ObjectiveValue | None:
        """The rattled loss of this rank's shard of a rattled batch (None for an empty shard)."""
        mine = shard(samples, self.dist)
        return rattled_objective(self.model, mine, self.settings.rattled_weights) if mine else None

    def _phonon_step(self, samples: list[PhononSample], cols: np.ndarray,
                     rattled: list[RattledSample] | None = None, draws: np.ndarray | None = None) -> dict[str, float]:
        """The phonon step on a batch (plus a rattled batch's loss under ``both``); under
        ``dist``, on this rank's shards of them. ``draws``: the orbits of ``column_sampling:
        symmetry``."""
        mine = shard_indices(len(samples), self.dist)
        res = (phonon_objective(self.model, [samples[i] for i in mine], cols[mine], self.settings,
                                draws=None if draws is None else draws[mine])
               if mine else None)
        if rattled is not None:
            res = combine(res, self._rattled_shard(rattled))
        return self._optimise(res)

    def _replay_step(self, samples: list[ReplaySample]) -> None:
        """A replay step on a batch (through the original head under ``multihead``); under
        ``dist``, on this rank's shard (stress decided on the batch)."""
        w = self.settings.replay_weights
        has_stress = w.stress > 0 and all(s.stress_eV_A3 is not None for s in samples)
        mine = shard(samples, self.dist) if self.dist.active else samples
        with self.model.replay_head():
            self._optimise(replay_objective(self.model, mine, w, has_stress=has_stress) if mine else None)

    def _steps_items(self) -> tuple[Sequence, int]:
        """What an epoch's batches index, and their node budget."""
        if self.settings.objective == "rattled":
            return self.rattled_train, self.settings.rattled_batch_atoms
        return self.train_set, self.settings.batch_atoms

    def epoch_plan(self, epoch: int) -> tuple[np.random.Generator, list[list[int]]]:
        rng = np.random.default_rng([self.settings.seed, epoch])
        items, budget = self._steps_items()
        order = rng.permutation(len(items))
        return rng, pack_batches([s.n_atoms for s in items], budget, order)

    def _step(self, idx: list[int], rng: np.random.Generator,
              rattled: Iterator[list[RattledSample]] | None) -> dict[str, float]:
        """The step of one batch of the epoch plan, by objective."""
        if self.settings.objective == "rattled":
            return self._optimise(self._rattled_shard([self.rattled_train[i] for i in idx]))
        samples = [self.train_set[i] for i in idx]
        k, draws = self.settings.columns_per_structure, None
        if self.settings.column_sampling == "symmetry":  # the trainer refuses it with held-back columns
            cols, draws = sample_atoms([s.site_symmetry() for s in samples], k, rng)
        elif self.held is not None:
            cols = self.held.sample(idx, k, rng)  # never a held-back validation column
        else:
            cols = sample_columns([s.n_atoms for s in samples], k, rng)
        return self._phonon_step(samples, cols, next(rattled) if rattled is not None else None, draws)

    def train_epoch(self, epoch: int, bar: tqdm | None = None) -> list[dict[str, float]]:
        s = self.settings
        rng, batches = self.epoch_plan(epoch)
        replay = cycle_batches(self.replay_train, s.replay_batch_atoms, rng) if s.replay_steps else None
        rattled = (cycle_batches(self.rattled_train, s.rattled_batch_atoms, np.random.default_rng([s.seed, epoch, 1]))
                   if s.objective == "both" else None)
        rows = []
        self.model.train(True)
        for idx in batches:
            row = self._step(idx, rng, rattled)
            row["lr"] = self.optimizer.param_groups[0]["lr"]
            for _ in range(s.replay_steps):
                self._replay_step(next(replay))
            self.schedule.step()
            rows.append(row)
            if bar is not None:
                bar.update(1)
                shown = {"hess": row.get("hessian_mae"), "rattled_f": row.get("rattled_force_mae")}
                bar.set_postfix(**{k: f"{v:.3f}" for k, v in shown.items() if v is not None}, loss=f"{row['loss']:.3g}")
        return rows
