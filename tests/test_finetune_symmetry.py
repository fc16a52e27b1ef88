"""Symmetry-aware column sampling (issue 14): the estimator is unbiased for the full-Hessian
loss (exact enumeration over the draws), the batched HVP and the batched fd columns equal
single columns, a symmetry run resumes bitwise, and a bad value is one clear error."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from phonft.errors import ConfigError
from phonft.finetune import losses
from phonft.finetune.columns import fd_columns, hvp_columns
from phonft.finetune.data import PhononSample, load_phonon_sample
from phonft.finetune.objective import atom_weights, phonon_objective
from phonft.finetune.settings import TrainSettings
from phonft.finetune.symmetry import orbit_column_loss, sample_atoms, site_symmetry
from phonft.finetune.trainer import Trainer
from phonft_testdata import DFT, hessian_by_hvp, small_mace_model


def _dft_sample(material: str) -> PhononSample:
    """A vendored FORCE_SETS material's supercell and its DFT fc2, symmetrised exactly over the
    supercell's space group (the raw fc2 is symmetric only to the DFT forces' noise)."""
    import phonopy

    from phonft.atoms import to_ase

    ph = phonopy.load(DFT / material / "phonopy_disp.yaml", force_sets_filename=DFT / material / "FORCE_SETS",
                      produce_fc=True, is_compact_fc=False, log_level=0)
    atoms = to_ase(ph.supercell)
    fc = _symmetrise(np.asarray(ph.force_constants), atoms)
    return PhononSample(material, atoms, fc, atoms.get_all_distances(mic=True),
                        np.asarray(ph.symmetry.get_independent_atoms()), np.zeros((len(atoms), 3)), np.zeros((3, 3)))


def _symmetrise(fc: np.ndarray, atoms) -> np.ndarray:
    """``(1/|G|) Σ_g R_g⁻¹ Φ_{g(i) g(j)} R_g`` over the supercell's space group."""
    import spglib

    frac = atoms.get_scaled_positions()
    ops = spglib.get_symmetry((np.asarray(atoms.cell), frac, atoms.numbers), symprec=1e-5)
    lt = np.asarray(atoms.cell).T
    out = np.zeros_like(fc)
    for w, t in zip(ops["rotations"], ops["translations"]):
        moved = frac @ w.T + t
        diff = moved[:, None, :] - frac[None, :, :]
        perm = np.argmin(np.linalg.norm(diff - np.rint(diff), axis=2), axis=1)
        r = lt @ w @ np.linalg.inv(lt)
        out += np.einsum("xa,ijxy,yb->ijab", r, fc[np.ix_(perm, perm)], r)
    return out / len(ops["rotations"])


def _cols(h: np.ndarray, j: int) -> torch.Tensor:
    """The 3 columns of atom ``j``, (3, N, 3)."""
    return torch.as_tensor(np.stack([h[:, j, :, b] for b in range(3)]))


def _full_loss(pred: np.ndarray, ref: np.ndarray, weights: np.ndarray | None, delta: float | None) -> float:
    """The pooled loss over all 3N columns (uniform sampling's loss with every column)."""
    n = pred.shape[0]
    p = torch.as_tensor(np.stack([pred[:, j, :, b] for j in range(n) for b in range(3)]))
    r = torch.as_tensor(np.stack([ref[:, j, :, b] for j in range(n) for b in range(3)]))
    w = None if weights is None else torch.as_tensor(np.repeat(weights, 3, axis=0))
    return float(losses.hessian_column_loss(p, r, w, delta))


@pytest.fixture(scope="module")
def cases():
    """MgO (Fm-3m, 64 atoms) and ZnO (P6_3mc, 32 atoms): DFT fc2 and a small MACE's Hessian."""
    out = {}
    for m in ("MgO", "ZnO"):
        s = _dft_sample(m)
        model = small_mace_model(sorted(set(s.atoms.get_chemical_symbols())), "float64", seed=2)
        out[m] = (s, hessian_by_hvp(model, s.atoms))
    return out


