"""SNES, the separable natural evolution strategy (Schaul et al., GECCO 2011; Wierstra et
al., JMLR 15, 949 (2014)), GPUMD's NEP optimiser, as the baseline of GNEP.

A search distribution ``N(mu, diag(sigma^2))`` over the trained parameters (``w0``,
``b0``, ``w1``, ``b1``, ``c_radial``, ``c_angular``; the q_scaler stays fixed), with
``mu`` the initialised model's parameters and ``sigma = sigma0``. Each generation:

1. draw ``s_k ~ N(0, I)`` for k = 1..lambda (the population) and evaluate the fitness
   of ``z_k = mu + sigma * s_k``: the E/F/V loss of GNEP on the generation's frames
   (weights from the settings) plus ``lambda_1 mean|z| + lambda_2 sqrt(mean z^2)``;
2. rank them, best first, with the paper's utilities
   ``u_k = max(0, ln(lambda/2 + 1) - ln k) / sum_j max(0, ln(lambda/2 + 1) - ln j) - 1/lambda``;
3. ``mu += eta_mu sigma sum_k u_k s_k`` and
   ``sigma *= exp(eta_sigma / 2 sum_k u_k (s_k^2 - 1))`` with the paper's learning rates
   ``eta_mu = 1`` and ``eta_sigma = (3 + ln d) / (5 sqrt d)``, d the number of parameters.

The generation's frames are ``batch`` consecutive frames of a seeded shuffle (all of them
when ``batch`` is at least the set). Fitness needs forces, so every individual is one
forward pass and one backward pass to the positions (no parameter gradients); a loop over
the population. After the last generation the model holds the generation's best
individual, whose RMSEs (on the generation's frames) are the history rows, as GPUMD's
``loss.out`` reports them.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Callable, Sequence

import numpy as np
import torch

from phonft.finetune.gnep.data import FrameSet, squared_errors
from phonft.finetune.gnep.frames import LabelledFrame
from phonft.finetune.gnep.history import Clock, GNEPHistory, load_checkpoint, save_checkpoint
from phonft.finetune.gnep.settings import SNESSettings

TRAINED = ("w0", "b0", "w1", "b1", "c_radial", "c_angular")


def utilities(population: int) -> np.ndarray:
    """The rank-based fitness shaping of Wierstra et al. (best rank first); sums to 0."""
    raw = np.maximum(0.0, math.log(population / 2 + 1) - np.log(np.arange(1, population + 1)))
    return raw / raw.sum() - 1.0 / population


def sigma_rate(dimension: int) -> float:
    """SNES's default learning rate of sigma, ``(3 + ln d) / (5 sqrt d)``."""
    return (3.0 + math.log(dimension)) / (5.0 * math.sqrt(dimension))


def get_vector(module) -> torch.Tensor:
    return torch.cat([getattr(module, n).detach().reshape(-1) for n in TRAINED])


def set_vector(module, vector: torch.Tensor) -> None:
    with torch.no_grad():
        at = 0
        for n in TRAINED:
            p = getattr(module, n)
            p.copy_(vector[at:at + p.numel()].view_as(p))
            at += p.numel()


def default_lambda(dimension: int) -> float:
    """``sqrt(d) * 1e-3`` (see :class:`~phonft.finetune.gnep.settings.SNESSettings`)."""
    return math.sqrt(dimension) * 1e-3


def _fitness(model, batch, labels, z: torch.Tensor, settings: SNESSettings, lambdas) -> tuple[float, dict]:
    set_vector(model.module, z)
    terms = squared_errors(model, batch, labels, virial=settings.weights.virial > 0, create_graph=False)
    rmse = {k: math.sqrt(float(sse) / n) for k, (sse, n) in terms.items() if n}
    loss = sum(float(getattr(settings.weights, k)) * v for k, v in rmse.items())
    loss += lambdas[0] * float(z.abs().mean()) + lambdas[1] * float(torch.sqrt((z ** 2).mean()))
    return loss, rmse


def _row(generation: int, evaluated: int, wall: float, loss: float, rmse: dict) -> dict:
    get = lambda k: 1000.0 * rmse[k] if k in rmse else float("nan")
    return {"epoch": generation, "structure_evaluations": evaluated, "wall_s": wall, "loss": loss,
            "energy_rmse_meV_atom": get("energy"), "force_rmse_meV_A": get("forces"),
            "virial_rmse_meV_atom": get("virial")}


