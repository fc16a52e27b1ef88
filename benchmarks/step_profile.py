#!/usr/bin/env python
"""Where a phonon step's time goes by operator, and the HVP done forward-over-reverse.

**Profile** (default). ``torch.profiler`` over one CHGNet phonon step (phonft's own
``Trainer._phonon_step``, today's default settings, hvp) and one energy+force evaluation of
the same MgO supercell (``benchmarks/pft_cases.py``), after a warm-up step. Operators are
grouped by kind: ``elementwise`` (mul, add, sub, neg, div, fill, activations and their
backwards, copies), ``matmul`` (mm, addmm, bmm), ``scatter/gather`` (index_add, index_select,
index_put, scatter, gather) and ``other``; the script prints each kind's share of the
profiled self time and the top operators by name and input shape.

**Forward-over-reverse** (``--fwd-ad``). The column ``H v`` is the derivative of the forces
along ``v``. phonft takes it reverse-over-reverse (``model.hvp``: a backward pass through
the force graph); forward-mode AD through the force computation
(``torch.autograd.forward_ad``, a dual tangent on the fractional coordinates) gives the same
column (the script prints the largest difference). Both are then differentiated to the
parameters; the script times the column and that backward for each. CHGNet only: its bond
lengths use ``torch.norm``, whose forward-mode formula writes in place into a tensor its
backward needs, so the script computes them as ``sqrt(sum(x²))`` while it runs.

    python benchmarks/step_profile.py --threads 2 --atoms 512
    python benchmarks/step_profile.py --threads 2 --atoms 216 --fwd-ad
    python benchmarks/step_profile.py --threads 2 --atoms 64 --energy-fd --model mace-small

**Energies only** (``--energy-fd``). The parameter gradient of ``u · H v`` (the Hessian
term's gradient for a residual direction ``u`` and column ``v``) from first derivatives
alone: ``Σ_ab ab ∂E(x + a h u + b h v)/∂θ / (4 h²)``, four energy evaluations, no
higher-order graph. The script prints its error against the exact (reverse-over-reverse)
gradient in float64 and float32 for each ``--h``.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pft_cases import median_time, mgo_sample, replay_frames
from pft_step import make_model

from phonft.cliutils import pin_threads, tune_malloc
from phonft.finetune.columns import sample_columns
from phonft.finetune.settings import TrainSettings
from phonft.finetune.trainer import Trainer

KINDS = {"matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul"),
         "scatter/gather": ("aten::index_add_", "aten::index_select", "aten::_index_put_impl_", "aten::scatter",
                            "aten::scatter_add_", "aten::gather", "aten::index")}
ELEMENTWISE = ("mul", "add", "sub", "neg", "div", "fill_", "sigmoid", "silu", "copy_", "pow", "sqrt", "exp", "cos",
               "sin", "where", "clamp", "sum", "_backward", "zero_", "abs", "sign")


def kind(name: str) -> str:
    for k, names in KINDS.items():
        if name in names:
            return k
    base = name.removeprefix("aten::")
    return "elementwise" if any(base.startswith(e) or base.endswith(e) for e in ELEMENTWISE) else "other"


def profile(fn, top: int) -> None:
    """Run ``fn`` under the profiler; print the time share per kind and the top operators."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        fn()
    events = [e for e in prof.key_averages(group_by_input_shape=True) if e.key.startswith("aten::")]
    total = sum(e.self_cpu_time_total for e in events)
    shares: dict[str, float] = defaultdict(float)
    for e in events:
        shares[kind(e.key)] += e.self_cpu_time_total / total
    print("  share of operator self time: " + ", ".join(f"{k} {v:.0%}" for k, v in sorted(shares.items(),
                                                                                           key=lambda kv: -kv[1])))
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]:
        print(f"  {e.self_cpu_time_total / total:6.1%} {e.count:6d} x {e.key:22s} {str(e.input_shapes)[:70]}")


def run_profile(trainer: Trainer, sample, top: int) -> None:
    rng = np.random.default_rng(0)
    model = trainer.model

    def step():
        trainer._phonon_step([sample], sample_columns([sample.n_atoms], 1, rng))

    step()
    print(f"phonon step (hvp), {sample.n_atoms} atoms:")
    profile(step, top)
    batch = model.prepare([sample.atoms])
    model.evaluate(batch)
    print(f"energy+force evaluation, {sample.n_atoms} atoms:")
    profile(lambda: model.evaluate(batch), top)


def _safe_norm(x, p="fro", dim=None, keepdim=False, dtype=None, out=None):
    return torch.sqrt((x * x).sum(dim=dim, keepdim=keepdim))


