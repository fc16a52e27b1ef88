"""profiles/cluster-smoke: a batch system without a cluster. The sbatch/sacct/scancel stand-ins
(scripts/cluster_smoke/) on their own, and a tiny workflow (two materials' structures,
displacements and references) run through snakemake-executor-plugin-cluster-generic, whose
results/ equal a local run's. `make cluster-smoke` does the same for the whole default workflow."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from phonft_testdata import REPO

SCRIPTS = REPO / "scripts" / "cluster_smoke"
PLUGIN = importlib.util.find_spec("snakemake_executor_plugin_cluster_generic") is not None
TINY = {
    "materials": {
        "NaCl": {"reference": {"format": "force_sets", "path": "data/dft-phonons/NaCl"}, "supercell": [2, 2, 2]},
        "mp-149": {"reference": {"format": "mdr", "path": "data/mdr/mp-149.yaml.bz2"}, "supercell": [2, 2, 2]},
    },
    "finetune": {"runs": {}},
    "evaluate": {"extra_materials": [], "double_well": [], "kappa": {"materials": []}},
}


def script(name: str, *args: str, cwd: Path) -> str:
    proc = subprocess.run([str(SCRIPTS / name), *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def wait_ended(job_id: str, cwd: Path) -> str:
    """status.sh of the job once it reports other than running."""
    for _ in range(600):
        state = script("status.sh", job_id, cwd=cwd)
        if state != "running":
            return state
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still running")


def test_submit_runs_the_script_in_the_background_and_status_reports_its_exit(tmp_path):
    """submit.sh returns a job id at once while the job runs; status.sh says running, then
    success or failed from the exit status; an unknown id is failed."""
    (tmp_path / "ok.sh").write_text("echo out > ok.txt\n")
    (tmp_path / "bad.sh").write_text("exit 3\n")
    (tmp_path / "slow.sh").write_text("sleep 30\n")
    ok, bad, slow = (script("submit.sh", f"{n}.sh", cwd=tmp_path) for n in ("ok", "bad", "slow"))
    assert len({ok, bad, slow}) == 3
    assert script("status.sh", slow, cwd=tmp_path) == "running"
    assert wait_ended(ok, tmp_path) == "success" and (tmp_path / "ok.txt").read_text() == "out\n"
    assert wait_ended(bad, tmp_path) == "failed"
    assert script("status.sh", "no-such-job", cwd=tmp_path) == "failed"
    script("cancel.sh", slow, cwd=tmp_path)
    assert wait_ended(slow, tmp_path) == "failed"


def snakemake(workdir: Path, config: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MP_API_KEY", "SNAKEMAKE_PROFILE")}
    env.update(http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9", no_proxy="", OMP_NUM_THREADS="1")
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    workdir.mkdir()
    proc = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "--snakefile", str(REPO / "Snakefile"),
                           "--directory", str(workdir), "--configfile", str(config), *args],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.skipif(not PLUGIN, reason="snakemake-executor-plugin-cluster-generic is not installed (pip install -e '.[cluster]')")
def test_tiny_workflow_through_the_cluster_profile_equals_a_local_run(tmp_path):
    """Every job runs as a background batch script (the prep jobs bundled into one group job),
    each ends with status 0, and results/ equal a local run's byte for byte outside benchmarks/."""
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    snakemake(tmp_path / "local", config, "--cores", "1")
    snakemake(tmp_path / "cluster", config, "--profile", str(REPO / "profiles" / "cluster-smoke"))
    books = tmp_path / "cluster" / ".snakemake" / "cluster-smoke"
    statuses = [p.read_text().strip() for p in books.glob("*.rc")]
    assert statuses == ["0"]  # six jobs of group prep in one batch job
    proc = subprocess.run([sys.executable, str(SCRIPTS / "diff.py"), str(tmp_path / "local" / "results"),
                           str(tmp_path / "cluster" / "results")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 on one side only" in proc.stdout and "0 files differ in their bytes" in proc.stdout
    assert "2 files compared" in proc.stdout  # the two thermal.json
