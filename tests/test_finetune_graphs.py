"""Cached neighbour graphs (issue 14): a cached graph gives bitwise the outputs and the
trained weights of a fresh one, and the fd ±h copies that reuse their structure's
neighbour list equal fresh graphs to 1e-10 (float64), with the copies whose pairs cross a
cutoff rebuilt."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.neighborlist import neighbor_list

from phonft.finetune.columns import displaced, fd_columns, sample_columns
from phonft.finetune.data import load_phonon_sample
from phonft.finetune.graphs import GraphCache, cache_for, crosses_cutoff
from phonft.finetune.objective import phonon_objective, predicted_columns
from phonft.finetune.settings import TrainSettings
from phonft.finetune.trainer import reproducible
from phonft.models import load_model
from phonft_testdata import small_mace_model


def _pairs(atoms, j, cutoff):
    i, k, shifts = neighbor_list("ijS", atoms, cutoff)
    return {(int(a), tuple(s)) for a, s in zip(k[i == j], shifts[i == j])}


def test_crosses_cutoff_is_a_change_of_the_neighbour_set():
    """Against ASE's neighbour list: the check says True exactly when the displaced atom's
    set of neighbours (atom, image) within the cutoff changes; both outcomes occur."""
    atoms = bulk("Si", "diamond", 5.43, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=1)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(40):
        j, delta, cutoff = int(rng.integers(len(atoms))), rng.normal(scale=0.15, size=3), float(rng.uniform(2.5, 6))
        moved = atoms.copy()
        moved.positions[j] += delta
        changed = _pairs(atoms, j, cutoff) != _pairs(moved, j, cutoff)
        assert crosses_cutoff(atoms, j, delta, [cutoff]) == changed
        seen.add(changed)
    assert seen == {True, False}


def _nep(cutoff_A: float):
    """A random one-element NEP for Si with radial cutoff ``cutoff_A`` (float64)."""
    from phonft.models.nep.backend import NEPModel
    from phonft.models.nep.module import NEP, random_parameters
    from phonft.models.nep.nepfile import NEPSpec

    spec = NEPSpec(types=("Si",), cutoff=(cutoff_A, 3.5), max_neighbors=(80, 30), n_max=(3, 2), basis_size=(4, 3),
                   l_max=(4, 2, 1), n_neurons=6)
    return NEPModel(NEP(spec, random_parameters(spec, np.random.default_rng(0))), spec="nep:random")


def _second_shell(sample) -> float:
    d = np.sort(sample.distances_A[0])
    return float(d[d > d[1] + 0.5].min())


@pytest.fixture(scope="module")
def si(references):
    return load_phonon_sample(references("mp-149"))


def _columns_and_outputs(model, samples, cols, settings):
    pred, _, out = predicted_columns(model, samples, cols, settings, stress=True, create_graph=False)
    return [t.detach() for t in (pred, out.energy, out.forces, out.stress)]


@pytest.mark.parametrize("backend", ["chgnet", "mace", "nep"])
def test_cached_graph_outputs_are_bitwise_fresh(backend, si, chgnet64):
    """hvp columns, energies, forces and stresses: fresh, first cached call, and a cache hit
    (TorchScript unoptimised, as the trainer runs it, so that each call rounds the same way)."""
    model = {"chgnet": lambda: chgnet64, "mace": lambda: small_mace_model(["Si"]), "nep": lambda: _nep(5.0)}[backend]()
    cols = np.array([[0, 7]])
    cached = TrainSettings(column="hvp", graph_cache=True)
    before = dict(cache_for(model).stats)
    with reproducible():
        fresh = _columns_and_outputs(model, [si], cols, TrainSettings(column="hvp", graph_cache=False))
        for _ in range(2):
            assert all(torch.equal(a, b) for a, b in zip(fresh, _columns_and_outputs(model, [si], cols, cached)))
    after = cache_for(model).stats
    assert after["hits"] - before["hits"] >= 1 and after["built"] - before["built"] <= 1


def _trained(make_model, samples, settings, steps=3):
    model = make_model()
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        cols = sample_columns([s.n_atoms for s in samples], 2, rng)
        opt.zero_grad(set_to_none=True)
        phonon_objective(model, samples, cols, settings).loss.backward()
        opt.step()
    return model.state_dict()


@pytest.mark.parametrize("backend", ["chgnet", "mace"])
def test_training_with_cached_graphs_is_bitwise_fresh(backend, si):
    """Three hvp training steps (float32): the same weights, bit for bit, with and without the cache."""
    def make():
        if backend == "chgnet":
            return load_model("chgnet", dtype="float32", device="cpu")
        return small_mace_model(["Si"], dtype="float32")

    with reproducible():
        a = _trained(make, [si], TrainSettings(column="hvp", graph_cache=False))
        b = _trained(make, [si], TrainSettings(column="hvp", graph_cache=True))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _fd(model, structures, cols, h, graphs):
    pred, _, out = fd_columns(model, structures, cols, h, stress=True, create_graph=False, graphs=graphs, reuse=True)
    return [t.detach().numpy() for t in (pred, out.energy, out.forces, out.stress)]


def _compressed_si(shell_A):
    """Diamond Si whose second neighbour shell (a/√2) lies at ``shell_A``, lightly rattled."""
    atoms = bulk("Si", "diamond", shell_A * np.sqrt(2), cubic=True)
    atoms.rattle(0.0005, seed=2)
    return atoms


@pytest.mark.parametrize("case", ["chgnet-reuse", "chgnet-rebuild", "mace-reuse", "mace-rebuild", "nep-reuse",
                                  "nep-rebuild"])
def test_fd_graph_reuse_equals_fresh_graphs(case, si, chgnet64):
    """The ±h copies: reused neighbour lists (no pair crosses a cutoff) and rebuilt ones
    (a shell 2 mÅ from a cutoff: CHGNet's 3 Å bond-graph cutoff, MACE's r_max) both give
    the columns and outputs of fresh graphs to 1e-10 (float64); NEP's radial cutoff likewise."""
    backend, path = case.split("-")
    h = 0.01
    if backend == "chgnet":
        model = chgnet64
        structures = [si.atoms] if path == "reuse" else [_compressed_si(3.002)]
    elif backend == "mace":
        structures = [si.atoms]
        model = small_mace_model(["Si"]) if path == "reuse" else load_model(
            "mace-small", dtype="float64", device="cpu",
            options={"elements": ["Si"], "seed": 0, "r_max": _second_shell(si) + 0.002})
    else:
        structures = [si.atoms]
        model = _nep(5.0 if path == "reuse" else _second_shell(si) + 0.002)
    n = len(structures[0])
    cols = np.array([[0, 3 * (n // 2) + 1, 3 * (n - 1) + 2]])
    graphs = GraphCache()
    fresh = _fd(model, structures, cols, h, None)
    reused = _fd(model, structures, cols, h, graphs)
    for a, b in zip(fresh, reused):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-10)
    n_copies = len(displaced(structures, cols, h))
    if path == "reuse":
        assert graphs.stats["fd_reused"] == n_copies
    else:
        assert graphs.stats["fd_rebuilt"] > 0
