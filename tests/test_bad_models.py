"""Bad model files and model options (issue 13, section 3): each traced back before.

Model files (``tests/data/bad/models/``, plus truncated and wrong-kind copies of a small
MACE made here) and ``model_options`` go through ``finetune heldout`` and ``evaluate mdr``,
which load the model before any work; each must fail with one line naming the file or
the key, exit status 2, and nothing written into ``results/``.
"""

from __future__ import annotations

import json

import pytest

from badinput import BAD, assert_clean_failure
from phonft_testdata import small_mace_model

MODELS = BAD / "models"


def _heldout(model: str, options=None) -> list[str]:
    args = ["finetune", "heldout", "--model", model, "--reference", "no-reference-needed", "--material", "Si",
            "--out", "results/finetune/run/heldout/Si/thermal.json", "--device", "cpu"]
    return args + (["--settings", json.dumps({"model_options": options})] if options is not None else [])


@pytest.mark.parametrize("name,message", [
    ("garbage.pt", "could not be read as a model file (UnpicklingError"),
    ("empty.model", "could not be read as a model file (EOFError: Ran out of input)"),
    ("garbage.pth.tar", "could not be read as a model file"),
    ("state-dict.pt", "holds a dict with keys ['weights'], neither a CHGNet model"),
])
def test_corrupt_model_files(name, message, tmp_path):
    line = assert_clean_failure(_heldout(str(MODELS / name)), cwd=tmp_path, message=message)
    assert f"{MODELS / name}:" in line and "Fix:" in line


@pytest.fixture(scope="module")
def mace_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "small.model"
    small_mace_model(("Si",)).save(path)
    return path


@pytest.mark.parametrize("spec", ["{dir}/half.model", "{dir}/half.pt", "mace:{dir}/half.model"])
def test_truncated_model_file(spec, mace_file, tmp_path):
    data = mace_file.read_bytes()
    for name in ("half.model", "half.pt"):
        (tmp_path / name).write_bytes(data[: len(data) // 2])
    assert_clean_failure(_heldout(spec.format(dir=tmp_path)), cwd=tmp_path,
                         message="could not be read as a model file (RuntimeError: PytorchStreamReader failed")


def test_model_of_the_other_backend(mace_file, tmp_path):
    assert_clean_failure(_heldout(f"chgnet:{mace_file}"), cwd=tmp_path,
                         message=f"{mace_file}: is a MACE model, but the spec 'chgnet:{mace_file}' says chgnet. "
                                 f"Fix: write 'mace:{mace_file}'.")


@pytest.mark.parametrize("options,message", [
    ({"elements": ["Si"], "bogus": 1}, "unknown model_options key(s) 'bogus'; known: elements, r_max"),
    ("Si", "model_options must be a mapping of option names to values, not str 'Si'"),
    ([1, 2], "model_options must be a mapping"),
    ({"elements": "Si"}, "model_options.elements must be a list of distinct element symbols"),
    ({"elements": ["Xx"]}, "model_options.elements must be a list of distinct element symbols"),
    ({"r_max": 4.0}, "needs model_options.elements"),
    ({"elements": ["Si"], "r_max": "big"}, "model_options.r_max must be a positive number of Å, not 'big'"),
    ({"elements": ["Si"], "num_channels": 0}, "model_options.num_channels must be an integer ≥ 1, not 0"),
    ({"elements": ["Si"], "max_L": 1.5}, "model_options.max_L must be an integer ≥ 0, not 1.5"),
])
def test_bad_mace_small_options(options, message, tmp_path):
    assert_clean_failure(_heldout("mace-small", options), cwd=tmp_path, message=message)


def test_pretrained_model_takes_no_options(tmp_path):
    """Silently ignored before."""
    assert_clean_failure(_heldout("chgnet", {"elements": ["Si"]}), cwd=tmp_path,
                         message="model 'chgnet' takes no model_options, got 'elements'")


def test_model_file_options_must_be_mace_small_keys(mace_file, tmp_path):
    """A fine-tuned model shares its run's options (ignored), but a misspelt key is still an error."""
    assert_clean_failure(_heldout(str(mace_file), {"element": ["Si"]}), cwd=tmp_path,
                         message="unknown model_options key(s) 'element'")


def test_evaluate_refuses_bad_options(references, tmp_path):
    args = ["evaluate", "mdr", "--model", "mace-small", "--reference", str(references("Si")), "--material", "Si",
            "--out", "results/evaluate/m/Si", "--device", "cpu",
            "--settings", json.dumps({"model_options": {"elements": ["Si"], "rmax": 4}})]
    assert_clean_failure(args, cwd=tmp_path, message="unknown model_options key(s) 'rmax'")


def test_train_refuses_options_that_are_not_a_mapping(tmp_path):
    """``finetune train`` decodes options through TrainSettings; a list traced back before."""
    (tmp_path / "split.json").write_text(json.dumps({"train": [], "val": [], "test": []}))
    run = {"materials": ["Si"], "base_model": "mace-small", "model_options": ["Si"], "replay_steps": 0}
    args = ["finetune", "train", "--run", "r", "--settings", json.dumps({"run": run}), "--split", "split.json",
            "--references", "refs", "--out", "results/finetune/r", "--device", "cpu"]
    assert_clean_failure(args, cwd=tmp_path, message="model_options' must be a mapping")
