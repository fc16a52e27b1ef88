"""The side-by-side comparison (``results/evaluate/strategies.csv``, ``phonft evaluate compare``)
and the cost of one phonon calculation recorded by the MDR protocol.

The table is built from small fake result folders (written by the real ``summarize``) and
every column is checked against the file it comes from. Wall times are only checked to be
recorded and positive, never against a threshold.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from phonft_testdata import write_thermal_case

MATERIALS = ["A", "B", "C", "U"]
DFT_OMEGA = {"A": 100.0, "B": 200.0, "C": 300.0, "U": 400.0}
OMEGA = {"chgnet": {"A": 130.0, "B": 150.0, "C": 360.0, "U": 420.0},
         "run-a": {"A": 110.0, "B": 190.0, "C": 330.0, "U": 410.0},
         "run-b": {"A": 140.0, "B": 260.0, "C": 305.0, "U": 380.0}}
STEPS = {"chgnet": {"A": 10, "B": 20, "C": 30, "U": 5}, "run-a": {"A": 6, "B": 12, "C": 40, "U": 5},
         "run-b": {"A": 10, "B": 10, "C": 15, "U": 5}}
SECONDS = {"chgnet": {"A": 2.0, "B": 4.0, "C": 6.0, "U": 1.0}, "run-a": {"A": 1.0, "B": 2.0, "C": 9.0, "U": 1.0},
           "run-b": {"A": 3.0, "B": 3.0, "C": 3.0, "U": 1.0}}
DEPTH = {"chgnet": 197.1, "run-a": 150.0, "run-b": 250.0}
MODELS = [{"name": "chgnet", "spec": "chgnet", "base": None, "run": "run-a", "heldout": ["A", "B", "C"]},
          {"name": "run-a", "spec": "results/finetune/run-a/model.pt", "base": "chgnet", "run": "run-a",
           "heldout": ["A", "B"]},
          {"name": "run-b", "spec": "results/finetune/run-b/model.pt", "base": "chgnet", "run": "run-b",
           "heldout": ["C"]}]
SPLITS = {"run-a": {"A": "test", "B": "test", "C": "train", "U": "val"},
          "run-b": {"A": "train", "B": "train", "C": "test", "U": "val"}}


def _write(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def fake_results(root: Path) -> Path:
    """results/ with three models' per-material records, summaries, double wells and two runs."""
    from phonft.evaluate.run import summarize

    results = root / "results"
    for m in MATERIALS:
        write_thermal_case(results, "references", m, DFT_OMEGA[m], stable=m != "U")
    for model, omegas in OMEGA.items():
        for m in MATERIALS:
            write_thermal_case(results / "evaluate", model, m, omegas[m], stable=(m != "U") == (model != "run-b"),
                               band=omegas[m] / 100)
            path = results / "evaluate" / model / m / "thermal.json"
            record = json.loads(path.read_text())
            record["relaxation"] = {"n_steps": STEPS[model][m], "converged": True}
            record["seconds"] = {"relax": SECONDS[model][m] / 2, "forces": SECONDS[model][m] / 4,
                                 "phonopy": SECONDS[model][m] / 4, "total": SECONDS[model][m]}
            path.write_text(json.dumps(record))
        _write(results / "evaluate" / model / "double_well" / "U.json", {"model_well_depth_meV_per_cell": DEPTH[model]})
        base = None if model == "chgnet" else "chgnet"
        summarize(model, model, MATERIALS, results / "evaluate" / model, results / "references",
                  splits=SPLITS["run-b" if model == "run-b" else "run-a"],
                  base_dir=results / "evaluate" / "chgnet" if base else None, base_name=base)
    _write(results / "finetune" / "run-a" / "train.json",
           {"seconds": 159.4, "n_parameters": 400, "n_trainable": 100, "protocol": {"strategy": "full"}})
    _write(results / "finetune" / "run-b" / "train.json",
           {"n_parameters": 400, "trainable_parameters": 8, "trainable_fraction": 0.02, "strategy": "lora",
            "objective": "both", "protocol": {"strategy": "lora"}})
    bench = results / "benchmarks" / "finetune" / "run-b" / "train.tsv"
    bench.parent.mkdir(parents=True)
    bench.write_text("s\th:m:s\tmax_rss\n42.5\t0:00:42\t100.0\n")
    return results


@pytest.fixture
def results(tmp_path) -> Path:
    return fake_results(tmp_path)


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def _dft(m: str) -> dict:
    return {"omega_max_K": DFT_OMEGA[m], "S_300K": DFT_OMEGA[m] / 10, "F_300K": DFT_OMEGA[m] / 100,
            "C_V_300K": DFT_OMEGA[m] / 20}


