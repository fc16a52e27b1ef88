#!/usr/bin/env python
"""Which PFT column mode and Hessian normalisation transfer best to held-out materials?

Fine-tunes the base model of a config run once per variant (column mode x Hessian
normalisation), with everything else as in the config, on the run's train/val split, and
scores each result on the run's *test* materials with phonopy's own finite-displacement
force constants (float64): the Hessian MAE over symmetry-independent rows (eV/Å²) and the
error of omega_max (K). Needs ``results/references`` (run ``make demo`` first).

    python scripts/pft_ablation.py                       # default run, 4 variants
    python scripts/pft_ablation.py --variants hvp:plain fd:plain --epochs 6
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import yaml


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="config/config.yaml")
    ap.add_argument("--run", default="chgnet-pft")
    ap.add_argument("--variants", nargs="+", default=["hvp:plain", "fd:plain", "fd:near_field", "fd:distance"])
    ap.add_argument("--epochs", type=int, help="override the run's epochs")
    ap.add_argument("--out", default="results/ablation/pft_ablation.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from phonft.finetune.data import load_phonon_sample
    from phonft.finetune.heldout import hessian_mae, model_force_constants
    from phonft.finetune.replay import load_replay_split
    from phonft.finetune.settings import TrainSettings
    from phonft.finetune.trainer import Trainer
    from phonft.io import atomic_write_json
    from phonft.models import load_model
    from phonft.phonons import commensurate_frequencies_THz, assess_stability
    from phonft.plan.runs import run_split, train_fields
    from phonft.protocols import ReferenceProtocol

    cfg = yaml.safe_load(Path(args.config).read_text())
    run = dict(cfg["finetune"]["runs"][args.run])
    if args.epochs:
        run["epochs"] = args.epochs
    split = run_split(run)
    refs = Path("results/references")
    train = [load_phonon_sample(refs / m, m) for m in split.train]
    val = [load_phonon_sample(refs / m, m) for m in split.val]
    replay_train, replay_val = load_replay_split(Path(f"results/finetune/{args.run}/replay/replay.extxyz"))
    protocol = ReferenceProtocol()

    def score(model) -> dict[str, float]:
        model.set_dtype("float64")
        out = {}
        for m in split.test:
            s = load_phonon_sample(refs / m, m)
            fc, ph = model_force_constants(model, refs / m, protocol)
            ph.force_constants = fc
            wmax = assess_stability(commensurate_frequencies_THz(ph), protocol).omega_max_K
            ref = json.loads((refs / m / "thermal.json").read_text())
            out[m] = {"hessian_mae": hessian_mae(fc, s.fc2_eV_A2, s.independent_atoms),
                      "omega_max_err_K": wmax - ref["omega_max_K"]}
        out["mean_hessian_mae"] = float(np.mean([out[m]["hessian_mae"] for m in split.test]))
        out["mean_abs_omega_max_err_K"] = float(np.mean([abs(out[m]["omega_max_err_K"]) for m in split.test]))
        return out

    results = {"run": args.run, "split": split.as_dict(), "base": score(load_model(run["base_model"], device="cpu"))}
    print(f"base: {results['base']['mean_hessian_mae']:.4f} eV/Å², |d omega_max| {results['base']['mean_abs_omega_max_err_K']:.1f} K")
    for variant in args.variants:
        column, norm = variant.split(":")
        settings = TrainSettings.from_dict(train_fields({**run, "column": column, "hessian_norm": norm}))
        model = load_model(settings.base_model, dtype=settings.dtype, device="cpu")
        t0 = time.perf_counter()
        res = Trainer(model, settings, train, val, replay_train, replay_val).fit()
        secs = time.perf_counter() - t0
        model.load_state_dict(res.state)
        sc = score(model)
        results[variant] = {**sc, "train_seconds": secs, "best_epoch": res.best_epoch,
                            "replay_force_mae_final": res.metrics[-1].get("replay_force_mae")}
        print(f"{variant:16s}: {sc['mean_hessian_mae']:.4f} eV/Å², |d omega_max| {sc['mean_abs_omega_max_err_K']:.1f} K, "
              f"train {secs:.0f} s, best epoch {res.best_epoch}", flush=True)
    atomic_write_json(args.out, results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
