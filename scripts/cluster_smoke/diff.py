#!/usr/bin/env python
"""Diff the results/ of a local run and of the same run through profiles/cluster-smoke.

    python scripts/cluster_smoke/diff.py LOCAL/results CLUSTER/results [--rtol 1e-9]

Fails (exit 1) when a file exists on one side only or a number differs beyond --rtol
(scripts/compare_results.py on every summary.json, mdr.csv and thermal.json). Files whose
bytes differ are listed: provenance (timings, paths) may legitimately differ there.
benchmarks/ (wall-clock times of each job) is left out.
"""

from __future__ import annotations

import argparse
import filecmp
import subprocess
import sys
from pathlib import Path

COMPARE = Path(__file__).resolve().parent.parent / "compare_results.py"


def files(root: Path) -> set[str]:
    """Paths of the files under ``root``, relative to it, outside benchmarks/."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] != "benchmarks"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("local", type=Path)
    ap.add_argument("cluster", type=Path)
    ap.add_argument("--rtol", default="1e-9")
    args = ap.parse_args()
    local, cluster = files(args.local), files(args.cluster)
    only = sorted(f"{f} (local only)" for f in local - cluster) + sorted(f"{f} (cluster only)" for f in cluster - local)
    differ = sorted(f for f in local & cluster if not filecmp.cmp(args.local / f, args.cluster / f, shallow=False))
    print(f"{len(local & cluster)} files on both sides; {len(only)} on one side only:", *only, sep="\n  ")
    print(f"{len(differ)} files differ in their bytes (numbers checked below):", *differ, sep="\n  ")
    numbers = subprocess.run([sys.executable, str(COMPARE), str(args.local), str(args.cluster), "--rtol", args.rtol])
    return 1 if only or numbers.returncode else 0


if __name__ == "__main__":
    raise SystemExit(main())
