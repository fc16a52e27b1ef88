"""``full`` and ``freeze``: which of the model's own parameters train.

``freeze`` keeps fixed every parameter whose name starts with a ``frozen`` prefix, and,
with ``freeze_blocks: k > 0``, the embeddings and the first k interaction blocks
(:data:`BLOCKS`, :data:`EMBEDDINGS`):

- CHGNet: ``atom_embedding``, ``bond_embedding``, ``angle_embedding``, the radial and
  angular bases (``bond_basis_expansion``, ``angle_basis_expansion``) and the bond weights
  every convolution shares (``bond_weights_ag``, ``bond_weights_bg``); block i is
  ``atom_conv_layers.i``, ``bond_conv_layers.i`` and ``angle_layers.i`` (CHGNet 0.3.0 has
  4 atom and 3 bond/angle layers: block 3 is the last atom convolution alone).
- MACE: ``node_embedding`` (the radial basis and E0s hold no trainable parameters);
  block i is ``interactions.i`` and ``products.i``.

The readouts (CHGNet ``mlp``, ``site_wise``, ``readout_norm``; MACE ``readouts``) always train.
"""

from __future__ import annotations

from phonft.errors import ConfigError
from phonft.finetune.settings import TrainSettings
from phonft.models.base import Model

#: backend -> the module-name prefixes of interaction block i (formatted with ``i``).
BLOCKS = {"chgnet": ("atom_conv_layers.{i}.", "bond_conv_layers.{i}.", "angle_layers.{i}."),
          "mace": ("interactions.{i}.", "products.{i}.")}
#: backend -> the embeddings frozen with the first blocks.
EMBEDDINGS = {"chgnet": ("atom_embedding.", "bond_embedding.", "angle_embedding.", "bond_basis_expansion.",
                         "angle_basis_expansion.", "bond_weights_ag.", "bond_weights_bg."),
              "mace": ("node_embedding.",)}


def full(model: Model, settings: TrainSettings) -> None:
    """Full transfer learning: every parameter trains."""
    for p in model.module.parameters():
        p.requires_grad_(True)


def n_blocks(model: Model) -> int:
    """The number of interaction blocks: the largest block index with parameters, plus one."""
    heads = {b.split(".")[0] for b in BLOCKS[model.backend]}
    indices = [int(parts[1]) for n, _ in model.module.named_parameters()
               if (parts := n.split("."))[0] in heads and len(parts) > 1 and parts[1].isdigit()]
    return max(indices) + 1 if indices else 0


def frozen_prefixes(model: Model, settings: TrainSettings) -> tuple[str, ...]:
    """Every parameter-name prefix ``freeze`` keeps fixed: ``frozen`` plus the blocks'."""
    if not settings.freeze_blocks:
        return settings.frozen
    blocks = tuple(b.format(i=i) for i in range(settings.freeze_blocks) for b in BLOCKS[model.backend])
    return settings.frozen + EMBEDDINGS[model.backend] + blocks


def check(model: Model, settings: TrainSettings) -> None:
    """Every ``frozen`` prefix names a parameter; ``freeze_blocks`` fits the model."""
    names = [n for n, _ in model.module.named_parameters()]
    for prefix in settings.frozen:
        if not any(n.startswith(prefix) for n in names):
            raise ConfigError(f"finetune.runs.<run>.frozen: no parameter name starts with '{prefix}'. "
                              f"Top-level names: {sorted({n.split('.')[0] for n in names})}")
    if settings.freeze_blocks:
        if model.backend not in BLOCKS:
            raise ConfigError(f"finetune.runs.<run>.freeze_blocks: the blocks of a {model.backend} model are not "
                              "known. Fix: name parameter-name prefixes in 'frozen' instead.")
        count = n_blocks(model)
        if settings.freeze_blocks > count:
            raise ConfigError(f"finetune.runs.<run>.freeze_blocks is {settings.freeze_blocks}, but model "
                              f"'{model.spec}' has {count} interaction blocks. Fix: give at most {count}.")


def apply(model: Model, settings: TrainSettings) -> None:
    """Freeze the parameters under :func:`frozen_prefixes`; every other one trains."""
    prefixes = frozen_prefixes(model, settings)
    for name, p in model.module.named_parameters():
        p.requires_grad_(not any(name.startswith(prefix) for prefix in prefixes))


def frozen_names(model: Model) -> list[str]:
    """The names of the parameters that do not train (for tests and logs)."""
    return [n for n, p in model.module.named_parameters() if not p.requires_grad]
