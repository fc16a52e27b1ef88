"""Data-parallel training over ``torchrun`` ranks (torch.distributed; nccl on CUDA, gloo on CPU).

``torchrun --nproc_per_node N -m -- phonft finetune train ...`` starts N processes with
``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` set; :func:`init_distributed` reads them (none
set: one process, nothing changes). Every rank draws the same epoch plan, batch and
columns from the seeded generator, then fits its own shard of the batch (every
``world_size``-th structure from its rank on, with their columns; replay and rattled
batches alike),
so the union of the shards is exactly the batch one process would take.

Every loss term is a pooled mean (:mod:`phonft.finetune.losses`): the union's term is
``sum_r n_r L_r / sum_r n_r`` over the ranks' shard means ``L_r`` of ``n_r`` entries.
:func:`union_objective` scales each rank's terms by ``n_r / sum_r n_r``, so the ranks'
scaled losses sum to the union's loss and their gradients, summed by one all-reduce
(:func:`allreduce_grads`), are its gradient: one step on N ranks is one step of one
process on the union (up to the order of floating-point sums). Gradient clipping, AdamW
and the EMA then run on every rank with the same gradients, so the weights stay equal
without further communication. (torch's ``DistributedDataParallel`` wrapper is not used:
the Hessian-column loss differentiates through a force and a Hessian-vector product,
double backward, which the wrapper's gradient hooks do not support.)
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Mapping, Sequence, TypeVar

import torch

from phonft.errors import ConfigError
from phonft.finetune.objective import ObjectiveValue

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The loss terms, in the order their entry counts are all-reduced (the ``rattled_*`` terms
#: are the rattled objective's, :mod:`phonft.finetune.rattled`; an absent term counts 0).
TERMS = ("hessian", "energy", "forces", "stress", "rattled_energy", "rattled_forces", "rattled_stress")
#: Logged part -> the term whose entries its mean pools (``loss`` is summed instead).
PART_TERMS = {"hessian_loss": "hessian", "hessian_mae": "hessian", "energy_mae": "energy",
              "force_mae": "forces", "stress_mae": "stress", "rattled_energy_mae": "rattled_energy",
              "rattled_force_mae": "rattled_forces", "rattled_stress_mae": "rattled_stress"}


@dataclass(frozen=True)
class DistContext:
    """This process's place among the data-parallel ranks (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """True when more than one rank trains."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the checkpoint, metrics and outputs; the others write nothing."""
        return self.rank == 0


SINGLE = DistContext()


def context_from_env(environ: Mapping[str, str] = os.environ) -> DistContext:
    """The ranks ``torchrun`` describes in ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``."""
    if "WORLD_SIZE" not in environ:
        return SINGLE
    try:
        ctx = DistContext(int(environ.get("RANK", "0")), int(environ["WORLD_SIZE"]),
                          int(environ.get("LOCAL_RANK", "0")))
    except ValueError as exc:
        raise ConfigError(f"WORLD_SIZE/RANK/LOCAL_RANK must be integers ({exc}); launch with torchrun") from exc
    if not 0 <= ctx.rank < ctx.world_size:
        raise ConfigError(f"RANK {ctx.rank} is outside WORLD_SIZE {ctx.world_size}; launch with torchrun")
    return ctx


def init_distributed(device: str) -> tuple[DistContext, str]:
    """Join the process group torchrun set up; returns the context and this rank's device.

    On CUDA each rank takes GPU ``LOCAL_RANK`` (``cuda:<LOCAL_RANK>``) and the nccl
    backend; on the CPU, gloo. One process: ``(SINGLE, device)``, no process group.
    """
    ctx = context_from_env()
    if not ctx.active:
        return ctx, device
    import torch.distributed as dist

    if device.startswith("cuda"):
        device = f"cuda:{ctx.local_rank}"
        torch.cuda.set_device(ctx.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    log.info("data-parallel rank %d of %d on %s", ctx.rank, ctx.world_size, device)
    return ctx, device


def shutdown_distributed(ctx: DistContext) -> None:
    """Leave the process group (when this process joined one)."""
    import torch.distributed as dist

    if ctx.active and dist.is_initialized():
        dist.destroy_process_group()


def shard_indices(n: int, ctx: DistContext) -> list[int]:
    """This rank's positions in a batch of ``n``: every ``world_size``-th from ``rank`` on."""
    return list(range(ctx.rank, n, ctx.world_size))


def shard(items: Sequence[T], ctx: DistContext) -> list[T]:
    """This rank's share of ``items`` (:func:`shard_indices`)."""
    return [items[i] for i in shard_indices(len(items), ctx)]


def _all_reduce(values: list[float], device: torch.device | str) -> list[float]:
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def union_objective(result: ObjectiveValue | None, device: torch.device | str
                    ) -> tuple[torch.Tensor | None, dict[str, float]]:
    """This rank's share of the union's loss, and the union's logged parts.

    ``result`` is the objective of this rank's shard (None for an empty shard). Returns the
    shard's terms scaled by their share of the union's entries (None for an empty shard),
    whose sum over ranks is the union's loss, and ``parts`` as one process would log them
    for the union (``loss`` and the MAEs, each pooled over the union's entries).
    """
    terms = result.terms if result is not None else {}
    counts = _all_reduce([terms[t][1] if t in terms else 0.0 for t in TERMS], device)
    total = dict(zip(TERMS, counts))
    loss = None
    for name, (value, n) in terms.items():
        scaled = value * (n / total[name])
        loss = scaled if loss is None else loss + scaled
    present = [p for p in PART_TERMS if total[PART_TERMS[p]] > 0]
    mine = [float(loss.detach()) if loss is not None else 0.0]
    mine += [result.parts[p] * terms[PART_TERMS[p]][1] if result is not None and p in result.parts else 0.0
             for p in present]
    sums = _all_reduce(mine, device)
    parts = {p: s / total[PART_TERMS[p]] for p, s in zip(present, sums[1:])}
    return loss, {**parts, "loss": sums[0]}


def allreduce_grads(params: Sequence[torch.nn.Parameter]) -> None:
    """Sum the parameters' gradients over the ranks, in place.

    A parameter no rank's loss reached keeps ``grad = None`` (as in one process, where
    AdamW then skips it); one reached on some ranks gets the sum of theirs.
    """
    import torch.distributed as dist

    if not params:
        return
    reached = _all_reduce([1.0 if p.grad is not None else 0.0 for p in params], params[0].device)
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    dist.all_reduce(flat)
    offset = 0
    for p, hit in zip(params, reached):
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone() if hit else None
        offset += n


@torch.no_grad()
def broadcast_weights(module: torch.nn.Module) -> None:
    """Give every rank rank 0's parameters and buffers (guards against unequal inits)."""
    import torch.distributed as dist

    for t in module.state_dict().values():
        if isinstance(t, torch.Tensor):
            dist.broadcast(t, 0)
