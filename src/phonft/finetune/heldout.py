"""Phonons of a model on a reference material: force constants, thermal.json, Hessian MAE.

The model is evaluated in float64 on the reference's own displaced supercells (same
supercell, same displacements as the DFT data), with the force drift removed as
``phonopy -f`` does; force constants and the summary then follow the references'
protocol, so the resulting ``thermal.json`` has exactly the references' keys.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from phonft.models.base import Model
from phonft.protocols import ReferenceProtocol


def model_phonopy(model: Model, ref_dir: str | os.PathLike, batch_size: int = 4):
    """The reference's phonopy object with forces from ``model`` (eV/Å, drift removed)."""
    import phonopy

    from phonft.atoms import to_ase

    ph = phonopy.load(Path(ref_dir) / "phonopy_params.yaml", produce_fc=False, log_level=0)
    cells = [to_ase(c) for c in ph.supercells_with_displacements]
    results = model.predict(cells, batch_size=batch_size)
    forces = np.array([r["forces"] for r in results], dtype=np.float64)
    forces -= forces.mean(axis=1, keepdims=True)
    ph.forces = forces
    return ph


def model_force_constants(model: Model, ref_dir: str | os.PathLike, protocol: ReferenceProtocol):
    """Full force constants (N, N, 3, 3) eV/Å² of ``model``, and its phonopy object."""
    from phonft.phonons import produce_force_constants

    ph = model_phonopy(model, ref_dir)
    return produce_force_constants(ph, protocol), ph


def hessian_mae(fc_model: np.ndarray, fc_ref: np.ndarray, atoms: np.ndarray | None = None) -> float:
    """MAE (eV/Å²) of force-constant rows of ``atoms`` (default all) against the reference."""
    sel = slice(None) if atoms is None else np.asarray(atoms)
    return float(np.abs(fc_model[sel] - fc_ref[sel]).mean())


def thermal_record(model: Model, ref_dir: str | os.PathLike, material: str, protocol: ReferenceProtocol
                   ) -> dict[str, Any]:
    """``thermal.json`` content for ``model`` on the reference material in ``ref_dir``."""
    from phonopy.file_IO import read_force_constants_hdf5

    from phonft.io import read_json, sha256_file
    from phonft.phonons import phonon_summary

    model.set_dtype("float64")
    fc, ph = model_force_constants(model, ref_dir, protocol)
    ph.force_constants = fc
    summary = phonon_summary(ph, protocol)
    ref_dir = Path(ref_dir)
    fc_ref = np.asarray(read_force_constants_hdf5(str(ref_dir / "fc2.hdf5")), dtype=np.float64)
    indep = np.asarray(ph.symmetry.get_independent_atoms(), dtype=int)
    ref_summary = read_json(ref_dir / "thermal.json")
    return {
        "material": material,
        "kind": "model",
        "synthetic": False,
        "model": model.spec,
        **summary,
        "hessian_mae_eV_A2": hessian_mae(fc, fc_ref, indep),
        "reference": {"thermal.json": sha256_file(ref_dir / "thermal.json"),
                      "fc2.hdf5": sha256_file(ref_dir / "fc2.hdf5"),
                      "protocol_digest": ref_summary.get("protocol_digest")},
        "has_fc3": False,
        **protocol.record(),
    }
