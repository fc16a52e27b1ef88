#!/usr/bin/env python
"""Compare the numbers of two ``results/`` trees: every summary.json, mdr.csv and thermal.json.

    python scripts/compare_results.py BEFORE/results AFTER/results [--rtol 1e-9]

Numbers must agree to ``--rtol`` (relative); strings and structure must match. Differences
in provenance (protocol digests, package versions, timings, model paths) are listed apart.
Files of the former layout are looked up at their new place
(``finetune/<run>/thermal/<variant>/`` is now ``finetune/<run>/heldout/<variant>/``).
Exit status 1 when a number differs, else 0.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path
from typing import Any

COMPARED = ("summary.json", "mdr.csv", "thermal.json")
PROVENANCE = {"versions", "protocol_digest", "seconds", "created", "path", "model", "model_spec", "reference",
              "sha256", "source", "protocol", "phonft"}
MOVED = (("/thermal/base/", "/heldout/base/"), ("/thermal/finetuned/", "/heldout/finetuned/"))


def differences(a: Any, b: Any, path: str, rtol: float) -> list[tuple[str, str]]:
    """(path, what) for every place where ``a`` and ``b`` differ, recursing into dicts and lists."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [(f"{path}/{k}", "only in " + ("after" if k in b else "before")) for k in sorted(set(a) ^ set(b))]
        for k in sorted(set(a) & set(b)):
            out += differences(a[k], b[k], f"{path}/{k}", rtol)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]", rtol)]
    if _number(a) and _number(b):
        same = a == b or (math.isnan(a) and math.isnan(b)) or abs(a - b) <= rtol * max(abs(a), abs(b))
        return [] if same else [(path, f"{a!r} != {b!r}")]
    return [] if a == b else [(path, f"{str(a)[:60]!r} != {str(b)[:60]!r}")]


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def load(path: Path) -> Any:
    if path.suffix == ".json":
        return json.loads(path.read_text())
    with path.open() as fh:
        return [{k: _float_or_str(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _float_or_str(v: str) -> float | str:
    try:
        return float(v)
    except ValueError:
        return v


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--rtol", type=float, default=1e-9)
    args = ap.parse_args()
    compared, missing, numeric, provenance = 0, [], [], []
    for f in sorted(p for p in args.before.rglob("*") if p.name in COMPARED):
        rel = str(f.relative_to(args.before))
        for old, new in MOVED:
            rel = rel.replace(old, new)
        if not (args.after / rel).exists():
            missing.append(rel)
            continue
        compared += 1
        for path, what in differences(load(f), load(args.after / rel), rel, args.rtol):
            keys = set(path.replace("[", "/").split("/"))
            (provenance if keys & PROVENANCE else numeric).append(f"{path}: {what}")
    print(f"{compared} files compared; {len(missing)} only in before: {', '.join(missing) or '-'}")
    print(f"{len(numeric)} differences beyond rtol {args.rtol:g}:", *numeric, sep="\n  ")
    print(f"{len(provenance)} provenance differences (digests, versions, timings, paths):", *provenance, sep="\n  ")
    return 1 if numeric else 0


if __name__ == "__main__":
    raise SystemExit(main())
