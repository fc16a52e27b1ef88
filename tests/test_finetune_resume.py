"""Checkpoints and resume (issue 13): a checkpoint is keyed by every input, so changed
references retrain instead of resuming a stale model; a finished checkpoint is a no-op; a
corrupt one is one clear error; and a run killed by SIGKILL mid-epoch resumes to the
uninterrupted run's weights bit for bit, through the CLI and through Snakemake."""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from badinput import assert_one_line_error, snapshot
from phonft.cli import main
from phonft.finetune.checkpoint import CheckpointKey, prepare_checkpoint
from phonft_testdata import REPO, TINY_MACE_RUN, tiny_run_inputs

RUN = TINY_MACE_RUN


@pytest.fixture(scope="module")
def inputs(references, tmp_path_factory) -> dict[str, Path]:
    """The run's references root, split.json and replay folder (built once)."""
    return tiny_run_inputs(references, tmp_path_factory.mktemp("resume"))


def _train_args(inputs: dict[str, Path], out: Path, *extra: str, refs: Path | None = None,
                epochs: int = 2) -> list[str]:
    return ["finetune", "train", "--run", "t", "--settings", json.dumps({"run": {**RUN, "epochs": epochs}}),
            "--split", str(inputs["split"]), "--references", str(refs or inputs["refs"]),
            "--replay", str(inputs["replay"]), "--device", "cpu", "--out", str(out), *extra]


def _train(inputs: dict[str, Path], out: Path, *extra: str, **kw) -> dict:
    assert main(_train_args(inputs, out, *extra, **kw)) == 0
    return json.loads((out / "train.json").read_text())


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "model.pt", weights_only=False).state_dict()


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _copy_refs(inputs: dict[str, Path], dst: Path) -> Path:
    for m in RUN["materials"]:
        shutil.copytree(inputs["refs"] / m, dst / m)
    return dst


# ------------------------------------------------------------------ the checkpoint key


def test_changed_reference_retrains_instead_of_resuming_a_stale_model(inputs, tmp_path):
    """Same settings, new force constants for a training material, --resume (what the rule
    passes): the run trains afresh and says why. (Before: "resumed after epoch 2", 0 epochs
    trained, and the old model rewritten as the new one.)"""
    import h5py

    refs = _copy_refs(inputs, tmp_path / "refs")
    run = tmp_path / "run"
    first = _train(inputs, run, "--resume", refs=refs)
    with h5py.File(refs / "Si" / "fc2.hdf5", "r+") as fh:
        fh["force_constants"][...] *= 1.05
    log = tmp_path / "train.log"
    second = _train(inputs, run, "--resume", "--log", str(log), refs=refs)
    assert second["resumed_from_epoch"] is None
    assert "the references of Si changed" in log.read_text()
    key1, key2 = first["checkpoint_key"], second["checkpoint_key"]
    assert key1["key"] != key2["key"] and key1["references"]["mp-149"] == key2["references"]["mp-149"]
    assert key1["references"]["Si"]["fc2.hdf5"] != key2["references"]["Si"]["fc2.hdf5"]
    assert second["final"]["train_hessian_mae"] != first["final"]["train_hessian_mae"]
    fresh = tmp_path / "fresh"
    _train(inputs, fresh, refs=refs)
    assert _same_weights(run, fresh) and _metrics(run) == _metrics(fresh)


def test_finished_checkpoint_is_a_no_op(inputs, tmp_path):
    """Resuming a finished run trains nothing, says so, and writes the same outputs."""
    run = tmp_path / "run"
    first = _train(inputs, run)
    metrics, weights = (run / "metrics.csv").read_bytes(), _weights(run)
    log = tmp_path / "train.log"
    again = _train(inputs, run, "--resume", "--log", str(log))
    assert "nothing to train" in log.read_text() and "resumed from" not in log.read_text()
    assert (run / "metrics.csv").read_bytes() == metrics
    assert all(torch.equal(weights[k], v) for k, v in _weights(run).items())
    assert again.pop("resumed_from_epoch") == 2 and first.pop("resumed_from_epoch") is None
    assert again == first


def _fake_inputs(root: Path) -> tuple[dict[str, list[str]], Path, Path]:
    split = {"train": ["Si"], "val": ["mp-149"], "test": ["MgO"]}
    for m in ("Si", "mp-149", "MgO"):
        for name in ("phonopy_params.yaml", "fc2.hdf5", "thermal.json"):
            (root / "refs" / m).mkdir(parents=True, exist_ok=True)
            (root / "refs" / m / name).write_text(f"{m} {name}")
    (root / "replay").mkdir()
    for name in ("manifest.json", "replay.extxyz"):
        (root / "replay" / name).write_text(name)
    return split, root / "refs", root / "replay"


