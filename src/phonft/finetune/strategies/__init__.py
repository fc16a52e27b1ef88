"""Fine-tuning strategies: which parameters train, and how the model is wrapped.

================ ================================================== =====================================
strategy         what trains                                        what ``model.pt`` holds
================ ================================================== =====================================
``full``         every parameter                                    the trained model
``freeze``       all but ``frozen`` prefixes and the first          the trained model
                 ``freeze_blocks`` blocks with the embeddings
``lora``         only the low-rank adapters (:mod:`.lora`)          the adapters merged into the weights
``multihead``    trunk + a new readout (phonon data) + the          the trunk with the new readout
                 original readout (replay) (:mod:`.multihead`)
``scratch``      every parameter of the same architecture, from     the trained model
                 seeded random weights (:mod:`.scratch`)
================ ================================================== =====================================

The Trainer calls :func:`apply_strategy` before it loads a checkpoint, so a resumed run's
``model.state_dict()`` (unmerged adapters, both heads) fits the wrapped model again.
:func:`check_strategy` runs a strategy's checks on the unmodified model, before anything
is written (``phonft finetune train`` calls it first). What a strategy adds that must not
be saved is removed by the export transforms it registers on the model
(:meth:`phonft.models.base.Model.exported_module`).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import torch

from phonft.finetune.settings import TrainSettings
from phonft.finetune.strategies import freeze, lora, multihead, scratch
from phonft.models.base import Model

log = logging.getLogger(__name__)

Check = Callable[[Model, TrainSettings], None]
Apply = Callable[[Model, TrainSettings], None]


def _no_check(model: Model, settings: TrainSettings) -> None:
    """``full`` accepts every model."""


#: name -> (check on the unmodified model, apply: set ``requires_grad`` and wrap modules).
STRATEGIES: dict[str, tuple[Check, Apply]] = {
    "full": (_no_check, freeze.full),
    "freeze": (freeze.check, freeze.apply),
    "lora": (lora.check, lora.apply),
    "multihead": (multihead.check, multihead.apply),
    "scratch": (scratch.check, scratch.apply),
}


def check_strategy(model: Model, settings: TrainSettings) -> None:
    """Raise the :class:`~phonft.errors.ConfigError` ``apply_strategy`` would, changing nothing."""
    STRATEGIES[settings.strategy][0](model, settings)


def apply_strategy(model: Model, settings: TrainSettings) -> list[torch.nn.Parameter]:
    """Apply ``settings.strategy`` to ``model``; the parameters the optimiser updates.

    Logs the trainable parameter count and fraction (:func:`parameter_counts`).
    """
    check, apply = STRATEGIES[settings.strategy]
    check(model, settings)
    apply(model, settings)
    params = model.trainable_parameters()
    counts = parameter_counts(model, params)
    log.info("strategy %s: %d of %d parameters train (%.4g%%)", settings.strategy, counts["n_trainable"],
             counts["n_parameters"], 100 * counts["trainable_fraction"])
    return params


def parameter_counts(model: Model, params: list[torch.nn.Parameter]) -> dict[str, Any]:
    """``n_parameters``: every parameter of the model as trained (adapters and the replay
    head included); ``n_trainable``: those in ``params``; ``trainable_fraction``: their ratio."""
    total = sum(p.numel() for p in model.module.parameters())
    trainable = sum(p.numel() for p in params)
    return {"n_parameters": total, "n_trainable": trainable, "trainable_fraction": trainable / total if total else 0.0}