def fwd_ad_column(model, batch, col: int) -> torch.Tensor:
    """``H v`` (eV/Å², (N, 3)) for the unit vector of DOF ``col``, by forward-over-reverse AD."""
    import torch.autograd.forward_ad as fwad
    from chgnet.model.model import BatchedGraph

    net, g0 = model.module, batch.graph[0]
    g = copy.copy(g0)
    norm, torch.norm = torch.norm, _safe_norm
    try:
        with fwad.dual_level():
            frac = g0.atom_frac_coord.detach().requires_grad_(True)
            inv_lattice = torch.linalg.inv(g0.lattice)
            v = torch.zeros_like(frac)
            v.view(-1)[col] = 1.0
            g.atom_frac_coord = fwad.make_dual(frac, v @ inv_lattice)  # a Cartesian step in fractional units
            graph = BatchedGraph.from_graphs([g], bond_basis_expansion=net.bond_basis_expansion,
                                             angle_basis_expansion=net.angle_basis_expansion, compute_stress=False)
            energy = (net._compute(graph)["e"] * batch.n_atoms.to(model.dtype)).sum()
            (grad_frac,) = torch.autograd.grad(energy, [frac], create_graph=True)
            return fwad.unpack_dual(grad_frac @ inv_lattice.T).tangent
    finally:
        torch.norm = norm


def run_fwd_ad(model, sample, repeats: int) -> None:
    batch = model.prepare([sample.atoms])
    params = model.trainable_parameters()
    col = 5

    def reverse():
        out = model.evaluate(batch, create_graph=True)
        v = torch.zeros_like(out.forces)
        v.view(-1)[col] = 1.0
        return model.hvp(batch, v, out, create_graph=True)

    def forward():
        return fwd_ad_column(model, batch, col)

    diff = float((reverse() - forward()).detach().abs().max())
    print(f"forward-over-reverse vs reverse-over-reverse column, {sample.n_atoms} atoms: max |difference| "
          f"{diff:.2e} eV/Å²")
    for name, fn in (("reverse-over-reverse", reverse), ("forward-over-reverse", forward)):
        column_s = median_time(fn, "cpu", repeats)
        both_s = median_time(lambda f=fn: (f() ** 2).sum().backward(inputs=params), "cpu", repeats)
        print(f"  {name:21s} column {column_s:6.3f} s   column + backward to the parameters {both_s:6.3f} s")


def _flat_grad(loss: torch.Tensor, params) -> torch.Tensor:
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)]).double()


def energy_fd_error(spec: str, n_atoms: int, dtype: str, h: float) -> tuple[float, float]:
    """Relative error and cosine of the four-energy gradient of ``u·Hv`` against the exact one."""
    model = make_model(spec, dtype, "cpu", {"Mg", "O"})
    params = model.trainable_parameters()
    atoms = mgo_sample(n_atoms).atoms
    u = np.random.default_rng(0).normal(size=(n_atoms, 3))
    u /= np.linalg.norm(u)
    v = np.zeros((n_atoms, 3))
    v[3, 1] = 1.0
    batch = model.prepare([atoms])
    out = model.evaluate(batch, create_graph=True)
    hv = model.hvp(batch, torch.as_tensor(v, dtype=model.dtype), out, create_graph=True)
    exact = _flat_grad((hv * torch.as_tensor(u, dtype=model.dtype)).sum(), params)
    signs, copies = [], []
    for a in (1, -1):
        for b in (1, -1):
            c = atoms.copy()
            c.positions += h * (a * u + b * v)
            signs.append(a * b)
            copies.append(c)
    energy = model.evaluate(model.prepare(copies)).energy
    fd = _flat_grad((energy * torch.as_tensor(signs, dtype=model.dtype)).sum() / (4 * h * h), params)
    return float((fd - exact).norm() / exact.norm()), float(fd @ exact / (fd.norm() * exact.norm()))


def run_energy_fd(spec: str, n_atoms: int, hs: list[float]) -> None:
    print(f"four-energy gradient of u·Hv against the exact one, {spec}, MgO {n_atoms} atoms:")
    for h in hs:
        for dtype in ("float64", "float32"):
            rel, cos = energy_fd_error(spec, n_atoms, dtype, h)
            print(f"  h {h:g} Å  {dtype}: relative error {rel:.2e}, cosine {cos:.6f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--atoms", type=int, default=512, choices=[64, 216, 512])
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--threads", type=int)
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--fwd-ad", action="store_true", help="time the HVP forward-over-reverse instead")
    ap.add_argument("--energy-fd", action="store_true", help="the four-energy gradient's error instead")
    ap.add_argument("--model", default="chgnet", choices=["chgnet", "mace-small"], help="--energy-fd only")
    ap.add_argument("--h", nargs="+", type=float, default=[0.01, 0.001], help="--energy-fd steps (Å)")
    args = ap.parse_args()
    pin_threads(args.threads)
    tune_malloc()
    if args.energy_fd:
        run_energy_fd(args.model, args.atoms, args.h)
        return
    model = make_model("chgnet", args.dtype, "cpu", {"Mg", "O"})
    sample = mgo_sample(args.atoms)
    if args.fwd_ad:
        run_fwd_ad(model, sample, args.repeats)
    else:
        trainer = Trainer(model, TrainSettings(), [sample], [], replay_train=replay_frames(model))
        run_profile(trainer, sample, args.top)


if __name__ == "__main__":
    main()
