"""CLI help, the thermal.json contract, and the Snakemake workflow (dry run, lint)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from phonft.cli import build_parser
from phonft.protocols import ReferenceProtocol
from phonft.references import Reference
from phonft_testdata import MDR, REPO

STAGES = ["structures", "displacements", "references"]
THERMAL_KEYS = {
    "omega_max_K", "entropy_J_per_K_mol", "free_energy_kJ_per_mol", "heat_capacity_J_per_K_mol",
    "temperatures_K", "n_imaginary", "min_frequency_THz", "dynamically_stable",
    "protocol", "protocol_digest", "versions",
}


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_has_help(stage):
    out = subprocess.run([_bin("phonft"), stage, "--help"], capture_output=True, text=True, check=True).stdout
    assert "--out" in out and "--material" in out


def test_parser_knows_every_stage():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(STAGES) <= set(sub.choices)


def test_thermal_json_contract(tmp_path):
    ref = Reference.read({"format": "mdr", "path": str(MDR / "mp-149.yaml.bz2")})
    ref.write(tmp_path / "mp-149", "mp-149")
    thermal = json.loads((tmp_path / "mp-149" / "thermal.json").read_text())
    assert THERMAL_KEYS <= set(thermal)
    assert thermal["protocol_digest"] == ReferenceProtocol().digest()
    assert thermal["protocol"]["gamma_acoustic_tolerance_K"] == -35.0
    assert {"phonopy", "numpy", "phonft"} <= set(thermal["versions"])
    assert sorted(p.name for p in (tmp_path / "mp-149").iterdir()) == ["fc2.hdf5", "phonopy_params.yaml",
                                                                       "thermal.json"]


def test_protocol_digest_changes_with_settings():
    assert ReferenceProtocol().digest() != ReferenceProtocol(mesh=(10, 10, 10)).digest()
    assert ReferenceProtocol().digest() == ReferenceProtocol().digest()


def _offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MP_API_KEY"}
    env.update(http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9", no_proxy="")
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    return env


@pytest.fixture
def workflow_copy(tmp_path) -> Path:
    """A copy of the workflow without results/, so tests never touch the user's results."""
    dst = tmp_path / "wf"
    shutil.copytree(REPO, dst, ignore=shutil.ignore_patterns(".venv", "results", "logs", ".snakemake", ".git",
                                                             "__pycache__", "*.egg-info"))
    return dst


def test_snakemake_dry_run_offline(workflow_copy):
    """The default workflow plans offline (its parse-time imports: tests/test_plan.py)."""
    proc = subprocess.run([_bin("snakemake"), "-n", "--cores", "1"], cwd=workflow_copy, env=_offline_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "references" in proc.stdout and "total" in proc.stdout


def test_snakemake_lint(workflow_copy):
    proc = subprocess.run([_bin("snakemake"), "--lint"], cwd=workflow_copy, env=_offline_env(),
                          capture_output=True, text=True, timeout=120)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text
    assert "Lints for" not in text, text


def test_invalid_config_is_rejected(workflow_copy):
    cfg = workflow_copy / "config" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("format: force_sets", "format: forcesets", 1))
    proc = subprocess.run([_bin("snakemake"), "-n"], cwd=workflow_copy, env=_offline_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "forcesets" in proc.stdout + proc.stderr