def test_every_column_comes_from_its_source_file(results):
    from phonft.evaluate.compare import COLUMNS, write_strategies

    out = results / "evaluate" / "strategies.csv"
    write_strategies(results, MODELS, out, double_well_materials=["U"], dft_depth_meV={"U": 180.0})
    table = pd.read_csv(out).set_index("model")
    assert tuple(table.reset_index().columns) == COLUMNS and list(table.index) == ["chgnet", "run-a", "run-b"]
    for entry in MODELS:
        name, row, held = entry["name"], table.loc[entry["name"]], entry["heldout"]
        model = {m: {k: v / DFT_OMEGA[m] * OMEGA[name][m] for k, v in _dft(m).items()} for m in held}
        for q in ("omega_max_K", "S_300K", "F_300K", "C_V_300K"):
            assert row[f"{q}_mae"] == pytest.approx(_mean(abs(model[m][q] - _dft(m)[q]) for m in held), rel=1e-5)
        assert row["band_mae_THz"] == pytest.approx(_mean(OMEGA[name][m] / 100 for m in held), rel=1e-5)
        assert row["materials"] == " ".join(held) and row["n_materials"] == len(held)
        summary = json.loads((results / "evaluate" / name / "summary.json").read_text())
        for key in ("precision", "recall", "f1"):
            expected = summary["instability"][key]
            assert pd.isna(row[f"instability_{key}"]) if expected is None else row[f"instability_{key}"] == expected
        assert row["double_well_depth_meV_per_cell"] == pytest.approx(DEPTH[name])
        assert row["double_well_depth_error_meV_per_cell"] == pytest.approx(abs(DEPTH[name] - 180.0))
        steps = [STEPS[name][m] for m in held]
        seconds = [SECONDS[name][m] for m in held]
        assert row["relax_steps_per_material"] == pytest.approx(_mean(steps)) and min(steps) > 0
        assert row["phonon_seconds_per_material"] == pytest.approx(_mean(seconds)) and min(seconds) > 0
        if entry["base"]:
            assert row["relax_steps_ratio"] == pytest.approx(sum(steps) / sum(STEPS["chgnet"][m] for m in held), rel=1e-5)
            assert row["phonon_seconds_ratio"] == pytest.approx(sum(seconds) / sum(SECONDS["chgnet"][m] for m in held),
                                                                rel=1e-5)
            assert row["kind"] == "finetuned" and row["base_model"] == "chgnet" and row["run"] == name
        else:
            assert pd.isna(row["relax_steps_ratio"]) and pd.isna(row["phonon_seconds_ratio"])
            assert row["kind"] == "base" and row["base_model"] == "chgnet" and pd.isna(row["run"])
    a, b, base = table.loc["run-a"], table.loc["run-b"], table.loc["chgnet"]
    assert a["relax_steps_ratio"] == pytest.approx(18 / 30) and b["phonon_seconds_ratio"] == pytest.approx(0.5)
    assert (a["strategy"], a["train_seconds"], a["trainable_parameters"]) == ("full", 159.4, 100)
    assert a["trainable_fraction"] == pytest.approx(0.25) and pd.isna(a["objective"])
    assert (b["strategy"], b["objective"], b["trainable_parameters"], b["trainable_fraction"]) == ("lora", "both", 8, 0.02)
    assert b["train_seconds"] == 42.5  # from the rule's benchmark file: train.json has no seconds
    assert all(pd.isna(base[c]) for c in ("strategy", "objective", "train_seconds", "trainable_parameters",
                                          "trainable_fraction"))


def test_blank_where_a_record_predates_the_timing_or_a_dft_depth(results):
    """thermal.json without ``seconds`` (results of earlier releases): wall times and their ratio
    are blank, steps still count; no DFT depth: the depth error is blank."""
    from phonft.evaluate.compare import strategies_table

    for model in OMEGA:
        for m in MATERIALS:
            path = results / "evaluate" / model / m / "thermal.json"
            path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "seconds"}))
    table = strategies_table(results, MODELS, double_well_materials=["U"]).set_index("model")
    assert table["phonon_seconds_per_material"].isna().all() and table["phonon_seconds_ratio"].isna().all()
    assert table["double_well_depth_error_meV_per_cell"].isna().all()
    assert table.loc["run-b", "relax_steps_ratio"] == pytest.approx(15 / 30)


