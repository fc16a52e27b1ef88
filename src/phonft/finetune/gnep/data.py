"""Prepared training data and the E/F/V loss shared by GNEP and SNES.

Every frame's neighbour list is built once (:class:`FrameSet`, via the model's
``prepare``) and a minibatch is the concatenation of its frames' prepared graphs, so
shuffled minibatches never rebuild a neighbour list. The loss (weights ``w``)::

    L = w.energy * RMSE(E / N)        over frames with an energy, eV/atom
      + w.forces * RMSE(F components) over frames with forces, eV/Å
      + w.virial * RMSE(W / N)        over frames with a virial, eV/atom (6 components
                                      xx yy zz xy yz zx, GPUMD's sign W = -stress * V)

A term whose frames are all unlabelled in a minibatch, or whose weight is 0, is absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from phonft.finetune.gnep.frames import LabelledFrame
from phonft.models.base import Batch

#: Graph entries that index atoms, and the ones that index structures (offset on concatenation).
_ATOM_INDEX = ("centre", "neighbour")
_STRUCTURE_INDEX = ("pair_structure", "atom_structure")
#: Upper-triangle components of a virial, GPUMD's order xx yy zz xy yz zx.
_VOIGT = (torch.tensor([0, 1, 2, 0, 1, 2]), torch.tensor([0, 1, 2, 1, 2, 0]))


def concat_batches(batches: Sequence[Batch]) -> Batch:
    """One NEP batch from single-structure ones (as ``NEPModel.prepare`` of all of them)."""
    graphs = [b.graph for b in batches]
    atoms = np.cumsum([0] + [int(b.n_atoms.sum()) for b in batches])[:-1]
    structures = np.cumsum([0] + [b.n_structures for b in batches])[:-1]
    out = {}
    for key in graphs[0]:
        parts = [g[key] for g in graphs]
        if key in _ATOM_INDEX:
            parts = [p + int(o) for p, o in zip(parts, atoms)]
        elif key in _STRUCTURE_INDEX:
            parts = [p + int(o) for p, o in zip(parts, structures)]
        out[key] = torch.cat(parts)
    return Batch(n_atoms=torch.cat([b.n_atoms for b in batches]), graph=out)


@dataclass
class Labels:
    """A minibatch's labels as tensors, with the indices of the frames that carry each."""

    energy_per_atom: torch.Tensor  # (frames with energy,)
    energy_index: torch.Tensor
    forces: torch.Tensor  # (atoms of frames with forces, 3)
    force_atoms: torch.Tensor  # indices of those atoms in the batch
    virial_per_atom: torch.Tensor  # (frames with virial, 6)
    virial_index: torch.Tensor


@dataclass
class FrameSet:
    """Labelled frames with their prepared single-frame batches (built once)."""

    frames: list[LabelledFrame]
    batches: list[Batch]
    dtype: torch.dtype
    device: torch.device | str = "cpu"
    _cache: dict = field(default_factory=dict)

    @classmethod
    def build(cls, model, frames: Sequence[LabelledFrame]) -> "FrameSet":
        return cls(list(frames), [model.prepare([f.atoms]) for f in frames], model.dtype, model.device)

    def __len__(self) -> int:
        return len(self.frames)

    def batch(self, index: Sequence[int]) -> tuple[Batch, Labels]:
        """The concatenated batch and labels of frames ``index`` (cached per index tuple)."""
        key = tuple(int(i) for i in index)
        if key not in self._cache:
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[key] = (concat_batches([self.batches[i] for i in key]), self._labels(key))
        return self._cache[key]

    def _labels(self, index: tuple[int, ...]) -> Labels:
        frames = [self.frames[i] for i in index]
        t = lambda x: torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=self.dtype, device=self.device)
        ix = lambda xs: torch.as_tensor(np.asarray(xs, dtype=np.int64), device=self.device)
        starts = np.cumsum([0] + [f.n_atoms for f in frames])
        e = [b for b, f in enumerate(frames) if f.energy_eV is not None]
        v = [b for b, f in enumerate(frames) if f.virial_eV is not None]
        fo = [b for b, f in enumerate(frames) if f.forces_eV_A is not None]
        atoms = [np.arange(starts[b], starts[b + 1]) for b in fo]
        return Labels(
            energy_per_atom=t([frames[b].energy_eV / frames[b].n_atoms for b in e]), energy_index=ix(e),
            forces=t(np.concatenate([frames[b].forces_eV_A for b in fo]) if fo else np.zeros((0, 3))),
            force_atoms=ix(np.concatenate(atoms) if atoms else []),
            virial_per_atom=t([frames[b].virial_eV[_VOIGT[0], _VOIGT[1]] / frames[b].n_atoms for b in v]
                              if v else np.zeros((0, 6))),
            virial_index=ix(v))


