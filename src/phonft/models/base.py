"""The model interface shared by every backend (CHGNet, MACE, and later NEP).

A :class:`Model` turns a list of ``ase.Atoms`` into a backend-specific, batched graph
(:meth:`Model.prepare`), and evaluates that graph to total energies (eV), forces (eV/Å)
and stresses (eV/Å³, ASE sign convention) by autograd (:meth:`Model.evaluate`). Because
the batched graph is block-diagonal across structures, one Hessian-vector product
(:meth:`Model.hvp`) gives one Hessian column per structure at once.

Fine-tuning strategies (:mod:`phonft.finetune.strategies`: freezing, LoRA, multi-head,
scratch) act on :meth:`trainable_parameters` and may wrap the module; what they add that
must not be saved (unmerged adapters, the replay head) is removed by the
:attr:`Model.export_transforms` they register, which :meth:`Model.exported_module`
applies to a copy. Losses and the trainer only ever see :class:`Outputs`.
"""

from __future__ import annotations

import abc
import contextlib
import copy
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from ase import Atoms

DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: Attribute of the module under which multi-head fine-tuning keeps the original readout.
REPLAY_HEAD = "phonft_replay_head"


@dataclass
class Batch:
    """Structures prepared for one batched forward pass.

    Attributes
    ----------
    n_atoms
        Atoms per structure, shape (B,), on the model's device.
    graph
        The backend's own batched input (CHGNet graphs, a MACE data dict).
    """

    n_atoms: torch.Tensor
    graph: Any

    @property
    def n_structures(self) -> int:
        return int(self.n_atoms.numel())


@dataclass
class Outputs:
    """What one forward pass returns.

    ``energy`` is the total energy per structure (eV, shape (B,)); ``forces`` (eV/Å,
    shape (N_total, 3)); ``stress`` (eV/Å³, shape (B, 3, 3), ASE sign: positive is
    tensile) or None. ``positions`` are the tensors the forces were differentiated
    against, kept so that :meth:`Model.hvp` can reuse this forward pass.
    """

    energy: torch.Tensor
    forces: torch.Tensor
    stress: torch.Tensor | None
    positions: list[torch.Tensor]


