#!/usr/bin/env python
"""One real-size epoch under each memory allocator, in one run: glibc as it comes
(``PHONFT_MALLOC=system``), glibc tuned the way the phonft CLI tunes it (``tuned``,
:func:`phonft.cliutils.tune_malloc`), and tcmalloc or jemalloc through ``LD_PRELOAD`` when
the library is installed (``--variants``; a variant whose library is absent is skipped).

The allocator is a property of the process, so each variant is its own
``benchmarks/pft_step.py --epoch`` process, run one after another (never side by side);
the script prints the first epoch's seconds and the last one's (``--epochs``, default 2:
the steady state of a long run, once the first epoch has grown the process's memory),
the last one's phonon and replay parts, the peak resident
memory, the train loss (the allocator must not change it) and each variant's speed-up
over ``system``.

    python benchmarks/malloc.py --threads 2
    python benchmarks/malloc.py --threads 2 --variants system tuned --json malloc.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Debian/Ubuntu paths of the optional allocators (apt: libtcmalloc-minimal4, libjemalloc2).
PRELOADS = {"tcmalloc": "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
            "jemalloc": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"}


def run_variant(name: str, args) -> dict | None:
    """The epoch row of one allocator variant (None when its library is absent)."""
    env = dict(os.environ)
    malloc = name if name in ("system", "tuned") else "system"
    if name in PRELOADS:
        if not Path(PRELOADS[name]).is_file():
            print(f"{name}: {PRELOADS[name]} is not installed; skipped", flush=True)
            return None
        env["LD_PRELOAD"] = PRELOADS[name]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "epoch.json"
        cmd = [sys.executable, str(HERE / "pft_step.py"), "--epoch", "--threads", str(args.threads), "--models",
               args.model, "--dtypes", args.dtype, "--malloc", malloc, "--epoch-materials", str(args.materials),
               "--epoch-count", str(args.epochs), "--json", str(out)]
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL if args.quiet else None)
        row = json.loads(out.read_text())["rows"][0]
    return {"variant": name, **row}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=["system", "tuned", "tcmalloc"],
                    choices=["system", "tuned", *PRELOADS])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default="chgnet")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--materials", type=int, default=16, help="samples in the epoch (default 16)")
    ap.add_argument("--epochs", type=int, default=2,
                    help="epochs per variant; the table shows the last and the first (default 2: the steady state)")
    ap.add_argument("--quiet", action="store_true", help="hide the epochs' own output")
    ap.add_argument("--json", metavar="OUT", help="also write the rows to this JSON file")
    args = ap.parse_args()
    rows = [r for r in (run_variant(v, args) for v in args.variants) if r is not None]
    base = next((r["epoch_s"] for r in rows if r["variant"] == "system"), None)
    print(f"{'allocator':10s} {'first_s':>8s} {'epoch_s':>8s} {'phonon_s':>9s} {'replay_s':>9s} {'peak_GiB':>9s} {'train_loss':>11s} "
          f"{'system/this':>11s}")
    for r in rows:
        ratio = f"{base / r['epoch_s']:11.2f}" if base else f"{'':11s}"
        print(f"{r['variant']:10s} {r['epochs_s'][0]:8.1f} {r['epoch_s']:8.1f} {r['phonon_s']:9.1f} {r['replay_s']:9.1f} "
              f"{r['peak_rss_GiB']:9.1f} {r['train_loss']:11.6g} {ratio}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
