"""Models: one interface (:class:`Model`) for every MLIP backend, loaded from a spec string.

Spec strings name a model everywhere in phonft (config, CLI, results):

============================== ====================================================
``chgnet``                     CHGNet 0.3.0, whose weights ship with the chgnet package
``chgnet:0.2.0``/``chgnet:r2scan`` other CHGNet releases shipped with chgnet
``chgnet:/path/model.pth.tar`` a CHGNet file (``CHGNet.from_file`` format)
``mace:/path/x.model``         a local MACE model file
``mace-mp:medium-0b3``         a MACE-MP foundation model (downloaded, then cached)
``mace-small``                 a small random ScaleShiftMACE built from ``options``
``nep``                        a NEP from scratch, its architecture from ``options``/``nep.in``
``nep:/path/nep.txt``          a GPUMD ``nep.txt`` (or a phonft NEP ``model.pt``)
``results/finetune/<run>/model.pt`` a phonft fine-tuned model (backend from its content)
``ase:<module>:<Class>``       any ASE calculator class, built with ``options`` as keyword
                               arguments; evaluation only (:mod:`phonft.models.ase_calc`)
============================== ====================================================

A model file's backend is told by its content (CHGNet's ``{"model": as_dict()}`` or a
pickled MACE module); a ``chgnet:``/``mace:`` prefix must agree with it. A truncated,
corrupt or foreign file raises one :class:`~phonft.errors.InputFileError` naming it.
``options`` (the config's ``model_options``) configure ``mace-small``, ``nep`` and, as the
calculator's keyword arguments, ``ase:`` models;
pretrained models take none, and model files ignore them (a fine-tuned model shares its
run's options) but still refuse keys that are neither mace-small's nor nep's.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from phonft.errors import ConfigError, InputFileError
from phonft.models.base import Batch, Model, Outputs, read_model_file

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


def _backend_of(obj: Any) -> str | None:
    """``chgnet`` for CHGNet's ``{"model": as_dict()}`` format, ``mace`` for a pickled MACE
    module, None for anything else."""
    import torch

    if isinstance(obj, dict) and isinstance(obj.get("model"), dict) and "model_args" in obj["model"]:
        return "chgnet"
    if isinstance(obj, torch.nn.Module) and hasattr(obj, "atomic_numbers") and hasattr(obj, "r_max"):
        return "mace"
    if isinstance(obj, dict) and isinstance(obj.get("nep"), dict):
        return "nep"
    return None


def _from_path(path: Path, spec: str, dtype: str, device: str, backend: str | None = None) -> Model:
    """The model in ``path``, its backend told by the content; ``backend`` (from a
    ``chgnet:``/``mace:`` spec) must agree with it."""
    if not path.is_file():
        raise ConfigError(f"model '{spec}': file {path} does not exist. Fix: check the path, or run the "
                          "finetune rule that writes it.")
    if not path.name.endswith((".pt", ".model", ".pth.tar", ".pth")):
        raise ConfigError(f"model '{spec}': cannot tell the backend of {path} from its suffix. Fix: use "
                          "'mace:<file>' or 'chgnet:<file>'.")
    try:
        from phonft.models.mace import _import_mace

        _import_mace()  # so that a pickled MACE module can be unpickled
    except ImportError:
        pass
    obj = read_model_file(path)
    found = _backend_of(obj)
    if found is None:
        what = f"a dict with keys {sorted(map(str, obj))[:8]}" if isinstance(obj, dict) else f"a {type(obj).__name__}"
        raise InputFileError(path, f"holds {what}, neither a CHGNet model ({{'model': CHGNet.as_dict()}}) nor a "
                                   "pickled MACE model nor a phonft NEP model.",
                             "give a model file written by CHGNet, MACE or phonft.")
    if backend is not None and backend != found:
        names = {"chgnet": "CHGNet", "mace": "MACE", "nep": "NEP"}
        raise InputFileError(path, f"is a {names[found]} model, but the spec '{spec}' says {backend}.",
                             f"write '{found}:{path}'.")
    if found == "nep":
        from phonft.models.nep.backend import NEPModel

        return NEPModel.from_state(obj["nep"], path, dtype=dtype, device=device, spec=spec)
    if found == "chgnet":
        from phonft.models.chgnet import CHGNetModel

        return CHGNetModel.from_dict(obj["model"], path, dtype=dtype, device=device, spec=spec)
    from phonft.models.mace import MACEModel

    return MACEModel(obj, spec=spec, dtype=dtype, device=device)


def _checked_options(spec: str, kind: str, options: Any) -> dict[str, Any]:
    """``options`` as keyword arguments of the model ``spec`` builds.

    ``mace-small`` takes options (:func:`phonft.models.mace.check_small_mace_options`), ``nep``
    its architecture, an ``ase:`` model its calculator's keyword arguments (checked by the
    calculator's constructor).
    A model file ignores them, because a fine-tuned model shares its run's options, but
    their keys must still be mace-small's; a pretrained model takes none.
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ConfigError(f"model '{spec}': model_options must be a mapping of option names to values, not "
                          f"{type(options).__name__} {options!r:.80}. Fix: e.g. model_options: {{elements: [Si]}}.")
    if kind == "ase":
        return dict(options)  # the calculator's keyword arguments, checked by its constructor
    from phonft.models.mace import check_small_mace_options, small_mace

    if kind == "mace-small":
        return check_small_mace_options(options)
    if kind == "nep" and spec == "nep":
        return dict(options)  # checked by nep_spec_from_options
    pretrained = kind == "mace-mp" or (kind == "chgnet" and spec.partition(":")[2] in ("", *_CHGNET_RELEASES))
    if pretrained and options:
        raise ConfigError(f"model '{spec}' takes no model_options, got {', '.join(map(repr, sorted(options)))}. "
                          "Fix: remove model_options; they configure only mace-small.")
    from phonft.models.nep.options import NEP_OPTION_KEYS

    known = [*inspect.signature(small_mace).parameters, *NEP_OPTION_KEYS]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"model '{spec}': unknown model_options key(s) {', '.join(map(repr, unknown))}; known "
                          f"(mace-small's and nep's): {', '.join(dict.fromkeys(known))}. Fix: remove or correct "
                          "them.")
    return {}


