"""Training objectives (issue 9): ``pft``, ``rattled`` (energy/force/stress loss on rattled
frames, George et al.) and ``both``; per-frame label masks; wiring of the augment frames.

The frames are built here, not by the augment stage: harmonic labels ``F = -Φu`` from a
vendored material's DFT fc2 on its reference supercell (forces only), plus frames with
made-up energies and stresses where a test needs them.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from phonft.cli import main
from phonft.finetune.columns import sample_columns
from phonft.finetune.data import load_phonon_sample
from phonft.finetune.objective import phonon_objective
from phonft.finetune.rattled import RattledSample, combine, frames_path, rattled_objective, read_rattled
from phonft.finetune.settings import LossWeights, TrainSettings
from phonft.finetune.steps import cycle_batches
from phonft_testdata import TINY_MACE_RUN, small_mace_model, tiny_run_inputs

W = LossWeights(energy=1.0, forces=100.0, stress=1.0, hessian=0.0)


def harmonic_frames(sample, n: int, std_A: float, seed: int) -> list:
    """``n`` rattled copies of a phonon sample's supercell labelled ``REF_forces = -Φu`` (eV/Å)."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        u = rng.normal(0.0, std_A, size=(sample.n_atoms, 3))
        a = sample.atoms.copy()
        a.positions += u
        a.arrays["REF_forces"] = -np.einsum("ijab,jb->ia", sample.fc2_eV_A2, u)
        a.info.update(label_source="harmonic_dft", material=sample.material, frame=i, rattle_std_A=std_A,
                      volume_factor=1.0, config_type="rattled")
        frames.append(a)
    return frames


def write_frames(root: Path, material: str, frames: list) -> Path:
    import ase.io

    path = frames_path(root, material)
    path.parent.mkdir(parents=True, exist_ok=True)
    ase.io.write(path, frames, format="extxyz")
    return path


@pytest.fixture(scope="module")
def si(references):
    return load_phonon_sample(references("Si"), "Si")


@pytest.fixture(scope="module")
def si_frames(si, tmp_path_factory) -> list[RattledSample]:
    """Four harmonic frames of Si, read back through the augment-frame reader."""
    root = tmp_path_factory.mktemp("augment")
    return read_rattled(write_frames(root, "Si", harmonic_frames(si, 4, 0.02, seed=1)), "Si")


def _labelled(frames: list[RattledSample], energies: list, stresses: list) -> list[RattledSample]:
    return [RattledSample(f.atoms, f.forces_eV_A, e, s, "Si", "user") for f, e, s in zip(frames, energies, stresses)]


# ------------------------------------------------------------------ masks


def test_harmonic_frames_read_with_forces_only(si, si_frames):
    assert len(si_frames) == 4 and all(f.energy_eV is None and f.stress_eV_A3 is None for f in si_frames)
    assert all(f.label_source == "harmonic_dft" and f.material == "Si" for f in si_frames)
    u = si_frames[0].atoms.positions - si.atoms.positions
    np.testing.assert_allclose(si_frames[0].forces_eV_A, -np.einsum("ijab,jb->ia", si.fc2_eV_A2, u), atol=1e-6)  # extxyz: 8 decimals


def test_frames_without_energy_add_no_energy_term_nor_gradient(si_frames):
    """A frame without REF_energy contributes nothing to the energy term: the term and its
    gradient are those of the frames that have one; its count is theirs."""
    model = small_mace_model(("Si",))
    e0 = float(model.predict([si_frames[0].atoms])[0]["energy"])
    mixed = _labelled(si_frames[:3], [e0 + 0.3, None, e0 - 0.2], [None] * 3)
    alone = [mixed[0], mixed[2]]
    grads = []
    for batch in (mixed, alone):
        res = rattled_objective(model, batch, W)
        term, count = res.terms["rattled_energy"]
        assert count == 2
        model.module.zero_grad(set_to_none=True)
        term.backward()
        grads.append([p.grad.clone() if p.grad is not None else None for p in model.module.parameters()])
    for a, b in zip(*grads):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    none = rattled_objective(model, _labelled(si_frames[:2], [None, None], [None, None]), W)
    assert "rattled_energy" not in none.terms and "rattled_energy_mae" not in none.parts
    assert set(none.terms) == {"rattled_forces"}


