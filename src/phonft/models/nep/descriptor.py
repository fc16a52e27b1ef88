"""NEP descriptors from pair vectors, written from the published formalism.

Fan et al., Phys. Rev. B 104, 104309 (2021) (NEP), J. Chem. Phys. 157, 114801 (2022)
(NEP3) and Song et al., Nat. Commun. 15, 10208 (2024) (NEP4); and GPUMD's user
documentation of ``nep.in``/``nep.txt``. Every function takes the pair vectors
``r_ij = r_j - r_i`` (Å) of a neighbour list, so energies are differentiable in positions
(forces, Hessian-vector products) and in strain (virials).

Radial functions (cutoff ``r_c``, basis size ``N``)::

    f_c(r)   = (1 + cos(pi r / r_c)) / 2                      for r < r_c, else 0
    f_k(r)   = (T_k(2 (r / r_c - 1)^2 - 1) + 1) / 2 * f_c(r)     k = 0..N   (Chebyshev T_k)
    g_n(r)   = sum_k c[n, k, t_i, t_j] f_k(r)                    n = 0..n_max

Descriptor components of atom i, in the order ``nep.txt``'s q_scaler lists them:

* radial ``q_n = sum_j g_n(r_ij)``;
* three-body, for l = 1..l_max: ``q_nl = sum_m A_nlm^2`` with
  ``A_nlm = sum_j g_n(r_ij) Z_lm(r_ij/r_ij)``, where the real harmonics ``Z_lm`` are
  normalised so that ``sum_m Z_lm(a) Z_lm(b) = P_l(a.b)`` (so ``q_nl`` is
  ``sum_jk g_n g_n P_l(cos theta_ijk)``, j = k included);
* four-body (l = 2): the cubic invariant of ``A_n2m``, ``tr T^3`` of the symmetric
  traceless tensor ``T = sum_j g_n(r_ij) (3 r r^T - I) / 2``;
* five-body (l = 1): ``(sum_m A_n1m^2)^2``.

The constant factors GPUMD's descriptors carry relative to these invariants
(:data:`FOUR_BODY_FACTOR`, :data:`FIVE_BODY_FACTOR`, :data:`THREE_BODY_FACTORS`) were
measured against calorine's ``get_descriptors`` (tests/test_nep_model.py keeps the check).
"""

from __future__ import annotations

import math

import torch

#: GPUMD's three-body component for l relative to ``sum_m A_nlm^2``: (2l + 1) / (4 pi), that
#: is ``sum_m |sum_j g_n Y_lm|^2`` with unit-normalised harmonics (index l - 1).
THREE_BODY_FACTORS = tuple((2 * l + 1) / (4 * math.pi) for l in range(1, 5))
#: GPUMD's four-body component relative to ``tr T^3``: -(5 / (4 pi))^(3/2) sqrt(32/315).
FOUR_BODY_FACTOR = -(5 / (4 * math.pi)) ** 1.5 * math.sqrt(32 / 315)
#: GPUMD's five-body component relative to ``(sum_m A_n1m^2)^2``: (3 / (4 pi))^2 7/15.
FIVE_BODY_FACTOR = 21 / (80 * math.pi ** 2)


def cutoff_function(r: torch.Tensor, rc: float) -> torch.Tensor:
    """``(1 + cos(pi r / rc)) / 2`` inside the cutoff, 0 beyond it."""
    inside = r < rc
    return torch.where(inside, 0.5 * (1.0 + torch.cos(math.pi * r / rc)), torch.zeros_like(r))


def radial_basis(r: torch.Tensor, rc: float, basis_size: int) -> torch.Tensor:
    """``f_k(r)`` for k = 0..basis_size, shape (P, basis_size + 1)."""
    x = 2.0 * (r / rc - 1.0) ** 2 - 1.0
    terms = [torch.ones_like(x), x]
    for _ in range(2, basis_size + 1):
        terms.append(2.0 * x * terms[-1] - terms[-2])
    chebyshev = torch.stack(terms[:basis_size + 1], dim=-1)
    return 0.5 * (chebyshev + 1.0) * cutoff_function(r, rc).unsqueeze(-1)


def radial_functions(r: torch.Tensor, pair_type: torch.Tensor, coefficients: torch.Tensor, rc: float
                     ) -> torch.Tensor:
    """``g_n(r)`` per pair, shape (P, n_max + 1).

    ``coefficients`` has shape (n_max + 1, N + 1, T, T) (centre type, neighbour type);
    ``pair_type`` is ``t_i * T + t_j`` per pair.
    """
    n1, k1, t, _ = coefficients.shape
    basis = radial_basis(r, rc, k1 - 1)
    per_pair = coefficients.permute(2, 3, 0, 1).reshape(t * t, n1, k1)[pair_type]
    return torch.einsum("pnk,pk->pn", per_pair, basis)


