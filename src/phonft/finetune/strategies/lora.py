"""``lora``: low-rank adapters; only they train, and they are merged into the weights on save.

A targeted layer ``W`` computes ``W x + (alpha / rank) · B A x``; ``B`` starts at zero, so
the adapted model starts as the base model.

- **MACE**: mace-torch's own adapters (:mod:`mace.modules.lora`): ``LoRAO3Linear`` on
  e3nn ``o3.Linear`` layers (an irrep-wise bottleneck of ``rank`` copies of every irrep
  shared by input and output, so equivariance holds by construction; a linear with no
  shared irrep is left alone, as mace does), ``LoRAFCLayer`` on the radial MLPs' layers
  and ``LoRADenseLinear`` on ``torch.nn.Linear``. ``targets: all`` adapts the interaction
  and product blocks (``interactions``, ``products``); ``radial_only`` only the radial
  MLPs (``interactions.*.conv_tp_weights``, Equitrain's choice on MACE).
- **CHGNet**: :class:`LoRALinear` on ``torch.nn.Linear`` (``A`` Kaiming-uniform as in
  Hu et al., ``B`` zero). ``targets: all`` adapts the interaction blocks
  (``atom_conv_layers``, ``bond_conv_layers``, ``angle_layers``).

Embeddings and readouts stay fixed under ``all`` (a readout's one output would cap the
rank at 1); a list of module-name prefixes targets any layers instead. A rank above a
targeted layer's smaller dimension (for an ``o3.Linear``, the smaller multiplicity of a
shared irrep) is a :class:`~phonft.errors.ConfigError`. Adapters are drawn from the run's
seed. ``model.state_dict()`` holds the unmerged adapters (checkpoints, resume); the saved
model has them merged (:func:`merge`), so it is an ordinary CHGNet or MACE file.
"""

from __future__ import annotations

import math

import torch

from phonft.errors import ConfigError
from phonft.finetune.settings import LoRASettings, TrainSettings
from phonft.models.base import Model

#: backend -> module-name prefixes of ``targets: all``.
ALL_TARGETS = {"chgnet": ("atom_conv_layers", "bond_conv_layers", "angle_layers"),
               "mace": ("interactions", "products")}
RADIAL = ".conv_tp_weights."


