"""The rattled objective (George et al.): energy, force and stress loss on augment frames.

The frames are the ``augment`` stage's rattled supercells of a run's training materials,
``results/augment/<m>/rattled.extxyz``: ASE extxyz with mace's keys ``REF_forces``
(per atom, eV/Å, always present), ``REF_energy`` (total eV) and ``REF_stress`` (3x3
flattened or Voigt, eV/Å³, ASE sign). A key is absent when its label is unknown:
harmonic-DFT frames (F = -Φu from the references' fc2) carry forces only.

With ``w = settings.rattled_weights``, the loss of a batch of frames is::

    loss = w.energy · L_E(frames with REF_energy)   per-atom energies, eV/atom
         + w.forces · L_F(every frame's atoms)      eV/Å components
         + w.stress · L_S(frames with REF_stress)   eV/Å³ components (if w.stress > 0)

Each ``L`` is a mean (MAE, or Huber with ``w.huber_delta``; ``w.energy_huber_delta`` for
L_E) over the entries that carry a label: the label mask is per frame, so a frame without
an energy adds nothing to the energy term nor to its count, and a batch mixing frames with
and without energies fits the mean over those that have one. The terms are named ``rattled_energy``,
``rattled_forces`` and ``rattled_stress`` with their entry counts, so that under
``objective: both`` they sit beside the phonon step's terms
(:func:`combine`) and data-parallel ranks pool them exactly
(:func:`phonft.finetune.distributed.union_objective`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from ase import Atoms

from phonft.augment.frames import FRAMES_FILE
from phonft.errors import InputFileError
from phonft.finetune.objective import Labels, ObjectiveValue, label_terms
from phonft.finetune.settings import LossWeights
from phonft.models.base import Model

#: Term and logged-part names of the rattled objective (distinct from the phonon step's).
RATTLED_TERMS = {"energy": "rattled_energy", "forces": "rattled_forces", "stress": "rattled_stress"}
RATTLED_PARTS = {"energy_mae": "rattled_energy_mae", "force_mae": "rattled_force_mae",
                 "stress_mae": "rattled_stress_mae"}


@dataclass
class RattledSample:
    """One labelled rattled supercell; ``energy_eV`` / ``stress_eV_A3`` None where unknown."""

    atoms: Atoms
    forces_eV_A: np.ndarray
    energy_eV: float | None
    stress_eV_A3: np.ndarray | None
    material: str = ""
    label_source: str = ""

    @property
    def n_atoms(self) -> int:
        return len(self.atoms)


def frames_path(augment_root: str | os.PathLike, material: str) -> Path:
    """``<augment_root>/<material>/rattled.extxyz``."""
    return Path(augment_root) / material / FRAMES_FILE


def read_rattled(path: str | os.PathLike, material: str = "") -> list[RattledSample]:
    """The labelled frames of an augment file; the first bad frame is an :class:`InputFileError`.

    The labels are checked by the augment stage's reader
    (:func:`phonft.augment.frames.read_frames`: finite ``REF_forces`` of shape (N, 3);
    ``REF_energy`` and ``REF_stress`` optional but finite), the structures by
    :func:`phonft.atoms.check_structure`.
    """
    from phonft.atoms import check_structure
    from phonft.augment.frames import read_frames, stress_3x3

    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "(augment frames) does not exist.",
                             "run the augment stage for this material (phonft augment), or set objective: pft.")
    samples = []
    for i, a in enumerate(read_frames(path)):
        check_structure(a, f"{path} (frame {i})", periodic=bool(a.pbc.all()))
        energy, stress = a.info.get("REF_energy"), a.info.get("REF_stress")
        samples.append(RattledSample(Atoms(a.numbers, positions=a.positions, cell=a.cell, pbc=a.pbc),
                                     np.asarray(a.arrays["REF_forces"], dtype=np.float64),
                                     None if energy is None else float(energy),
                                     None if stress is None else stress_3x3(stress),
                                     material=material or str(a.info.get("material", "")),
                                     label_source=str(a.info.get("label_source", ""))))
    return samples


def check_frames(samples: Sequence[RattledSample], reference: Atoms, path: Path) -> None:
    """The frames must be rattled copies of ``reference`` (same atoms, same order)."""
    from phonft.augment.frames import check_supercell

    check_supercell([s.atoms for s in samples], reference, path)


def _tensor(x, model: Model) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=model.dtype, device=model.device)


@dataclass
class _Picked:
    """Outputs restricted to the frames that carry a label (what :func:`label_terms` reads)."""

    energy: torch.Tensor | None = None
    forces: torch.Tensor | None = None
    stress: torch.Tensor | None = None


def rattled_objective(model: Model, samples: Sequence[RattledSample], w: LossWeights,
                      create_graph: bool = True) -> ObjectiveValue:
    """The rattled E/F/S loss of a batch, each term masked to the frames holding its label."""
    e_idx = [i for i, s in enumerate(samples) if s.energy_eV is not None]
    s_idx = [i for i, s in enumerate(samples) if s.stress_eV_A3 is not None] if w.stress > 0 else []
    batch = model.prepare([s.atoms for s in samples])
    out = model.evaluate(batch, stress=bool(s_idx), create_graph=create_graph)
    terms, parts = label_terms(out, Labels(None, _tensor(np.concatenate([s.forces_eV_A for s in samples]), model),
                                           None), batch.n_atoms, w)
    for idx, kind in ((e_idx, "energy"), (s_idx, "stress")):
        if not idx:
            continue
        sel = torch.as_tensor(idx, device=out.energy.device)
        n_atoms = batch.n_atoms[sel.to(batch.n_atoms.device)]
        if kind == "energy":
            picked, labels = _Picked(energy=out.energy[sel]), Labels(_tensor([samples[i].energy_eV for i in idx],
                                                                              model), None, None)
        else:
            picked = _Picked(stress=out.stress[sel])
            labels = Labels(None, None, _tensor(np.stack([samples[i].stress_eV_A3 for i in idx]), model))
        more_terms, more_parts = label_terms(picked, labels, n_atoms, w)
        terms.update(more_terms)
        parts.update(more_parts)
    terms = {RATTLED_TERMS[k]: terms[k] for k in ("energy", "forces", "stress") if k in terms}
    total = sum((t for t, _ in terms.values()), start=torch.zeros((), dtype=model.dtype, device=model.device))
    return ObjectiveValue(total, {**{RATTLED_PARTS[k]: v for k, v in parts.items()}, "loss": float(total.detach())},
                          terms)


def combine(first: ObjectiveValue | None, second: ObjectiveValue | None) -> ObjectiveValue | None:
    """One step's objective from two (the phonon and the rattled loss): losses and terms add.

    The term names must differ (they do: ``rattled_*`` against the phonon step's);
    ``loss`` in ``parts`` is the sum. Either may be None (an empty shard).
    """
    if first is None or second is None:
        return first if second is None else second
    assert not set(first.terms) & set(second.terms), "combined objectives must have distinct terms"
    total = first.loss + second.loss
    return ObjectiveValue(total, {**first.parts, **second.parts, "loss": float(total.detach())},
                          {**first.terms, **second.terms})
