"""Data-parallel fine-tuning (phonft.finetune.distributed): two gloo ranks on the CPU take
the step one process takes on the union of their shards.

The model is the toy pair-spring model (``phonft_testdata.pair_springs``, float64): one
stiffness per element pair, so structures of different compositions reach different
parameters, and a shard can leave a parameter without a gradient.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from ase.build import bulk

from phonft.errors import ConfigError
from phonft.finetune.data import PhononSample, ReplaySample
from phonft.finetune.distributed import SINGLE, DistContext, context_from_env, shard, shard_indices
from phonft.finetune.rattled import RattledSample
from phonft.finetune.settings import LossWeights, TrainSettings
from phonft.finetune.trainer import Trainer
from phonft.plan import train_launcher
from phonft_testdata import hessian_by_hvp, pair_springs

R0 = {"Si-Si": 5.43 * 3**0.5 / 4, "Ge-Ge": 5.66 * 3**0.5 / 4, "C-Si": 4.36 * 3**0.5 / 4}
BASE = {"Si-Si": 10.0, "Ge-Ge": 8.0, "C-Si": 20.0}
DFT = {"Si-Si": 13.0, "Ge-Ge": 6.5, "C-Si": 24.0}
WORLD = 2
RESUMED = "uneven_near_field_replay"  # the case resumed on two ranks from one process's checkpoint

#: name -> (number of training structures, settings). One batch holds them all.
CASES = {
    "even": (4, dict(columns_per_structure=2, phonon_weights=LossWeights(stress=0.0), replay_steps=0)),
    "uneven_near_field_replay": (3, dict(columns_per_structure=3, hessian_norm="distance",
                                         phonon_weights=LossWeights(forces=1.0, stress=0.0), replay_steps=2,
                                         replay_batch_atoms=20)),
    "one_structure": (1, dict(columns_per_structure=2, phonon_weights=LossWeights(stress=0.0), replay_steps=0)),
    # objectives (issue 9): three rattled frames, only the first with an energy, so rank 1's
    # shard has no energy term at all
    "rattled_masked": (2, dict(objective="rattled", phonon_weights=LossWeights(stress=0.0), replay_steps=1,
                               replay_batch_atoms=20, rattled_batch_atoms=1000,
                               rattled_weights=LossWeights(energy=5.0, forces=10.0, stress=0.0, hessian=0.0))),
    "both": (3, dict(objective="both", columns_per_structure=1, phonon_weights=LossWeights(stress=0.0),
                     replay_steps=0, rattled_batch_atoms=1000)),
}


def _structures(n: int) -> list:
    rng = np.random.default_rng(7)
    cells = [bulk("Si", "diamond", a=5.43, cubic=True), bulk("Ge", "diamond", a=5.66, cubic=True),
             bulk("SiC", "zincblende", a=4.36, cubic=True), bulk("Si", "diamond", a=5.43, cubic=True)]
    out = []
    for a in cells[:n]:
        a = a.copy()
        a.positions += rng.normal(0, 0.02, a.positions.shape)
        out.append(a)
    return out


def _data(n: int) -> tuple[list[PhononSample], list[ReplaySample]]:
    dft = pair_springs(DFT, R0)
    samples = [PhononSample(a.get_chemical_formula(), a, hessian_by_hvp(dft, a), a.get_all_distances(mic=True),
                            np.array([0]), forces_eV_A=np.zeros((len(a), 3)), stress_eV_A3=None)
               for a in _structures(n)]
    frames = []
    for a in _structures(4):
        res = dft.predict([a], batch_size=1)[0]
        frames.append(ReplaySample(a, float(res["energy"]), res["forces"], None))
    return samples, frames


def _rattled(frames: list[ReplaySample]) -> list[RattledSample]:
    """The first three frames as rattled frames, only the first with an energy label."""
    return [RattledSample(f.atoms, f.forces_eV_A, f.energy_eV if i == 0 else None, None)
            for i, f in enumerate(frames[:3])]


def _run(case: str, dist: DistContext, checkpoint, epochs: int = 1, resume: bool = False,
         stop_after: int | None = None) -> dict:
    """``epochs`` epochs (each one phonon or rattled step and its replay steps) of ``case``:
    gradients, weights, metrics."""
    n, kwargs = CASES[case]
    samples, frames = _data(n)
    settings = TrainSettings(epochs=epochs, lr=0.05, batch_atoms=1000, **kwargs)
    model = pair_springs(BASE, R0)
    trainer = Trainer(model, settings, samples, samples[:1], replay_train=frames[:3], replay_val=frames[3:],
                      checkpoint=checkpoint, dist=dist,
                      rattled_train=_rattled(frames) if settings.objective != "pft" else ())
    result = trainer.fit(resume=resume, stop_after=stop_after)
    return {"grads": {k: None if p.grad is None else p.grad.clone() for k, p in model.module.named_parameters()},
            "weights": {k: p.detach().clone() for k, p in model.module.named_parameters()},
            "row": result.metrics[1], "last": result.metrics[-1]}


def _worker(rank: int, port: int, out_dir: str) -> None:
    from phonft.finetune.distributed import init_distributed, shutdown_distributed

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    ctx, device = init_distributed("cpu")
    assert device == "cpu" and ctx == DistContext(rank, WORLD, rank)
    try:
        out = {case: _run(case, ctx, f"{out_dir}/{case}-rank{rank}.pt") for case in CASES}
        out["resumed"] = _run(RESUMED, ctx, f"{out_dir}/resume.pt", epochs=2, resume=True)
    finally:
        shutdown_distributed(ctx)
    torch.save(out, f"{out_dir}/rank{rank}.result")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Each case trained on two gloo ranks: {rank: {case: result}}, and the folder they wrote to."""
    out = tmp_path_factory.mktemp("ddp")
    _run(RESUMED, SINGLE, out / "resume.pt", epochs=2, stop_after=1)  # one process, killed after epoch 1
    mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=True)
    return {r: torch.load(out / f"rank{r}.result", weights_only=False) for r in range(WORLD)}, out


