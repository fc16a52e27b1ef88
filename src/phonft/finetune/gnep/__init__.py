"""NEP training: GNEP (Adam/AdamW on exact gradients) and the SNES baseline.

Modules: :mod:`settings` (GNEPSettings, GNEPWeights, SNESSettings), :mod:`frames`
(labelled frames from GPUMD's train.xyz or phonft's extxyz), :mod:`data` (prepared
minibatches and the E/F/V loss), :mod:`init` (q_scaler, max_neighbors, energy shift),
:mod:`train` (GNEP), :mod:`snes` (SNES) and :mod:`history` (history rows, checkpoints).
"""

import importlib
from typing import Any

#: Public name -> the module that defines it. Imported on first use, so that the settings
#: (imported by :mod:`phonft.finetune.settings`, hence by the planner) do not import torch.
_WHERE = {"LabelledFrame": "frames", "from_rattled": "frames", "read_training_frames": "frames",
          "GNEPHistory": "history", "initialise": "init", "GNEPSettings": "settings", "GNEPWeights": "settings",
          "SNESSettings": "settings", "train_snes": "snes", "train_gnep": "train"}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