def test_mixed_batch_energy_and_stress_terms_are_means_over_labelled_frames(si_frames):
    model = small_mace_model(("Si",))
    frames = _labelled(si_frames, [-10.0, None, -12.0, None], [None, np.eye(3) * 1e-3, None, np.ones((3, 3)) * 2e-3])
    pred = model.predict([f.atoms for f in frames], stress=True)
    n = frames[0].n_atoms
    want_e = np.mean([abs(pred[i]["energy"] - frames[i].energy_eV) / n for i in (0, 2)])
    want_s = np.mean([np.abs(pred[i]["stress"] - frames[i].stress_eV_A3) for i in (1, 3)])
    want_f = np.mean([np.abs(p["forces"] - f.forces_eV_A) for p, f in zip(pred, frames)])
    res = rattled_objective(model, frames, W)
    assert res.parts["rattled_energy_mae"] == pytest.approx(want_e, rel=1e-9)
    assert res.parts["rattled_stress_mae"] == pytest.approx(want_s, rel=1e-9)
    assert res.parts["rattled_force_mae"] == pytest.approx(want_f, rel=1e-9)
    assert {k: c for k, (_, c) in res.terms.items()} == {"rattled_energy": 2, "rattled_forces": 4 * n * 3,
                                                          "rattled_stress": 18}
    assert res.parts["loss"] == pytest.approx(W.energy * want_e + W.forces * want_f + W.stress * want_s, rel=1e-9)


# ------------------------------------------------------------------ training


def _trainer(model, si, frames, tmp_path, objective, **kw):
    from phonft.finetune.trainer import Trainer

    settings = TrainSettings(base_model="mace-small", objective=objective, replay_steps=0, lr=5e-3, dtype="float64",
                             rattled_batch_atoms=2 * si.n_atoms, val_from_train=False, **kw)
    return Trainer(model, settings, [si], [], rattled_train=frames, checkpoint=tmp_path / "last.pt")


def test_rattled_run_lowers_the_rattled_force_error(si, si_frames, tmp_path):
    model = small_mace_model(("Si",))
    before = rattled_objective(model, si_frames, W, create_graph=False).parts["rattled_force_mae"]
    trainer = _trainer(model, si, si_frames, tmp_path, "rattled", epochs=4, ema_decay=0.0)
    result = trainer.fit()
    assert [row["steps"] for row in result.metrics[1:]] == [2] * 4  # one pass over 4 frames in batches of 2
    assert all(np.isnan(row["train_hessian_mae"]) for row in result.metrics[1:])
    first, last = result.metrics[1]["train_rattled_force_mae"], result.metrics[-1]["train_rattled_force_mae"]
    model.load_state_dict(result.state)
    after = rattled_objective(model, si_frames, W, create_graph=False).parts["rattled_force_mae"]
    assert after < before and last < first


def test_both_step_is_the_phonon_loss_plus_the_rattled_loss(si, si_frames, tmp_path):
    """One ``both`` step optimises phonon_objective + rattled_objective of the same batches."""
    model = small_mace_model(("Si",))
    trainer = _trainer(model, si, si_frames, tmp_path, "both")
    rng, batches = trainer.epoch_plan(1)
    twin = copy.deepcopy(rng)
    seen = []
    trainer._optimise = lambda res: seen.append(res) or dict(res.parts)
    rattled = cycle_batches(si_frames, trainer.settings.rattled_batch_atoms, np.random.default_rng([0, 1, 1]))
    trainer._step(batches[0], rng, rattled)
    (res,) = seen
    samples = [trainer.train_set[i] for i in batches[0]]
    cols = sample_columns([s.n_atoms for s in samples], 1, twin)
    again = cycle_batches(si_frames, trainer.settings.rattled_batch_atoms, np.random.default_rng([0, 1, 1]))
    phonon = phonon_objective(model, samples, cols, trainer.settings)
    rattled_part = rattled_objective(model, next(again), trainer.settings.rattled_weights)
    assert float(res.loss.detach()) == pytest.approx(float(phonon.loss.detach()) + float(rattled_part.loss.detach()), rel=1e-12)
    assert set(res.terms) == set(phonon.terms) | set(rattled_part.terms)
    assert res.parts["hessian_mae"] == phonon.parts["hessian_mae"]
    assert res.parts["rattled_force_mae"] == rattled_part.parts["rattled_force_mae"]
    assert combine(None, rattled_part) is rattled_part and combine(phonon, None) is phonon


def test_rattled_objective_needs_frames(si):
    from phonft.errors import ConfigError
    from phonft.finetune.trainer import Trainer

    with pytest.raises(ConfigError, match="objective is rattled but no rattled frames were given"):
        Trainer(small_mace_model(("Si",)), TrainSettings(objective="rattled"), [si], [])


# ------------------------------------------------------------------ the CLI: pft unchanged, both resumes


@pytest.fixture(scope="module")
def cli_inputs(references, si, tmp_path_factory) -> dict[str, Path]:
    """The tiny MACE run's references, split, replay set and an augment root with Si frames."""
    root = tmp_path_factory.mktemp("objectives")
    write_frames(root / "augment", "Si", harmonic_frames(si, 3, 0.02, seed=2))
    return {**tiny_run_inputs(references, root), "augment": root / "augment"}


def _cli_train(inputs, out: Path, run: dict, *extra: str) -> dict:
    args = ["finetune", "train", "--run", "t", "--settings", json.dumps({"run": run}), "--split", str(inputs["split"]),
            "--references", str(inputs["refs"]), "--replay", str(inputs["replay"]), "--device", "cpu",
            "--out", str(out), *extra]
    assert main(args) == 0
    return json.loads((out / "train.json").read_text())


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "model.pt", weights_only=False).state_dict()