@pytest.mark.parametrize("norm,delta", [("plain", None), ("near_field", None), ("distance", 0.05)])
def test_expected_symmetry_loss_is_the_full_hessian_loss(cases, norm, delta):
    """Exact enumeration over the draws (one structure, then a batch of both): E[sampled loss]
    equals the loss over all 3N columns, to 1e-10, for every normalisation and for Huber."""
    settings = TrainSettings(column_sampling="symmetry", hessian_norm=norm, near_field_radius_A=3.5)
    per, full_terms = {}, []
    for m, (s, pred) in cases.items():
        sym = s.site_symmetry()
        assert len(sym.representatives) == len(s.independent_atoms) and sym.n_atoms == s.n_atoms
        all_w = (None if norm == "plain" else
                 np.stack([atom_weights(s.distances_A, j, norm, 3.5) for j in range(s.n_atoms)]))
        mean_w = None if all_w is None else [float(all_w.sum()) / s.n_atoms]
        values = [orbit_column_loss(_cols(pred, r), _cols(s.fc2_eV_A2, r), [sym], np.array([[d]]), [s.n_atoms],
                                    None if all_w is None else np.repeat(all_w[r][None], 3, axis=0),
                                    mean_w, delta)
                  for d, r in enumerate(sym.representatives)]
        full = _full_loss(pred, s.fc2_eV_A2, all_w, delta)
        assert abs(float(np.mean([float(v) for v in values])) - full) < 1e-10
        per[m] = values
        full_terms.append((full, s.n_atoms if all_w is None else mean_w[0]))
    # a batch pools numerators over denominators: its target is the Ā-weighted mean (N for plain)
    (s1, p1), (s2, p2) = cases["MgO"], cases["ZnO"]
    target = sum(f * w for f, w in full_terms) / sum(w for _, w in full_terms)
    if norm == "plain":
        pairs = []
        for d1, d2 in itertools.product(range(len(per["MgO"])), range(len(per["ZnO"]))):
            r1, r2 = s1.site_symmetry().representatives[d1], s2.site_symmetry().representatives[d2]
            pred = torch.cat([_cols(p1, r1), _cols(p2, r2)], dim=1)
            ref = torch.cat([_cols(s1.fc2_eV_A2, r1), _cols(s2.fc2_eV_A2, r2)], dim=1)
            pairs.append(float(orbit_column_loss(pred, ref, [s1.site_symmetry(), s2.site_symmetry()],
                                                 np.array([[d1], [d2]]), [s1.n_atoms, s2.n_atoms], None, None)))
        assert abs(np.mean(pairs) - target) < 1e-10


@pytest.fixture(scope="module")
def al2o3():
    """Al2O3 (R-3c, 120 atoms): its O sites (site symmetry 2) are mapped onto one another by
    the 3-fold axis, which mixes x and y. A symmetric stand-in for a model Hessian: the DFT
    fc2 plus symmetrised noise (a MACE Hessian of 120 atoms costs 360 HVPs)."""
    s = _dft_sample("Al2O3")
    noise = np.random.default_rng(0).normal(scale=0.3, size=s.fc2_eV_A2.shape)
    return s, _symmetrise(s.fc2_eV_A2 + noise, s.atoms)


def test_unbiased_where_the_rotation_average_matters(al2o3):
    """Al2O3: the orbit-averaged estimator is unbiased (1e-10); the representatives' own
    columns, unrotated, are not (rotations that are signed axis permutations, as in cubic
    and tetragonal crystals, leave a Cartesian MAE unchanged; a 3-fold axis in a hexagonal
    frame does not)."""
    s, pred = al2o3
    sym = s.site_symmetry()
    full = _full_loss(pred, s.fc2_eV_A2, None, None)
    rotated = [float(orbit_column_loss(_cols(pred, r), _cols(s.fc2_eV_A2, r), [sym], np.array([[d]]), [s.n_atoms],
                                       None)) for d, r in enumerate(sym.representatives)]
    own = [float(losses.hessian_column_loss(_cols(pred, r), _cols(s.fc2_eV_A2, r))) * m * len(sym.multiplicities)
           / s.n_atoms for r, m in zip(sym.representatives, sym.multiplicities)]
    assert abs(np.mean(rotated) - full) < 1e-10
    assert abs(np.mean(own) - full) > 1e-4


def test_phonon_objective_under_symmetry_is_the_orbit_estimator(cases):
    """End to end (sampling -> batched HVP -> loss): the objective's Hessian MAE is the
    estimator of the drawn orbits, computed from the full model Hessian."""
    s, pred = cases["ZnO"]
    model = small_mace_model(["O", "Zn"], "float64", seed=2)
    settings = TrainSettings(base_model="mace-small", column_sampling="symmetry", columns_per_structure=2)
    cols, draws = sample_atoms([s.site_symmetry()], 2, np.random.default_rng(4))
    res = phonon_objective(model, [s], cols, settings, draws=draws)
    sym = s.site_symmetry()
    reps = sym.representatives[draws[0]]
    expected = orbit_column_loss(torch.cat([_cols(pred, r) for r in reps]),
                                 torch.cat([_cols(s.fc2_eV_A2, r) for r in reps]), [sym], draws, [s.n_atoms], None)
    assert abs(res.parts["hessian_mae"] - float(expected)) < 1e-10
    assert res.terms["hessian"][1] == 9.0 * 2 * s.n_atoms


def _batch_vs_single(model, structures, cols):
    batch = model.prepare(structures)
    out = model.evaluate(batch, create_graph=True)
    together = hvp_columns(model, batch, cols, out, create_graph=True)
    single = torch.cat([hvp_columns(model, batch, cols[:, [t]], out, create_graph=True) for t in range(cols.shape[1])])
    return together, single


