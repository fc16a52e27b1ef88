"""Replay that does not undo the phonon loss (issue: pseudo-labels away from the phonon structures).

The toy pair-spring model (``phonft_testdata.pair_springs``) has one stiffness per element
pair, so the argument is exact: rattled copies of the training structure labelled by the
base model carry F ~ -H_base u, and their replay loss pulls the training structure's
stiffness back to the base value, while replay on structures of other compositions has no
gradient on it at all.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk
from phonft_testdata import pair_springs

from phonft.finetune.data import PhononSample, ReplaySample
from phonft.finetune.replay import label, perturbed_copies
from phonft.finetune.settings import REPLAY_WEIGHTS, LossWeights, ReplaySettings, TrainSettings
from phonft.finetune.objective import phonon_objective, replay_objective

R0 = {"Si-Si": 5.43 * 3**0.5 / 4, "Ge-Ge": 5.66 * 3**0.5 / 4, "C-Si": 4.36 * 3**0.5 / 4}
BASE = {"Si-Si": 10.0, "Ge-Ge": 8.0, "C-Si": 20.0}


def _model(k_si: float):
    return pair_springs({**BASE, "Si-Si": k_si}, R0)


def _fc(model, atoms) -> np.ndarray:
    """Full (N, N, 3, 3) Hessian of the toy model by Hessian-vector products (eV/Å²)."""
    n = len(atoms)
    batch = model.prepare([atoms])
    out = model.evaluate(batch, create_graph=True)
    fc = np.zeros((n, n, 3, 3))
    for c in range(3 * n):
        v = torch.zeros(n, 3, dtype=torch.float64)
        v.view(-1)[c] = 1.0
        j, b = divmod(c, 3)
        fc[:, j, :, b] = model.hvp(batch, v, out, create_graph=False).detach().numpy()
    return fc


def _frames(cells, model, seed=1) -> list[ReplaySample]:
    settings = ReplaySettings(copies=4, rattle_std_A=0.05, strain_max=0.0, min_atoms=8, seed=seed)
    rng = np.random.default_rng(seed)
    atoms = [a for cell in cells for a in perturbed_copies(cell, settings, rng)]
    return [ReplaySample(a, a.info["REF_energy"], a.arrays["REF_forces"], None) for a in label(atoms, model)]


@pytest.fixture(scope="module")
def toy():
    """Si (64-atom supercell, like mp-149's) with a DFT stiffness 30% above the base model's.

    The size matters: the Hessian MAE averages over all 3N entries of a column, most of them
    zero beyond the cutoff, so its gradient per parameter shrinks as 1/N, while a replay
    force loss on rattled copies does not.
    """
    si = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    dft = _fc(_model(13.0), si)
    sample = PhononSample("Si", si, dft, si.get_all_distances(mic=True), np.array([0]),
                          forces_eV_A=np.zeros((len(si), 3)), stress_eV_A3=None)
    base = _model(10.0)
    same = _frames([bulk("Si", "diamond", a=5.43)], base)
    disjoint = _frames([bulk("Ge", "diamond", a=5.66), bulk("SiC", "zincblende", a=4.36)], base)
    return sample, same, disjoint


def _d_dk(k_si: float, sample, replay, replay_steps: int) -> tuple[float, float]:
    """d/dk_SiSi of the phonon loss and of ``replay_steps`` replay losses, at stiffness ``k_si``."""
    model = _model(k_si)
    settings = TrainSettings(column="hvp", columns_per_structure=3, phonon_weights=LossWeights(stress=0.0))
    cols = np.array([[0, 1, 2]])  # the three columns of atom 0 (every atom is equivalent)
    k = model.module.k["Si-Si"]
    (g_p,) = torch.autograd.grad(phonon_objective(model, [sample], cols, settings).loss, k)
    if not replay_steps:
        return float(g_p), 0.0
    loss = replay_objective(model, replay, REPLAY_WEIGHTS).loss
    (g_r,) = torch.autograd.grad(loss, k, allow_unused=True)
    return float(g_p), replay_steps * (0.0 if g_r is None else float(g_r))


def test_replay_on_training_structures_cancels_the_hessian_gradient(toy):
    sample, same, disjoint = toy
    # Halfway from the base (10) to DFT (13): the phonon loss pushes the stiffness up...
    g_p, g_same = _d_dk(11.5, sample, same, 4)
    assert g_p < 0
    # ...replay on rattled copies of Si labelled by the base model pushes it back down, harder.
    assert g_same > 0 and g_p + g_same > 0
    # Replay on other compositions has no gradient at all on the Si-Si stiffness.
    assert _d_dk(11.5, sample, disjoint, 4)[1] == 0.0


def _stationary_stiffness(sample, replay) -> float:
    """The Si-Si stiffness where the phonon step plus 4 replay steps stop moving it (bisection)."""
    lo, hi = 10.0, 13.0
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        g_p, g_r = _d_dk(mid, sample, replay, 4)
        lo, hi = (mid, hi) if g_p + g_r < 0 else (lo, mid)
    return 0.5 * (lo + hi)


def test_training_replay_pins_the_stiffness_near_the_base_and_disjoint_replay_does_not(toy):
    sample, same, disjoint = toy
    k_same = _stationary_stiffness(sample, same)
    k_disjoint = _stationary_stiffness(sample, disjoint)
    # With the default weights, co-training on the training structures keeps less than a
    # quarter of the correction toward DFT; disjoint replay leaves the DFT optimum in place.
    assert (k_same - 10.0) / 3.0 < 0.25, k_same
    assert k_disjoint == pytest.approx(13.0, abs=1e-6)
