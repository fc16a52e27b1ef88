"""Bad output paths (issue 13, section 3): ``--out`` under a file traced back; ``--out`` naming
an existing file was silently replaced by a folder; ``--log`` under a file traced back.
Each is refused before any work, on one line, with exit status 2 and nothing written.
"""

from __future__ import annotations

import json
import os

import pytest

from badinput import assert_clean_failure, phonft, snapshot
from phonft.cliutils import check_output_path
from phonft.errors import ConfigError
from phonft_testdata import DFT

POSCAR = str(DFT / "Si" / "POSCAR-unitcell")


def _structures(out: str, *extra: str) -> list[str]:
    return ["structures", "--material", "Si", "--file", POSCAR, "--out", out, *extra]


@pytest.fixture
def results(tmp_path):
    """``results/`` holding a plain file ``results/structures`` where a folder belongs."""
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "structures").write_text("not a folder\n")
    return tmp_path


def test_out_under_a_file(results):
    assert_clean_failure(_structures("results/structures/Si"), cwd=results,
                         message="--out results/structures/Si: ")
    line = assert_clean_failure(_structures("results/structures/Si/deeper"), cwd=results, message="is a file, not a")
    assert "Fix: choose an output path under a folder." in line


def test_out_that_is_a_file_is_not_replaced(results):
    """The file survives (before, the stage replaced it with its folder)."""
    assert_clean_failure(_structures("results/structures"), cwd=results,
                         message="--out results/structures: exists and is not a folder")
    assert (results / "results" / "structures").read_text() == "not a folder\n"


def test_file_output_that_is_a_folder(tmp_path):
    (tmp_path / "results" / "split.json").mkdir(parents=True)
    run = {"materials": ["Si", "MgO", "NaCl", "CaTiO3", "mp-149"]}
    assert_clean_failure(["finetune", "split", "--run", "r", "--settings", json.dumps({"run": run}),
                          "--out", "results/split.json"], cwd=tmp_path,
                         message="--out results/split.json: is a folder; this command writes a file there")


def test_log_under_a_file(results):
    assert_clean_failure(_structures("results/s/Si", "--log", "results/structures/log.txt"), cwd=results,
                         message="--log results/structures/log.txt: ")


def test_empty_out(tmp_path):
    assert_clean_failure(_structures(""), cwd=tmp_path, message="--out is empty")


def test_out_where_the_system_refuses_to_write(tmp_path):
    """An OSError from the write itself (here /proc refuses a new folder) is one line too."""
    before = snapshot(tmp_path)
    proc = phonft(*_structures("/proc/phonft-test/Si"), cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("phonft structures: error: /proc/")]
    assert snapshot(tmp_path) == before


def test_unwritable_folder_is_refused_before_any_work(tmp_path, monkeypatch):
    """Root can write anywhere, so the permission is faked: the nearest existing folder."""
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if os.fspath(p) == str(tmp_path) else real_access(p, mode))
    with pytest.raises(ConfigError, match=f"the folder {tmp_path} is not writable by this user"):
        check_output_path(tmp_path / "results" / "x", "--out")
    check_output_path(tmp_path.parent / "elsewhere", "--out")  # a writable parent passes
