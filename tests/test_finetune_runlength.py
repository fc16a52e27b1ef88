"""Run length from the data (issue 14, part C): the lr schedule, several fixed validation
columns, a validation set held back from the training structures' own columns when the run
has no validation material, and early stopping; all resumable bit for bit."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from phonft_testdata import TINY_MACE_RUN, small_mace_model, tiny_run_inputs

from phonft.cli import main
from phonft.errors import ConfigError
from phonft.finetune.columns import sample_columns
from phonft.finetune.data import load_phonon_sample
from phonft.finetune.objective import phonon_objective
from phonft.finetune.runlength import HeldColumns
from phonft.finetune.settings import TrainSettings
from phonft.finetune.trainer import Trainer

BASE = {"base_model": "mace-small", "lr": 1e-3, "replay_steps": 0, "seed": 5}


@pytest.fixture(scope="module")
def si(references):
    return load_phonon_sample(references("Si"), "Si")


def _fresh():
    return small_mace_model(["Si"], "float32", seed=1)


def _settings(**kw) -> TrainSettings:
    return TrainSettings.from_dict({**BASE, **kw})


# ------------------------------------------------------------------ settings


@pytest.mark.parametrize("bad, key", [
    ({"lr_schedule": "step"}, "lr_schedule"),
    ({"warmup_steps": -1}, "warmup_steps"),
    ({"lr_schedule": "cosine", "lr_final": 1.0}, "lr_final"),
    ({"lr_schedule": "plateau", "plateau_factor": 1.5}, "plateau_factor"),
    ({"plateau_patience": 3}, "plateau_patience"),  # set, but the schedule is constant
    ({"lr_final": 1e-5}, "lr_final"),
    ({"val_columns": 0}, "val_columns"),
    ({"early_stopping_patience": 0}, "early_stopping_patience"),
])
def test_bad_run_length_settings_are_one_line_errors(bad, key):
    with pytest.raises(ConfigError) as err:
        TrainSettings.from_dict(bad)
    assert key in str(err.value) and "\n" not in str(err.value)


def test_early_stopping_without_a_validation_loss_is_an_error(si):
    for kw in ({"early_stopping_patience": 2}, {"lr_schedule": "plateau"}):
        with pytest.raises(ConfigError, match="need a validation loss"):
            Trainer(_fresh(), _settings(val_from_train=False, **kw), [si], [])


# ------------------------------------------------------------------ validation columns


def test_several_validation_columns_are_fixed_and_their_mean_is_the_loss(si):
    """k = 1 is today's single draw; k > 1 gives k distinct columns, the same in every
    trainer (and so every epoch and resume), and the validation MAE is their mean."""
    one = Trainer(_fresh(), _settings(), [si], [si])
    today = sample_columns([si.n_atoms], 1, np.random.default_rng([5, 2**31 - 1]))
    assert np.array_equal(one.val_cols, today)
    a = Trainer(_fresh(), _settings(val_columns=4), [si], [si])
    b = Trainer(_fresh(), _settings(val_columns=4), [si], [si])
    assert a.val_cols.shape == (1, 4) and len(set(a.val_cols[0])) == 4 and np.array_equal(a.val_cols, b.val_cols)
    got = a.validate()
    each = [phonon_objective(a.model, [si], a.val_cols[:, [c]], a.settings, create_graph=False).parts["hessian_mae"]
            for c in range(4)]
    assert got["val_hessian_mae"] == pytest.approx(np.mean(each), rel=1e-6)
    assert a.validate() == got


def test_training_columns_never_draw_a_held_back_column():
    held = HeldColumns([2, 3], k=2, seed=0)
    rng = np.random.default_rng(0)
    draws = np.concatenate([held.sample([0, 1], 3, rng) for _ in range(400)])
    for i, n in enumerate((2, 3)):  # rows alternate between the two structures
        assert set(draws[i::2].ravel().tolist()) == set(range(3 * n)) - set(held.held[i].tolist())
    with pytest.raises(ConfigError, match="val_columns"):
        HeldColumns([2], k=6, seed=0)


def test_a_run_without_validation_material_validates_on_held_back_columns(si):
    trainer = Trainer(_fresh(), _settings(val_columns=3, epochs=2), [si], [])
    assert trainer.validation_source == "training_columns"
    assert np.array_equal(trainer.val_cols, trainer.held.held) and trainer.val_cols.shape == (1, 3)
    rng, batches = trainer.epoch_plan(1)
    for _ in range(50):
        cols = trainer.held.sample(batches[0], 1, rng)
        assert not set(cols.ravel()) & set(trainer.held.held[0])
    result = trainer.fit()
    assert all(math.isfinite(row["val_loss"]) for row in result.metrics)
    kept = min(result.metrics, key=lambda r: r["val_loss"])
    assert result.best_epoch == kept["epoch"]
    off = Trainer(_fresh(), _settings(val_from_train=False), [si], [])
    assert off.validation_source == "none" and off.val_cols is None


# ------------------------------------------------------------------ lr schedule, early stopping, resume


@pytest.mark.parametrize("kw", [
    {"lr_schedule": "cosine", "warmup_steps": 2, "lr_final": 1e-4, "early_stopping_patience": 4},
    {"lr_schedule": "plateau", "plateau_patience": 0, "plateau_factor": 0.5, "val_columns": 2},
])
def test_scheduled_run_resumes_bitwise(si, tmp_path, kw):
    settings = _settings(epochs=4, **kw)
    full = Trainer(_fresh(), settings, [si], []).fit()
    ckpt = tmp_path / "last.pt"
    Trainer(_fresh(), settings, [si], [], checkpoint=ckpt).fit(stop_after=2)
    resumed = Trainer(_fresh(), settings, [si], [], checkpoint=ckpt).fit(resume=True)
    assert resumed.resumed_from == 2
    assert [r["lr"] for r in resumed.metrics] == [r["lr"] for r in full.metrics]
    for k, v in full.state.items():
        torch.testing.assert_close(resumed.state[k], v, atol=0, rtol=0)
    lrs = [r["lr"] for r in full.metrics[1:]]  # one phonon step per epoch: the epoch's lr
    if kw["lr_schedule"] == "cosine":
        expect = [1e-3 / 3, 2e-3 / 3, 1e-3, 1e-4 + 0.9e-3 * 0.5 * (1 + math.cos(math.pi / 2))]
        assert lrs == pytest.approx(expect, rel=1e-12)
    else:  # each epoch without a lower validation loss halves the next epoch's lr
        vals = [r["val_loss"] for r in full.metrics[1:]]
        for i in range(1, 4):
            worse = vals[i - 1] >= min(vals[:i - 1], default=math.inf)
            assert lrs[i] == pytest.approx(lrs[i - 1] * (0.5 if worse else 1.0), rel=1e-12)


def test_early_stopping_stops_records_why_and_a_resumed_stopped_run_trains_nothing(si, tmp_path, monkeypatch):
    losses = iter([5.0, 4.0, 3.0, 3.5, 3.2, 3.1, 1.0, 1.0])  # epoch 0, 1, ...: best at epoch 2

    def scripted(self):
        return {"val_loss": next(losses)}

    monkeypatch.setattr(Trainer, "validate", scripted)
    settings = _settings(epochs=8, early_stopping_patience=2)
    ckpt = tmp_path / "last.pt"
    result = Trainer(_fresh(), settings, [si], [], checkpoint=ckpt).fit()
    assert [r["epoch"] for r in result.metrics] == [0, 1, 2, 3, 4]
    assert result.best_epoch == 2 and result.stopped["epoch"] == 4 and "since epoch 2" in result.stopped["reason"]
    monkeypatch.setattr(Trainer, "train_epoch", lambda *a, **k: pytest.fail("a stopped run trained"))
    again = Trainer(_fresh(), settings, [si], [], checkpoint=ckpt).fit(resume=True)
    assert again.stopped == result.stopped and again.metrics == result.metrics and again.best_epoch == 2
    for k, v in result.state.items():
        torch.testing.assert_close(again.state[k], v, atol=0, rtol=0)


def test_cli_records_the_validation_source(references, tmp_path):
    """Through ``phonft finetune train``: a split without validation materials validates on
    the training structures' held-back columns and train.json says so."""
    inputs = tiny_run_inputs(references, tmp_path / "inputs")
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["Si"], "val": [], "test": ["MgO"]}))
    run = {**TINY_MACE_RUN, "epochs": 2, "val_columns": 2, "early_stopping_patience": 5}
    out = tmp_path / "run"
    assert main(["finetune", "train", "--run", "t", "--settings", json.dumps({"run": run}), "--split", str(split),
                 "--references", str(inputs["refs"]), "--replay", str(inputs["replay"]), "--device", "cpu",
                 "--out", str(out)]) == 0
    record = json.loads((out / "train.json").read_text())
    assert record["validation"] == {"source": "training_columns", "columns_per_structure": 2}
    assert record["stopped_early"] is None and math.isfinite(record["best_val_loss"])


def test_symmetry_sampling_with_held_back_training_columns_is_refused():
    """An atom's 3 columns would reach the held-back validation columns: one clear error."""
    from types import SimpleNamespace

    from phonft.errors import ConfigError
    from phonft.finetune.runlength import validation_columns
    from phonft.finetune.settings import TrainSettings

    s = TrainSettings(column_sampling="symmetry")
    train = [SimpleNamespace(n_atoms=8), SimpleNamespace(n_atoms=16)]
    with pytest.raises(ConfigError, match="column_sampling: symmetry cannot be combined"):
        validation_columns(s, train, [])
    held, cols, source = validation_columns(TrainSettings(column_sampling="symmetry", val_from_train=False), train, [])
    assert (held, cols, source) == (None, None, "none")
    held, cols, source = validation_columns(TrainSettings(column_sampling="symmetry"), train, train)
    assert held is None and source == "materials" and cols.shape == (2, 1)
