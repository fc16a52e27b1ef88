"""references stage: ingest DFT phonon results into one normalised form per material.

``results/references/<material>/`` holds, whatever code or format the data came from:

- ``phonopy_params.yaml``: unit cell, supercell/primitive matrices, displacements and
  forces (eV/Å), and the Born charges when known; for force constants read as such (DFPT,
  ``format: force_constants``) no displacements but the force constants (compact, eV/Å²);
- ``fc2.hdf5``: full (N, N, 3, 3) supercell force constants in eV/Å², symmetrized. Its
  entries are the Hessian labels of phonon fine-tuning;
- ``thermal.json``: omega_max, stability and thermal properties
  (:func:`phonft.phonons.phonon_summary`) with provenance;
- ``fc3.hdf5`` and ``phono3py_params.yaml`` where third-order data exist (compact fc3,
  eV/Å³).

Later stages read a written folder back with :class:`ReferenceFolder` (phonopy object,
DFT forces, fc2 in eV/Å², the ``thermal.json`` record and file digests).

Example
-------
>>> from phonft.references import Reference, ReferenceFolder
>>> ref = Reference.read({"format": "mdr", "path": "data/mdr/mp-149.yaml.bz2"})  # doctest: +SKIP
>>> ref.write("results/references/mp-149", material="mp-149")                   # doctest: +SKIP
>>> ReferenceFolder.load("results/references/mp-149").fc2_eV_A2.shape            # doctest: +SKIP
(64, 64, 3, 3)
"""

from __future__ import annotations

from typing import Any

from phonft.specs import FORMATS, ReferenceSpec, SpecError, material_reference, resolve

__all__ = ["FORMATS", "Reference", "ReferenceFolder", "RawReference", "ReferenceSpec", "SpecError",
           "material_reference", "read_reference", "resolve"]


def __getattr__(name: str) -> Any:
    # The readers import phonopy; load them only when used, so that importing the
    # package for the (stdlib-only) spec names of phonft.specs stays quick.
    if name in ("Reference", "read_reference"):
        from phonft.references import reference

        return getattr(reference, name)
    if name == "ReferenceFolder":
        from phonft.references.folder import ReferenceFolder

        return ReferenceFolder
    if name == "RawReference":
        from phonft.references.readers import RawReference

        return RawReference
    raise AttributeError(name)
