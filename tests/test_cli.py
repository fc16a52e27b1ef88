"""The ``phonft`` command line, run as the installed console script: every stage and action
has a ``--help`` that exits 0 and names its options, the parser has the seven stages, the
actions are the rule names, and bad input to any stage is a one-line error, exit status 2."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from phonft.cli import build_parser
from phonft_testdata import DFT

#: The stages in data-flow order, as ``phonft <stage>``.
STAGES = ("structures", "displacements", "references", "augment", "finetune", "evaluate", "figures")

_MODEL = ("--model", "--name", "--device")
#: ``phonft <command> --help``: the options (or, for finetune and evaluate, the actions) it lists.
HELP = {
    "structures": ("--material", "--out", "--settings", "--config", "--base-dir", "--file", "--cache-dir", "--log"),
    "displacements": ("--material", "--out", "--settings", "--config", "--structure", "--log"),
    "references": ("--material", "--out", "--settings", "--config", "--base-dir", "--displacements",
                   "--results-dir", "--log"),
    "augment": ("--material", "--reference", "--out", "--n-frames", "--settings", "--config", "--base-dir", "--log"),
    "finetune": ("split", "replay", "train", "heldout"),
    "finetune split": ("--run", "--settings", "--config", "--out", "--log"),
    "finetune replay": ("--run", "--settings", "--config", "--split", "--references", "--cache-dir", "--out",
                        "--device", "--log"),
    "finetune train": ("--run", "--settings", "--config", "--split", "--references", "--replay", "--out", "--resume",
                       "--stop-after", "--device", "--log"),
    "finetune heldout": ("--model", "--reference", "--material", "--settings", "--out", "--device", "--log"),
    "evaluate": ("mdr", "double-well", "kappa-reference", "kappa", "kappa103-ids", "kappa103", "summary"),
    "evaluate mdr": (*_MODEL, "--reference", "--material", "--settings", "--out", "--log"),
    "evaluate double-well": (*_MODEL, "--reference", "--material", "--settings", "--out", "--log"),
    "evaluate kappa-reference": ("--reference", "--material", "--settings", "--out", "--log"),
    "evaluate kappa": (*_MODEL, "--reference", "--material", "--settings", "--out", "--log"),
    "evaluate kappa103-ids": ("--settings", "--cache-dir", "--out", "--log"),
    "evaluate kappa103": (*_MODEL, "--settings", "--id", "--cache-dir", "--out", "--log"),
    "evaluate summary": ("--name", "--model", "--model-dir", "--references", "--base-dir", "--cache-dir", "--settings",
                         "--log"),
    "evaluate compare": ("--results", "--out", "--settings", "--log"),
    "figures": ("--settings", "--config", "--evaluate", "--finetune", "--out", "--log"),
    "doctor": ("--json",),
}
#: Commands that describe the installation rather than run a stage.
TOOLS = ("doctor",)

#: One bad input per stage (run in an empty folder): the arguments, and what the error line says.
BAD = {
    "structures": (["--material", "X", "--file", "missing.cif", "--out", "out"], "missing.cif: does not exist."),
    "displacements": (["--material", "NaCl", "--structure", str(DFT / "NaCl" / "POSCAR-unitcell"),
                       "--settings", json.dumps({"protocol": {"distance": 0.01}}), "--out", "out"],
                      "unknown setting 'distance'; known: distance_A"),
    "references": (["--material", "X", "--settings",
                    json.dumps({"material": {"reference": {"format": "forcesets", "path": "x"}}}), "--out", "out"],
                   "unknown reference format 'forcesets'"),
    "augment": (["--material", "X", "--reference", "missing", "--settings", json.dumps({"labels": {"format": "xyz"}}),
                 "--out", "out"], "format 'xyz' is not one of harmonic"),
    "finetune": (["split", "--run", "r", "--settings", json.dumps({"run": {}}), "--out", "out/split.json"],
                 "the settings need 'run', a mapping with a 'materials' list"),
    "evaluate": (["summary", "--name", "m", "--model", "chgnet", "--model-dir", "out", "--settings", "{}"],
                 "the settings name no 'materials' to score"),
    "figures": (["--settings", json.dumps({"models": ["m"]}), "--evaluate", "evaluate", "--out", "out"],
                "summary.json: is missing."),
}


def _phonft(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the ``phonft`` console script of this environment."""
    return subprocess.run([str(Path(sys.executable).parent / "phonft"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def _choices(parser, dest: str) -> dict:
    """The subparsers of ``parser``'s ``dest`` positional (stages or actions), by name."""
    return next(a for a in parser._actions if a.dest == dest).choices


@pytest.mark.parametrize("command", list(HELP), ids=[c.replace(" ", "_") for c in HELP])
def test_every_stage_and_action_has_help(command):
    proc = _phonft(*command.split(), "--help")
    assert proc.returncode == 0, proc.stderr
    for name in HELP[command]:  # listed at the start of a line of the options or actions section
        assert re.search(rf"^\s+{re.escape(name)}(?![\w-])", proc.stdout, re.M), (command, name)


def test_the_parser_has_the_seven_stages_and_help_covers_every_action():
    stages = _choices(build_parser(), "command")
    assert tuple(stages) == (*STAGES, *TOOLS)
    actions = {f"{s} {a}" for s in ("finetune", "evaluate") for a in _choices(stages[s], "action")}
    assert set(HELP) == set(STAGES) | actions | set(TOOLS)


def test_finetune_and_evaluate_actions_are_the_rule_names():
    """`phonft finetune <action>` is what rule `finetune_<action>` runs, and likewise for evaluate."""
    from phonft.plan import SETTINGS

    stages = _choices(build_parser(), "command")
    for stage in ("finetune", "evaluate"):
        actions = _choices(stages[stage], "action")
        assert {f"{stage}_{a.replace('-', '_')}" for a in actions} == {r for r in SETTINGS if r.startswith(stage)}


@pytest.mark.parametrize("stage", STAGES)
def test_bad_input_is_a_one_line_error_with_status_2(stage, tmp_path):
    args, message = BAD[stage]
    proc = _phonft(stage, *args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith(f"phonft {stage}: error: ")]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_version_lists_phonft_python_and_the_key_packages():
    from phonft import __version__
    from phonft.doctor import KEY_PACKAGES

    proc = _phonft("--version")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"phonft {__version__}"
    names = [line.split()[0] for line in lines[1:]]
    assert names == ["python", *KEY_PACKAGES]
    assert re.fullmatch(r"\s+python\s+3\.\d+\.\d+", lines[1])


def test_doctor_text_and_json(tmp_path):
    """``phonft doctor`` exits 0; its JSON has the versions, torch's devices, the cache folder
    (here a fresh one, with its size) and each backend's import status with the reason when not."""
    import os

    from phonft.doctor import BACKENDS

    cache = tmp_path / "cache"
    (cache / "mdr").mkdir(parents=True)
    (cache / "mdr" / "f.bz2").write_bytes(b"x" * 2048)
    env = {**os.environ, "PHONFT_CACHE": str(cache)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(Path(sys.executable).parent / "phonft"), "doctor", *args], capture_output=True,
                              text=True, timeout=300, env=env)

    proc = run("--json")
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found["versions"]["phonft"] and found["versions"]["python"].startswith("3.")
    assert {"cuda_available", "cuda_devices", "torch_threads", "cpu_count"} <= set(found["devices"])
    assert found["cache"] == {"folder": str(cache), "exists": True, "size_bytes": 2048, "kinds_bytes": {"mdr": 2048}}
    assert set(found["backends"]) == set(BACKENDS)
    for name, status in found["backends"].items():
        assert isinstance(status["imports"], bool) and (status["imports"] or status["reason"] and status["fix"]), name
    assert found["backends"]["nep"]["imports"]  # phonft's own NEP needs torch only
    text = run()
    assert text.returncode == 0, text.stderr
    assert f"cache: {cache} (2.0 KiB)" in text.stdout and "backends:" in text.stdout


def test_doctor_reports_a_backend_that_does_not_import(monkeypatch):
    from phonft import doctor

    monkeypatch.setattr(doctor, "BACKENDS", {"missing": ("phonft_no_such_module", "pip install it")})
    assert doctor.backends() == {"missing": {"module": "phonft_no_such_module", "imports": False,
                                             "reason": "ModuleNotFoundError: No module named 'phonft_no_such_module'",
                                             "fix": "pip install it"}}


@pytest.fixture
def restore_threads(monkeypatch):
    """Leave torch's thread count and the thread variables as they were."""
    import torch

    before = torch.get_num_threads()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    yield torch
    torch.set_num_threads(before)


@pytest.mark.parametrize("ranks, expected", [(None, 3), ("2", 2), ("8", 1)])
def test_threads_option_pins_torch_before_any_work(restore_threads, monkeypatch, tmp_path, ranks, expected):
    """`--threads N` sets torch's threads (split over the local torchrun ranks) before the
    action runs, here one that then fails on its input; the variables follow for later imports."""
    from phonft.cli import main

    torch = restore_threads
    torch.set_num_threads(1)
    if ranks:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", ranks)
    n = 3 if ranks is None else 4
    monkeypatch.chdir(tmp_path)
    assert main(["structures", "--material", "X", "--file", "missing.cif", "--out", "out", "--threads", str(n)]) == 2
    assert torch.get_num_threads() == expected
    assert os.environ["OMP_NUM_THREADS"] == str(expected)


def test_no_threads_option_leaves_torch_alone(restore_threads, tmp_path, monkeypatch):
    from phonft.cli import main

    torch = restore_threads
    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)
    assert main(["structures", "--material", "X", "--file", "missing.cif", "--out", "out"]) == 2
    assert torch.get_num_threads() == 1 and "OMP_NUM_THREADS" not in os.environ


def test_threads_option_must_be_positive(restore_threads, tmp_path, capsys, monkeypatch):
    from phonft.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["structures", "--material", "X", "--file", "missing.cif", "--out", "out", "--threads", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("phonft structures: error: --threads must be a positive integer, not 0. "
                       "Fix: pass the job's cores, e.g. --threads 2.")
