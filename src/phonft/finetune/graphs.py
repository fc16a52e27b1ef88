"""Cached neighbour graphs of the phonon structures, and their reuse for the ±h copies.

The phonon training and validation structures never move, so the backend's prepared
graph of each (CHGNet crystal graphs, MACE ``AtomicData``, NEP neighbour lists) is built
once and kept (``graph_cache: true``, :func:`cache_for`). A cached graph is the very
graph :meth:`~phonft.models.base.Model.prepare` would build, so the outputs, and the
trained weights, are bitwise those of fresh graphs; the backends hand every batch fresh
position leaves (:meth:`~phonft.models.base.Model.collate`), so nothing the autograd of a
step touches is shared between steps.

In ``column: fd`` the ±h copies differ from their structure in one atom's position. With
``fd_graph_reuse: true`` a copy takes its structure's neighbour list with the new
position (:meth:`~phonft.models.base.Model.moved_item`) unless a pair of the displaced
atom crosses one of the backend's cutoffs (:meth:`~phonft.models.base.Model.graph_cutoffs`:
CHGNet's atom-graph and bond-graph cutoffs, MACE's ``r_max``) within ``1e-6`` Å
(:func:`crosses_cutoff`); then it is rebuilt. The reused graph holds the same pairs as a
fresh one, possibly in another order, so outputs agree to rounding (1e-10 in float64)
but not bitwise: hence opt-in.
"""

from __future__ import annotations

import hashlib
import weakref
from typing import Any, Sequence

import numpy as np
from ase import Atoms

from phonft.models.base import Batch, Model

#: Margin (Å) within which a distance counts as on a cutoff (the graph is rebuilt).
CUTOFF_TOL_A = 1e-6


def structure_key(atoms: Atoms) -> str:
    """A digest of what a graph depends on: numbers, cell, positions and pbc (exact bytes)."""
    h = hashlib.sha1()
    for arr in (atoms.numbers.astype(np.int64), np.asarray(atoms.cell.array, dtype=np.float64),
                np.asarray(atoms.positions, dtype=np.float64), np.asarray(atoms.pbc, dtype=bool)):
        h.update(np.ascontiguousarray(arr).tobytes())
        h.update(b"|")
    return h.hexdigest()


def crosses_cutoff(atoms: Atoms, j: int, delta: np.ndarray, cutoffs: Sequence[float],
                   tol: float = CUTOFF_TOL_A) -> bool:
    """Whether moving atom ``j`` by ``delta`` (Å) takes a pair of ``j`` (any periodic image)
    across, or to within ``tol`` of, one of ``cutoffs`` (Å)."""
    cell = np.asarray(atoms.cell.array, dtype=float)
    frac = np.linalg.solve(cell.T, (atoms.positions - atoms.positions[j]).T).T
    frac -= np.round(frac)
    others = np.arange(len(atoms)) != j  # j's own images move with it
    frac = frac[others]
    normals = np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]])
    widths = abs(np.linalg.det(cell)) / np.linalg.norm(normals, axis=1)
    reach = max(cutoffs) + float(np.linalg.norm(delta)) + tol
    n = np.ceil(reach / widths + 0.5).astype(int)
    grid = np.stack(np.meshgrid(*[np.arange(-k, k + 1) for k in n], indexing="ij"), -1).reshape(-1, 3)
    vectors = (frac[None, :, :] + grid[:, None, :]) @ cell
    d_old = np.linalg.norm(vectors, axis=-1)
    d_new = np.linalg.norm(vectors - np.asarray(delta, dtype=float), axis=-1)
    for c in cutoffs:
        if np.any((d_old < c) != (d_new < c)) or np.any(np.abs(d_old - c) <= tol) or np.any(np.abs(d_new - c) <= tol):
            return True
    return False


class GraphCache:
    """Prepared per-structure graphs of one model, keyed by :func:`structure_key` (and the
    model's dtype, device and cutoffs). ``stats`` counts hits, builds, and, under reuse,
    the fd copies that reused their structure's neighbour list and those rebuilt (a crossing)."""

    def __init__(self) -> None:
        self._items: dict[tuple, Any] = {}
        self.stats = {"hits": 0, "built": 0, "fd_reused": 0, "fd_rebuilt": 0}

    def _key(self, model: Model, atoms: Atoms) -> tuple:
        return (model.backend, model.dtype_name, str(model.device), model.graph_cutoffs(), structure_key(atoms))

    def items(self, model: Model, structures: Sequence[Atoms]) -> list:
        """The prepared graph of each structure, built once."""
        keys = [self._key(model, a) for a in structures]
        missing = [i for i, k in enumerate(keys) if k not in self._items]
        for i, item in zip(missing, model.prepare_items([structures[i] for i in missing]) if missing else []):
            self._items[keys[i]] = item
        self.stats["built"] += len(missing)
        self.stats["hits"] += len(keys) - len(missing)
        return [self._items[k] for k in keys]

    def prepare(self, model: Model, structures: Sequence[Atoms]) -> Batch:
        """What ``model.prepare(structures)`` returns, from cached graphs."""
        return model.collate(self.items(model, structures))

    def fd_batch(self, model: Model, structures: Sequence[Atoms], copies: Sequence[tuple[int, int, Atoms]],
                 reuse: bool) -> Batch:
        """The batch of ``structures`` followed by their displaced ``copies`` (structure
        index, displaced atom, copy): the structures from the cache; each copy from its
        structure's graph (``reuse``, when no pair crosses a cutoff) or built afresh."""
        base = self.items(model, structures)
        cutoffs = model.graph_cutoffs() if reuse else None
        out, fresh = list(base), []
        for s, j, atoms in copies:
            delta = atoms.positions[j] - structures[s].positions[j]
            if cutoffs and not crosses_cutoff(structures[s], j, delta, cutoffs):
                out.append(model.moved_item(base[s], atoms))
                self.stats["fd_reused"] += 1
            else:
                fresh.append(len(out))
                out.append(atoms)
                self.stats["fd_rebuilt"] += bool(cutoffs)
        if fresh:
            for i, item in zip(fresh, model.prepare_items([out[i] for i in fresh])):
                out[i] = item
        return model.collate(out)


_CACHES: "weakref.WeakKeyDictionary[Model, GraphCache]" = weakref.WeakKeyDictionary()


def cache_for(model: Model) -> GraphCache:
    """The graph cache of ``model`` (one per model object; it goes when the model goes)."""
    cache = _CACHES.get(model)
    if cache is None:
        cache = _CACHES[model] = GraphCache()
    return cache