def _generation(model, data: FrameSet, index, mu, sigma, gen: torch.Generator, settings, lambdas):
    """One SNES generation; returns the new mu, sigma, the best individual and its fitness."""
    batch, labels = data.batch(index)
    samples = torch.randn((settings.population, mu.numel()), generator=gen, dtype=mu.dtype).to(mu.device)
    results = [_fitness(model, batch, labels, mu + sigma * s, settings, lambdas) for s in samples]
    order = np.argsort([loss for loss, _ in results], kind="stable")
    u = torch.as_tensor(utilities(settings.population), dtype=mu.dtype, device=mu.device)
    ranked = samples[torch.as_tensor(order, device=mu.device)]
    best = mu + sigma * ranked[0]
    new_mu = mu + sigma * (u @ ranked)
    new_sigma = sigma * torch.exp(0.5 * sigma_rate(mu.numel()) * (u @ (ranked ** 2 - 1.0)))
    return new_mu, new_sigma, best, results[order[0]]


def _frames_of(order: np.ndarray, generation: int, batch: int) -> np.ndarray:
    if batch >= len(order):
        return np.arange(len(order))
    start = ((generation - 1) * batch) % len(order)
    return np.roll(order, -start)[:batch]


def train_snes(model, frames: Sequence[LabelledFrame], settings: SNESSettings, *, progress: bool = True,
               checkpoint: str | os.PathLike | None = None,
               stop: Callable[[dict], bool] | None = None) -> GNEPHistory:
    """Train ``model`` in place by SNES (module docstring); ``checkpoint`` and ``stop`` as
    for :func:`~phonft.finetune.gnep.train.train_gnep`, per generation."""
    from tqdm.auto import tqdm

    data = FrameSet.build(model, frames)
    for p in model.module.parameters():
        p.requires_grad_(False)
    mu = get_vector(model.module).clone()
    dim = mu.numel()
    lambdas = tuple(default_lambda(dim) if v is None else v for v in (settings.lambda_1, settings.lambda_2))
    sigma = torch.full_like(mu, settings.sigma0)
    gen = torch.Generator().manual_seed(settings.seed)
    order = np.random.default_rng(settings.seed).permutation(len(data))
    history = GNEPHistory("snes", {**settings.as_dict(), "lambda_1": lambdas[0], "lambda_2": lambdas[1]})
    state = load_checkpoint(checkpoint, model) if checkpoint else None
    if state is not None:
        mu, sigma = state["mu"], state["sigma"]
        gen.set_state(state["generator"])
        history = GNEPHistory(**state["history"])
        history.resumed_from = history.last["epoch"]
    clock = Clock(history.last["wall_s"] if history.rows else 0.0)
    done = history.last["epoch"] if history.rows else 0
    try:
        with tqdm(total=settings.generations, initial=done, desc="snes", unit="gen", disable=not progress,
                  file=sys.stderr, mininterval=2.0) as bar:
            for generation in range(done + 1, settings.generations + 1):
                index = _frames_of(order, generation, settings.batch)
                mu, sigma, best, (loss, rmse) = _generation(model, data, index, mu, sigma, gen, settings, lambdas)
                evaluated = (history.last["structure_evaluations"] if history.rows else 0) + \
                    settings.population * len(index)
                history.rows.append(_row(generation, evaluated, clock(), loss, rmse))
                set_vector(model.module, best)
                bar.update(1)
                bar.set_postfix(E=f"{1000 * rmse.get('energy', math.nan):.3g}",
                                F=f"{1000 * rmse.get('forces', math.nan):.3g}")
                out_of_time = settings.max_seconds is not None and clock() >= settings.max_seconds
                halt = out_of_time or (stop is not None and stop(history.last))
                if halt:
                    history.stopped = "max_seconds" if out_of_time else "stop"
                if checkpoint:
                    save_checkpoint(checkpoint, model, {"mu": mu, "sigma": sigma, "generator": gen.get_state(),
                                                        "history": history.as_dict()})
                if halt:
                    break
    finally:
        for p in model.module.parameters():
            p.requires_grad_(True)
    return history
