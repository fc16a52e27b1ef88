"""The Snakemake workflow: dry run offline, lint, and the schema rejecting a bad config."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from phonft_testdata import REPO


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


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
