#!/usr/bin/env python
"""Replay budget: 4 replay steps per phonon step against one larger replay batch.

Trains the tests' tiny run (``TINY_MACE_RUN``: Si and mp-149 training/validation, MgO held
out, a pseudo-label replay set) once per variant, from the same seed, and prints per
variant the replay steps and replay atoms taken, and the last epoch's forgetting: the
replay-frame force MAE against the replay labels and the force drift from the base model
(eV/Å, on the held-back replay frames), with the training and validation Hessian MAE.

Variants: no replay; ``replay_steps: 4`` × ``replay_batch_atoms: 64`` (the default); and
``replay_steps: 1`` × 256 atoms (4× the batch, one step); also 1 × 64 (a quarter of the
budget) as a reference. Counts, not wall time, are the comparison. ``--terms`` adds
``4x64 H``: the default replay, the phonon step's force and stress terms off.

    python benchmarks/replay_budget.py [--model chgnet|mace-small] [--epochs 3] [--lr 1e-3]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

VARIANTS = {"none": (0, 64), "4x64": (4, 64), "1x256": (1, 256), "1x64": (1, 64)}
#: ``--terms``: the default replay with the phonon step's force and stress terms off (Hessian only).
NO_FS = {"phonon_weights": {"forces": 0.0, "stress": 0.0}}


def _inputs(root: Path, run: dict) -> dict:
    from phonft.cli import main
    from phonft.references import Reference
    from phonft_testdata import REFERENCE_SPECS

    refs = root / "refs"
    for m in run["materials"]:
        Reference.read(REFERENCE_SPECS[m], base_dir=REPO).write(refs / m, m)
    spec = json.dumps({"run": run})
    assert main(["finetune", "split", "--run", "t", "--settings", spec, "--out", str(root / "split.json")]) == 0
    assert main(["finetune", "replay", "--run", "t", "--settings", spec, "--split", str(root / "split.json"),
                 "--references", str(refs), "--out", str(root / "replay"), "--device", "cpu"]) == 0
    return {"refs": refs, "split": root / "split.json", "replay": root / "replay"}


def main() -> None:
    from phonft.cli import main as cli
    from phonft_testdata import TINY_MACE_RUN

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mace-small", choices=["mace-small", "chgnet"])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--terms", action="store_true", help="add the variant without phonon force/stress terms")
    ap.add_argument("--only", nargs="+", default=None, help="variants to run (default: all)")
    args = ap.parse_args()
    run = {**TINY_MACE_RUN, "epochs": args.epochs, "lr": args.lr,
           "max_drift": {"energy_eV_atom": None, "force_eV_A": None, "error_ratio": None}}
    if args.model == "chgnet":
        run = {k: v for k, v in run.items() if k != "model_options"} | {"base_model": "chgnet"}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        inputs = _inputs(root, run)
        print(f"model={args.model} epochs={args.epochs} lr={args.lr}")
        print("| replay | steps | phonon steps | replay steps | replay atoms/step | replay force MAE eV/Å "
              "| force drift eV/Å | train Hessian MAE | val Hessian MAE |")
        print("|---|---|---|---|---|---|---|---|---|")
        variants = {**VARIANTS, **({"4x64 H": (4, 64)} if args.terms else {})}
        for name, (steps, atoms) in variants.items():
            if args.only and name not in args.only:
                continue
            out = root / name.replace(" ", "_")
            extra = NO_FS if name.endswith(" H") else {}
            settings = {"run": {**run, "replay_steps": steps, "replay_batch_atoms": atoms, **extra}}
            assert cli(["finetune", "train", "--run", "t", "--settings", json.dumps(settings), "--split",
                        str(inputs["split"]), "--references", str(inputs["refs"]), "--replay", str(inputs["replay"]),
                        "--device", "cpu", "--out", str(out)]) == 0
            rows = list(csv.DictReader((out / "metrics.csv").open()))
            last, n_phonon = rows[-1], sum(int(float(r["steps"])) for r in rows)
            print(f"| {name} | {steps}×{atoms} | {n_phonon} | {n_phonon * steps} | {steps * atoms} "
                  f"| {float(last['replay_force_mae']):.3e} | {float(last['drift_force_mae']):.3e} "
                  f"| {float(last['train_hessian_mae']):.4f} | {float(last['val_hessian_mae']):.4f} |", flush=True)


if __name__ == "__main__":
    main()
