"""Initialisation of a NEP before training: q_scaler, max_neighbors and the energy shift.

* ``q_scaler``: ``1 / (max - min)`` of each unscaled descriptor component over the
  training set (GPUMD's convention); a component that does not vary keeps 1.
* ``max_neighbors``: the most neighbours any training atom has within the radial and the
  angular cutoff, written into the spec (``nep.txt``'s ``cutoff`` line).
* The per-element energy shift, encoded exactly in the NEP's own parameters. NEP4 has one
  network per element and a single shared output bias ``b1``; so each element's network
  gives up its first neuron to a constant: ``w0[t, 0] = 0`` and ``b0[t, 0] = -atanh(1/2)``
  make it output ``tanh(atanh(1/2)) = 1/2`` for any environment, and ``w1[t, 0] =
  2 (e_t - ē)`` with ``b1 = -ē`` (ē the mean of the e_t) add exactly ``e_t`` to every atom
  of element t. The neuron stays trainable (its gradient is ``w1 (1 - 1/4) q``, not 0).
  The shifts e_t are the least-squares solution (minimum norm where the compositions do
  not determine them) of ``sum_t N_t(frame) e_t = E_ref - E_model`` over the frames with
  an energy, ``E_model`` being the network with those neurons switched off, so the
  initial energy error is the smallest any per-element constant gives. NEP3 (one shared
  network) gets one shift through ``b1``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np
import torch

from phonft.finetune.gnep.frames import LabelledFrame
from phonft.models.base import Batch

#: Pre-activation bias of the constant neuron: tanh(-b0) = 1/2.
CONSTANT_NEURON_B0 = -math.atanh(0.5)


def pair_vectors(batch: Batch) -> torch.Tensor:
    """``r_j - r_i + S cell`` of every pair of a NEP batch (Å)."""
    g = batch.graph
    shifts = torch.einsum("pa,pab->pb", g["shifts"], g["cells"][g["pair_structure"]])
    return g["positions"][g["neighbour"]] - g["positions"][g["centre"]] + shifts


def _descriptor_ranges(model, batches: Sequence[Batch]) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Per-component min and max of the unscaled descriptors, and the neighbour maxima."""
    lo, hi, most = None, None, [0, 0]
    spec = model.module.spec
    with torch.no_grad():
        for b in batches:
            g = b.graph
            vectors = pair_vectors(b)
            q = model.module.descriptors(g["types"], g["centre"], g["neighbour"], vectors).cpu().numpy()
            lo = q.min(0) if lo is None else np.minimum(lo, q.min(0))
            hi = q.max(0) if hi is None else np.maximum(hi, q.max(0))
            r = torch.linalg.vector_norm(vectors, dim=-1)
            n_atoms = int(b.n_atoms.sum())
            for k, rc in enumerate(spec.cutoff):
                counts = torch.bincount(g["centre"][r < rc], minlength=n_atoms)
                most[k] = max(most[k], int(counts.max()) if counts.numel() else 0)
    return lo, hi, (most[0], most[1])


def q_scaler_from(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``1 / (hi - lo)``, 1 where a component's range is zero (or below 1e-12 of its size)."""
    span = hi - lo
    flat = span <= 1e-12 * np.maximum(1.0, np.maximum(np.abs(hi), np.abs(lo)))
    return np.where(flat, 1.0, 1.0 / np.where(flat, 1.0, span))


def _energies(model, batches: Sequence[Batch]) -> np.ndarray:
    with torch.no_grad():
        out = []
        for b in batches:
            g = b.graph
            per_atom = model.module.atomic_energies(g["types"], g["centre"], g["neighbour"], pair_vectors(b))
            out.append(float(per_atom.sum()))
    return np.array(out)


def _fit_shift(model, frames: Sequence[LabelledFrame], batches: Sequence[Batch]) -> np.ndarray:
    """Per-network energy shifts e (eV/atom): least squares of counts @ e = E_ref - E_model."""
    module = model.module
    with_energy = [i for i, f in enumerate(frames) if f.energy_eV is not None]
    nets = module.w0.shape[0]
    if not with_energy:
        return np.zeros(nets)
    index = {s: t for t, s in enumerate(module.spec.types)}
    counts = np.zeros((len(with_energy), nets))
    for row, i in enumerate(with_energy):
        for symbol in frames[i].atoms.get_chemical_symbols():
            counts[row, index[symbol] if nets > 1 else 0] += 1
    residual = np.array([frames[i].energy_eV for i in with_energy]) - _energies(model, [batches[i] for i in
                                                                                         with_energy])
    return np.linalg.lstsq(counts, residual, rcond=None)[0]


def _set_shift(module, shift: np.ndarray) -> None:
    """Encode ``shift`` (per network, eV/atom) exactly (module docstring)."""
    with torch.no_grad():
        if module.w0.shape[0] == 1:
            module.b1.sub_(float(shift[0]))
            return
        mean = float(np.mean(shift))
        module.w1[:, 0] = torch.as_tensor(2.0 * (shift - mean), dtype=module.w1.dtype)
        module.b1.fill_(-mean)


def _switch_off_constant_neurons(module) -> None:
    """NEP4: neuron 0 of every network becomes the constant 1/2 with output weight 0, b1 = 0."""
    if module.w0.shape[0] == 1:
        return
    with torch.no_grad():
        module.w0[:, 0, :] = 0.0
        module.b0[:, 0] = CONSTANT_NEURON_B0
        module.w1[:, 0] = 0.0
        module.b1.fill_(0.0)


def initialise(model, frames: Sequence[LabelledFrame]) -> dict:
    """Set q_scaler, max_neighbors and the per-element energy shift from ``frames``
    (module docstring); returns what was set, for ``train.json``."""
    from phonft.finetune.gnep.data import FrameSet

    module = model.module
    batches = FrameSet.build(model, frames).batches
    lo, hi, most = _descriptor_ranges(model, batches)
    scaler = q_scaler_from(lo, hi)
    module.q_scaler.copy_(torch.as_tensor(scaler, dtype=module.q_scaler.dtype))
    module.spec = dataclasses.replace(module.spec, max_neighbors=most)
    _switch_off_constant_neurons(module)
    shift = _fit_shift(model, frames, batches)
    _set_shift(module, shift)
    names = module.spec.types if module.w0.shape[0] > 1 else ("all",)
    return {"q_scaler": scaler.tolist(), "descriptor_min": lo.tolist(), "descriptor_max": hi.tolist(),
            "max_neighbors": list(most), "energy_shift_eV_atom": dict(zip(names, map(float, shift))),
            "b1": float(module.b1.detach()), "constant_neuron": 0 if module.w0.shape[0] > 1 else None}
