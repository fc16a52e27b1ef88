"""The replay set for co-training: a user's upstream data, or offline pseudo-labels.

Replay exists to keep the model's behaviour *elsewhere*: replaying base-model labels of
the phonon structures themselves would encode the base model's curvature (for small
displacements F ≈ -H_base·u) and pull the Hessian back toward the base, undoing PFT.

* **Upstream** (``upstream.file`` or ``upstream.url``): an extxyz with energies (eV),
  forces (eV/Å) and optionally stresses (eV/Å³), for example an MPtrj subset, under
  mace's ``REF_*`` keys or the keys the run names. Optionally subsampled (seeded).
* **Pseudo-labels, disjoint** (the offline default, ``replay.structures: disjoint``):
  rattled and strained supercells of the built-in prototypes
  (:mod:`phonft.finetune.prototypes`) and of configured materials that the run neither
  trains on nor is scored on, labelled by the frozen base model. Any structure with the
  composition of one of the run's materials is left out.
* **Pseudo-labels of the training structures** (``replay.structures: training``): the
  former default, kept for ablations only.

Validation frames (``replay_split=val``) measure forgetting. They are whole structures
(grouped by composition, or by ``upstream.group_key``) that neither the replay training
frames nor the run's phonon materials contain; for the two pseudo-label modes they are
the same frames, so forgetting is comparable across replay modes (and without replay).
Everything is written as ``replay.extxyz`` with a ``manifest.json`` that lists every
structure used, its source and its split.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from ase import Atoms

from phonft.errors import ConfigError
from phonft.finetune.data import ReplaySample, read_replay
from phonft.finetune.settings import ReplaySettings
from phonft.io import atomic_directory, atomic_write_json, sha256_file
from phonft.models.base import Model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayStructure:
    """A structure the pseudo-label set rattles: its name, origin and unit cell."""

    name: str
    source: str  # "prototype", "reference" or "training"
    atoms: Atoms

    @property
    def formula(self) -> str:
        return composition(self.atoms)


def composition(atoms: Atoms) -> str:
    """Reduced (empirical) formula in Hill order, e.g. ``MgO`` for a 64-atom MgO supercell."""
    return atoms.get_chemical_formula(mode="hill", empirical=True)


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
        a = with_labels(Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True),
                        res["energy"], res["forces"], res.get("stress"))
        a.info.update({k: v for k, v in atoms.info.items() if k in ("config_type", "replay_split")})
        out.append(a)
    return out


def with_labels(atoms: Atoms, energy_eV: float, forces_eV_A, stress_eV_A3=None) -> Atoms:
    """``atoms`` carrying the replay labels ``REF_energy`` (eV), ``REF_forces`` (eV/Å) and,
    when given, ``REF_stress`` (eV/Å³, 3x3 flattened row-major), as :func:`write_replay` writes them."""
    atoms.info["REF_energy"] = float(energy_eV)
    if stress_eV_A3 is not None:
        atoms.info["REF_stress"] = np.asarray(stress_eV_A3, dtype=float).reshape(9)
    atoms.arrays["REF_forces"] = np.asarray(forces_eV_A, dtype=float)
    return atoms


def disjoint_pool(settings: ReplaySettings, references: dict[str, Atoms], exclude: Iterable[str],
                  known_elements: set[str] | None) -> tuple[list[ReplayStructure], list[dict[str, str]]]:
    """Prototypes and reference unit cells usable as replay structures, and what was left out.

    A structure is left out when its composition equals one in ``exclude`` (the run's
    materials) or when it holds an element the model does not know.
    """
    from phonft.finetune.prototypes import prototypes

    candidates = [ReplayStructure(p.name, "prototype", p.atoms) for p in prototypes()] if settings.prototypes else []
    candidates += [ReplayStructure(m, "reference", a) for m, a in sorted(references.items())]
    excluded_formulas = set(exclude)
    pool, left_out, seen = [], [], set()
    for s in candidates:
        unknown = set(s.atoms.get_chemical_symbols()) - known_elements if known_elements is not None else set()
        reason = ("composition of a run material" if s.formula in excluded_formulas else
                  f"model does not know {', '.join(sorted(unknown))}" if unknown else
                  "composition already in the pool" if s.formula in seen else "")
        if reason:
            left_out.append({"name": s.name, "source": s.source, "formula": s.formula, "reason": reason})
            continue
        seen.add(s.formula)
        pool.append(s)
    return pool, left_out


def held_out_groups(groups: Sequence[str], val_fraction: float, seed: int) -> set[str]:
    """A seeded ``val_fraction`` of the distinct ``groups`` (at least one when there are two)."""
    distinct = sorted(set(groups))
    if len(distinct) < 2 or val_fraction <= 0:
        return set()
    n_val = min(len(distinct) - 1, max(1, int(round(val_fraction * len(distinct)))))
    order = np.random.default_rng([seed, 1]).permutation(len(distinct))
    return {distinct[i] for i in order[:n_val]}


def pseudo_label_frames(structures: Sequence[ReplayStructure], val: set[str], model: Model,
                        settings: ReplaySettings) -> list[Atoms]:
    """Rattled/strained copies of every structure, tagged with their split, labelled by ``model``."""
    rng = np.random.default_rng(settings.seed)
    frames = []
    for s in structures:
        for a in perturbed_copies(s.atoms, settings, rng):
            a.info["config_type"] = f"{s.source}:{s.name}"
            a.info["replay_split"] = "val" if s.formula in val else "train"
            frames.append(a)
    return label(frames, model)


def pseudo_label_set(settings: ReplaySettings, model: Model, training: dict[str, Atoms],
                     references: dict[str, Atoms], run_formulas: Iterable[str]
                     ) -> tuple[list[Atoms], dict[str, Any]]:
    """The offline replay set and the manifest entries describing its structures.

    Validation structures are always a held-out part of the disjoint pool, so that the
    ``disjoint`` and ``training`` modes are scored on the same frames.
    """
    pool, left_out = disjoint_pool(settings, references, run_formulas, _element_symbols(model))
    val = held_out_groups([s.formula for s in pool], settings.val_fraction, settings.seed)
    if not val:
        raise ConfigError("replay: fewer than two disjoint replay structures remain for the model's elements "
                          f"(left out: {[d['name'] for d in left_out]}). Fix: give upstream.file, add "
                          "materials under replay.materials, or set replay_steps: 0.")
    val_structures = [s for s in pool if s.formula in val]
    if settings.structures == "training":
        train_structures = [ReplayStructure(m, "training", a) for m, a in sorted(training.items())]
    else:
        train_structures = [s for s in pool if s.formula not in val]
    chosen = train_structures + val_structures
    frames = pseudo_label_frames(chosen, val, model, settings)
    listing = [{"name": s.name, "source": s.source, "formula": s.formula,
                "split": "val" if s.formula in val else "train"} for s in chosen]
    return frames, {"structures": listing, "left_out": left_out}


def _element_symbols(model: Model) -> set[str] | None:
    from ase.data import chemical_symbols

    return None if model.elements is None else {chemical_symbols[z] for z in model.elements}


def upstream_frames(path: Path, keys: dict[str, str], max_frames: int | None, seed: int, val_fraction: float,
                    run_formulas: Iterable[str], group_key: str | None = None) -> tuple[list[Atoms], dict[str, Any]]:
    """Validated frames of a user's extxyz (seeded subsample), split into train and val groups.

    Frames are grouped by ``info[group_key]`` (for example ``mp_id``), else by
    composition; when that leaves one group, each frame is its own group. Validation
    groups never hold a composition of the run's materials.
    """
    samples = read_replay(path, **keys)  # validates labels, names the file on error
    idx = np.arange(len(samples))
    if max_frames and len(samples) > max_frames:
        idx = np.sort(np.random.default_rng(seed).choice(len(samples), size=max_frames, replace=False))
    chosen = [samples[int(i)] for i in idx]
    formulas = [composition(s.atoms) for s in chosen]
    groups = [str(s.info.get(group_key, f)) if group_key else f for s, f in zip(chosen, formulas)]
    if len(set(groups)) < 2:
        groups = [f"frame-{int(i)}" for i in idx]
    banned = set(run_formulas)
    eligible = [g for g, f in zip(groups, formulas) if f not in banned]
    val = held_out_groups(eligible, val_fraction, seed)
    frames = []
    for s, g in zip(chosen, groups):
        a = with_labels(s.atoms.copy(), s.energy_eV, s.forces_eV_A, s.stress_eV_A3)
        a.info["config_type"] = s.tag or "upstream"
        a.info["replay_group"] = g
        a.info["replay_split"] = "val" if g in val else "train"
        frames.append(a)
    return frames, {"groups": {"train": sorted(set(groups) - val), "val": sorted(val)}}


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
    log.info("wrote %d replay frames (%s) to %s", len(frames), counts, out_dir)
    return Path(out_dir)


def load_replay_split(path: str | os.PathLike) -> tuple[list[ReplaySample], list[ReplaySample]]:
    """Read ``replay.extxyz`` into its train and val frames."""
    samples = read_replay(path)
    return [s for s in samples if s.split != "val"], [s for s in samples if s.split == "val"]
