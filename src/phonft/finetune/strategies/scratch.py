"""``scratch``: the base model's architecture from random weights, on the same data.

The paper's baseline. The backend rebuilds its architecture
(:meth:`~phonft.models.base.Model.architecture`): CHGNet's constructor with the base
model's ``model_args``, keeping its composition model (per-element reference energies);
MACE's class from mace's ``extract_config_mace_model``, keeping the atomic energies (E0s)
and scale/shift. The new weights are drawn from ``torch.manual_seed(settings.seed)``.
Every parameter trains. A model whose architecture cannot be read (for example a MACE
that is not a ``ScaleShiftMACE``) is a :class:`~phonft.errors.ConfigError`.

The replay set still replays what the run's replay configuration gives; with the offline
pseudo-labels that is the base model's behaviour, which a from-scratch model then learns
(set ``replay_steps: 0`` for the data-only baseline). ``TrainSettings`` requires the
forgetting budget off (``max_drift`` all null): a random model is never within one.
"""

from __future__ import annotations

import torch

from phonft.finetune.settings import TrainSettings
from phonft.models.base import Model


def check(model: Model, settings: TrainSettings) -> None:
    """The backend can rebuild the architecture (raises otherwise)."""
    model.architecture()


def apply(model: Model, settings: TrainSettings) -> None:
    """Replace the module by a freshly initialised one of the same architecture."""
    build = model.architecture()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        model.module = build()
    model.module.train(True)
    for p in model.module.parameters():
        p.requires_grad_(True)
