#!/usr/bin/env python
"""GNEP against SNES on GPUMD's PbTe example: how fast each reaches GPUMD's final RMSE.

Inputs, read from ``../shared/data/nep/PbTe`` (GPL-3 data, never copied here; the script
exits with a message when it is absent): ``train.xyz`` (25 frames of 250 atoms),
``nep.in`` (GPUMD's hyperparameters), ``nep.txt`` (only its header: the architecture keys
``nep.in`` leaves to GPUMD's defaults, which changed between GPUMD versions, are taken from
the model GPUMD wrote) and ``loss.out`` (its last row is the target: GPUMD SNES's final
training RMSE of energy and force).

1. A random NEP with that architecture is initialised on the training set
   (q_scaler, max_neighbors, per-element energy shift: :func:`phonft.finetune.gnep.initialise`).
2. GNEP (Adam, cosine decay, GNEP's loss weights 1/2/0.1: nep.in's 1/1/0.1 were measured
   worse for GNEP, E 0.56 meV/atom and F 44.8 meV/Å after 800 epochs) trains it until both training RMSEs are at or below the
   target, or ``--minutes`` pass; epochs, structure evaluations and wall time at the
   crossing are recorded.
3. phonft's SNES runs from the same initialisation for the same wall time, with nep.in's
   population, batch, regularisation and loss weights.

Both are printed with the ratios; ``--out`` writes the numbers as JSON.

    python benchmarks/gnep_pbte.py --threads 2 --out benchmarks/results/gnep_pbte.json
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CANDIDATES = (REPO.parent / "shared" / "data" / "nep" / "PbTe", Path("/work/shared/data/nep/PbTe"))
ARCHITECTURE = ("version", "cutoff", "n_max", "basis_size", "l_max", "neuron", "zbl")


def target_from_loss_out(path: Path) -> dict[str, float]:
    """GPUMD's last ``loss.out`` row: generation, then total, L1, L2 loss, then the energy
    (eV/atom), force (eV/Å) and virial training RMSEs."""
    row = [float(v) for v in [ln for ln in path.read_text().splitlines() if ln.strip()][-1].split()]
    return {"generation": int(row[0]), "energy_rmse_meV_atom": 1000 * row[4], "force_rmse_meV_A": 1000 * row[5]}


def architecture(nep_in_path: Path, nep_in: dict, nep_txt: Path):
    """The NEPSpec: nep.in's architecture keys over the nep.txt header (for those nep.in omits),
    through phonft's own ``nep_spec_from_options``; and the keys taken from the header."""
    from phonft.models.nep.nepfile import read_nep_txt
    from phonft.models.nep.options import nep_spec_from_options

    header, _ = read_nep_txt(nep_txt)
    spec = nep_spec_from_options({"nep_in": str(nep_in_path)}, defaults=header)
    return spec, sorted(set(ARCHITECTURE) - set(nep_in))


def _number(nep_in: dict, key: str, default):
    return float(nep_in[key][0]) if key in nep_in else default


def loss_weights(nep_in: dict):
    """nep.in's ``lambda_e``, ``lambda_f``, ``lambda_v`` (GPUMD's defaults 1, 1, 0.1)."""
    from phonft.finetune.gnep import GNEPWeights

    return GNEPWeights(energy=_number(nep_in, "lambda_e", 1.0), forces=_number(nep_in, "lambda_f", 1.0),
                       virial=_number(nep_in, "lambda_v", 0.1))


def snes_settings(nep_in: dict, seconds: float, seed: int):
    from phonft.finetune.gnep import SNESSettings

    num = lambda key, default: _number(nep_in, key, default)
    return SNESSettings(generations=int(num("generation", 100000)), population=int(num("population", 50)),
                        batch=int(num("batch", 1000)), lambda_1=num("lambda_1", None), lambda_2=num("lambda_2", None),
                        weights=loss_weights(nep_in), seed=seed, max_seconds=seconds)


