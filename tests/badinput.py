"""The bad-input corpus's harness (issue 13).

Every case of ``tests/data/bad/`` (and every other bad input a test feeds phonft) must end
the same way: exit status 2, exactly one ``phonft <stage>: error: ...`` line on stderr that
names the file or key and the fix, no traceback, and nothing new or changed under the
results folder. :func:`assert_clean_failure` checks all four at once; the command runs in
a subprocess, so a segfault (exit 139) or a hang fails the test instead of the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from phonft_testdata import REPO

#: The corpus: one sub-folder per area (references, config, structures, ...).
BAD = REPO / "tests" / "data" / "bad"


def phonft(*args: str, cwd: Path, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m phonft *args`` in ``cwd`` with this interpreter and return the process."""
    return subprocess.run([sys.executable, "-m", "phonft", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root`` (hidden ones included): relative path -> (size, mtime_ns)."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def assert_one_line_error(proc: subprocess.CompletedProcess, stage: str, message: str) -> str:
    """Exit status 2, one ``phonft <stage>: error:`` line containing ``message``, no traceback."""
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith(f"phonft {stage}: error: ")]
    assert len(errors) == 1, proc.stderr
    assert message in errors[0], f"{message!r} not in {errors[0]!r}"
    return errors[0]


def assert_clean_failure(args: list[str], *, cwd: Path, message: str, results: Path | None = None,
                         timeout: float = 300) -> str:
    """Run ``phonft *args`` in ``cwd``; it must fail cleanly (see the module docstring).

    ``results`` (default ``cwd / "results"``) must hold exactly what it held before the run.
    Returns the error line.
    """
    results = cwd / "results" if results is None else results
    before = snapshot(results)
    proc = phonft(*args, cwd=cwd, timeout=timeout)
    line = assert_one_line_error(proc, args[0], message)
    assert snapshot(results) == before, f"{results} changed: {set(snapshot(results)) ^ set(before)}"
    return line