CHANGES = {
    "the training settings": lambda split, refs, replay: ("other", split),
    "the split": lambda split, refs, replay: ("abc", {**split, "val": [], "train": ["Si", "mp-149"]}),
    "the references of mp-149": lambda split, refs, replay: (
        (refs / "mp-149" / "fc2.hdf5").write_text("new"), ("abc", split))[1],
    "the replay set": lambda split, refs, replay: ((replay / "replay.extxyz").write_text("new"), ("abc", split))[1],
}


@pytest.mark.parametrize("changed", CHANGES)
def test_a_changed_input_names_itself_and_starts_afresh(tmp_path, caplog, changed):
    split, refs, replay = _fake_inputs(tmp_path)
    key = CheckpointKey.of_run("abc", "mace-small", split, refs, replay)
    # the key depends on content only: the test material's references are not part of it
    (refs / "MgO" / "fc2.hdf5").write_text("other")
    assert CheckpointKey.of_run("abc", "mace-small", split, refs, replay) == key
    old = prepare_checkpoint(tmp_path / "checkpoints", key, resume=False)
    old.write_bytes(b"a finished checkpoint")
    digest, new_split = CHANGES[changed](split, refs, replay)
    new = CheckpointKey.of_run(digest, "mace-small", new_split, refs, replay)
    with caplog.at_level(logging.INFO, logger="phonft.finetune.checkpoint"):
        path = prepare_checkpoint(tmp_path / "checkpoints", new, resume=True)
    assert path.parent.name == new.digest != key.digest and not path.exists()
    assert f"not resuming {old}: {changed} changed since it was written" in caplog.text
    assert json.loads((path.parent / "key.json").read_text()) == new.record()


def test_the_base_model_file_is_part_of_the_key(tmp_path):
    split, refs, replay = _fake_inputs(tmp_path)
    model = tmp_path / "base.model"
    model.write_text("weights")
    key = CheckpointKey.of_run("abc", f"mace:{model}", split, refs, replay)
    assert key.base_model == {str(model): CheckpointKey.of_run("abc", str(model), split, refs, replay)
                              .base_model[str(model)]}
    model.write_text("other weights")
    assert key.changes(CheckpointKey.of_run("abc", f"mace:{model}", split, refs, replay).record()) == [
        "the base model file"]


# ------------------------------------------------------------------ unreadable checkpoints