def squared_errors(model, batch: Batch, labels: Labels, *, virial: bool, create_graph: bool
                   ) -> dict[str, tuple[torch.Tensor, int]]:
    """Sum of squared errors and count of each labelled quantity of one minibatch:
    ``energy`` (eV/atom)², ``forces`` (eV/Å)², ``virial`` (eV/atom)² (only if ``virial``)."""
    out = model.evaluate(batch, stress=virial and labels.virial_index.numel() > 0, create_graph=create_graph)
    n_atoms = batch.n_atoms.to(out.energy.dtype)
    terms = {}
    if labels.energy_index.numel():
        diff = out.energy[labels.energy_index] / n_atoms[labels.energy_index] - labels.energy_per_atom
        terms["energy"] = ((diff ** 2).sum(), int(diff.numel()))
    if labels.force_atoms.numel():
        diff = out.forces[labels.force_atoms] - labels.forces
        terms["forces"] = ((diff ** 2).sum(), int(diff.numel()))
    if out.stress is not None:
        idx = labels.virial_index
        volume = torch.abs(torch.linalg.det(batch.graph["cells"][idx]))
        w = -out.stress[idx] * (volume / n_atoms[idx]).view(-1, 1, 1)
        diff = w[:, _VOIGT[0], _VOIGT[1]] - labels.virial_per_atom
        terms["virial"] = ((diff ** 2).sum(), int(diff.numel()))
    return terms


def weighted_rmse(terms: dict[str, tuple[torch.Tensor, int]], weights) -> torch.Tensor | None:
    """``sum_k w_k sqrt(SSE_k / n_k)`` over the terms present with a positive weight and a
    nonzero error (the square root has no gradient at 0); None when there is none."""
    total = None
    for key, (sse, count) in terms.items():
        w = float(getattr(weights, key))
        if w > 0 and count > 0 and float(sse.detach()) > 0:
            term = w * torch.sqrt(sse / count)
            total = term if total is None else total + term
    return total


def dataset_rmse(model, frames: FrameSet, batch_size: int, virial: bool = True) -> dict[str, float]:
    """Energy (meV/atom), force (meV/Å) and virial (meV/atom) RMSE over every frame of
    ``frames`` (no parameter gradients); NaN for a quantity no frame carries."""
    sums = {k: [0.0, 0] for k in ("energy", "forces", "virial")}
    for start in range(0, len(frames), batch_size):
        batch, labels = frames.batch(range(start, min(start + batch_size, len(frames))))
        terms = squared_errors(model, batch, labels, virial=virial, create_graph=False)
        for key, (sse, count) in terms.items():
            sums[key][0] += float(sse.detach())
            sums[key][1] += count
    rmse = {k: 1000.0 * float(np.sqrt(s / n)) if n else float("nan") for k, (s, n) in sums.items()}
    return {"energy_rmse_meV_atom": rmse["energy"], "force_rmse_meV_A": rmse["forces"],
            "virial_rmse_meV_atom": rmse["virial"]}
