"""Phonons of a model on a reference material: force constants, thermal.json, Hessian MAE.

The model is evaluated in float64 on the reference's own displaced supercells (same
supercell, same displacements as the DFT data; phonopy's default set for a reference read
from force constants) by the batched force evaluation that
evaluate uses too (:func:`phonft.forces.set_model_forces`), with the force drift removed as
``phonopy -f`` does; force constants and the summary then follow the references'
protocol, so the resulting ``thermal.json`` has exactly the references' keys, plus the
Hessian MAE against the DFT force constants.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from phonft.models.base import Model
from phonft.protocols import DisplacementProtocol, ReferenceProtocol
from phonft.references.folder import ReferenceFolder


def model_phonopy(model: Model, ref: ReferenceFolder):
    """A copy of the reference's phonopy object with forces from ``model`` (eV/Å, drift removed),
    on the DFT displacements; a force-constants reference (DFPT) has none, so phonopy's
    set is generated with the default
    :class:`~phonft.protocols.DisplacementProtocol` distance."""
    from phonft.forces import set_model_forces

    ph = ref.phonopy(with_fc=False)
    if not ph.dataset:
        ph.generate_displacements(distance=DisplacementProtocol().distance_A)
    set_model_forces(model, ph, remove_drift=True, where=ref.material)
    return ph


def model_force_constants(model: Model, ref_dir: str | os.PathLike | ReferenceFolder, protocol: ReferenceProtocol):
    """Full force constants (N, N, 3, 3) eV/Å² of ``model``, and its phonopy object."""
    from phonft.phonons import produce_force_constants

    ref = ref_dir if isinstance(ref_dir, ReferenceFolder) else ReferenceFolder.load(ref_dir)
    ph = model_phonopy(model, ref)
    return produce_force_constants(ph, protocol), ph


def hessian_mae(fc_model: np.ndarray, fc_ref: np.ndarray, atoms: np.ndarray | None = None) -> float:
    """MAE (eV/Å²) of force-constant rows of ``atoms`` (default all) against the reference."""
    sel = slice(None) if atoms is None else np.asarray(atoms)
    return float(np.abs(fc_model[sel] - fc_ref[sel]).mean())


def thermal_record(model: Model, ref_dir: str | os.PathLike, material: str, protocol: ReferenceProtocol
                   ) -> dict[str, Any]:
    """``thermal.json`` content for ``model`` on the reference material in ``ref_dir``."""
    from phonft.phonons import phonon_summary, thermal_json_record

    ref = ReferenceFolder.load(ref_dir)
    model.set_dtype("float64")
    fc, ph = model_force_constants(model, ref, protocol)
    ph.force_constants = fc
    summary = phonon_summary(ph, protocol)
    details = {
        "hessian_mae_eV_A2": hessian_mae(fc, ref.fc2_eV_A2, ref.independent_atoms()),
        "reference": {**ref.sha256, "protocol_digest": ref.protocol_digest},
    }
    return thermal_json_record(material, "model", summary, protocol, identity={"model": model.spec},
                               details=details)