def test_pft_ignores_the_augment_frames(cli_inputs, tmp_path):
    """``objective: pft`` (the default) trains the same weights with or without --augment,
    and keys its checkpoint by no frame file."""
    plain = _cli_train(cli_inputs, tmp_path / "plain", TINY_MACE_RUN)
    given = _cli_train(cli_inputs, tmp_path / "given", {**TINY_MACE_RUN, "objective": "pft"},
                       "--augment", str(cli_inputs["augment"]))
    assert plain["objective"] == "pft" and plain["augment"] is None and plain["checkpoint_key"]["augment"] == {}
    assert plain["checkpoint_key"]["key"] == given["checkpoint_key"]["key"]
    wa, wb = _weights(tmp_path / "plain"), _weights(tmp_path / "given")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    header = (tmp_path / "plain" / "metrics.csv").read_text().splitlines()[0]
    assert "rattled" not in header


def test_both_resumes_to_the_uninterrupted_weights(cli_inputs, tmp_path):
    run = {**TINY_MACE_RUN, "objective": "both", "rattled_batch_atoms": 8}
    aug = ("--augment", str(cli_inputs["augment"]))
    whole = _cli_train(cli_inputs, tmp_path / "whole", run, *aug)
    assert main(["finetune", "train", "--run", "t", "--settings", json.dumps({"run": run}), "--split",
                 str(cli_inputs["split"]), "--references", str(cli_inputs["refs"]), "--replay",
                 str(cli_inputs["replay"]), "--device", "cpu", "--out", str(tmp_path / "cut"), *aug,
                 "--stop-after", "1"]) == 0
    cut = _cli_train(cli_inputs, tmp_path / "cut", run, *aug, "--resume")
    assert cut["resumed_from_epoch"] == 1 and whole["objective"] == "both"
    assert whole["augment"]["Si"]["n_frames"] == 3 and whole["augment"]["Si"]["label_sources"] == ["harmonic_dft"]
    assert whole["checkpoint_key"]["augment"]["Si"] == whole["augment"]["Si"]["sha256"]
    wa, wb = _weights(tmp_path / "whole"), _weights(tmp_path / "cut")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    header = (tmp_path / "whole" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "train_rattled_force_mae" in header and "train_hessian_mae" in header
    assert not np.isnan(whole["final"]["train_rattled_force_mae"])


def test_changed_frames_retrain(cli_inputs, si, tmp_path):
    """The checkpoint key holds the frame files: new frames train afresh, naming why."""
    import shutil

    run = {**TINY_MACE_RUN, "objective": "rattled", "epochs": 1}
    aug = tmp_path / "augment"
    shutil.copytree(cli_inputs["augment"], aug)
    first = _cli_train(cli_inputs, tmp_path / "run", run, "--augment", str(aug), "--resume")
    write_frames(aug, "Si", harmonic_frames(si, 3, 0.02, seed=9))
    log = tmp_path / "train.log"
    second = _cli_train(cli_inputs, tmp_path / "run", run, "--augment", str(aug), "--resume", "--log", str(log))
    assert second["resumed_from_epoch"] is None and first["checkpoint_key"]["key"] != second["checkpoint_key"]["key"]
    assert "the rattled frames changed" in log.read_text()


# ------------------------------------------------------------------ the planner


def test_planner_wires_the_frames_of_the_training_materials():
    from phonft.plan import Plan

    mats = {m: {"reference": {"format": "force_sets", "path": f"data/dft-phonons/{m}"}}
            for m in ("MgO", "NaCl", "CaTiO3", "Si")}
    runs = {"p": {"materials": list(mats), "split": {"n_test": 1, "n_val": 1}},
            "r": {"materials": list(mats), "split": {"n_test": 1, "n_val": 1}, "objective": "rattled"},
            "b": {"materials": ["MgO", "NaCl", "Si"], "split": {"n_test": 1, "n_val": 1, "seed": 3}, "objective": "both"}}
    plan = Plan({"materials": mats, "finetune": {"runs": runs}})
    assert plan.train_augment("p") == []
    assert plan.train_augment("r") == [f"results/augment/{m}/rattled.extxyz" for m in plan.splits["r"].train]
    assert plan.train_augment("b") == [f"results/augment/{m}/rattled.extxyz" for m in plan.splits["b"].train]
    want = set(plan.splits["r"].train) | set(plan.splits["b"].train)
    assert plan.rattled_materials() == [m for m in mats if m in want]
    assert plan.augment_materials() == plan.rattled_materials()  # the augment rule makes them
    assert plan.augment_args("p") == [] and plan.augment_args("b") == ["--augment", "results/augment"]
    listed = Plan({"materials": mats, "finetune": {"runs": runs}, "augment": {"materials": ["CaTiO3"]}})
    assert listed.augment_materials() == ["CaTiO3", *[m for m in plan.rattled_materials() if m != "CaTiO3"]]
