"""The finetune stage's replay: the pseudo-label set (extxyz + manifest), forgetting measured
against the base model, bad replay files, and replay that does not undo the phonon loss.

The replay-versus-phonon-loss tests (issue: pseudo-labels away from the phonon
structures) use the toy pair-spring model (``phonft_testdata.pair_springs``), which has
one stiffness per element pair, so the argument is exact: rattled copies of the training
structure labelled by the base model carry F ~ -H_base u, and their replay loss pulls the
training structure's stiffness back to the base value, while replay on structures of other
compositions has no gradient on it at all.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ase.build import bulk

from phonft.errors import InputFileError
from phonft.finetune.data import PhononSample, ReplaySample, load_phonon_sample, read_replay
from phonft.finetune.objective import phonon_objective, replay_objective
from phonft.finetune.replay import label, load_replay_split, perturbed_copies, pseudo_label_set, write_replay
from phonft.finetune.settings import REPLAY_WEIGHTS, LossWeights, ReplaySettings, TrainSettings
from phonft.finetune.trainer import Trainer
from phonft_testdata import hessian_by_hvp, pair_springs

R0 = {"Si-Si": 5.43 * 3**0.5 / 4, "Ge-Ge": 5.66 * 3**0.5 / 4, "C-Si": 4.36 * 3**0.5 / 4}
BASE = {"Si-Si": 10.0, "Ge-Ge": 8.0, "C-Si": 20.0}


def _model(k_si: float):
    return pair_springs({**BASE, "Si-Si": k_si}, R0)


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
    dft = hessian_by_hvp(_model(13.0), si)
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


# ------------------------------------------------------------------ the pseudo-label replay set


@pytest.fixture(scope="module")
def si_replay(tmp_path_factory):
    """Disjoint pseudo-labels for a Si run: Ge, SiC and C (one of them held back), labelled by CHGNet."""
    from ase.build import bulk

    from phonft.models import load_model

    base = load_model("chgnet", dtype="float64", device="cpu")
    cells = {"Ge": bulk("Ge", "diamond", 5.66), "SiC": bulk("SiC", "zincblende", 4.36),
             "C": bulk("C", "diamond", 3.567), "Si-again": bulk("Si", "diamond", 5.43)}
    settings = ReplaySettings(copies=4, prototypes=False, min_atoms=16, seed=3, val_fraction=0.34)
    frames, listing = pseudo_label_set(settings, base, {}, cells, ["Si"])
    out = tmp_path_factory.mktemp("replay") / "replay"
    write_replay(out, frames, {"kind": "pseudo-label", **listing})
    return out


def test_replay_set_is_a_labelled_extxyz_with_manifest(si_replay):
    manifest = json.loads((si_replay / "manifest.json").read_text())
    assert manifest["n_frames"] == 12 and manifest["counts"] == {"train": 8, "val": 4}
    assert [d["name"] for d in manifest["left_out"]] == ["Si-again"]  # the run's own composition
    assert len(manifest["sha256"]["replay.extxyz"]) == 64
    train, val = load_replay_split(si_replay / "replay.extxyz")
    assert len(train) == 8 and len(val) == 4
    assert not {s.tag for s in train} & {s.tag for s in val}  # whole structures are held back
    s = train[0]
    assert s.forces_eV_A.shape == (len(s.atoms), 3) and s.stress_eV_A3.shape == (3, 3)
    assert np.abs(s.forces_eV_A).max() > 0.05  # rattled: real forces to learn


def test_forgetting_is_measured_against_the_base_model(references, si_replay):
    """Every epoch scores the held-back replay structures against their labels and against
    the base model's own predictions (drift). For pseudo-labels the two agree up to the
    float32 training precision; the base model (epoch 0) has zero drift."""
    from phonft.models import load_model

    sample = load_phonon_sample(references("Si"), "Si")
    train, val = load_replay_split(si_replay / "replay.extxyz")
    settings = TrainSettings(epochs=2, lr=1e-3, replay_steps=2, ema_decay=0.9, replay_batch_atoms=32)
    res = Trainer(load_model("chgnet", device="cpu"), settings, [sample], [], train, val).fit()
    base, last = res.metrics[0], res.metrics[-1]
    assert base["drift_force_mae"] == 0.0 and base["drift_energy_mae"] == 0.0
    assert base["replay_force_mae"] < 1e-4 and base["replay_stress_mae"] < 1e-5  # float32 vs float64 labels
    assert last["drift_force_mae"] > 1e-3  # training moved the model...
    for q in ("energy", "force", "stress"):  # ...and both measures see the same move
        assert last[f"replay_{q}_mae"] == pytest.approx(last[f"drift_{q}_mae"], rel=0.05, abs=1e-4)


def test_model_selection_keeps_the_best_epoch_within_the_forgetting_budget(references, si_replay):
    """An epoch whose drift on the held-back replay frames exceeds ``max_drift`` is never kept;
    the base model (epoch 0, zero drift) always is a candidate."""
    from phonft.finetune.settings import DriftBudget
    from phonft.models import load_model

    budget, base = DriftBudget(energy_eV_atom=0.002, force_eV_A=0.01), {"replay_energy_mae": 0.2, "replay_force_mae": 0.1}
    assert budget.allows({"drift_energy_mae": 0.002, "drift_force_mae": 0.01}, base)
    assert not budget.allows({"drift_energy_mae": 0.0021, "drift_force_mae": 0.0}, base)
    assert not budget.allows({"drift_energy_mae": 0.0, "drift_force_mae": float("nan")}, base)
    assert budget.allows({"val_loss": 1.0}, {})  # no held-back frames: no bound
    assert DriftBudget(energy_eV_atom=None, force_eV_A=None).allows(
        {"drift_energy_mae": 1.0, "drift_force_mae": 1.0}, base)
    # DFT labels: moving away from the base toward DFT is allowed, a 5 % larger error is not
    far = {"drift_energy_mae": 0.1, "drift_force_mae": 0.05}
    assert budget.allows({**far, "replay_energy_mae": 0.05, "replay_force_mae": 0.105}, base, dft_labels=True)
    assert not budget.allows({**far, "replay_energy_mae": 0.05, "replay_force_mae": 0.106}, base, dft_labels=True)
    assert not budget.allows({**far, "replay_energy_mae": 0.05, "replay_force_mae": 0.09}, base)
    assert TrainSettings.from_dict({"max_drift": {"force_eV_A": None}}).max_drift == DriftBudget(force_eV_A=None)

    sample = load_phonon_sample(references("Si"), "Si")
    train, val = load_replay_split(si_replay / "replay.extxyz")
    # no val structures: the last epoch within the budget is kept. Read as DFT labels, these
    # pseudo-labels have a base error of float32 noise, which any training step exceeds.
    for bound, dft, kept in ((1e-9, False, 0), (None, False, 1), (None, True, 0)):
        settings = TrainSettings(epochs=1, lr=1e-3, replay_steps=1, replay_batch_atoms=32,
                                 max_drift=DriftBudget(energy_eV_atom=None, force_eV_A=bound), val_from_train=False)
        res = Trainer(load_model("chgnet", device="cpu"), settings, [sample], [], train, val, dft_labels=dft).fit()
        assert res.metrics[1]["drift_force_mae"] > 1e-9
        assert res.best_epoch == kept


def test_bad_replay_files_fail_clearly(tmp_path):
    bad = tmp_path / "bad.extxyz"
    bad.write_text("3\nnot an extxyz header\nSi 0 0\n")
    with pytest.raises(InputFileError, match="bad.extxyz"):
        read_replay(bad)
    import ase.io
    from ase.build import bulk

    unlabeled = tmp_path / "unlabeled.extxyz"
    ase.io.write(unlabeled, bulk("Si"), format="extxyz")
    with pytest.raises(InputFileError, match="REF_energy or REF_forces"):
        read_replay(unlabeled)
    a = bulk("Si")
    a.info["REF_energy"] = -10.0
    a.arrays["REF_forces"] = np.full((2, 3), np.nan)
    nan = tmp_path / "nan.extxyz"
    ase.io.write(nan, a, format="extxyz")
    with pytest.raises(InputFileError, match="non-finite"):
        read_replay(nan)