class _RunsCode:
    """Pickles to a call of ``Path.touch``: loading it without weights_only runs code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_corrupt_or_unsafe_checkpoint_is_one_clear_error(inputs, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_train_args(inputs, run, "--stop-after", "1")) == 0
    (ckpt,) = (run / "checkpoints").glob("*/last.pt")
    good = ckpt.read_bytes()
    # a checkpoint that would run code when unpickled is refused, and the code does not run
    marker = tmp_path / "code-ran"
    torch.save({"key": ckpt.parent.name, "epoch": 1, "x": _RunsCode(marker)}, ckpt)
    capsys.readouterr()
    assert main(_train_args(inputs, run, "--resume")) == 2
    err = capsys.readouterr().err
    assert not marker.exists()
    assert f"{ckpt}: is not a readable training checkpoint" in err and f"rm {ckpt}" in err
    # a truncated one: exit 2, one line naming it and the command that clears it, nothing written
    ckpt.write_bytes(good[: len(good) // 2])
    before = snapshot(run)
    code = main(_train_args(inputs, run, "--resume"))
    proc = subprocess.CompletedProcess([], code, "", capsys.readouterr().err)
    line = assert_one_line_error(proc, "finetune", f"{ckpt}: is not a readable training checkpoint")
    assert line.endswith(f"Fix: delete it (rm {ckpt}) and rerun; training then starts afresh from epoch 1.")
    assert snapshot(run) == before
    ckpt.unlink()  # the fix the message gives
    assert _train(inputs, run, "--resume")["resumed_from_epoch"] is None


# ------------------------------------------------------------------ SIGKILL and resume


def _env() -> dict[str, str]:
    """The subprocesses' environment: one thread each.

    The tests run two trainings side by side. With two threads each on two cores, some
    float32 kernels' sums depend on thread scheduling: uncontended runs are bitwise equal,
    but side by side 11 of 28 runs differed by 2.4e-7 (see the README's "Resume
    exactness"). One thread per process makes the comparison about resuming alone.
    """
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}


def _kill_after_first_checkpoint(proc: subprocess.Popen, checkpoints: Path, timeout_s: float = 240) -> None:
    """SIGKILL ``proc`` and every process under it as soon as an epoch checkpoint exists."""
    import psutil  # a dependency of snakemake

    deadline = time.monotonic() + timeout_s
    while not list(checkpoints.glob("*/last.pt")):
        assert proc.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    for p in tree:  # the parent first, so that it cannot react to its children's death
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


def _epoch_of(checkpoints: Path) -> int:
    (ckpt,) = checkpoints.glob("*/last.pt")
    return torch.load(ckpt, weights_only=True)["epoch"]


def test_sigkill_mid_epoch_then_resume_through_the_cli(inputs, tmp_path):
    run, whole, epochs = tmp_path / "run", tmp_path / "whole", 5
    args = [sys.executable, "-m", "phonft", *_train_args(inputs, run, "--resume", epochs=epochs)]
    # the uninterrupted run, meanwhile, in a process of its own too (see phonft.finetune.trainer)
    uninterrupted = subprocess.Popen([sys.executable, "-m", "phonft", *_train_args(inputs, whole, epochs=epochs)],
                                     env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    proc = subprocess.Popen(args, env=_env(), start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _kill_after_first_checkpoint(proc, run / "checkpoints")
    killed_at = _epoch_of(run / "checkpoints")
    assert proc.returncode == -signal.SIGKILL and 1 <= killed_at < epochs and not (run / "model.pt").exists()
    resumed = subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"after epoch {killed_at}" in resumed.stderr
    record = json.loads((run / "train.json").read_text())
    assert record["resumed_from_epoch"] == killed_at and record["final"]["epoch"] == epochs
    assert uninterrupted.wait(timeout=300) == 0, uninterrupted.stderr.read()
    assert _same_weights(run, whole)
    assert _metrics(run) == _metrics(whole)


def _metrics(run: Path) -> list[dict[str, str]]:
    """metrics.csv without its timings."""
    with open(run / "metrics.csv") as fh:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(fh)]


TINY = {  # the smallest run the schema allows: two materials, no test split, no other replay material
    "materials": {"Si": {"reference": {"format": "vasprun", "path": "data/dft-phonons/Si", "files": ["vasprun.xml"]},
                         "supercell": [2, 2, 2]},
                  "mp-149": {"reference": {"format": "mdr", "path": "data/mdr/mp-149.yaml.bz2"},
                             "supercell": [2, 2, 2]}},
    "finetune": {"device": "cpu", "runs": {"tiny": {
        "base_model": "mace-small", "model_options": {"elements": ["Si", "C", "Ge"], "seed": 0},
        "materials": ["Si", "mp-149"], "split": {"n_val": 1, "n_test": 0}, "epochs": 5, "lr": 1.0e-3,
        "replay_steps": 1, "replay": {"copies": 2, "min_atoms": 8, "max_atoms": 16, "materials": []}}}},
}


@pytest.mark.slow
def test_sigkill_mid_finetune_then_rerun_snakemake(tmp_path):
    """Kill the whole snakemake process tree during finetune_train; the rerun resumes the
    checkpoint and ends with the model of an uninterrupted run."""
    wf = tmp_path / "wf"
    shutil.copytree(REPO, wf, ignore=shutil.ignore_patterns(".venv", "results", "logs", ".snakemake", ".git",
                                                            "__pycache__", "*.egg-info", "tests"))
    (wf / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    env = {**_env(), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    # --cores 1: the job gets OMP_NUM_THREADS=1 from snakemake, on the first run and the rerun
    cmd = [str(Path(sys.executable).parent / "snakemake"), "results/finetune/tiny/model.pt", "--cores", "1",
           "--configfile", "tiny.yaml"]
    run = wf / "results" / "finetune" / "tiny"
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=wf, env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
        _kill_after_first_checkpoint(proc, run / "checkpoints")
    killed_at = _epoch_of(run / "checkpoints")
    assert 1 <= killed_at < 5 and not (run / "model.pt").exists()
    # the uninterrupted run, meanwhile: the same step by hand, from the config file, on the workflow's inputs
    whole = tmp_path / "whole"
    uninterrupted = subprocess.Popen(
        [sys.executable, "-m", "phonft", "finetune", "train", "--config", "tiny.yaml", "--run", "tiny", "--split",
         str(run / "split.json"), "--references", "results/references", "--replay", str(run / "replay"), "--out",
         str(whole), "--device", "cpu"], cwd=wf, env={**env, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    # what snakemake asks of a user after a kill: --unlock, then the same command again
    unlock = subprocess.run([*cmd, "--unlock"], cwd=wf, env=env, capture_output=True, text=True, timeout=120)
    assert unlock.returncode == 0, unlock.stdout + unlock.stderr
    rerun = subprocess.run(cmd, cwd=wf, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"after epoch {killed_at}" in (wf / "logs" / "finetune" / "tiny" / "train.log").read_text()
    assert uninterrupted.wait(timeout=300) == 0, uninterrupted.stderr.read()
    assert json.loads((run / "train.json").read_text())["resumed_from_epoch"] == killed_at
    assert _same_weights(run, whole) and _metrics(run) == _metrics(whole)
