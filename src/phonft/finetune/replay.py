"""The replay set for co-training: a user's upstream data, or offline pseudo-labels.

* **Upstream** (``upstream.file`` or ``upstream.url``): an extxyz with ``REF_energy``
  (eV), ``REF_forces`` (eV/Å) and ``REF_stress`` (eV/Å³), for example an MPtrj subset.
  Optionally subsampled (seeded) to ``max_frames``.
* **Pseudo-labels** (the offline fallback): rattled and strained supercells of the training
  structures, labelled by the frozen base model. They do not add DFT information; they
  anchor the fine-tuned model to the base model's energy surface away from the phonon
  structures, which is what replay is for.

Either way the set is written as ``replay.extxyz`` (each frame tagged ``replay_split`` =
``train`` or ``val``) with a ``manifest.json`` holding its provenance and digest.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from ase import Atoms

from phonft.finetune.data import ReplaySample, read_replay
from phonft.finetune.settings import ReplaySettings
from phonft.io import atomic_directory, atomic_write_json, sha256_file
from phonft.models.base import Model

log = logging.getLogger(__name__)


def replica_supercell(unitcell: Atoms, min_atoms: int, max_atoms: int) -> Atoms:
    """The unit cell repeated along its shortest axes until it has at least ``min_atoms``."""
    reps = np.ones(3, dtype=int)
    lengths = unitcell.cell.lengths()
    while len(unitcell) * reps.prod() < min_atoms:
        axis = int(np.argmin(lengths * reps))
        if len(unitcell) * reps.prod() * (reps[axis] + 1) / reps[axis] > max_atoms:
            break
        reps[axis] += 1
    return unitcell.repeat(tuple(int(r) for r in reps))


def perturbed_copies(unitcell: Atoms, settings: ReplaySettings, rng: np.random.Generator) -> list[Atoms]:
    """``settings.copies`` rattled and strained supercells of ``unitcell``."""
    base = replica_supercell(unitcell, settings.min_atoms, settings.max_atoms)
    out = []
    for _ in range(settings.copies):
        eps = rng.uniform(-settings.strain_max, settings.strain_max, size=(3, 3))
        eps = 0.5 * (eps + eps.T)
        a = base.copy()
        a.set_cell(base.cell.array @ (np.eye(3) + eps), scale_atoms=True)
        a.positions += rng.normal(0.0, settings.rattle_std_A, size=a.positions.shape)
        out.append(a)
    return out


def label(structures: Sequence[Atoms], model: Model, batch_size: int = 4) -> list[Atoms]:
    """Attach the model's energy, forces and stress as ``REF_*`` labels (float64 evaluation)."""
    from tqdm.auto import tqdm

    results = []
    for start in tqdm(range(0, len(structures), batch_size), desc="pseudo-labels", unit="batch", mininterval=1.0):
        results += model.predict(structures[start:start + batch_size], batch_size=batch_size, stress=True)
    out = []
    for atoms, res in zip(structures, results):
        a = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
        a.info["REF_energy"] = float(res["energy"])
        a.info["REF_stress"] = np.asarray(res["stress"], dtype=float).reshape(9)
        a.arrays["REF_forces"] = np.asarray(res["forces"], dtype=float)
        a.info.update({k: v for k, v in atoms.info.items() if k in ("config_type",)})
        out.append(a)
    return out


def pseudo_label_set(unitcells: dict[str, Atoms], model: Model, settings: ReplaySettings) -> list[Atoms]:
    """Rattled/strained copies of every unit cell, labelled by ``model`` (frozen)."""
    rng = np.random.default_rng(settings.seed)
    frames = []
    for material in sorted(unitcells):
        for a in perturbed_copies(unitcells[material], settings, rng):
            a.info["config_type"] = f"pseudo:{material}"
            frames.append(a)
    return label(frames, model)


def assign_split(frames: list[Atoms], val_fraction: float, seed: int) -> list[Atoms]:
    """Tag a seeded ``val_fraction`` of frames ``replay_split=val``, the rest ``train``."""
    rng = np.random.default_rng([seed, 1])
    n_val = int(round(val_fraction * len(frames))) if len(frames) > 1 else 0
    val = set(rng.permutation(len(frames))[:n_val].tolist())
    for i, a in enumerate(frames):
        a.info["replay_split"] = "val" if i in val else "train"
    return frames


def upstream_frames(path: Path, max_frames: int | None, seed: int) -> list[Atoms]:
    """Validated frames of a user's extxyz, seeded subsample of ``max_frames``."""
    samples = read_replay(path)  # validates labels, names the file on error
    idx = np.arange(len(samples))
    if max_frames and len(samples) > max_frames:
        idx = np.sort(np.random.default_rng(seed).choice(len(samples), size=max_frames, replace=False))
    frames = []
    for i in idx:
        s = samples[int(i)]
        a = s.atoms.copy()
        a.info["REF_energy"] = s.energy_eV
        a.arrays["REF_forces"] = s.forces_eV_A
        if s.stress_eV_A3 is not None:
            a.info["REF_stress"] = s.stress_eV_A3.reshape(9)
        a.info["config_type"] = s.tag or "upstream"
        frames.append(a)
    return frames


def write_replay(out_dir: str | os.PathLike, frames: list[Atoms], manifest: dict[str, Any]) -> Path:
    """Write ``replay.extxyz`` and ``manifest.json`` atomically."""
    import ase.io

    with atomic_directory(out_dir) as tmp:
        ase.io.write(tmp / "replay.extxyz", frames, format="extxyz")
        counts = {"train": sum(a.info["replay_split"] == "train" for a in frames),
                  "val": sum(a.info["replay_split"] == "val" for a in frames)}
        atomic_write_json(tmp / "manifest.json", {**manifest, "n_frames": len(frames), "counts": counts,
                                                  "n_atoms_total": int(sum(len(a) for a in frames)),
                                                  "sha256": {"replay.extxyz": sha256_file(tmp / "replay.extxyz")},
                                                  "units": {"REF_energy": "eV", "REF_forces": "eV/Å",
                                                            "REF_stress": "eV/Å³ (ASE sign, 3x3 row-major)"}})
    log.info("wrote %d replay frames to %s", len(frames), out_dir)
    return Path(out_dir)


def load_replay_split(path: str | os.PathLike) -> tuple[list[ReplaySample], list[ReplaySample]]:
    """Read ``replay.extxyz`` into its train and val frames."""
    samples = read_replay(path)
    return [s for s in samples if s.split != "val"], [s for s in samples if s.split == "val"]