@pytest.mark.parametrize("case", list(CASES))
def test_two_ranks_take_the_step_of_one_process_on_the_union(case, ranks, tmp_path):
    results, _ = ranks
    single = _run(case, SINGLE, None)
    for rank in range(WORLD):
        mine = results[rank][case]
        assert mine["grads"].keys() == single["grads"].keys()
        for k, g in single["grads"].items():
            if g is None:
                assert mine["grads"][k] is None, k
            else:
                torch.testing.assert_close(mine["grads"][k], g, rtol=1e-10, atol=1e-12)
        for k, w in single["weights"].items():
            torch.testing.assert_close(mine["weights"][k], w, rtol=1e-10, atol=1e-12)
        for key in ("train_loss", "train_hessian_mae", "train_force_mae", "val_loss", "replay_force_mae",
                    "train_rattled_energy_mae", "train_rattled_force_mae"):
            if key in single["row"]:
                assert mine["row"][key] == pytest.approx(single["row"][key], rel=1e-10, nan_ok=True), key


def test_weights_moved_and_only_rank_0_writes_the_checkpoint(ranks):
    results, out = ranks
    moved = results[0]["even"]["weights"]
    assert any(float(moved[f"k.{k}"]) != v for k, v in BASE.items())
    for case in CASES:
        assert (out / f"{case}-rank0.pt").is_file()
        assert not (out / f"{case}-rank1.pt").exists()
        assert torch.load(out / f"{case}-rank0.pt", weights_only=True)["world_size"] == WORLD


def test_shards_partition_the_batch():
    for n in range(7):
        parts = [shard_indices(n, DistContext(r, 3, r)) for r in range(3)]
        assert sorted(i for p in parts for i in p) == list(range(n))
    assert shard(list("abcde"), DistContext(1, 2, 1)) == ["b", "d"]


def test_context_from_env():
    assert context_from_env({}) == SINGLE
    assert context_from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}) == DistContext(3, 4, 1)
    with pytest.raises(ConfigError, match="RANK 4 is outside WORLD_SIZE 4"):
        context_from_env({"WORLD_SIZE": "4", "RANK": "4"})
    with pytest.raises(ConfigError, match="must be integers"):
        context_from_env({"WORLD_SIZE": "two"})


def test_a_checkpoint_of_one_process_resumes_on_two_ranks(ranks):
    """The checkpoint does not depend on the number of ranks: one process's epoch 1, resumed
    on two ranks, ends where one uninterrupted process does."""
    results, out = ranks
    whole = _run(RESUMED, SINGLE, None, epochs=2)
    for rank in range(WORLD):
        resumed = results[rank]["resumed"]
        assert resumed["last"]["epoch"] == 2
        assert resumed["last"]["train_loss"] == pytest.approx(whole["last"]["train_loss"], rel=1e-10)
        for k, w in whole["weights"].items():
            torch.testing.assert_close(resumed["weights"][k], w, rtol=1e-10, atol=1e-12)
    assert torch.load(out / "resume.pt", weights_only=True)["world_size"] == WORLD


def test_torchrun_hands_phonfts_options_to_phonft():
    """The rule's launcher words start phonft on every rank with its own options intact
    (torchrun's parser would take ``--run`` for its ``--run-path`` without the ``--``)."""

    words = train_launcher(2)
    words[0] = str(Path(sys.executable).parent / words[0])
    proc = subprocess.run([*words, "finetune", "train", "--run", "x", "--help"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("usage: phonft finetune train") == WORLD  # each rank printed phonft's help
