"""Batched force evaluation of a model on finite-displacement supercells (a leaf module).

phonopy and phono3py hand out lists of displaced supercells; instead of one ASE
calculator call per supercell, the model evaluates them in batches of up to
``batch_atoms`` atoms (one graph, block-diagonal), which is what makes fc3 sets of
hundreds of supercells affordable. ``benchmarks/force_eval.py`` checks the forces against
the one-call-at-a-time loop and times both.

Both the held-out phonons of a fine-tuning run (:mod:`phonft.finetune.heldout`) and the
evaluate stage (MDR protocol, kappa) compute model forces here, so it lives outside
both stages.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms

from phonft.errors import PhonftError
from phonft.models.base import Model
from phonft.phonons import remove_drift as subtract_drift


def atom_budget_chunks(sizes: Sequence[int], batch_atoms: int) -> list[slice]:
    """Consecutive slices of ``sizes`` whose atom counts sum to at most ``batch_atoms``
    (a single structure larger than the budget gets a slice of its own)."""
    chunks, start, total = [], 0, 0
    for i, n in enumerate(sizes):
        if i > start and total + n > batch_atoms:
            chunks.append(slice(start, i))
            start, total = i, 0
        total += n
    if start < len(sizes):
        chunks.append(slice(start, len(sizes)))
    return chunks


CPU_BATCH_ATOMS = 128
"""Default atom budget on a CPU: ``benchmarks/force_eval.py`` measured no gain from larger
batches for CHGNet on 2 cores (x0.72 at 512 atoms), and x1.46 for a small MACE at 1024."""
GPU_BATCH_ATOMS = 4096
"""Default atom budget on a GPU, where batching is what fills the device."""


def default_batch_atoms(model: Model) -> int:
    """The atom budget to use when none is given: by the model's device."""
    device = getattr(model, "device", None)
    return GPU_BATCH_ATOMS if getattr(device, "type", str(device)) == "cuda" else CPU_BATCH_ATOMS


def displaced_forces(model: Model, cells: Sequence[Atoms], *, batch_atoms: int | None = None,
                     remove_drift: bool = True, where: str = "", progress: bool = True) -> np.ndarray:
    """Forces (eV/Å, float64) of ``model`` on every cell, shape (n_cells, n_atoms, 3).

    The cells are one displacement set, so they all have the same number of atoms.
    ``batch_atoms`` None picks :func:`default_batch_atoms`. With ``remove_drift`` the mean
    force of each cell is subtracted, as ``phonopy -f`` does with DFT forces. Non-finite
    forces raise an error naming ``where``.
    """
    from tqdm.auto import tqdm

    if not cells:
        return np.zeros((0, 0, 3))
    sizes = [len(c) for c in cells]
    if len(set(sizes)) != 1:
        raise ValueError(f"{where}: displaced supercells of different sizes {sorted(set(sizes))}")
    batch_atoms = batch_atoms or default_batch_atoms(model)
    out: list[np.ndarray] = []
    bar = tqdm(total=len(cells), desc=f"forces {where}".strip(), unit="cell", disable=not progress,
               mininterval=2.0)
    for chunk in atom_budget_chunks(sizes, batch_atoms):
        for result in model.predict(list(cells[chunk]), batch_size=len(cells[chunk])):
            out.append(np.asarray(result["forces"], dtype=np.float64))
        bar.update(chunk.stop - chunk.start)
    bar.close()
    forces = np.stack(out)
    if not np.isfinite(forces).all():
        raise PhonftError(f"{where or 'displaced supercells'}: the model {model.spec} returned non-finite forces; "
                          "check the model file and that the structure has no overlapping atoms")
    return subtract_drift(forces) if remove_drift else forces


def set_model_forces(model: Model, phonon, *, batch_atoms: int | None = None, remove_drift: bool = True,
                     where: str = "") -> None:
    """Set ``phonon.forces`` (eV/Å, float64) to ``model``'s forces on its displaced supercells.

    ``phonon`` is a :class:`phonopy.Phonopy` holding displacements; the forces come from
    :func:`displaced_forces` (batched, drift removed when ``remove_drift``), in the order
    of ``phonon.supercells_with_displacements``.
    """
    from phonft.atoms import to_ase

    cells = [to_ase(c) for c in phonon.supercells_with_displacements]
    phonon.forces = displaced_forces(model, cells, batch_atoms=batch_atoms, remove_drift=remove_drift,
                                     where=where)
