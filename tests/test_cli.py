"""The ``phonft`` command line, run as the installed console script: every stage and action
has a ``--help`` that exits 0 and names its options, the parser has the seven stages, the
actions are the rule names, and bad input to any stage is a one-line error, exit status 2."""

from __future__ import annotations

import json
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
}

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
    assert tuple(stages) == STAGES
    actions = {f"{s} {a}" for s in ("finetune", "evaluate") for a in _choices(stages[s], "action")}
    assert set(HELP) == set(STAGES) | actions


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
