"""The allocator tuning the phonft CLI applies (``PHONFT_MALLOC``, :func:`phonft.cliutils.tune_malloc`).

Each check runs in a fresh interpreter: the tuning is a property of the whole process.
The effect is read from glibc's own accounting (``mallinfo2``): under ``tuned`` a 64 MiB
block comes from the heap and stays there after it is freed; under ``system`` it is a
fresh ``mmap`` returned on free.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from phonft.cliutils import glibc, tune_malloc

needs_glibc = pytest.mark.skipif(glibc() is None, reason="glibc only (mallopt, mallinfo2)")

PROBE = """
import ctypes, json, sys
import numpy as np
from phonft.cliutils import tune_malloc

class MallInfo2(ctypes.Structure):
    _fields_ = [(k, ctypes.c_size_t) for k in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
applied = tune_malloc(sys.argv[1])
block = np.ones(64 * 2**20, dtype=np.uint8)
held = libc.mallinfo2()
del block
freed = libc.mallinfo2()
print(json.dumps({"applied": applied, "mmapped_while_held": held.hblkhd, "heap_while_held": held.arena,
                  "heap_after_free": freed.arena}))
"""


def _probe(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@needs_glibc
def test_tuned_serves_large_tensors_from_the_heap_and_keeps_them():
    tuned = _probe("tuned")
    assert tuned["applied"] is True
    assert tuned["mmapped_while_held"] < 2**20  # nothing of the 64 MiB block is an mmap
    assert tuned["heap_while_held"] >= 64 * 2**20
    assert tuned["heap_after_free"] >= 64 * 2**20  # freed memory stays for the next tensor


@needs_glibc
def test_system_leaves_glibc_as_it_comes():
    system = _probe("system")
    assert system["applied"] is False
    assert system["mmapped_while_held"] >= 64 * 2**20  # glibc's default: a fresh mmap
    assert system["heap_after_free"] < 64 * 2**20


def test_a_bad_mode_is_a_config_error(monkeypatch):
    from phonft.errors import ConfigError

    monkeypatch.setenv("PHONFT_MALLOC", "fast")
    with pytest.raises(ConfigError, match="PHONFT_MALLOC must be one of"):
        tune_malloc()


def test_the_cli_refuses_a_bad_mode_in_one_line(tmp_path):
    env = {**os.environ, "PHONFT_MALLOC": "fast"}
    run = subprocess.run([sys.executable, "-m", "phonft", "structures", "--material", "X", "--file", "x.cif",
                          "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env, check=False)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert lines[-1].startswith("phonft structures: error: PHONFT_MALLOC must be one of")
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()
