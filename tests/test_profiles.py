"""The cluster and workstation profiles (profiles/): GPU requests and job groups, proven by
Snakemake dry runs. No sbatch is needed: without snakemake-executor-plugin-slurm the slurm
profile's executor is overridden by the dry-run one, which plans the same jobs and resources."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from phonft.plan import DEVICE_RULES, JOB_GROUPS
from phonft_testdata import REPO

PROFILES = REPO / "profiles"
SLURM_PLUGIN = importlib.util.find_spec("snakemake_executor_plugin_slurm") is not None


def _profile(name: str) -> dict:
    return yaml.safe_load((PROFILES / name / "config.yaml").read_text())


@pytest.fixture(scope="module")
def workflow_copy(tmp_path_factory) -> Path:
    """A copy of the workflow without results/, so dry runs never touch the user's results."""
    dst = tmp_path_factory.mktemp("profiles") / "wf"
    shutil.copytree(REPO, dst, ignore=shutil.ignore_patterns(".venv", "results", "logs", ".snakemake", ".git",
                                                             "__pycache__", "*.egg-info"))
    return dst


def dry_run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MP_API_KEY"}
    env.update(http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9", no_proxy="")
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    return subprocess.run([str(Path(sys.executable).parent / "snakemake"), "-n", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def planned_jobs(stdout: str) -> list[tuple[str, str, dict[str, str]]]:
    """(rule, output, resources) of each job a dry run lists, grouped or not."""
    jobs = []
    for block in re.split(r"\n\s*(?=(?:local)?(?:rule|checkpoint) \w+:\n)", stdout):
        m = re.match(r"(?:local)?(?:rule|checkpoint) (\w+):", block)
        if m:
            output = re.search(r"output: (.*)", block)
            res = re.search(r"resources: (.*)", block)
            pairs = (p.split("=", 1) for p in res.group(1).split(", ")) if res else ()
            jobs.append((m.group(1), output.group(1) if output else "", dict(pairs)))
    return jobs


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def plain(workflow_copy) -> list:
    return planned_jobs(ok(dry_run(workflow_copy, "--cores", "2")))


def test_plain_run_asks_no_gpu_under_device_auto(plain):
    """The demo (finetune.device: auto) on its own: every model-running rule asks gpu=0, no other rule any."""
    assert len(plain) == 79  # 76 before the augment stage: + 3 augment jobs
    assert {(rule, res.get("gpu")) for rule, _, res in plain} == (
        {(r, "0") for r, _, _ in plain if r in DEVICE_RULES} | {(r, None) for r, _, _ in plain if r not in DEVICE_RULES})


def test_slurm_profile_gives_the_training_rule_its_gpu(workflow_copy, plain):
    """`snakemake -n --profile profiles/slurm`: finetune_train asks the profile's GPU, cores per GPU,
    memory and runtime; the short jobs come in job groups; the jobs are those of a plain run."""
    profile = _profile("slurm")
    assert profile["executor"] == "slurm"
    args = ["--profile", str(PROFILES / "slurm")] + ([] if SLURM_PLUGIN else ["--executor", "dryrun"])
    out = ok(dry_run(workflow_copy, *args))
    jobs = planned_jobs(out)
    assert sorted((r, o) for r, o, _ in jobs) == sorted((r, o) for r, o, _ in plain)
    (train,) = [res for rule, _, res in jobs if rule == "finetune_train"]
    wanted = profile["set-resources"]["finetune_train"]
    assert wanted["gpu"] == 1 and "cpus_per_gpu" in wanted and "runtime" in wanted
    assert {k: train[k] for k in wanted} == {k: str(v) for k, v in wanted.items()}
    assert {"Group job prep", "Group job evaluate"} <= set(re.findall(r"Group job \w+", out))


def test_slurm_profile_names_only_gpu_rules_and_known_groups():
    profile = _profile("slurm")
    assert set(profile["set-resources"]) <= set(DEVICE_RULES)
    assert all(res["gpu"] == 1 for res in profile["set-resources"].values())
    groups = dict(g.split("=") for g in profile["group-components"])
    assert set(groups) == set(JOB_GROUPS.values()) and all(int(n) > 1 for n in groups.values())


def test_local_profile_runs_one_gpu_rule_at_a_time(workflow_copy, plain):
    """profiles/local: one GPU in all (resources gpu=1), and every model-running rule takes it."""
    profile = _profile("local")
    assert profile["resources"] == ["gpu=1"]
    assert profile["set-resources"] == {r: {"gpu": 1} for r in DEVICE_RULES}
    jobs = planned_jobs(ok(dry_run(workflow_copy, "--profile", str(PROFILES / "local"))))
    assert sorted((r, o) for r, o, _ in jobs) == sorted((r, o) for r, o, _ in plain)
    assert {rule for rule, _, res in jobs if res.get("gpu") == "1"} == {r for r, _, _ in plain if r in DEVICE_RULES}


def test_gpu_profile_with_device_cpu_is_refused(workflow_copy):
    """device cpu on a GPU profile would hold GPUs it never uses: a one-line config error at planning."""
    proc = dry_run(workflow_copy, "--profile", str(PROFILES / "local"), "--config", "finetune={device: cpu}")
    assert proc.returncode != 0
    assert "finetune.device is 'cpu' but rule" in proc.stdout + proc.stderr


def test_two_gpus_train_through_torchrun(workflow_copy):
    """finetune_train granted two GPUs runs `torchrun --nproc_per_node 2 -m phonft finetune train`."""
    out = ok(dry_run(workflow_copy, "-p", "--cores", "2", "--set-resources", "finetune_train:gpu=2",
                     "--config", "finetune={device: cuda}"))
    lines = [ln for ln in out.splitlines() if " finetune train " in ln]
    assert lines and all(ln.startswith("Shell command: torchrun --standalone --nproc_per_node 2 -m -- phonft finetune train ")
                         for ln in lines)
    plain_out = ok(dry_run(workflow_copy, "-p", "--cores", "2"))
    assert all(ln.startswith("Shell command: python -m phonft finetune train ")
               for ln in plain_out.splitlines() if " finetune train " in ln)
