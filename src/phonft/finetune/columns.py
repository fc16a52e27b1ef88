"""Hessian columns: sampling, and exact (HVP) and finite-difference evaluation.

Column ``c = 3 j + b`` of a supercell Hessian is the response of every atom's force to a
displacement of atom ``j`` along Cartesian ``b``. The trainer draws columns uniformly over
the 3N degrees of freedom of each structure (:func:`sample_columns`), or the 3 columns of
irreducible atoms (``column_sampling: symmetry``, :mod:`phonft.finetune.symmetry`), and
evaluates all of a batch's columns at once, because the batched graph is block-diagonal:

* :func:`hvp_columns`: one Hessian-vector product per column slot for the whole batch,
  all slots in one batched backward pass when there are several (:func:`batched_hvp`);
* :func:`fd_columns`: central differences of forces at ±h (one batched forward pass
  holding the undisplaced and all displaced structures), differentiable in the model's
  parameters. This is what phonopy evaluates.

:mod:`phonft.finetune.objective` chooses between the two and weights the columns' entries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
from ase import Atoms

from phonft.models.base import Batch, Model, Outputs

if TYPE_CHECKING:
    from phonft.finetune.graphs import GraphCache


def sample_columns(n_atoms: Sequence[int], k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` column indices per structure, uniform over its 3N DOFs; shape (B, k)."""
    return np.stack([rng.integers(0, 3 * n, size=k) for n in n_atoms]).astype(int)


def unit_vectors(batch: Batch, cols: np.ndarray, dtype: torch.dtype) -> list[torch.Tensor]:
    """For each column slot, a (N_total, 3) vector with one 1 inside every structure."""
    offsets = np.concatenate([[0], np.cumsum(batch.n_atoms.cpu().numpy())[:-1]])
    n_total = int(batch.n_atoms.sum())
    vs = []
    for slot in range(cols.shape[1]):
        v = torch.zeros(n_total * 3, dtype=dtype, device=batch.n_atoms.device)
        v[torch.as_tensor(offsets * 3 + cols[:, slot], device=v.device)] = 1.0
        vs.append(v.view(n_total, 3))
    return vs


def hvp_columns(model: Model, batch: Batch, cols: np.ndarray, outputs: Outputs, create_graph: bool = True
                ) -> torch.Tensor:
    """Exact Hessian columns, shape (k, N_total, 3) eV/Å²: one HVP per column slot, or, for
    ``k > 1`` slots, one batched HVP (:func:`batched_hvp`)."""
    vs = unit_vectors(batch, cols, outputs.forces.dtype)
    if len(vs) > 1:
        return batched_hvp(model, batch, torch.stack(vs), outputs, create_graph=create_graph)
    return torch.stack([model.hvp(batch, v, outputs, create_graph=create_graph) for v in vs])


def batched_hvp(model: Model, batch: Batch, vs: torch.Tensor, outputs: Outputs, create_graph: bool = True
                ) -> torch.Tensor:
    """``H v`` for a stack ``vs`` of (k, N_total, 3) vectors in one vectorised backward pass
    (``torch.autograd.grad(..., is_grads_batched=True)``), shape (k, N_total, 3).

    Falls back to one :meth:`~phonft.models.base.Model.hvp` per vector where the backend
    cannot: a model whose outputs hold no position tensors, or an autograd graph without
    batching rules (the result is the same, tests/test_finetune_symmetry.py).
    """
    if outputs.positions:
        try:
            grads = torch.autograd.grad(outputs.forces, outputs.positions, grad_outputs=vs, is_grads_batched=True,
                                        create_graph=create_graph, retain_graph=True)
            return -torch.cat(grads, dim=1)
        except (RuntimeError, NotImplementedError):
            pass
    return torch.stack([model.hvp(batch, v, outputs, create_graph=create_graph) for v in vs])


def displaced(structures: Sequence[Atoms], cols: np.ndarray, h: float) -> list[Atoms]:
    """For each column slot and structure, the +h and -h displaced copies (slot-major)."""
    out = []
    for slot in range(cols.shape[1]):
        for atoms, c in zip(structures, cols[:, slot]):
            j, b = divmod(int(c), 3)
            for sign in (1.0, -1.0):
                a = atoms.copy()
                a.positions[j, b] += sign * h
                out.append(a)
    return out


def fd_columns(model: Model, structures: Sequence[Atoms], cols: np.ndarray, h: float, *, stress: bool = False,
               create_graph: bool = True, graphs: "GraphCache | None" = None, reuse: bool = False
               ) -> tuple[torch.Tensor, Batch, Outputs]:
    """Central-difference columns, shape (k, N_total, 3) eV/Å², plus the undisplaced outputs.

    One forward pass evaluates the undisplaced structures and all 2·k·B displaced ones;
    graphs (neighbour lists) are rebuilt for every displaced copy, as phonopy's force
    evaluations would, unless ``graphs`` (a :class:`~phonft.finetune.graphs.GraphCache`)
    holds the structures' graphs and ``reuse`` lets a copy keep its structure's neighbour
    list when no pair crosses a cutoff. Returns the columns, and the undisplaced batch and
    outputs (for the energy, force and stress terms).
    """
    n_struct = len(structures)
    copies = displaced(structures, cols, h)
    if graphs is None:
        everything = model.prepare(list(structures) + copies)
    else:
        owners = [(s, int(cols[s, slot]) // 3) for slot in range(cols.shape[1]) for s in range(n_struct) for _ in "+-"]
        everything = graphs.fd_batch(model, structures, [(s, j, a) for (s, j), a in zip(owners, copies)], reuse)
    out = model.evaluate(everything, stress=stress, create_graph=create_graph)
    n_atoms = everything.n_atoms.tolist()
    per_structure = torch.split(out.forces, n_atoms)
    base_atoms = sum(n_atoms[:n_struct])
    cols_out = []
    for slot in range(cols.shape[1]):
        start = n_struct + 2 * n_struct * slot
        plus = per_structure[start:start + 2 * n_struct:2]
        minus = per_structure[start + 1:start + 2 * n_struct:2]
        cols_out.append(torch.cat([-(p - m) / (2.0 * h) for p, m in zip(plus, minus)]))
    base = Batch(n_atoms=everything.n_atoms[:n_struct], graph=None)
    base_out = Outputs(energy=out.energy[:n_struct], forces=out.forces[:base_atoms],
                       stress=None if out.stress is None else out.stress[:n_struct], positions=[])
    return torch.stack(cols_out), base, base_out

