"""Real-size data and phase timers for ``benchmarks/pft_step.py`` (not part of phonft).

* :func:`mgo_sample`: MgO supercells with DFT-quality force constants from the vendored
  2x2x2 DFT set (``phonft.finetune.data.real_size_sample``): 2x2x2 = 64, 3x3x3 = 216,
  4x4x4 = 512 atoms. The references folder is written once per process into a temp dir.
* :func:`epoch_samples`: 16 samples of about 400 atoms, two of each of eight vendored
  materials (:data:`EPOCH_MATERIALS`).
* :func:`replay_frames`: 64-atom replay frames (the default ``replay_batch_atoms``):
  rattled copies of 2x2x2 MgO labelled by the model itself (pseudo-labels, as phonft's
  offline replay set is).
* :class:`PhaseClock`: wall time per phase of phonft's own step code, by wrapping the
  boundaries (``model.prepare/evaluate/hvp``, ``torch.autograd.grad`` inside
  ``evaluate``, ``Tensor.backward``, ``clip_grad_norm_``, ``optimizer.step``,
  ``ema.update``) in this process only; phonft's code paths are unchanged.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from phonft.finetune.data import ReplaySample, real_size_sample

REPO = Path(__file__).resolve().parents[1]
#: atoms -> the MgO supercell (conventional 8-atom cell) that has them.
MGO_SUPERCELLS = {64: [2, 2, 2], 216: [3, 3, 3], 512: [4, 4, 4]}
#: The epoch benchmark's materials: (vendored force_sets folder, supercell of ~400 atoms).
EPOCH_MATERIALS = [("ZnO", [5, 5, 4]), ("MgO", [4, 4, 3]), ("NaCl", [4, 4, 3]), ("MgB2", [6, 6, 4]),
                   ("TiO2-anatase", [4, 4, 2]), ("SiO2-HP", [4, 4, 4]), ("CaTiO3", [4, 4, 5]), ("SnO2", [4, 4, 4])]

_ROOT = tempfile.TemporaryDirectory(prefix="pft-bench-")


def reference_dir(material: str) -> Path:
    """``phonft references`` output of a vendored force_sets material (written once)."""
    from phonft.references import Reference

    out = Path(_ROOT.name) / material
    if not (out / "thermal.json").is_file():
        spec = {"format": "force_sets", "path": f"data/dft-phonons/{material}"}
        Reference.read(spec, base_dir=REPO).write(out, material)
    return out


def mgo_sample(n_atoms: int):
    return real_size_sample(reference_dir("MgO"), MGO_SUPERCELLS[n_atoms])


def epoch_samples(n: int = 16) -> list:
    """``n`` samples of ~400 atoms, cycling through :data:`EPOCH_MATERIALS` (each built once)."""
    built = {}
    out = []
    for i in range(n):
        material, matrix = EPOCH_MATERIALS[i % len(EPOCH_MATERIALS)]
        if material not in built:
            built[material] = real_size_sample(reference_dir(material), matrix)
        out.append(built[material])
    return out


def replay_frames(model, n: int = 16, seed: int = 0) -> list[ReplaySample]:
    """``n`` rattled (0.05 Å) 64-atom MgO frames labelled by ``model`` (energy, forces, stress)."""
    base = mgo_sample(64).atoms
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        a = base.copy()
        a.positions += rng.normal(0.0, 0.05, size=a.positions.shape)
        frames.append(a)
    preds = model.predict(frames, batch_size=4, stress=True)
    return [ReplaySample(a, float(p["energy"]), np.asarray(p["forces"], float), np.asarray(p["stress"], float))
            for a, p in zip(frames, preds)]


def sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def median_time(fn, device: str, repeats: int) -> float:
    """Median wall time (s) of ``fn`` over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return float(statistics.median(times))


class PhaseClock:
    """Seconds per phase of what runs under :meth:`watching`; nested calls count to the outer phase.

    ``forward`` is ``model.evaluate`` less its ``torch.autograd.grad`` (``forces``: forces,
    and stress when asked, in one call).
    """

    def __init__(self, device: str):
        self.device = device
        self.times: dict[str, float] = defaultdict(float)
        self.current: str | None = None

    def _now(self) -> float:
        sync(self.device)
        return time.perf_counter()

    def wrap(self, fn, name: str):
        def timed(*args, **kwargs):
            if self.current is not None:
                return fn(*args, **kwargs)
            self.current, t0 = name, self._now()
            try:
                return fn(*args, **kwargs)
            finally:
                self.times[name] += self._now() - t0
                self.current = None
        return timed

    def _grad(self, fn):
        def timed(*args, **kwargs):
            if self.current != "forward":
                return fn(*args, **kwargs)
            t0 = self._now()
            try:
                return fn(*args, **kwargs)
            finally:
                dt = self._now() - t0
                self.times["forces"] += dt
                self.times["forward"] -= dt
        return timed

    @contextlib.contextmanager
    def watching(self, model, trainer):
        """Wrap the phase boundaries of ``model`` and ``trainer`` (restored on exit)."""
        saved_model = {k: getattr(model, k) for k in ("prepare", "evaluate", "hvp")}
        saved = (torch.autograd.grad, torch.Tensor.backward, torch.nn.utils.clip_grad_norm_,
                 trainer.optimizer.step, trainer.ema.update)
        for key, name in (("prepare", "prepare"), ("evaluate", "forward"), ("hvp", "column")):
            setattr(model, key, self.wrap(saved_model[key], name))
        torch.autograd.grad = self._grad(saved[0])
        torch.Tensor.backward = self.wrap(saved[1], "backward")
        torch.nn.utils.clip_grad_norm_ = self.wrap(saved[2], "optimiser+EMA")
        trainer.optimizer.step = self.wrap(saved[3], "optimiser+EMA")
        trainer.ema.update = self.wrap(saved[4], "optimiser+EMA")
        try:
            yield self
        finally:
            for key in saved_model:
                delattr(model, key)
            (torch.autograd.grad, torch.Tensor.backward, torch.nn.utils.clip_grad_norm_) = saved[:3]
            del trainer.optimizer.step, trainer.ema.update

    def total(self, fn) -> float:
        """Run ``fn`` (a whole step), and its wall time."""
        t0 = self._now()
        fn()
        return self._now() - t0
