"""Run length from the data, on a small CHGNet run (issue 14, part C; README "Run length").

A run with no validation material (``n_val: 0``) validates on ``val_columns`` held-back
columns of each training structure (``val_from_train``); early stopping follows that loss.
Each epoch's EMA weights are also scored on a real held-out material (``--probe``, 16 fixed
columns, never used for selection), so the table shows whether the held-back columns pick
the epoch a validation material would have picked.

    python scripts/runlength_example.py --references results/references \\
        --train NaCl ZnO MgO --probe mp-149 --epochs 12 --patience 3

Prints one row per epoch and a summary line as JSON. Rough timings: 2 CPU threads.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--references", default="results/references")
    ap.add_argument("--train", nargs="+", default=["NaCl", "ZnO", "MgO"])
    ap.add_argument("--probe", default="mp-149")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--val-columns", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--schedule", default="constant")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from pathlib import Path

    from phonft.finetune.data import load_phonon_sample
    from phonft.finetune.objective import phonon_objective
    from phonft.finetune.runlength import fixed_columns
    from phonft.finetune.settings import TrainSettings
    from phonft.finetune.trainer import Trainer
    from phonft.models import load_model

    refs = Path(args.references)
    train = [load_phonon_sample(refs / m, m) for m in args.train]
    probe = load_phonon_sample(refs / args.probe, args.probe)
    settings = TrainSettings(epochs=args.epochs, replay_steps=0, lr=args.lr, lr_schedule=args.schedule,
                             val_columns=args.val_columns, early_stopping_patience=args.patience)
    probe_cols = fixed_columns([probe.n_atoms], 16, np.random.default_rng(123), "probe")

    class Probed(Trainer):
        def validate(self):
            out = super().validate()
            res = phonon_objective(self.model, [probe], probe_cols, self.settings, create_graph=False)
            out["probe_hessian_mae"] = res.parts["hessian_mae"]
            return out

    torch.manual_seed(0)
    trainer = Probed(load_model("chgnet", device="cpu"), settings, train, [])
    t0 = time.perf_counter()
    result = trainer.fit()
    for row in result.metrics:
        print(json.dumps({k: round(row[k], 5) if isinstance(row.get(k), float) else row.get(k)
                          for k in ("epoch", "train_hessian_mae", "val_hessian_mae", "probe_hessian_mae", "lr")}))
    best_probe = min(result.metrics, key=lambda r: r["probe_hessian_mae"])["epoch"]
    print(json.dumps({"validation": trainer.validation_source, "kept_epoch": result.best_epoch,
                      "best_probe_epoch": best_probe, "stopped": result.stopped,
                      "epochs_run": len(result.metrics) - 1, "seconds": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    main()
