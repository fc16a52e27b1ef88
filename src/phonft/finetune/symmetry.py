"""Symmetry-aware Hessian column sampling (``column_sampling: symmetry``), unbiased for the
full-Hessian loss.

**Setting.** A supercell with ``N`` atoms has space group ``G`` (spglib, on the supercell
itself, so ``G`` holds the primitive translations too). An operation ``g = (R_g | t_g)``
maps atom ``j`` to ``g(j)``; ``R_g`` is its Cartesian rotation. Force constants of a
symmetric structure obey ``Φ_{g(i) g(j)} = R_g Φ_{ij} R_gᵀ`` (3×3 blocks), for DFT and for
any rotation-equivariant model alike, so the residual block ``D_ij = P_ij - Φ_ij`` (model
minus reference) does too. The atoms fall into orbits ``O_r`` (representative ``r``,
multiplicity ``m_r = |O_r|``).

**Full-Hessian loss** of one structure, with elementwise loss ``ρ`` (``|·|`` or Huber) and
atom weights ``a_ij = a(d_ij)`` of ``hessian_norm`` (1 for ``plain``; a function of the
minimum-image distance, hence ``a_{g(i) g(j)} = a_ij``)::

    L = Σ_j Σ_i a_ij Σ_ab ρ(D_ij)_ab  /  (9 Σ_j A_j),      A_j = Σ_i a_ij

(every entry of all ``3N`` columns; for ``plain`` the mean over the ``9N²`` entries).

**Orbit average.** For ``j' = g(j)``: ``Σ_i a_{i j'} Σ_ab ρ(D_{i j'})_ab = Σ_i a_ij Σ_ab
ρ(R_g D_ij R_gᵀ)_ab`` (relabel ``i -> g(i)``). ``ρ`` acts on Cartesian components, so this
is *not* the representative's own term: the three columns of ``r`` must be rotated. Every
orbit member is reached by the same number ``|G|/m_r`` of operations, and the operations
with one rotation form a coset of the translations, so the orbit's mean term is the mean
over the point group ``𝒫`` (the distinct ``R_g``) of the rotated representative block::

    S_r = (1/|𝒫|) Σ_{R∈𝒫} Σ_i a_ir Σ_ab ρ(R D_ir Rᵀ)_ab = (1/m_r) Σ_{j∈O_r} Σ_i a_ij Σ_ab ρ(D_ij)_ab

It needs only the 3 columns of ``r`` (one batched HVP, or 6 displaced copies for ``fd``).
``A_j`` is constant on an orbit. A rotation that is a signed permutation of the axes (all
of a cubic, tetragonal or orthorhombic crystal's, in its conventional frame) only permutes
the entries and flips their signs, and rotations of the site's own stabiliser map the
column block onto itself, so there the average changes nothing; it matters for the 3- and
6-fold axes of hexagonal and trigonal frames (e.g. Al2O3's O sites), where the
representative's own columns alone would be a biased estimate.

**Estimator.** Draw ``r`` uniformly over the ``n_irr`` irreducible atoms (``p_r = 1/n_irr``)
and weight it by the orbit's share over the draw probability, ``q_r = (m_r/N) / p_r``::

    L̂ = q_r S_r / (9 Ā),   Ā = (1/N) Σ_j A_j = (1/N) Σ_r m_r A_r      (N for plain)

``E[L̂] = Σ_r p_r q_r S_r / (9 Ā) = Σ_r m_r S_r / (9 N Ā) = L``. A batch pools its
structures and slots as uniform sampling does, numerators over denominators
(``Σ q S / Σ 9 Ā``), so both target the same quantity, ``Σ_s Ā_s L_s / Σ_s Ā_s``
(for ``plain``, the atom-weighted mean of the structures' full-Hessian losses), and the
logged ``hessian_mae`` is the same estimator with ``ρ = |·|``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from ase import Atoms

#: spglib tolerance of the supercell symmetry (Å), phonopy's default.
SYMPREC = 1e-5


@dataclass(frozen=True)
class SiteSymmetry:
    """Orbits and Cartesian point-group rotations of a supercell.

    ``representatives`` (n_irr,) atom indices, ``multiplicities`` (n_irr,) orbit sizes,
    ``rotations`` (|𝒫|, 3, 3) the distinct Cartesian rotations of the space group.
    """

    representatives: np.ndarray
    multiplicities: np.ndarray
    rotations: np.ndarray

    @property
    def n_atoms(self) -> int:
        return int(self.multiplicities.sum())


def site_symmetry(atoms: Atoms, symprec: float = SYMPREC) -> SiteSymmetry:
    """The :class:`SiteSymmetry` of ``atoms`` (spglib on the supercell itself)."""
    import spglib

    cell = (np.asarray(atoms.cell), atoms.get_scaled_positions(), atoms.numbers)
    data = spglib.get_symmetry_dataset(cell, symprec=symprec)
    equivalent = np.asarray(data.equivalent_atoms if hasattr(data, "equivalent_atoms") else data["equivalent_atoms"])
    reps, counts = np.unique(equivalent, return_counts=True)
    rots = np.unique(np.asarray(data.rotations if hasattr(data, "rotations") else data["rotations"]), axis=0)
    lt = np.asarray(atoms.cell).T  # columns are the lattice vectors
    cart = np.einsum("xa,rab,by->rxy", lt, rots, np.linalg.inv(lt))
    return SiteSymmetry(reps.astype(int), counts.astype(int), cart)


def sample_atoms(symmetries: Sequence[SiteSymmetry], k: int, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``k`` irreducible atoms per structure, uniform over its orbits: the column indices of
    their 3 Cartesian columns, shape (B, 3k) (slot ``t``'s at ``3t..3t+2``), and the orbit
    indices drawn, shape (B, k)."""
    draws = np.stack([rng.integers(0, len(s.representatives), size=k) for s in symmetries]).astype(int)
    atoms = np.stack([s.representatives[d] for s, d in zip(symmetries, draws)])
    cols = (3 * atoms[:, :, None] + np.arange(3)[None, None, :]).reshape(len(symmetries), 3 * k)
    return cols, draws


