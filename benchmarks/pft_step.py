#!/usr/bin/env python
"""Where a PFT step's time goes, at real sizes; one epoch of a real-size run; the four losses.

**Breakdown** (default). Structures: MgO supercells with DFT-quality force constants from
the vendored 2x2x2 DFT set (``real_size_sample``: 2x2x2 = 64, 3x3x3 = 216, 4x4x4 = 512
atoms). For every model (CHGNet; a small random MACE, ``mace-small`` with 32 channels,
r_max 5 Å), dtype and column mode, phonft's own :class:`~phonft.finetune.trainer.Trainer`
takes phonon steps (``_phonon_step``: today's default settings but the column mode) and
replay steps (``_replay_step``, 64-atom rattled MgO frames labelled by the model), with
wall-clock timers around the phase boundaries (``benchmarks/pft_cases.py``; phonft's code
is unchanged). Phases of a phonon step:

* ``prep``: graph / neighbour-list build (``model.prepare``; for ``fd``, of the
  undisplaced structure and its ±h copies);
* ``fwd``: the forward pass (``model.evaluate`` less its autograd);
* ``forces``: the force (and stress) autograd inside ``evaluate``, with ``create_graph``;
* ``col``: the Hessian-vector product (``hvp``; for ``fd`` the column is the ±h copies
  inside ``prep``, ``fwd``, ``forces`` and ``bwd``, so 0 here);
* ``loss``: the rest of the objective (reference columns, loss terms, Python);
* ``bwd``: the loss backward to the parameters;
* ``opt``: gradient clipping, AdamW step and EMA update;
* ``step``: the whole phonon step; ``stress``: what the stress term adds to it (the same
  step with ``phonon_weights.stress: 0``, subtracted);
* ``replay``: one replay step (``replay_steps`` of them follow each phonon step);
* ``EF``: one energy+force inference of the same structure (``evaluate`` without graph;
  ``EFprep``: with its ``prepare``); ``EFtrain``: one E+F training step of it.

Ratios: ``step/EF``, ``step/(EFprep)``, ``step/EFtrain``, and ``(step + replays)/EF``.
Each time is the median of ``--repeats`` after one warm-up step.

**Epoch** (``--epoch``): one ``Trainer.train_epoch`` of 16 samples of ~400 atoms (two of
each of eight vendored materials, ``pft_cases.EPOCH_MATERIALS``) with today's default
settings (``TrainSettings()``) and the 64-atom replay frames; the first model and dtype.

**Losses** (``--losses``): the four-loss table this script printed before
(``benchmarks/pft_losses.py``).

    python benchmarks/pft_step.py --threads 2 --json bench.json      # everything, CPU
    python benchmarks/pft_step.py --sizes 64 --models chgnet --dtypes float32 --columns hvp
    python benchmarks/pft_step.py --epoch --threads 2
    python benchmarks/pft_step.py --device cuda                        # on a GPU
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pft_cases import PhaseClock, epoch_samples, median_time, mgo_sample, replay_frames, sync

from phonft.finetune.columns import sample_columns
from phonft.finetune.data import ReplaySample
from phonft.finetune.settings import TrainSettings
from phonft.finetune.steps import cycle_batches
from phonft.finetune.trainer import Trainer, reproducible
from phonft.models import load_model

PHASES = ("prepare", "forward", "forces", "column", "loss", "backward", "optimiser+EMA")
SHORT = {"prepare": "prep", "forward": "fwd", "forces": "forces", "column": "col", "loss": "loss",
         "backward": "bwd", "optimiser+EMA": "opt"}


def make_model(spec: str, dtype: str, device: str, elements):
    opts = {"elements": sorted(elements), "num_channels": 32, "r_max": 5.0} if spec == "mace-small" else None
    return load_model(spec, dtype=dtype, device=device, options=opts)


def _median(xs) -> float:
    return float(statistics.median(xs))


def phonon_phases(trainer: Trainer, sample, device: str, repeats: int) -> dict[str, float]:
    """Median seconds per phase of ``trainer._phonon_step`` on ``sample``, and ``step``."""
    rng = np.random.default_rng(0)
    k = trainer.settings.columns_per_structure

    def step():
        trainer._phonon_step([sample], sample_columns([sample.n_atoms], k, rng))

    step()  # warm-up
    rows = []
    for _ in range(repeats):
        clock = PhaseClock(device)
        with clock.watching(trainer.model, trainer):
            total = clock.total(step)
        timed = {p: clock.times.get(p, 0.0) for p in PHASES if p != "loss"}
        rows.append({**timed, "loss": total - sum(timed.values()), "step": total})
    return {key: _median([r[key] for r in rows]) for key in rows[0]}


def ef_costs(trainer: Trainer, sample, device: str, repeats: int) -> dict[str, float]:
    """One E+F inference (with and without its graph build) and one E+F training step."""
    model = trainer.model
    batch = model.prepare([sample.atoms])
    ef = median_time(lambda: model.evaluate(batch), device, repeats)
    ef_prep = median_time(lambda: model.evaluate(model.prepare([sample.atoms])), device, repeats)
    pred = model.predict([sample.atoms])[0]
    frame = ReplaySample(sample.atoms, float(pred["energy"]), np.asarray(pred["forces"], float), None)
    ef_train = median_time(lambda: trainer._replay_step([frame]), device, repeats)
    return {"EF": ef, "EFprep": ef_prep, "EFtrain": ef_train}


def breakdown_case(model, frames, n: int, column: str, args) -> dict:
    """The breakdown row of one model, dtype, column mode and size."""
    sample = mgo_sample(n)
    settings = TrainSettings(column=column, base_model="chgnet")
    w = settings.phonon_weights
    trainer = Trainer(model, settings, [sample], [], replay_train=frames)
    t = phonon_phases(trainer, sample, args.device, args.repeats)
    flat = Trainer(model, dataclasses.replace(settings, phonon_weights=dataclasses.replace(w, stress=0.0)),
                   [sample], [], replay_train=frames)
    t["stress"] = t["step"] - phonon_phases(flat, sample, args.device, args.repeats)["step"] if w.stress > 0 else 0.0
    replay = cycle_batches(trainer.replay_train, settings.replay_batch_atoms, np.random.default_rng(1))
    t["replay"] = median_time(lambda: trainer._replay_step(next(replay)), args.device, args.repeats)
    t.update(ef_costs(trainer, sample, args.device, args.repeats))
    t["replay_steps"] = settings.replay_steps
    t["step/EF"] = t["step"] / t["EF"]
    t["step/EFprep"] = t["step"] / t["EFprep"]
    t["step/EFtrain"] = t["step"] / t["EFtrain"]
    t["(step+replays)/EF"] = (t["step"] + settings.replay_steps * t["replay"]) / t["EF"]
    return {"model": model.spec, "dtype": str(model.dtype).removeprefix("torch."), "column_mode": column, "n_atoms": n, **t}


COLUMNS = [*(SHORT[p] for p in PHASES), "step", "stress", "replay", "EF", "EFprep", "EFtrain",
           "step/EF", "step/EFprep", "step/EFtrain", "(step+replays)/EF"]


def _print_header() -> None:
    print(f"{'model':10s} {'dtype':7s} {'col':3s} {'N':>4s} " + " ".join(f"{c:>7s}" for c in COLUMNS[:13])
          + " " + " ".join(f"{c:>{max(7, len(c))}s}" for c in COLUMNS[13:]), flush=True)


def _print_row(row: dict) -> None:
    vals = [row[p] for p in PHASES] + [row[k] for k in COLUMNS[7:]]
    cells = [f"{v:7.3f}" for v in vals[:13]] + [f"{v:>{max(7, len(c))}.2f}" for v, c in zip(vals[13:], COLUMNS[13:])]
    print(f"{row['model'][:10]:10s} {row['dtype']:7s} {row['column_mode']:3s} {row['n_atoms']:4d} " + " ".join(cells),
          flush=True)


def run_breakdown(args) -> list[dict]:
    _print_header()
    rows = []
    for spec in args.models:
        for dtype in args.dtypes:
            model = make_model(spec, dtype, args.device, {"Mg", "O"})
            frames = replay_frames(model)
            for n in args.sizes:
                for column in args.columns:
                    rows.append(breakdown_case(model, frames, n, column, args))
                    _print_row(rows[-1])
    return rows


def _timed_steps(trainer: Trainer) -> list[tuple[str, float]]:
    """Wrap the trainer's phonon and replay steps with timers; the log they fill:
    (the phonon batch's formula, or ``replay``; seconds)."""
    log: list[tuple[str, float]] = []
    phonon, replay = trainer._phonon_step, trainer._replay_step

    def timed_phonon(samples, *a, **k):
        t0 = time.perf_counter()
        row = phonon(samples, *a, **k)
        log.append(("+".join(s.atoms.get_chemical_formula() for s in samples), time.perf_counter() - t0))
        return row

    def timed_replay(samples):
        t0 = time.perf_counter()
        replay(samples)
        log.append(("replay", time.perf_counter() - t0))

    trainer._phonon_step, trainer._replay_step = timed_phonon, timed_replay
    return log


def run_epoch(args) -> list[dict]:
    """Wall time of one epoch of a 16-material, ~400-atom run with today's default settings,
    split into its phonon steps (per material) and replay steps."""
    import resource

    samples = epoch_samples(args.epoch_materials)
    elements = {s for sample in samples for s in sample.atoms.get_chemical_symbols()} | {"Mg", "O"}
    model = make_model(args.models[0], args.dtypes[0], args.device, elements)
    settings = TrainSettings(**({} if args.epoch_column == "auto" else {"column": args.epoch_column}))
    trainer = Trainer(model, settings, samples, [], replay_train=replay_frames(model))
    log = _timed_steps(trainer)
    epoch_seconds = []
    with reproducible():
        for epoch in range(1, args.epoch_count + 1):
            log.clear()
            sync(args.device)
            t0 = time.perf_counter()
            rows = trainer.train_epoch(epoch)
            sync(args.device)
            epoch_seconds.append(time.perf_counter() - t0)
    seconds = epoch_seconds[-1]
    by_material: dict[str, float] = {}
    for name, dt in log:
        by_material[name] = by_material.get(name, 0.0) + dt
    replay_s = by_material.pop("replay", 0.0)
    out = {"model": model.spec, "dtype": args.dtypes[0], "column": settings.column, "materials": len(samples),
           "mean_atoms": float(np.mean([s.n_atoms for s in samples])), "phonon_steps": len(rows),
           "replay_steps": settings.replay_steps * len(rows), "epoch_s": seconds, "epochs_s": epoch_seconds, "s_per_phonon_step": seconds / len(rows),
           "phonon_s": sum(by_material.values()), "replay_s": replay_s,
           "peak_rss_GiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
           "train_loss": float(np.mean([r["loss"] for r in rows])),
           "train_hessian_mae": float(np.mean([r["hessian_mae"] for r in rows]))}
    print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in out.items()
                   if k != "epochs_s"), flush=True)
    print("phonon step seconds by material (both copies): "
          + ", ".join(f"{k} {v:.1f}" for k, v in sorted(by_material.items(), key=lambda kv: -kv[1])), flush=True)
    return [{**out, "phonon_s_by_material": by_material}]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sizes", nargs="+", type=int, default=None,
                    help="atoms: 64 216 512 (breakdown, MgO) or 16 64 128 (--losses, Si)")
    ap.add_argument("--models", nargs="+", default=["chgnet", "mace-small"])
    ap.add_argument("--dtypes", nargs="+", default=["float32", "float64"], choices=["float32", "float64"])
    ap.add_argument("--columns", nargs="+", default=["hvp", "fd"], choices=["hvp", "fd"])
    ap.add_argument("--threads", type=int, help="torch threads (phonft --threads: intra-op N, inter-op 1)")
    ap.add_argument("--malloc", default="tuned", choices=["tuned", "system"],
                    help="glibc allocator tuning, as the phonft CLI applies it (PHONFT_MALLOC; default tuned)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", metavar="OUT", help="also write the rows and the machine to this JSON file")
    ap.add_argument("--epoch", action="store_true", help="time one epoch of a 16-material, ~400-atom run")
    ap.add_argument("--epoch-materials", type=int, default=16, help="samples in the --epoch run (default 16)")
    ap.add_argument("--epoch-column", default="auto", choices=["auto", "hvp", "fd"])
    ap.add_argument("--epoch-count", type=int, default=1,
                    help="--epoch: train this many epochs and report the last (default 1; 2 gives the steady state, "
                         "after the first epoch has grown the process's memory)")
    ap.add_argument("--losses", action="store_true", help="the former four-loss table (Si, one dtype)")
    ap.add_argument("--no-full", action="store_true", help="--losses: skip the full-Hessian loss")
    args = ap.parse_args()
    if args.threads is not None:
        from phonft.cliutils import pin_threads

        pin_threads(args.threads)
    from phonft.cliutils import tune_malloc

    malloc = "tuned" if tune_malloc(args.malloc) else "system"
    if os.environ.get("LD_PRELOAD"):
        malloc = os.path.basename(os.environ["LD_PRELOAD"])
    machine = {"device": args.device, "torch": torch.__version__, "threads": torch.get_num_threads(), "malloc": malloc}
    print(" ".join(f"{k}={v}" for k, v in machine.items()), flush=True)
    if args.losses:
        from pft_losses import run_losses

        rows = run_losses(args.models, args.sizes or [16, 64, 128], args.dtypes[0], args.device, args.repeats,
                          args.no_full)
    elif args.epoch:
        rows = run_epoch(args)
    else:
        args.sizes = args.sizes or [64, 216, 512]
        rows = run_breakdown(args)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