def test_cli_writes_the_table_and_a_missing_file_is_one_line(results, tmp_path):
    from badinput import assert_clean_failure, phonft

    settings = {"models": MODELS, "double_well": ["U"], "dft_well_depth_meV": {}}
    out = results / "evaluate" / "strategies.csv"
    args = ["evaluate", "compare", "--results", str(results), "--settings", json.dumps(settings), "--out", str(out)]
    proc = phonft(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert list(pd.read_csv(out)["model"]) == ["chgnet", "run-a", "run-b"]
    (results / "finetune" / "run-a" / "train.json").unlink()
    out.unlink()
    assert_clean_failure(args, cwd=tmp_path, message="run-a/train.json: is missing", results=results)


def test_strategies_figure(results, tmp_path):
    from phonft.evaluate.compare import write_strategies
    from phonft.figures import draw_all
    from phonft.plan import FigureSet

    write_strategies(results, MODELS, results / "evaluate" / "strategies.csv", double_well_materials=["U"])
    figures = FigureSet(models=("chgnet", "run-a", "run-b"), strategies=True)
    written = draw_all(results / "evaluate", figures, tmp_path / "figures")
    assert tmp_path / "figures" / "strategies.png" in written
    assert (tmp_path / "figures" / "strategies.png").read_bytes()[:4] == b"\x89PNG"


def test_mdr_protocol_records_steps_and_wall_time(references, chgnet64):
    """The cost of one phonon calculation: CHGNet relaxes MgO in a few FIRE steps, and every part
    of the protocol (relax, forces, phonopy) takes a recorded, positive wall time."""
    from phonft.evaluate.mdr import MDRProtocol, ModelPhonons

    record = ModelPhonons.compute(chgnet64, references("MgO"), "MgO", MDRProtocol(batch_atoms=128)).thermal_record()
    assert record["relaxation"]["n_steps"] > 0
    seconds = record["seconds"]
    assert set(seconds) == {"relax", "forces", "phonopy", "total"} and min(seconds.values()) > 0
    assert seconds["total"] == pytest.approx(seconds["relax"] + seconds["forces"] + seconds["phonopy"])


# --------------------------------------------------------------------------- planning


def _plan(extra: dict | None = None, runs: int = 2):
    import yaml
    from phonft_testdata import REPO
    from snakemake.utils import update_config, validate

    from phonft.plan import Plan

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    run = config["finetune"]["runs"]["chgnet-pft"]
    for i in range(1, runs):
        config["finetune"]["runs"][f"chgnet-pft-{i}"] = {**run, "split": {"seed": i, "n_val": 1, "n_test": 3}}
    update_config(config, extra or {})
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return Plan(config, base_dir=str(REPO))


@pytest.mark.parametrize(("runs", "enabled", "planned"), [(1, "auto", False), (2, "auto", True), (1, True, True),
                                                          (2, False, False)])
def test_the_comparison_is_planned_when_asked_or_with_several_runs(runs, enabled, planned):
    plan = _plan({"evaluate": {"compare": {"enabled": enabled}}}, runs)
    assert plan.compare_enabled is planned
    assert (plan.layout.path("strategies") in plan.targets()) is planned
    assert ("strategies" in [f.kind for f in plan.figures()]) is planned
    assert bool(plan.figure_inputs()["strategies"]) is planned


def test_compare_settings_name_every_model_with_its_heldout_materials():
    from phonft.plan import settings

    plan = _plan({"evaluate": {"compare": {"dft_well_depth_meV": {"CaTiO3": 150.0}}}})
    s = settings(plan, "evaluate_compare")
    assert [m["name"] for m in s["models"]] == ["chgnet", "chgnet-pft", "chgnet-pft-1"]
    by_name = {m["name"]: m for m in s["models"]}
    for run in ("chgnet-pft", "chgnet-pft-1"):
        assert by_name[run]["heldout"] == [m for m in plan.eval_materials if m in plan.splits[run].test]
        assert by_name[run]["base"] == "chgnet"
    union = set(plan.splits["chgnet-pft"].test) | set(plan.splits["chgnet-pft-1"].test)
    assert set(by_name["chgnet"]["heldout"]) == union
    assert s["double_well"] == ["CaTiO3"] and s["dft_well_depth_meV"] == {"CaTiO3": 150.0}
    inputs = plan.compare_inputs()
    assert plan.layout.path("train", run="chgnet-pft-1") in inputs["train"]
    assert plan.layout.path("double_well", model="chgnet-pft-1", material="CaTiO3") in inputs["wells"]
    # a fine-tuned model's ratio reads its base's thermal.json on the run's held-out materials
    assert all(plan.layout.path("mdr", model="chgnet", material=m) in inputs["thermal"] for m in union)
