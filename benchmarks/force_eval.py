"""Batched force evaluation against the phono3py + ASE-calculator loop, on the same model.

Inputs: the vendored Si-PBE-fc3 displacement set (phono3py, 2x2x2 conventional, 111
supercells of 64 atoms). One model (CHGNet by default, float64) evaluates every
supercell twice:

- ``loop``: what phonopy/phono3py users write, one ASE ``get_forces`` call per
  supercell, through the model's own ASE calculator;
- ``batched``: :func:`phonft.forces.displaced_forces`, whole batches of up to
  ``--batch-atoms`` atoms in one graph.

The forces must be identical (max |ΔF| < 1e-6 eV/Å, float64); the script prints both
times and their ratio. It is a benchmark, not a test: nothing here is asserted on time.

    python benchmarks/force_eval.py                        # CHGNet, CPU
    python benchmarks/force_eval.py --device cuda
    python benchmarks/force_eval.py --model mace-small --batch-atoms 512 2048
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def supercells():
    """The 111 displaced 64-atom supercells of the vendored Si-PBE-fc3 set, as ase.Atoms."""
    from phonft.atoms import to_ase
    from phonft.phonopy_files import load_phono3py_yaml

    ph3 = load_phono3py_yaml(REPO / "data" / "dft-phonons" / "Si-PBE-fc3" / "phono3py_disp.yaml")
    return [to_ase(c) for c in ph3.supercells_with_displacements if c is not None]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="chgnet", help="model spec (default chgnet)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-atoms", type=int, nargs="+", default=[64, 128, 512, 1024, 4096],
                    help="atom budgets of the batched evaluation")
    ap.add_argument("--out", help="also write the numbers as JSON here")
    args = ap.parse_args(argv)

    from phonft.forces import displaced_forces
    from phonft.models import load_model

    options = {"elements": ["Si"], "seed": 0} if args.model == "mace-small" else None
    model = load_model(args.model, dtype="float64", device=args.device, options=options)
    cells = supercells()
    print(f"{len(cells)} supercells of {len(cells[0])} atoms, model {args.model} (float64, {args.device})")

    model.predict(cells[:2], batch_size=2)  # warm-up (allocator, lazy init)
    calc = model.as_ase_calculator()
    t0 = time.perf_counter()
    loop = []
    for c in cells:
        c = c.copy()
        c.calc = calc
        loop.append(c.get_forces())
    t_loop = time.perf_counter() - t0
    loop = np.array(loop)
    print(f"loop (one ASE call per supercell): {t_loop:8.2f} s")

    rows = []
    for budget in args.batch_atoms:
        t0 = time.perf_counter()
        batched = displaced_forces(model, cells, batch_atoms=budget, remove_drift=False, progress=False)
        t = time.perf_counter() - t0
        dmax = float(np.abs(batched - loop).max())
        ok = dmax < 1e-6
        rows.append({"batch_atoms": budget, "seconds": t, "speedup": t_loop / t, "max_abs_diff_eV_A": dmax})
        print(f"batched, {budget:5d} atoms/batch:   {t:8.2f} s   speed-up x{t_loop / t:5.2f}   "
              f"max |dF| {dmax:.1e} eV/Å {'(identical)' if ok else '(MISMATCH)'}")
        if not ok:
            return 1
    if args.out:
        Path(args.out).write_text(json.dumps({"model": args.model, "device": args.device, "n_cells": len(cells),
                                              "loop_seconds": t_loop, "batched": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
