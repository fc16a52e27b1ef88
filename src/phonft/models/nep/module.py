"""The NEP energy as a torch module: descriptors, q_scaler, one tanh layer, optional ZBL.

Atomic energy (Fan et al. 2021, Song et al. 2024)::

    U_i = sum_mu w1[t_i, mu] tanh(sum_d w0[t_i, mu, d] q_d^i s_d - b0[t_i, mu]) - b1

with ``s`` the q_scaler, one network per element for NEP4 (a shared one for NEP3), and
the universal ZBL pair repulsion added below the ``zbl`` cutoffs. Inputs are the pair list
(centre, neighbour, vector ``r_j - r_i`` in Å) of a neighbour list that holds every pair
within the larger cutoff; energies are in eV.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from phonft.models.nep.descriptor import angular_descriptors, radial_functions
from phonft.models.nep.nepfile import NEPParameters, NEPSpec

#: e^2 / (4 pi eps0) in eV Å.
_COULOMB_EV_A = 14.399645
#: Universal ZBL screening function: (amplitude, exponent) pairs (Ziegler, Biersack, Littmark 1985).
_ZBL_TERMS = ((0.18175, 3.19980), (0.50986, 0.94229), (0.28022, 0.40290), (0.02817, 0.20162))
#: Inverse ZBL screening-length constant (1/Å): 1 / 0.46848 rounded to 7 digits, the value
#: calorine's CPUNEP uses (measured black-box from dimer energies, tests/test_nep_model.py);
#: exact 1 / 0.46848 differs by 7.4e-8 relative.
_ZBL_INVERSE_SCREENING = 2.134563


class NEP(torch.nn.Module):
    """A NEP3/NEP4 potential whose parameters are torch parameters (float64 by default)."""

    def __init__(self, spec: NEPSpec, params: NEPParameters | None = None):
        super().__init__()
        self.spec = spec
        params = params or random_parameters(spec, np.random.default_rng(0))
        for name in ("w0", "b0", "w1", "b1", "c_radial", "c_angular"):
            value = torch.as_tensor(np.asarray(getattr(params, name), dtype=np.float64))
            setattr(self, name, torch.nn.Parameter(value.clone()))
        self.register_buffer("q_scaler", torch.as_tensor(np.asarray(params.q_scaler, dtype=np.float64)).clone())
        from ase.data import atomic_numbers

        self.register_buffer("atomic_numbers", torch.tensor([atomic_numbers[s] for s in spec.types]))

    def parameters_numpy(self) -> NEPParameters:
        """The current parameters as float64 arrays (for ``nep.txt``)."""
        get = {n: getattr(self, n).detach().cpu().double().numpy().copy()
               for n in ("w0", "b0", "w1", "b1", "c_radial", "c_angular", "q_scaler")}
        return NEPParameters(**get)

    # ----------------------------------------------------------------- physics
    def descriptors(self, types: torch.Tensor, centre: torch.Tensor, neighbour: torch.Tensor,
                    vectors: torch.Tensor) -> torch.Tensor:
        """Unscaled descriptors per atom, shape (N, dim)."""
        spec, n_atoms = self.spec, types.shape[0]
        r = torch.linalg.vector_norm(vectors, dim=-1)
        pair_type = types[centre] * spec.n_types + types[neighbour]
        radial_pairs = torch.nonzero(r.detach() < spec.cutoff[0]).squeeze(-1)
        g = radial_functions(r[radial_pairs], pair_type[radial_pairs], self.c_radial, spec.cutoff[0])
        radial = g.new_zeros((n_atoms, g.shape[1])).index_add(0, centre[radial_pairs], g)
        ang = torch.nonzero(r.detach() < spec.cutoff[1]).squeeze(-1)
        g_a = radial_functions(r[ang], pair_type[ang], self.c_angular, spec.cutoff[1])
        unit = vectors[ang] / r[ang].unsqueeze(-1)
        angular = angular_descriptors(centre[ang], n_atoms, g_a, unit, spec.l_max)
        return torch.cat([radial, angular], dim=-1)

    def atomic_energies(self, types: torch.Tensor, centre: torch.Tensor, neighbour: torch.Tensor,
                        vectors: torch.Tensor) -> torch.Tensor:
        """Energy of each atom (eV), shape (N,)."""
        q = self.descriptors(types, centre, neighbour, vectors) * self.q_scaler
        energy = q.new_empty(q.shape[0])
        for net in range(self.w0.shape[0]):
            rows = torch.nonzero(types == net).squeeze(-1) if self.w0.shape[0] > 1 else torch.arange(
                q.shape[0], device=q.device)
            hidden = torch.tanh(q[rows] @ self.w0[net].T - self.b0[net])
            energy = energy.index_put((rows,), hidden @ self.w1[net] - self.b1)
        if self.spec.zbl is not None:
            energy = energy + self._zbl(types, centre, neighbour, vectors)
        return energy

    def _zbl(self, types: torch.Tensor, centre: torch.Tensor, neighbour: torch.Tensor,
             vectors: torch.Tensor) -> torch.Tensor:
        """Half the universal ZBL repulsion of each pair, summed on its centre (eV)."""
        inner, outer = self.spec.zbl
        r = torch.linalg.vector_norm(vectors, dim=-1)
        pairs = torch.nonzero(r.detach() < outer).squeeze(-1)
        r = r[pairs]
        zi = self.atomic_numbers[types[centre[pairs]]].to(r.dtype)
        zj = self.atomic_numbers[types[neighbour[pairs]]].to(r.dtype)
        inverse_a = _ZBL_INVERSE_SCREENING * (zi ** 0.23 + zj ** 0.23)
        screening = sum(amp * torch.exp(-exp * r * inverse_a) for amp, exp in _ZBL_TERMS)
        switch = torch.where(r < inner, torch.ones_like(r),
                             0.5 * (1 + torch.cos(math.pi * (r - inner) / (outer - inner))))
        pair = 0.5 * _COULOMB_EV_A * zi * zj / r * screening * switch
        return r.new_zeros(types.shape[0]).index_add(0, centre[pairs], pair)


def random_parameters(spec: NEPSpec, rng: np.random.Generator) -> NEPParameters:
    """Fresh parameters: network weights ~ U(-1, 1)/sqrt(dim) style, expansion coefficients
    ~ U(-1, 1), q_scaler 1 (a training set's statistics replace it before training)."""
    nets, neurons, dim, t = spec.n_networks, spec.n_neurons, spec.dim, spec.n_types
    return NEPParameters(
        w0=rng.uniform(-1, 1, (nets, neurons, dim)) / math.sqrt(dim),
        b0=rng.uniform(-1, 1, (nets, neurons)) / math.sqrt(dim),
        w1=rng.uniform(-1, 1, (nets, neurons)) / math.sqrt(neurons), b1=np.array(0.0),
        c_radial=rng.uniform(-1, 1, (spec.n_max[0] + 1, spec.basis_size[0] + 1, t, t)),
        c_angular=rng.uniform(-1, 1, (spec.n_max[1] + 1, spec.basis_size[1] + 1, t, t)),
        q_scaler=np.ones(dim))
