"""Training history and checkpoints shared by the GNEP and SNES trainers."""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass
class GNEPHistory:
    """Per-epoch (GNEP) or per-generation (SNES) rows, and why training stopped.

    Each row: ``epoch`` (0 is the state before the first step), ``structure_evaluations``
    (cumulative structures evaluated with energy and forces by the optimiser: a GNEP step on
    a minibatch of B frames counts B, an SNES generation ``population * batch``; the
    per-epoch RMSE passes are not counted), ``wall_s`` (cumulative seconds, those passes
    included), ``lr`` (GNEP), ``loss`` (the weighted loss of the training set), and the
    RMSEs ``energy_rmse_meV_atom``, ``force_rmse_meV_A``, ``virial_rmse_meV_atom`` on the
    training frames, then the same with a ``val_`` prefix when validation frames are given.
    """

    method: str
    settings: dict
    rows: list[dict] = field(default_factory=list)
    stopped: str = "epochs"
    resumed_from: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def last(self) -> dict:
        return self.rows[-1]


class Clock:
    """Wall seconds that survive a resume: ``offset`` is the time of earlier runs."""

    def __init__(self, offset: float = 0.0):
        self.offset, self.start = offset, time.perf_counter()

    def __call__(self) -> float:
        return self.offset + time.perf_counter() - self.start


def save_checkpoint(path: str | os.PathLike, model, state: dict) -> None:
    """The module (parameters, buffers, spec), ``state`` (optimiser, scheduler, rng, history)
    written atomically to ``path``."""
    from phonft.io import atomic_torch_save

    module = model.module
    atomic_torch_save({"module": module.state_dict(), "spec": dataclasses.asdict(module.spec), **state}, path)


def load_checkpoint(path: str | os.PathLike, model) -> dict | None:
    """Restore the module from ``path`` if it exists; returns the rest of the checkpoint."""
    from phonft.models.nep.nepfile import NEPSpec

    path = Path(path)
    if not path.is_file():
        return None
    data = torch.load(path, map_location=model.device, weights_only=False)
    spec = {k: tuple(v) if isinstance(v, list) else v for k, v in data.pop("spec").items()}
    model.module.spec = NEPSpec(**spec)
    model.module.load_state_dict(data.pop("module"))
    return data
