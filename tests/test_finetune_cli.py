"""`phonft finetune split|replay|train|heldout` end to end, with a small MACE on real references."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from phonft.cli import main
from phonft_testdata import TINY_MACE_RUN

RUN = TINY_MACE_RUN


@pytest.fixture(scope="module")
def refs_root(references):
    for m in RUN["materials"]:
        root = references(m).parent
    return root


def _run(*args: str) -> None:
    assert main(["finetune", *args]) == 0


def test_finetune_cli_end_to_end(refs_root, tmp_path):
    spec = json.dumps({"run": RUN})
    run = tmp_path / "run"
    _run("split", "--run", "t", "--settings", spec, "--out", str(run / "split.json"))
    split = json.loads((run / "split.json").read_text())
    assert (split["train"], split["val"], split["test"]) == (["Si"], ["mp-149"], ["MgO"])

    _run("replay", "--run", "t", "--settings", spec, "--split", str(run / "split.json"),
         "--references", str(refs_root), "--out", str(run / "replay"), "--device", "cpu")
    manifest = json.loads((run / "replay" / "manifest.json").read_text())
    # disjoint pool within the model's elements: Mg, C, Ge and SiC prototypes; one held back
    assert manifest["kind"] == "pseudo-label" and manifest["n_frames"] == 12
    assert manifest["counts"] == {"train": 9, "val": 3}
    assert {s["formula"] for s in manifest["structures"]} == {"Mg", "C", "Ge", "CSi"}

    common = ["--run", "t", "--settings", spec, "--split", str(run / "split.json"), "--references", str(refs_root),
              "--replay", str(run / "replay"), "--device", "cpu"]
    # a run killed after epoch 1, then resumed ...
    _run("train", *common, "--out", str(run), "--stop-after", "1")
    assert not (run / "model.pt").exists() and (run / "metrics.csv").is_file()
    _run("train", *common, "--out", str(run), "--resume")
    # ... ends with the weights of an uninterrupted run
    other = tmp_path / "other"
    shutil.copytree(run / "replay", other / "replay")
    _run("train", *common[:-4], "--replay", str(other / "replay"), "--device", "cpu", "--out", str(other))
    a = torch.load(run / "model.pt", weights_only=False).state_dict()
    b = torch.load(other / "model.pt", weights_only=False).state_dict()
    for k in a:  # bitwise (see phonft.finetune.trainer.reproducible)
        torch.testing.assert_close(a[k], b[k], atol=0, rtol=0)

    record = json.loads((run / "train.json").read_text())
    assert record["resumed_from_epoch"] == 1 and record["protocol"]["name"] == "train"
    key = record["checkpoint_key"]
    assert key["settings"] == record["protocol_digest"] and (run / "checkpoints" / key["key"] / "last.pt").is_file()
    lines = (run / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,steps,train_loss,train_hessian_mae") and len(lines) == 4
    assert not (run / "training_curve.png").exists()  # the figures stage draws the curve

    out = tmp_path / "thermal.json"
    # the config's temperatures (integers in YAML) give the references' own protocol and digest
    protocol = json.dumps({"protocol": {"temperatures_K": [0, 75, 150, 300, 600], "mesh": 100}})
    assert main(["finetune", "heldout", "--model", str(run / "model.pt"), "--reference", str(refs_root / "MgO"),
                 "--material", "MgO", "--settings", protocol, "--out", str(out), "--device", "cpu"]) == 0
    thermal = json.loads(out.read_text())
    ref = json.loads((refs_root / "MgO" / "thermal.json").read_text())
    for key in ("omega_max_K", "entropy_J_per_K_mol", "dynamically_stable", "protocol_digest", "versions"):
        assert key in thermal
    assert set(ref) - {"source", "engine"} <= set(thermal)
    assert thermal["protocol_digest"] == ref["protocol_digest"]
    assert thermal["model"].endswith("model.pt") and thermal["hessian_mae_eV_A2"] > 0


def test_finetune_cli_errors_are_one_line(tmp_path, capsys):
    bad_split = json.dumps({"run": {**RUN, "split": {"n_test": 3}}})
    assert main(["finetune", "split", "--run", "t", "--settings", bad_split, "--out", str(tmp_path / "s.json")]) == 2
    assert "cannot give 3 test" in capsys.readouterr().err
    assert main(["finetune", "heldout", "--model", "mace:/nope.model", "--reference", str(tmp_path),
                 "--material", "x", "--out", str(tmp_path / "t.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "t.json").exists()
    # a typo in a protocol key names the key (no TypeError traceback)
    assert main(["finetune", "heldout", "--model", "chgnet", "--reference", str(tmp_path), "--material", "x",
                 "--settings", '{"protocol": {"mesh_size": 3}}', "--out", str(tmp_path / "t.json")]) == 2
    err = capsys.readouterr().err
    assert "'mesh_size'" in err and "temperatures_K" in err and "Traceback" not in err
    # so does an unknown settings key, and an action that does not exist
    assert main(["finetune", "train", "--run", "t", "--settings", json.dumps({"run": RUN, "epochs": 3}),
                 "--split", "s.json", "--out", str(tmp_path)]) == 2
    assert "unknown key 'epochs'" in capsys.readouterr().err


