"""Fine-tuning strategies: which parameters train.

A strategy only changes ``requires_grad`` on the model's parameters (or, later, wraps
modules, as LoRA and multi-head training will); losses and the trainer stay as they are.
Register new ones in :data:`STRATEGIES`.
"""

from __future__ import annotations

from typing import Callable

import torch

from phonft.errors import ConfigError
from phonft.models.base import Model


def full(model: Model, frozen: tuple[str, ...] = ()) -> list[torch.nn.Parameter]:
    """Full transfer learning: every parameter trains."""
    for p in model.module.parameters():
        p.requires_grad_(True)
    return model.trainable_parameters()


def freeze(model: Model, frozen: tuple[str, ...] = ()) -> list[torch.nn.Parameter]:
    """Layer freezing: parameters whose names start with any of ``frozen`` stay fixed."""
    if not frozen:
        raise ConfigError("strategy 'freeze' needs 'frozen': a list of parameter-name prefixes "
                          "(for CHGNet e.g. atom_embedding, bond_embedding, atom_conv_layers.0).")
    names = [n for n, _ in model.module.named_parameters()]
    for prefix in frozen:
        if not any(n.startswith(prefix) for n in names):
            raise ConfigError(f"strategy 'freeze': no parameter name starts with '{prefix}'. "
                              f"Top-level names: {sorted({n.split('.')[0] for n in names})}")
    for name, p in model.module.named_parameters():
        p.requires_grad_(not any(name.startswith(prefix) for prefix in frozen))
    return model.trainable_parameters()


STRATEGIES: dict[str, Callable[..., list[torch.nn.Parameter]]] = {"full": full, "freeze": freeze}


def apply_strategy(model: Model, name: str, frozen: tuple[str, ...] = ()) -> list[torch.nn.Parameter]:
    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy '{name}'. Known: {', '.join(STRATEGIES)}")
    return STRATEGIES[name](model, frozen)
