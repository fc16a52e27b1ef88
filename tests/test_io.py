"""Atomic output (phonft.io): the umask's permissions, fsync, no temporaries left behind by
killed writers, and evaluate's per-material folders written whole (issue 13, sections 4-5)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from phonft import io as pio


@pytest.fixture(params=[0o022, 0o002], ids=["umask022", "umask002"])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_current_umask_reads_without_changing(umask):
    assert pio.current_umask() == umask
    assert pio.current_umask() == umask


def test_atomic_writers_keep_the_umask_permissions(tmp_path, umask):
    import torch

    f = pio.atomic_write_text(tmp_path / "a" / "x.json", "{}")
    t = pio.atomic_torch_save({"w": torch.zeros(2)}, tmp_path / "m.pt")
    with pio.atomic_directory(tmp_path / "folder") as tmp:
        pio.atomic_write_json(tmp / "inner.json", {"a": 1})
    for path in (f, t, tmp_path / "folder" / "inner.json"):
        assert _mode(path) == 0o666 & ~umask, path
    assert _mode(tmp_path / "folder") == 0o777 & ~umask


def test_download_keeps_the_umask_permissions(tmp_path, umask):
    from phonft.cache import fetch

    src = tmp_path / "src.txt"
    src.write_text("data")
    got = fetch("m", src.as_uri(), tmp_path / "cache", "test")
    assert got.read_text() == "data" and _mode(got) == 0o666 & ~umask


def test_atomic_torch_save_fsyncs_file_and_folder(tmp_path, monkeypatch):
    import torch

    synced = []
    real = os.fsync

    def spy(fd):
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    pio.atomic_torch_save({"w": torch.ones(3)}, tmp_path / "m.pt")
    assert synced == ["file", "dir"]
    assert torch.load(tmp_path / "m.pt", weights_only=True)["w"].sum() == 3


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_of_dead_writers_are_cleaned(tmp_path):
    """Only temporaries of dead writers on this host (and old untagged ones) are removed."""
    target = tmp_path / "out.json"
    host = pio._writer_tag().rpartition("-")[0]
    dead, live = _dead_pid(), os.getppid()
    stale = [f".out.json.{host}-{dead}.abcd1234.tmp", f".out.json.old-{host}-{dead}", ".out.json.zzzz9999.tmp"]
    kept = [f".out.json.{host}-{live}.abcd1234.tmp", f".out.json.otherhost-{dead}.abcd1234.tmp",
            ".out.json.yyyy8888.tmp", ".other.json.zzzz9999.tmp", "out.json.abcd1234.tmp"]
    for name in stale + kept:
        (tmp_path / name).mkdir() if "old-" in name else (tmp_path / name).write_text("x")
    (tmp_path / stale[1] / "thermal.json").write_text("{}")
    os.utime(tmp_path / stale[2], (1e9, 1e9))  # untagged and older than this run: an old phonft's leftover
    pio.atomic_write_text(target, "{}")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(kept + ["out.json"])


KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from phonft import io
    out = Path(sys.argv[1])
    with io.atomic_directory(out / "folder") as tmp:
        (tmp / "half.json").write_text("{")
        with io.atomic_file(out / "model.pt") as f:
            f.write_bytes(b"half")
            os.kill(os.getpid(), signal.SIGKILL)
""")


def test_killed_writer_leaves_nothing_after_the_next_write(tmp_path):
    import torch

    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    hidden = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert len(hidden) == 2 and not (tmp_path / "folder").exists() and not (tmp_path / "model.pt").exists()
    with pio.atomic_directory(tmp_path / "folder") as tmp:
        (tmp / "done.json").write_text("{}")
    pio.atomic_torch_save({"w": torch.zeros(1)}, tmp_path / "model.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "model.pt"]
    assert [p.name for p in (tmp_path / "folder").iterdir()] == ["done.json"]


def test_atomic_directory_replaces_an_empty_folder(tmp_path):
    """Snakemake creates an output's folder before the job: the folder is then replaced."""
    (tmp_path / "m").mkdir()
    with pio.atomic_directory(tmp_path / "m") as tmp:
        (tmp / "thermal.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    assert (tmp_path / "m" / "thermal.json").is_file()


# --------------------------------------------------------------------------- evaluate


def _evaluate(ref: Path, out: Path, seed: int = 0) -> int:
    from phonft.cli import main

    settings = {"model_options": {"elements": ["Si"], "seed": seed, "r_max": 4.0},
                "protocol": {"max_steps": 20, "band_npoints": 3}}
    return main(["evaluate", "mdr", "--model", "mace-small", "--name", "mace", "--reference", str(ref),
                 "--material", "mp-149", "--out", str(out), "--device", "cpu", "--settings", json.dumps(settings)])


def test_evaluate_material_folder_is_all_or_nothing(references, tmp_path, monkeypatch, capsys):
    ref = references("mp-149")
    out = tmp_path / "mace" / "mp-149"
    out.mkdir(parents=True)  # as Snakemake leaves it before the job
    assert _evaluate(ref, out) == 0
    from phonft.evaluate.run import MATERIAL_FILES

    assert sorted(p.name for p in out.iterdir()) == sorted(MATERIAL_FILES)  # the JSONs and phonopy's formats
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    import phonft.evaluate.run as run

    real = run.atomic_write_json

    def fail_on_thermal(path, data):
        if Path(path).name == "thermal.json":
            raise OSError("disk full")
        return real(path, data)

    monkeypatch.setattr(run, "atomic_write_json", fail_on_thermal)
    assert _evaluate(ref, out, seed=1) == 2  # another model (its bands.json differs); one-line error
    assert "disk full" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old complete result, untouched
    assert sorted(p.name for p in out.parent.iterdir()) == ["mp-149"]  # no temporary folder left


def test_evaluate_refuses_to_replace_a_folder_with_other_files(references, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert _evaluate(references("mp-149"), out) == 2
    assert "holds other files (notes.txt)" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "keep me"
