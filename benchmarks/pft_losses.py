"""The four-loss comparison of ``benchmarks/pft_step.py --losses`` (what it measured before
the breakdown): one optimiser step of ``ef``, ``hvp``, ``fd`` and ``full`` on Si supercells.

* ``ef``    energy + force loss (the cost of ordinary fine-tuning);
* ``hvp``   the PFT phonon loss with one exact Hessian column (one HVP);
* ``fd``    the PFT phonon loss with one central-difference column (±0.01 Å);
* ``full``  a full-Hessian loss: all 3N columns, one HVP each.

Expected: ``hvp/ef`` at most ~4, and ``full/hvp`` growing about linearly with N. The
full-Hessian step is timed once (it is 3N HVPs); the others are the median of
``repeats`` steps after one warm-up step.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from ase.build import bulk

from phonft.finetune.columns import fd_columns, hvp_columns, unit_vectors
from phonft.finetune.losses import force_loss, hessian_column_loss
from phonft.models import load_model
from pft_cases import median_time, sync as _sync

SUPERCELLS = {16: (2, 1, 1), 64: (2, 2, 2), 128: (4, 2, 2)}


def si_supercell(n_atoms: int):
    atoms = bulk("Si", "diamond", 5.43, cubic=True).repeat(SUPERCELLS[n_atoms])
    atoms.rattle(0.01, seed=0)
    assert len(atoms) == n_atoms
    return atoms



def step_fn(kind: str, model, atoms, opt):
    n = len(atoms)
    ref_f = torch.zeros((n, 3), dtype=model.dtype, device=model.device)
    ref_col = torch.zeros((1, n, 3), dtype=model.dtype, device=model.device)
    col = np.array([[3 * (n // 2) + 1]])

    def run():
        opt.zero_grad(set_to_none=True)
        if kind == "fd":
            cols, _, out = fd_columns(model, [atoms], col, 0.01)
            loss = 20 * force_loss(out.forces, ref_f) + 100 * hessian_column_loss(cols, ref_col)
        else:
            batch = model.prepare([atoms])
            out = model.evaluate(batch, create_graph=True)
            loss = 20 * force_loss(out.forces, ref_f)
            if kind == "hvp":
                loss = loss + 100 * hessian_column_loss(hvp_columns(model, batch, col, out), ref_col)
            elif kind == "full":
                for c in range(3 * n):  # 3N HVPs, each backpropagated at once to bound memory
                    v = unit_vectors(batch, np.array([[c]]), out.forces.dtype)[0]
                    hcol = model.hvp(batch, v, out, create_graph=True)
                    (100 * hessian_column_loss(hcol[None], ref_col) / (3 * n)).backward(retain_graph=True)
        loss.backward()
        opt.step()

    return run


def _once(run, device: str) -> float:
    _sync(device)
    t0 = time.perf_counter()
    run()
    _sync(device)
    return time.perf_counter() - t0


def run_losses(models, sizes, dtype: str, device: str, repeats: int, no_full: bool) -> list[dict]:
    """Print the four-loss table; its rows."""
    print(f"{'model':11s} {'N':>4s} {'ef s':>8s} {'hvp s':>8s} {'fd s':>8s} {'full s':>9s} "
          f"{'hvp/ef':>7s} {'fd/ef':>6s} {'full/hvp':>9s} {'(full/hvp)/N':>12s}")
    rows = []
    for spec in models:
        opts = {"elements": ["Si"], "num_channels": 32, "r_max": 5.0} if spec == "mace-small" else None
        model = load_model(spec, dtype=dtype, device=device, options=opts)
        opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-6)
        for n in sizes:
            atoms = si_supercell(n)
            t = {k: median_time(step_fn(k, model, atoms, opt), device, repeats) for k in ("ef", "hvp", "fd")}
            t["full"] = float("nan") if no_full else _once(step_fn("full", model, atoms, opt), device)
            print(f"{spec:11s} {n:4d} {t['ef']:8.3f} {t['hvp']:8.3f} {t['fd']:8.3f} {t['full']:9.2f} "
                  f"{t['hvp'] / t['ef']:7.2f} {t['fd'] / t['ef']:6.2f} {t['full'] / t['hvp']:9.1f} "
                  f"{t['full'] / t['hvp'] / n:12.2f}", flush=True)
            rows.append({"model": spec, "dtype": dtype, "n_atoms": n, **{f"{k}_s": v for k, v in t.items()}})
    return rows