def _rho(pred: torch.Tensor, ref: torch.Tensor, huber_delta: float | None) -> torch.Tensor:
    if huber_delta is None:
        return torch.abs(pred - ref)
    return torch.nn.functional.huber_loss(pred, ref, reduction="none", delta=huber_delta)


def orbit_column_loss(pred: torch.Tensor, ref: torch.Tensor, symmetries: Sequence[SiteSymmetry],
                      draws: np.ndarray, n_atoms: Sequence[int], atom_weights: np.ndarray | None,
                      mean_weight: Sequence[float] | None = None, huber_delta: float | None = None) -> torch.Tensor:
    """The estimator ``Σ q_r S_r / Σ 9 Ā`` of a batch (see the module docstring).

    ``pred`` and ``ref``: columns (3k, N_total, 3) in the layout of :func:`sample_atoms`;
    ``atom_weights``: (3k, N_total, 1) or None (``plain``); ``mean_weight``: ``Ā`` of each
    structure (None: ``N``, ``plain``).
    """
    offsets = np.concatenate([[0], np.cumsum(n_atoms)])
    num = pred.new_zeros(())
    den = 0.0
    for s, sym in enumerate(symmetries):
        rows = slice(int(offsets[s]), int(offsets[s + 1]))
        n = n_atoms[s]
        rot = torch.as_tensor(sym.rotations, dtype=pred.dtype, device=pred.device)
        a_bar = float(n if mean_weight is None else mean_weight[s])
        for t, d in enumerate(draws[s]):
            blk = slice(3 * t, 3 * t + 3)
            p = pred[blk, rows].permute(1, 2, 0)  # (N, a, b)
            r = ref[blk, rows].permute(1, 2, 0)
            err = _rho(torch.einsum("kxa,iab,kyb->kixy", rot, p, rot),
                       torch.einsum("kxa,iab,kyb->kixy", rot, r, rot), huber_delta)
            per_atom = err.sum(dim=(2, 3)).mean(dim=0)  # (N,): S_r's terms before the atom weights
            if atom_weights is not None:
                w = torch.as_tensor(atom_weights[3 * t, rows, 0], dtype=pred.dtype, device=pred.device)
                per_atom = per_atom * w
            q = sym.multiplicities[d] * len(sym.representatives) / n
            num = num + q * per_atom.sum()
            den += 9.0 * a_bar
    return num / den
