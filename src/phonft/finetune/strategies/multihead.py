"""``multihead``: a new readout for the fine-tuning data; replay trains the original one.

The backend's readout (``Model.readout``: CHGNet's ``mlp``, MACE's ``readouts``) is
copied, and the copy is kept under :data:`~phonft.models.base.REPLAY_HEAD` as the
*original* head. The readout in place becomes the new head: the phonon (and rattled)
steps go through it. The trainer routes the replay steps and the forgetting metrics
through the original head (:meth:`~phonft.models.base.Model.replay_head`), so the shared
trunk trains on both, as in mace's multi-head fine-tuning (pt head + replay). Every
parameter trains, both heads included.

The saved ``model.pt`` is the trunk with the new head, an ordinary single-head model
that ``MACECalculator`` and ``CHGNet.from_file`` load without naming a head; the
original head is dropped on save. Unlike mace's ``ScaleShiftMACE(heads=[...])``, both
heads share the E0s and the scale/shift (the phonon data carry no energies to fit
per-head E0s to). A backend without a known readout cannot do this: a clear error.
"""

from __future__ import annotations

import copy

import torch

from phonft.errors import ConfigError
from phonft.finetune.settings import TrainSettings
from phonft.models.base import REPLAY_HEAD, Model


def check(model: Model, settings: TrainSettings) -> None:
    """The backend names its readout."""
    if model.readout is None or not isinstance(getattr(model.module, model.readout, None), torch.nn.Module):
        raise ConfigError(f"strategy 'multihead': a {model.backend} model ('{model.spec}') has no readout phonft can "
                          "duplicate, so it cannot train a second head. Fix: use a CHGNet or MACE base_model, or "
                          "another strategy (full, freeze, lora).")


def apply(model: Model, settings: TrainSettings) -> None:
    """Keep a copy of the readout as the original head; every parameter trains."""
    original = copy.deepcopy(getattr(model.module, model.readout))
    model.module.add_module(REPLAY_HEAD, original)
    for p in model.module.parameters():
        p.requires_grad_(True)
    model.export_transforms.append(drop_replay_head)


def drop_replay_head(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` without the original head (what is saved)."""
    if hasattr(module, REPLAY_HEAD):
        delattr(module, REPLAY_HEAD)
    return module