def load_model(spec: str, *, dtype: str = "float32", device: str = "auto",
               options: dict[str, Any] | None = None) -> Model:
    """Load the model named by ``spec`` (see the module docstring) on ``device`` in ``dtype``."""
    device = resolve_device(device)
    kind, _, arg = spec.partition(":")
    options = _checked_options(spec, kind, options)
    if kind == "chgnet":
        if not arg or arg in _CHGNET_RELEASES:
            from phonft.models.chgnet import CHGNetModel

            return CHGNetModel.pretrained(arg or "0.3.0", dtype=dtype, device=device)
        return _from_path(Path(arg), spec, dtype, device, backend="chgnet")
    if kind == "mace":
        return _from_path(Path(arg), spec, dtype, device, backend="mace")
    if kind == "mace-mp":
        from phonft.models.mace import MACEModel

        return MACEModel.foundation(arg or "medium-0b3", dtype=dtype, device=device)
    if kind == "mace-small":
        from phonft.models.mace import MACEModel, small_mace

        module = small_mace(**options)
        return MACEModel(module, spec=spec, dtype=dtype, device=device)
    if kind == "nep":
        return _nep(spec, arg, options, dtype, device)
    if kind == "ase":
        from phonft.models.ase_calc import ASECalculatorModel

        return ASECalculatorModel.from_spec(spec, options, dtype=dtype, device=device)
    if os.sep in spec or spec.endswith((".model", ".pth.tar", ".pt")):
        return _from_path(Path(spec), spec, dtype, device)
    raise ConfigError(f"unknown model spec '{spec}'. Fix: use chgnet, chgnet:<file>, mace:<file>, "
                      "mace-mp:<name>, mace-small, nep, nep:<nep.txt>, ase:<module>:<Class>, or the path of a "
                      "fine-tuned model.")


def _nep(spec: str, arg: str, options: dict[str, Any], dtype: str, device: str) -> Model:
    """``nep`` (from scratch, architecture from ``options``) or ``nep:<file>`` (a GPUMD
    ``nep.txt``, told by its first word, or a phonft NEP torch file)."""
    import numpy as np

    from phonft.models.nep.backend import NEPModel
    from phonft.models.nep.module import NEP, random_parameters
    from phonft.models.nep.options import nep_spec_from_options

    if not arg:
        nep_spec = nep_spec_from_options(options)
        params = random_parameters(nep_spec, np.random.default_rng(int(options.get("seed", 0))))
        return NEPModel(NEP(nep_spec, params), spec=spec, dtype=dtype, device=device)
    path = Path(arg)
    if not path.is_file():
        raise ConfigError(f"model '{spec}': file {path} does not exist. Fix: check the path.")
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head.startswith(b"nep"):
        return NEPModel.from_nep_txt(path, dtype=dtype, device=device, spec=spec)
    return _from_path(path, spec, dtype, device, backend="nep")