def reached(target: dict):
    return lambda row: (row["energy_rmse_meV_atom"] <= target["energy_rmse_meV_atom"]
                        and row["force_rmse_meV_A"] <= target["force_rmse_meV_A"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="the PbTe folder (default ../shared/data/nep/PbTe)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--minutes", type=float, default=20.0, help="GNEP's time limit (default 20)")
    ap.add_argument("--epochs", type=int, default=1000, help="GNEP epochs (the cosine decay's length)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-2)
    ap.add_argument("--lr-final", type=float, default=1e-5)
    ap.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--snes-seconds", type=float, help="SNES wall time (default: GNEP's)")
    ap.add_argument("--out", type=Path, help="also write the numbers as JSON here")
    args = ap.parse_args(argv)
    data = args.data or next((p for p in CANDIDATES if p.is_dir()), None)
    if data is None or not (data / "train.xyz").is_file():
        print(f"skipped: the PbTe data folder is not there ({', '.join(map(str, CANDIDATES))}); give --data")
        return 0
    return run(args, data)


def run(args, data: Path) -> int:
    import torch

    from phonft.finetune.gnep import GNEPSettings, initialise, read_training_frames, train_gnep, train_snes
    from phonft.models.nep.backend import NEPModel
    from phonft.models.nep.module import NEP, random_parameters
    from phonft.models.nep.options import read_nep_in

    torch.set_num_threads(args.threads)
    nep_in = read_nep_in(data / "nep.in")
    target = target_from_loss_out(data / "loss.out")
    spec, from_header = architecture(data / "nep.in", nep_in, data / "nep.txt")
    frames = read_training_frames(data / "train.xyz")
    print(f"PbTe: {len(frames)} frames, {sum(f.n_atoms for f in frames)} atoms; {spec}")
    print(f"architecture keys from nep.txt's header (absent from nep.in): {', '.join(from_header)}")
    print(f"target (GPUMD SNES, generation {target['generation']}): E {target['energy_rmse_meV_atom']:.2f} "
          f"meV/atom, F {target['force_rmse_meV_A']:.1f} meV/Å")
    model = NEPModel(NEP(spec, random_parameters(spec, np.random.default_rng(args.seed))), spec="nep",
                     dtype=args.dtype)
    t0 = time.perf_counter()
    init = initialise(model, frames)
    init_seconds = time.perf_counter() - t0
    start = copy.deepcopy(model)
    gnep = GNEPSettings(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, lr_final=args.lr_final,
                        seed=args.seed, max_seconds=60 * args.minutes)
    g = train_gnep(model, frames, gnep, stop=reached(target))
    seconds = args.snes_seconds or g.last["wall_s"]
    s = train_snes(start, frames, snes_settings(nep_in, seconds, args.seed))
    snes = snes_settings(nep_in, seconds, args.seed)
    target["structure_evaluations"] = target["generation"] * snes.population * min(snes.batch, len(frames))
    report(target, init, init_seconds, g, s)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"data": str(data), "spec": str(spec), "threads": args.threads,
                                        "dtype": args.dtype, "target": target, "initialise": init,
                                        "initialise_seconds": init_seconds, "gnep": g.as_dict(),
                                        "snes": s.as_dict()}, indent=1))
    return 0


def report(target, init, init_seconds, g, s) -> None:
    gpumd_evals = target["structure_evaluations"]
    print(f"\ninitialise: {init_seconds:.1f} s, max_neighbors {init['max_neighbors']}, "
          f"shift {init['energy_shift_eV_atom']}")
    print(f"{'method':6s} {'stopped':>12s} {'epochs/gens':>11s} {'evaluations':>11s} {'wall s':>8s} "
          f"{'E meV/atom':>10s} {'F meV/Å':>8s}")
    for name, h in (("GNEP", g), ("SNES", s)):
        r = h.last
        print(f"{name:6s} {h.stopped:>12s} {r['epoch']:11d} {r['structure_evaluations']:11d} {r['wall_s']:8.1f} "
              f"{r['energy_rmse_meV_atom']:10.3f} {r['force_rmse_meV_A']:8.2f}")
    print(f"GPUMD  {'(loss.out)':>12s} {target['generation']:11d} {gpumd_evals:11d} {'':>8s} "
          f"{target['energy_rmse_meV_atom']:10.3f} {target['force_rmse_meV_A']:8.2f}")
    print(f"ratios at equal wall time: SNES/GNEP force RMSE {s.last['force_rmse_meV_A'] / g.last['force_rmse_meV_A']:.1f}, "
          f"energy RMSE {s.last['energy_rmse_meV_atom'] / g.last['energy_rmse_meV_atom']:.1f}; "
          f"GPUMD's evaluations / GNEP's {gpumd_evals / max(g.last['structure_evaluations'], 1):.0f}")


if __name__ == "__main__":
    sys.exit(main())
