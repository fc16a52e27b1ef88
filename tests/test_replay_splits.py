"""The replay study across split seeds (issue 16): config/replay-splits.yaml and
``scripts/replay_ablation.py --by-split``, on synthetic results."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "replay_ablation.py"
KEYS = ("omega_max_K_mae", "S_300K_mae", "F_300K_mae", "C_V_300K_mae")


def _script():
    spec = importlib.util.spec_from_file_location("replay_ablation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_run(results: Path, run: str, factor: float, drift_meV: float, replay_steps: int, test: list[str]) -> None:
    base = dict.fromkeys(KEYS, 10.0)
    summary = {"mae_by_split": {"test": {k: 10.0 * factor for k in KEYS}}, "instability": {"f1": 1.0},
               "base": {"mae_by_split": {"test": base}, "instability": {"f1": 0.5}}}
    protocol = {"column": "hvp", "replay_steps": replay_steps,
                "max_drift": {"energy_eV_atom": 0.002, "force_eV_A": 0.01}}
    train = {"seconds": 1.0, "best_epoch": 3, "split": {"test": test}, "protocol": protocol,
             "replay_manifest": {"kind": "pseudo-label", "structures": "disjoint"},
             "forgetting": {"n_frames": 4, "drift": {"force_mae": drift_meV / 1e3, "energy_mae": drift_meV / 1e4},
                            "error": {}}}
    for stage, name, data in (("evaluate", "summary.json", summary), ("finetune", "train.json", train)):
        (results / stage / run).mkdir(parents=True, exist_ok=True)
        (results / stage / run / name).write_text(json.dumps(data))


@pytest.fixture
def results(tmp_path: Path) -> Path:
    out = tmp_path / "results"
    _write_run(out, "chgnet-pft", 0.8, 5.0, 4, ["MgO"])   # split 0 of `pft`: -20 %
    _write_run(out, "pft-s1", 0.9, 7.0, 4, ["NaCl"])       # -10 %
    _write_run(out, "noreplay-unbounded-s0", 0.7, 12.0, 0, ["MgO"])
    _write_run(out, "noreplay-unbounded-s1", 1.1, 2.0, 0, ["NaCl"])
    _write_run(out, "chgnet-pft-fd", 0.5, 1.0, 4, ["MgO"])  # no split suffix: not part of the study
    return out


def test_by_split_groups_runs_per_variant_and_compares_each_with_its_own_base(results):
    rows = {r["variant"]: r for r in _script().by_split(results, "test")}
    assert set(rows) == {"pft", "noreplay-unbounded"}
    pft = rows["pft"]
    assert pft["runs"] == {0: "chgnet-pft", 1: "pft-s1"}
    assert pft["change_by_seed"] == pytest.approx({0: -20.0, 1: -10.0})
    assert pft["mean_change_percent"] == pytest.approx(-15.0)
    assert pft["max_drift_force_meV_A"] == pytest.approx(7.0) and pft["mean_drift_force_meV_A"] == pytest.approx(6.0)
    assert rows["noreplay-unbounded"]["mean_change_percent"] == pytest.approx(-10.0)
    assert rows["noreplay-unbounded"]["replay"] == "none"


def test_by_split_command_prints_the_table_and_writes_json(results):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--by-split", "--results", str(results)],
                          capture_output=True, text=True, check=True)
    assert "| pft | pseudo-labels, disjoint structures, 4 steps | -20 % | -10 % | -15.0 % |" in proc.stdout
    assert "split 0: MgO; split 1: NaCl" in proc.stdout
    saved = json.loads((results / "ablation" / "replay_splits.json").read_text())
    assert [r["variant"] for r in saved] == ["pft", "noreplay-unbounded"]


def test_by_split_without_results_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--by-split", "--results", str(tmp_path)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and "replay-splits.yaml" in proc.stderr and "Traceback" not in proc.stderr