class Model(abc.ABC):
    """A machine-learned interatomic potential behind phonft's small interface."""

    #: The backend's name (``chgnet``, ``mace``), set by each subclass.
    backend: str = "?"
    #: The module attribute holding the readout that multi-head fine-tuning duplicates
    #: (None: the backend cannot do multi-head fine-tuning).
    readout: str | None = None

    def __init__(self, module: torch.nn.Module, spec: str, dtype: str = "float32", device: str = "cpu"):
        self.module = module
        self.spec = spec
        self.device = torch.device(device)
        #: Applied in order to a copy of the module by :meth:`exported_module` (strategies add them).
        self.export_transforms: list[Callable[[torch.nn.Module], torch.nn.Module]] = []
        self.set_dtype(dtype)

    # ----------------------------------------------------------------- configuration
    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.dtype_name]

    def set_dtype(self, dtype: str) -> "Model":
        """Cast the model to ``float32`` or ``float64`` (phonons are evaluated in float64)."""
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, not {dtype!r}")
        self.dtype_name = dtype
        self.module.to(device=self.device, dtype=DTYPES[dtype])
        return self

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """Parameters that fine-tuning updates (all of them unless a strategy froze some)."""
        return [p for p in self.module.parameters() if p.requires_grad]

    def train(self, mode: bool = True) -> "Model":
        self.module.train(mode)
        return self

    @contextlib.contextmanager
    def replay_head(self) -> Iterator[None]:
        """Evaluate through the original readout inside this block.

        Multi-head fine-tuning keeps the original readout beside the new one (under
        :data:`REPLAY_HEAD`); replay steps and forgetting metrics go through it. For a
        single-head model this is a no-op.
        """
        original = getattr(self.module, REPLAY_HEAD, None)
        if original is None or self.readout is None:
            yield
            return
        new = getattr(self.module, self.readout)
        setattr(self.module, self.readout, original)
        setattr(self.module, REPLAY_HEAD, new)
        try:
            yield
        finally:
            setattr(self.module, self.readout, new)
            setattr(self.module, REPLAY_HEAD, original)

    def architecture(self) -> Callable[[], torch.nn.Module]:
        """A function that builds this model's architecture with fresh random weights
        (the ``scratch`` strategy); raises :class:`~phonft.errors.ConfigError` when the
        backend cannot tell its architecture."""
        from phonft.errors import ConfigError

        raise ConfigError(f"strategy 'scratch': the architecture of model '{self.spec}' ({self.backend}) is not "
                          "known, so it cannot be rebuilt from random weights. Fix: use a CHGNet or a "
                          "ScaleShiftMACE base_model, or another strategy.")

    def exported_module(self) -> torch.nn.Module:
        """A copy of the module as it is saved: the strategies' :attr:`export_transforms`
        applied (LoRA adapters merged, the replay head dropped), on the CPU."""
        module = copy.deepcopy(self.module)
        for transform in self.export_transforms:
            module = transform(module)
        return module.to("cpu")

    @property
    @abc.abstractmethod
    def elements(self) -> set[int] | None:
        """Atomic numbers the model knows (None when it knows all of them)."""

    def check_elements(self, atoms: Atoms, where: str) -> None:
        """Raise a clear error when ``atoms`` holds an element the model was not trained on."""
        known = self.elements
        if known is None:
            return
        unknown = sorted(set(atoms.get_chemical_symbols()) - {_symbol(z) for z in known})
        if unknown:
            from phonft.errors import ConfigError

            raise ConfigError(f"{where}: model '{self.spec}' does not know element(s) {', '.join(unknown)}. "
                              "Fix: pick a model trained on these elements, or drop this material.")

    # ----------------------------------------------------------------- physics
    @abc.abstractmethod
    def prepare(self, structures: Sequence[Atoms]) -> Batch:
        """Build the batched graph of ``structures`` on the model's device and dtype."""

    # Per-structure graphs, for :mod:`phonft.finetune.graphs` (caching and fd reuse). By
    # default an item is the structure itself (nothing is kept); backends override these.
    def prepare_items(self, structures: Sequence[Atoms]) -> list:
        """The prepared graph of each structure (the costly part of :meth:`prepare`)."""
        return [a.copy() for a in structures]

    def collate(self, items: Sequence[Any]) -> Batch:
        """One batch of :meth:`prepare_items`' items, equal to :meth:`prepare` of their
        structures; it never hands out a tensor the autograd of a step could change."""
        return self.prepare(items)

    def graph_cutoffs(self) -> tuple[float, ...] | None:
        """Cutoffs (Å) of the neighbour lists an item holds; None: items cannot be moved."""
        return None

    def moved_item(self, item: Any, atoms: Atoms) -> Any:
        """``item`` with the positions of ``atoms`` and the same neighbour list (valid when
        no pair crossed a cutoff of :meth:`graph_cutoffs`)."""
        return atoms.copy()

    @abc.abstractmethod
    def evaluate(self, batch: Batch, *, stress: bool = False, create_graph: bool = False) -> Outputs:
        """Energies, forces and (optionally) stresses of a prepared batch.

        With ``create_graph`` the forces stay differentiable, in the parameters (for a
        force loss) and in the positions (for :meth:`hvp`).
        """

    def hvp(self, batch: Batch, v: torch.Tensor, outputs: Outputs | None = None,
            create_graph: bool = True) -> torch.Tensor:
        """Hessian-vector product ``H v`` (eV/Å²) for the whole batch in one backward pass.

        ``v`` has shape (N_total, 3). The Hessian is block-diagonal across structures, so
        a ``v`` that is a unit vector inside each structure returns one Hessian column per
        structure. Pass ``outputs`` from :meth:`evaluate` (with ``create_graph=True``) to
        reuse that forward pass.
        """
        if outputs is None:
            outputs = self.evaluate(batch, create_graph=True)
        grads = torch.autograd.grad((outputs.forces * v).sum(), outputs.positions,
                                    create_graph=create_graph, retain_graph=True)
        return -torch.cat(grads, dim=0)

    # ----------------------------------------------------------------- persistence
    @abc.abstractmethod
    def save(self, path: str | os.PathLike) -> None:
        """Write the model in the backend's native format (loadable by its ASE calculator)."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)

    def as_ase_calculator(self):
        """An ASE calculator that evaluates this model at its dtype (float64 for phonons)."""
        from phonft.models.calculator import PhonftCalculator

        return PhonftCalculator(self)

    # ----------------------------------------------------------------- helpers
    def predict(self, structures: Sequence[Atoms], batch_size: int = 8, stress: bool = False
                ) -> list[dict[str, np.ndarray]]:
        """Energies (eV), forces (eV/Å) and stresses (eV/Å³) of many structures, in batches."""
        results: list[dict[str, np.ndarray]] = []
        for start in range(0, len(structures), batch_size):
            chunk = structures[start:start + batch_size]
            batch = self.prepare(chunk)
            out = self.evaluate(batch, stress=stress)
            forces = torch.split(out.forces.detach(), batch.n_atoms.tolist())
            for i in range(len(chunk)):
                item = {"energy": out.energy[i].detach().cpu().double().numpy(),
                        "forces": forces[i].cpu().double().numpy()}
                if stress and out.stress is not None:
                    item["stress"] = out.stress[i].detach().cpu().double().numpy()
                results.append(item)
        return results


def read_model_file(path: str | os.PathLike) -> Any:
    """``torch.load`` a model file (a pickle: loaded only from a path the config names),
    turning any failure into one :class:`InputFileError` naming the file. A pickled MACE
    module needs mace imported first (:func:`phonft.models.mace._import_mace`)."""
    from phonft.errors import InputFileError

    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # zip, pickle, EOF, missing-class errors: all mean "not a good model file"
        detail = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else ""
        raise InputFileError(path, f"could not be read as a model file ({type(exc).__name__}: {detail[:200]}); it "
                                   "is truncated, corrupt or not a torch model file.",
                             "copy it again, or rerun the finetune rule that writes it (delete it first).") from exc


def _symbol(z: int) -> str:
    from ase.data import chemical_symbols

    return chemical_symbols[z]