def _si_pair():
    from ase.build import bulk

    a = bulk("Si", "diamond", 5.43, cubic=True).repeat((2, 1, 1))
    b = bulk("Si", "diamond", 5.43, cubic=True)
    a.rattle(0.03, seed=1)
    b.rattle(0.03, seed=2)
    return [a, b]


def test_batched_hvp_equals_single_hvps_mace():
    """3 columns of an atom per structure in one batched HVP = 3 single HVPs (1e-10), and so
    are the parameter gradients of a loss on them."""
    model = small_mace_model(["Si"], "float64")
    cols = np.array([[6, 7, 8], [0, 1, 2]])
    together, single = _batch_vs_single(model, _si_pair(), cols)
    assert (together - single).abs().max() < 1e-10
    params = [p for p in model.module.parameters() if p.requires_grad]
    g1 = torch.autograd.grad((together ** 2).sum(), params, retain_graph=True, allow_unused=True)
    g2 = torch.autograd.grad((single ** 2).sum(), params, allow_unused=True)
    assert max(float((a - b).abs().max()) for a, b in zip(g1, g2) if a is not None) < 1e-10


def test_batched_hvp_equals_single_hvps_chgnet(chgnet64):
    cols = np.array([[3, 4, 5], [9, 10, 11]])
    together, single = _batch_vs_single(chgnet64, _si_pair(), cols)
    assert (together - single).abs().max() < 1e-10


def test_batched_hvp_falls_back_to_a_loop(monkeypatch):
    """Where the backend has no batched backward, the loop gives the same columns."""
    model = small_mace_model(["Si"], "float64")
    cols = np.array([[6, 7, 8], [0, 1, 2]])
    fast, _ = _batch_vs_single(model, _si_pair(), cols)
    grad = torch.autograd.grad

    def no_batching(*args, **kw):
        if kw.get("is_grads_batched"):
            raise RuntimeError("no batching rule")
        return grad(*args, **kw)

    monkeypatch.setattr(torch.autograd, "grad", no_batching)
    slow, _ = _batch_vs_single(model, _si_pair(), cols)
    assert (fast - slow).abs().max() < 1e-10


def test_fd_three_columns_in_one_batch_equal_single_columns():
    """fd: an atom's 6 displaced copies in one forward pass give the single columns (1e-10)."""
    model = small_mace_model(["Si"], "float64")
    structures = _si_pair()
    cols = np.array([[6, 7, 8], [0, 1, 2]])
    together = fd_columns(model, structures, cols, 0.01, create_graph=False)[0]
    single = torch.cat([fd_columns(model, structures, cols[:, [t]], 0.01, create_graph=False)[0] for t in range(3)])
    assert (together - single).abs().max() < 1e-10


def test_symmetry_run_resumes_bitwise(references, tmp_path):
    """The orbits are drawn from the epoch's seeded generator: killed after epoch 1 and
    resumed, a symmetry run ends with the uninterrupted run's weights, bit for bit."""
    sample = load_phonon_sample(references("Si"), "Si")
    settings = TrainSettings(base_model="mace-small", epochs=3, lr=1e-3, replay_steps=0, seed=5,
                             column_sampling="symmetry")

    def fresh():
        return small_mace_model(["Si"], "float32", seed=1)

    full = Trainer(fresh(), settings, [sample], [sample]).fit()
    ckpt = tmp_path / "last.pt"
    Trainer(fresh(), settings, [sample], [sample], checkpoint=ckpt).fit(stop_after=1)
    resumed = Trainer(fresh(), settings, [sample], [sample], checkpoint=ckpt).fit(resume=True)
    assert resumed.resumed_from == 1
    for k, v in full.state.items():
        torch.testing.assert_close(resumed.state[k], v, atol=0, rtol=0)
    uniform = Trainer(fresh(), TrainSettings(base_model="mace-small", epochs=3, lr=1e-3, replay_steps=0, seed=5),
                      [sample], [sample]).fit()
    assert any(not torch.equal(uniform.state[k], v) for k, v in full.state.items())


def test_bad_column_sampling_is_one_line():
    with pytest.raises(ConfigError) as err:
        TrainSettings(column_sampling="orbits")
    assert "column_sampling" in str(err.value) and "\n" not in str(err.value)


def test_site_symmetry_of_rock_salt():
    """MgO's conventional 2x2x2 supercell: 2 orbits of 32, the 48 rotations of m-3m."""
    from ase.build import bulk

    sym = site_symmetry(bulk("MgO", "rocksalt", 4.21, cubic=True).repeat(2))
    assert sorted(sym.multiplicities) == [32, 32] and len(sym.rotations) == 48
    assert np.allclose(np.einsum("rxa,rya->rxy", sym.rotations, sym.rotations), np.eye(3))
