"""Models: one interface (:class:`Model`) for every MLIP backend, loaded from a spec string.

Spec strings name a model everywhere in phonft (config, CLI, results):

============================== ====================================================
``chgnet``                     CHGNet 0.3.0, whose weights ship with the chgnet package
``chgnet:0.2.0``/``chgnet:r2scan`` other CHGNet releases shipped with chgnet
``chgnet:/path/model.pth.tar`` a CHGNet file (``CHGNet.from_file`` format)
``mace:/path/x.model``         a local MACE model file
``mace-mp:medium-0b3``         a MACE-MP foundation model (downloaded, then cached)
``mace-small``                 a small random ScaleShiftMACE built from ``options``
``results/finetune/<run>/model.pt`` a phonft fine-tuned model (backend from its content)
============================== ====================================================
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from phonft.errors import ConfigError
from phonft.models.base import Batch, Model, Outputs

__all__ = ["Batch", "Model", "Outputs", "load_model", "resolve_device"]

_CHGNET_RELEASES = ("0.3.0", "0.2.0", "r2scan")


def resolve_device(device: str = "auto") -> str:
    """``auto`` picks CUDA when a GPU is visible, else the CPU."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda was asked for but torch sees no GPU. Fix: set device: auto or cpu.")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ConfigError(f"device must be auto, cpu or cuda, not {device!r}")
    return device


def _load_pt(path: Path, spec: str, dtype: str, device: str) -> Model:
    """A phonft ``.pt`` model: a CHGNet ``{"model": as_dict()}`` file or a pickled MACE module.

    The file is read once; its content tells the backend.
    """
    import torch

    try:
        from phonft.models.mace import _import_mace

        _import_mace()  # so that a pickled MACE module can be unpickled
    except ImportError:
        pass
    obj = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict) and "model_args" in obj["model"]:
        from chgnet.model import CHGNet

        from phonft.models.chgnet import CHGNetModel

        return CHGNetModel(CHGNet.from_dict(obj["model"]), spec=spec, dtype=dtype, device=device)
    if isinstance(obj, torch.nn.Module):
        from phonft.models.mace import MACEModel

        return MACEModel(obj, spec=spec, dtype=dtype, device=device)
    raise ConfigError(f"{path}: neither a CHGNet file nor a pickled MACE model. Fix: name the backend, "
                      "'chgnet:<file>' or 'mace:<file>'.")


def _from_path(path: Path, spec: str, dtype: str, device: str) -> Model:
    if not path.is_file():
        raise ConfigError(f"model '{spec}': file {path} does not exist. Fix: check the path, or run the "
                          "finetune rule that writes it.")
    name = path.name
    if name.endswith(".pt"):
        return _load_pt(path, spec, dtype, device)
    if name.endswith(".model"):
        from phonft.models.mace import MACEModel

        return MACEModel.from_file(path, dtype=dtype, device=device, spec=spec)
    if name.endswith((".pth.tar", ".pth")):
        from phonft.models.chgnet import CHGNetModel

        return CHGNetModel.from_file(path, dtype=dtype, device=device, spec=spec)
    raise ConfigError(f"model '{spec}': cannot tell the backend of {path} from its suffix. Fix: use "
                      "'mace:<file>' or 'chgnet:<file>'.")


def load_model(spec: str, *, dtype: str = "float32", device: str = "auto",
               options: dict[str, Any] | None = None) -> Model:
    """Load the model named by ``spec`` (see the module docstring) on ``device`` in ``dtype``."""
    device = resolve_device(device)
    options = dict(options or {})
    kind, _, arg = spec.partition(":")
    if kind == "chgnet":
        from phonft.models.chgnet import CHGNetModel

        if not arg or arg in _CHGNET_RELEASES:
            return CHGNetModel.pretrained(arg or "0.3.0", dtype=dtype, device=device)
        return _from_path(Path(arg), spec, dtype, device)
    if kind == "mace":
        return _from_path(Path(arg), spec, dtype, device)
    if kind == "mace-mp":
        from phonft.models.mace import MACEModel

        return MACEModel.foundation(arg or "medium-0b3", dtype=dtype, device=device)
    if kind == "mace-small":
        from phonft.models.mace import MACEModel, small_mace

        if "elements" not in options:
            raise ConfigError("model 'mace-small' needs options.elements (a list of element symbols).")
        module = small_mace(**options)
        return MACEModel(module, spec=spec, dtype=dtype, device=device)
    if os.sep in spec or spec.endswith((".model", ".pth.tar", ".pt")):
        return _from_path(Path(spec), spec, dtype, device)
    raise ConfigError(f"unknown model spec '{spec}'. Fix: use chgnet, chgnet:<file>, mace:<file>, "
                      "mace-mp:<name>, mace-small, or the path of a fine-tuned model.")
