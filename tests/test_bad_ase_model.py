"""Bad ``ase:<module>:<Class>`` model specs and options (issue 12): each fails with one line
naming the spec and the fix, exit status 2, and nothing written into ``results/``.

``evaluate mdr`` runs on EMT's own Cu references folder (the model fails as it loads);
``finetune train`` checks its settings before reading the split.
"""

from __future__ import annotations

import json

import pytest

from badinput import assert_clean_failure
from phonft_testdata import write_emt_cu_reference


@pytest.fixture(scope="module")
def emt_cu_ref(tmp_path_factory):
    return write_emt_cu_reference(tmp_path_factory.mktemp("emt-cu"))


def _mdr(model: str, reference, options=None) -> list[str]:
    args = ["evaluate", "mdr", "--model", model, "--reference", str(reference), "--material", "Cu",
            "--out", "results/evaluate/m/Cu", "--device", "cpu"]
    return args + (["--settings", json.dumps({"model_options": options})] if options is not None else [])


@pytest.mark.parametrize("model,options,message", [
    ("ase:no_such_module_xyz:Calc", None,
     "cannot import model 'ase:no_such_module_xyz:Calc': No module named 'no_such_module_xyz'. Fix: install"),
    ("ase:ase.calculators.emt:NoSuchClass", None,
     "cannot import model 'ase:ase.calculators.emt:NoSuchClass': module 'ase.calculators.emt' has no attribute"),
    ("ase:os:getcwd", None,
     "model 'ase:os:getcwd' is a builtin_function_or_method, not an ASE calculator class. Fix:"),
    ("ase:ase.atoms:Atoms", None, "model 'ase:ase.atoms:Atoms' is a type, not an ASE calculator class"),
    ("ase:ase.calculators.harmonic:HarmonicCalculator", {"spring": 1.0},
     "model 'ase:ase.calculators.harmonic:HarmonicCalculator' does not take model_options ['spring'] (TypeError"),
    ("ase:emt", None, "model 'ase:emt': an ASE calculator model is named 'ase:<module>:<Class>'"),
    ("ase:ase.calculators.emt:EMT", ["not", "a", "mapping"],
     "model 'ase:ase.calculators.emt:EMT': model_options must be a mapping"),
])
def test_bad_ase_model(model, options, message, emt_cu_ref, tmp_path):
    line = assert_clean_failure(_mdr(model, emt_cu_ref, options), cwd=tmp_path, message=message)
    assert "Fix:" in line


def test_finetune_train_refuses_an_ase_base_model(tmp_path):
    run = {"materials": ["A", "B", "C"], "base_model": "ase:ase.calculators.emt:EMT"}
    args = ["finetune", "train", "--run", "r", "--settings", json.dumps({"run": run}), "--split", "split.json",
            "--references", "results/references", "--replay", "results/finetune/r/replay",
            "--out", "results/finetune/r", "--device", "cpu"]
    assert_clean_failure(args, cwd=tmp_path, message="finetune.runs.<run>.base_model is "
                                                     "'ase:ase.calculators.emt:EMT', an evaluation-only ASE calculator")


def test_a_calculator_that_does_not_know_the_material(references, tmp_path):
    """EMT has no potential for Na or Cl: the model is tried on the unit cell before the
    relaxation, and the calculator's own error becomes one line."""
    line = assert_clean_failure(_mdr("ase:ase.calculators.emt:EMT", references("NaCl")), cwd=tmp_path,
                                message="model 'ase:ase.calculators.emt:EMT' failed on Cl4Na4 (NotImplementedError: "
                                        "No EMT-potential for")
    assert "Fix: score it only on materials whose elements its calculator knows" in line