def real_harmonics(u: torch.Tensor, l_max: int) -> list[torch.Tensor]:
    """Real spherical harmonics of unit vectors ``u`` (P, 3) for l = 1..l_max (at most 4),
    scaled so that ``sum_m Z_lm(a) Z_lm(b) = P_l(a.b)``; entry l-1 has shape (P, 2l+1)."""
    if l_max > 4:
        raise ValueError(f"l_max of the three-body descriptor is at most 4, not {l_max}")
    x, y, z = u.unbind(-1)
    x2, y2, z2 = x * x, y * y, z * z
    s3, s15, s6, s10, s5, s70, s35 = (math.sqrt(v) for v in (3, 15, 6, 10, 5, 70, 35))
    out = [torch.stack([y, z, x], -1)]
    if l_max >= 2:
        out.append(torch.stack([s3 * x * y, s3 * y * z, 0.5 * (3 * z2 - 1), s3 * x * z, 0.5 * s3 * (x2 - y2)], -1))
    if l_max >= 3:
        out.append(torch.stack([
            s10 / 4 * (3 * x2 - y2) * y, s15 * x * y * z, s6 / 4 * y * (5 * z2 - 1), 0.5 * (5 * z2 - 3) * z,
            s6 / 4 * x * (5 * z2 - 1), s15 / 2 * (x2 - y2) * z, s10 / 4 * (x2 - 3 * y2) * x], -1))
    if l_max >= 4:
        out.append(torch.stack([
            s35 / 2 * x * y * (x2 - y2), s70 / 4 * (3 * x2 - y2) * y * z, s5 / 2 * x * y * (7 * z2 - 1),
            s10 / 4 * y * z * (7 * z2 - 3), (35 * z2 * z2 - 30 * z2 + 3) / 8, s10 / 4 * x * z * (7 * z2 - 3),
            s5 / 4 * (x2 - y2) * (7 * z2 - 1), s70 / 4 * (x2 - 3 * y2) * x * z,
            s35 / 8 * (x2 * x2 - 6 * x2 * y2 + y2 * y2)], -1))
    return out


def _traceless_tensor(a2: torch.Tensor) -> torch.Tensor:
    """The symmetric traceless 3x3 tensor ``sum_j g (3 r r^T - I) / 2`` from its l = 2
    components ``a2`` (..., 5) in :func:`real_harmonics`' order."""
    xy, yz, zz, xz, d = a2.unbind(-1)
    h = math.sqrt(3.0) / 2.0
    xx, yy = (-zz + math.sqrt(3.0) * d) / 2.0, (-zz - math.sqrt(3.0) * d) / 2.0
    rows = [torch.stack([xx, h * xy, h * xz], -1), torch.stack([h * xy, yy, h * yz], -1),
            torch.stack([h * xz, h * yz, zz], -1)]
    return torch.stack(rows, -2)


def angular_descriptors(centre: torch.Tensor, n_atoms: int, g: torch.Tensor, unit: torch.Tensor,
                        l_max: tuple[int, int, int]) -> torch.Tensor:
    """Three-, four- and five-body components per atom, shape (n_atoms, (n_max+1) * L).

    ``g`` (P, n_max + 1) are the angular radial functions of the pairs whose centres are
    ``centre`` (P,), ``unit`` their unit vectors; ``l_max`` is (l_3body, l_4body, l_5body)
    with l_4body 0 or 2 and l_5body 0 or 1. Components run l-major: all n for l = 1, then
    all n for l = 2, ..., then the four-body and five-body blocks.
    """
    l3, l4, l5 = l_max
    harmonics = real_harmonics(unit, max(l3, 2 if l4 else 1))
    stacked = torch.cat(harmonics, dim=-1)  # (P, sum_l 2l+1)
    moments = g.new_zeros((n_atoms, g.shape[1], stacked.shape[1]))
    moments = moments.index_add(0, centre, g.unsqueeze(-1) * stacked.unsqueeze(1))
    blocks, start = [], 0
    per_l = []
    for l in range(1, len(harmonics) + 1):
        per_l.append(moments[..., start:start + 2 * l + 1])
        start += 2 * l + 1
    for l in range(1, l3 + 1):
        blocks.append(THREE_BODY_FACTORS[l - 1] * (per_l[l - 1] ** 2).sum(-1))
    if l4:
        t = _traceless_tensor(per_l[1])
        blocks.append(FOUR_BODY_FACTOR * torch.einsum("...ij,...jk,...ki->...", t, t, t))
    if l5:
        blocks.append(FIVE_BODY_FACTOR * (per_l[0] ** 2).sum(-1) ** 2)
    return torch.cat(blocks, dim=-1)


def descriptor_size(n_max: tuple[int, int], l_max: tuple[int, int, int]) -> int:
    """Components per atom: (n_R + 1) + (n_A + 1) * (l_3 + [l_4 > 0] + [l_5 > 0])."""
    return n_max[0] + 1 + (n_max[1] + 1) * (l_max[0] + int(l_max[1] > 0) + int(l_max[2] > 0))