class LoRALinear(torch.nn.Module):
    """``base(x) + scaling · (x Aᵀ) Bᵀ`` for a ``torch.nn.Linear`` ``base``; ``B`` starts at zero."""

    def __init__(self, base: torch.nn.Linear, rank: int, alpha: float, generator: torch.Generator):
        super().__init__()
        self.base = base
        self.scaling = alpha / rank
        w = base.weight
        bound = 1.0 / math.sqrt(base.in_features)  # kaiming_uniform_(a=sqrt(5)), nn.Linear's own init
        a = (torch.rand(rank, base.in_features, generator=generator, dtype=torch.float64) * 2 - 1) * bound
        self.lora_A = torch.nn.Parameter(a.to(device=w.device, dtype=w.dtype))
        self.lora_B = torch.nn.Parameter(torch.zeros(base.out_features, rank, device=w.device, dtype=w.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scaling * torch.nn.functional.linear(
            torch.nn.functional.linear(x, self.lora_A), self.lora_B)

    def merge_into_base(self) -> torch.nn.Linear:
        """The base layer with ``scaling · B A`` added to its weight."""
        with torch.no_grad():
            self.base.weight.add_(self.scaling * self.lora_B @ self.lora_A)
        return self.base


def _mace_kinds() -> tuple[type, type, type]:
    from phonft.models.mace import _import_mace

    _import_mace()
    from e3nn import o3
    from e3nn.nn._fc import _Layer

    return o3.Linear, torch.nn.Linear, _Layer


def layer_size(layer: torch.nn.Module) -> int | None:
    """The largest rank an adapter of ``layer`` can have (None: the layer cannot be adapted)."""
    if isinstance(layer, torch.nn.Linear):
        return min(layer.in_features, layer.out_features)
    if hasattr(layer, "irreps_in") and hasattr(layer, "irreps_out"):  # e3nn o3.Linear
        mul_in, mul_out = ({}, {})
        for irreps, mul in ((layer.irreps_in, mul_in), (layer.irreps_out, mul_out)):
            for m, ir in irreps:
                mul[ir] = mul.get(ir, 0) + m
        shared = set(mul_in) & set(mul_out)
        return min(min(mul_in[ir], mul_out[ir]) for ir in shared) if shared else None
    weight = getattr(layer, "weight", None)  # e3nn's FullyConnectedNet layer: weight (in, out)
    return min(weight.shape) if isinstance(weight, torch.Tensor) and weight.dim() == 2 else None


def _matches(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p.rstrip(".") or name.startswith(p.rstrip(".") + ".") for p in prefixes)


def target_layers(model: Model, lora: LoRASettings) -> list[tuple[str, torch.nn.Module]]:
    """The ``(name, layer)`` pairs ``lora.targets`` selects, outermost eligible layers only."""
    if model.backend not in ALL_TARGETS:
        raise ConfigError(f"strategy 'lora': phonft has no adapters for a {model.backend} model. Fix: use a CHGNet "
                          "or MACE base_model, or another strategy.")
    kinds = _mace_kinds() if model.backend == "mace" else (torch.nn.Linear,)
    if lora.targets == "radial_only" and model.backend != "mace":
        raise ConfigError("finetune.runs.<run>.lora.targets: radial_only names MACE's radial MLPs; a CHGNet model "
                          "has none. Fix: use all, or a list of module-name prefixes.")
    prefixes = ALL_TARGETS[model.backend] if lora.targets in ("all", "radial_only") else tuple(lora.targets)
    out: list[tuple[str, torch.nn.Module]] = []
    for name, layer in model.module.named_modules():
        if (not isinstance(layer, kinds) or not _matches(name, prefixes) or layer_size(layer) is None
                or any(name.startswith(n + ".") for n, _ in out)
                or (lora.targets == "radial_only" and RADIAL not in f".{name}.")):
            continue
        out.append((name, layer))
    return out


def check(model: Model, settings: TrainSettings) -> None:
    """Some layer is targeted, and ``lora.rank`` fits every targeted layer."""
    layers = target_layers(model, settings.lora)
    if not layers:
        raise ConfigError(f"finetune.runs.<run>.lora.targets {settings.lora.targets!r} selects no linear layer of "
                          f"model '{model.spec}'. Fix: use all, or prefixes of its module names.")
    name, size = min(((n, layer_size(layer)) for n, layer in layers), key=lambda pair: pair[1])
    if settings.lora.rank > size:  # the smallest targeted layer, so that the fix given is enough
        raise ConfigError(f"finetune.runs.<run>.lora.rank is {settings.lora.rank}, above the size of layer "
                          f"'{name}' of model '{model.spec}' (at most {size}). Fix: set lora.rank <= {size}, or "
                          "leave that layer out of lora.targets.")


def _adapter(model: Model, layer: torch.nn.Module, lora: LoRASettings, generator: torch.Generator
             ) -> torch.nn.Module:
    if model.backend == "chgnet":
        return LoRALinear(layer, lora.rank, lora.alpha, generator)
    from mace.modules.lora import LoRADenseLinear, LoRAFCLayer, LoRAO3Linear

    o3_linear, _, _ = _mace_kinds()
    cls = LoRAO3Linear if isinstance(layer, o3_linear) else (
        LoRADenseLinear if isinstance(layer, torch.nn.Linear) else LoRAFCLayer)
    return cls(layer, rank=lora.rank, alpha=lora.alpha)  # draws A from torch's seeded global generator


def apply(model: Model, settings: TrainSettings) -> None:
    """Freeze the model, wrap every targeted layer, train only the adapters; merge on save."""
    layers = target_layers(model, settings.lora)
    for p in model.module.parameters():
        p.requires_grad_(False)
    generator = torch.Generator().manual_seed(settings.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        for name, layer in layers:
            parent, _, child = name.rpartition(".")
            setattr(model.module.get_submodule(parent), child, _adapter(model, layer, settings.lora, generator))
    for name, p in model.module.named_parameters():
        p.requires_grad_(".lora_A" in f".{name}" or ".lora_B" in f".{name}")
    model.export_transforms.append(merge)


def merge(module: torch.nn.Module) -> torch.nn.Module:
    """Replace every adapter in ``module`` by its base layer with the adapter merged in."""
    for name, child in list(module.named_children()):
        if hasattr(child, "merge_into_base") and hasattr(child, "base"):
            setattr(module, name, child.merge_into_base())
        else:
            merge(child)
    return module
