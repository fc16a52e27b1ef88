#!/usr/bin/env python
"""Time a phonon training step with fresh and with cached neighbour graphs, in one run.

Variants (each one optimiser step of :func:`phonft.finetune.objective.phonon_objective` on
one Si supercell, one column, the default loss weights unless named):

* ``hvp fresh`` / ``hvp cached``: ``column: hvp`` with ``graph_cache`` off / on;
* ``fd fresh`` / ``fd cached`` / ``fd reuse``: ``column: fd``, graphs all rebuilt / the
  undisplaced structure's graph cached / and the ±h copies reusing its neighbour list
  (``fd_graph_reuse``);
* ``hvp H`` / ``fd H``: cached (and reused) graphs, the Hessian term alone
  (``phonon_weights`` forces 0 and stress 0: no stress autograd, no force term);
* ``prep``: one ``model.prepare`` of the structure; ``ef``: one energy+force evaluation,
  its graph built.

Cases: Si diamond supercells of 64, 216 and 512 atoms (rattled 0.01 Å), CHGNet and a small
random MACE (32 channels, r_max 5 Å). Times are medians of ``--repeats`` steps after one
warm-up step, the variants interleaved round by round. Ratios printed: cached/fresh for
hvp and fd, reuse/fresh for fd, and the step over one E+F evaluation.

    OMP_NUM_THREADS=2 python benchmarks/graph_cache.py --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from ase.build import bulk

from phonft.finetune.data import PhononSample
from phonft.finetune.graphs import cache_for
from phonft.finetune.objective import phonon_objective
from phonft.finetune.settings import LossWeights, TrainSettings
from phonft.models import load_model

REPEATS = {64: 2, 216: 3, 512: 4}
VARIANTS = {
    "hvp fresh": {"column": "hvp", "graph_cache": False},
    "hvp cached": {"column": "hvp"},
    "hvp H": {"column": "hvp", "phonon_weights": LossWeights(forces=0.0, stress=0.0)},
    "fd fresh": {"column": "fd", "graph_cache": False},
    "fd cached": {"column": "fd"},
    "fd reuse": {"column": "fd", "fd_graph_reuse": True},
    "fd H": {"column": "fd", "fd_graph_reuse": True, "phonon_weights": LossWeights(forces=0.0, stress=0.0)},
}


def si_sample(n_atoms: int) -> PhononSample:
    rep = round((n_atoms / 8) ** (1 / 3))
    atoms = bulk("Si", "diamond", 5.43, cubic=True).repeat(rep)
    atoms.rattle(0.01, seed=0)
    assert len(atoms) == n_atoms, f"{n_atoms} is not 8 k^3"
    n = len(atoms)
    return PhononSample(material=f"Si{n}", atoms=atoms, fc2_eV_A2=np.zeros((n, n, 3, 3)),
                        distances_A=np.zeros((n, n)), independent_atoms=np.arange(1),
                        forces_eV_A=np.zeros((n, 3)), stress_eV_A3=np.zeros((3, 3)))


def _interleaved(runs: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each run, one warm-up call each, then ``repeats`` rounds that call
    every run once in turn (so a load that comes and goes hits every variant alike)."""
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeats):
        for k, run in runs.items():
            t0 = time.perf_counter()
            run()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def _step(model, sample, settings, opt, rng):
    def run():
        cols = rng.integers(0, 3 * sample.n_atoms, size=(1, 1))
        opt.zero_grad(set_to_none=True)
        phonon_objective(model, [sample], cols, settings).loss.backward()
        opt.step()
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[64, 216, 512])
    ap.add_argument("--models", nargs="+", default=["chgnet", "mace-small"])
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    ap.add_argument("--repeats", type=int, default=None, help="steps timed per variant (default by size)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"dtype={args.dtype} torch={torch.__version__} threads={torch.get_num_threads()}")
    print(f"{'model':10s} {'N':>4s} {'prep':>6s} {'ef':>6s} " + " ".join(f"{k:>10s}" for k in VARIANTS)
          + "  hvp c/f  fd c/f  fd r/f  hvpc/ef  fdr/ef  fd reused/rebuilt")
    for spec in args.models:
        opts = {"elements": ["Si"], "num_channels": 32, "r_max": 5.0} if spec == "mace-small" else None
        model = load_model(spec, dtype=args.dtype, device="cpu", options=opts)
        opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-7)
        for n in args.sizes:
            sample, reps = si_sample(n), args.repeats or REPEATS.get(n, 3)
            rng = np.random.default_rng(0)
            runs = {"prep": lambda: model.prepare([sample.atoms]),
                    "ef": lambda: model.evaluate(model.prepare([sample.atoms])),
                    **{k: _step(model, sample, TrainSettings(**v), opt, rng) for k, v in VARIANTS.items()}}
            t = _interleaved(runs, reps)
            prep, ef = t["prep"], t["ef"]
            stats = cache_for(model).stats
            print(f"{spec:10s} {n:4d} {prep:6.3f} {ef:6.3f} " + " ".join(f"{t[k]:10.3f}" for k in VARIANTS)
                  + f"  {t['hvp cached'] / t['hvp fresh']:7.2f} {t['fd cached'] / t['fd fresh']:7.2f}"
                  f" {t['fd reuse'] / t['fd fresh']:7.2f} {t['hvp cached'] / ef:8.2f} {t['fd reuse'] / ef:7.2f}"
                  f"  {stats['fd_reused']}/{stats['fd_rebuilt']}", flush=True)


if __name__ == "__main__":
    main()
