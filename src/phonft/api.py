"""A Python API for notebooks: a model's phonons and MDR scores, without the workflow.

The four functions are re-exported by :mod:`phonft` (lazily: ``import phonft`` stays light)
and run the evaluate stage's own code (:class:`~phonft.evaluate.mdr.ModelPhonons`,
:func:`~phonft.evaluate.bands.band_record`, :func:`~phonft.evaluate.metrics.records_row`),
so their numbers are those ``phonft evaluate mdr`` and ``phonft evaluate summary`` write.

- :func:`load_model`: a model from its spec string (``chgnet``, ``mace-mp:medium-0b3``, a
  fine-tuned ``model.pt``, ...), in float64 by default;
- :func:`load_reference`: a written ``results/references/<m>/`` folder
  (:class:`~phonft.references.folder.ReferenceFolder`);
- :func:`model_phonons`: the MDR protocol (relax, displace, the model's forces, fc2) on a
  references folder or on an in-memory ``phonopy.Phonopy``;
- :func:`score_mdr`: the ``mdr.csv`` row of a model on a material (omega_max, S, F, C_V at
  300 K and their errors, stability, band MAE).

Example (the vendored NaCl data and the CHGNet shipped with the chgnet package; run from
the repository root):

.. code-block:: python

    import phonopy
    from phonft import load_model, model_phonons, score_mdr

    dft = phonopy.load("data/dft-phonons/NaCl/phonopy_disp.yaml",
                       force_sets_filename="data/dft-phonons/NaCl/FORCE_SETS")
    chgnet = load_model("chgnet")
    result = model_phonons(chgnet, dft, material="NaCl")  # relax, displace, CHGNet forces, fc2
    result.phonon.save("NaCl-chgnet_params.yaml", settings={"force_constants": True})  # phonopy-load opens it
    scores = score_mdr(result, dft)                        # the row `phonft evaluate` writes to mdr.csv
    print(f"omega_max {scores['omega_max_K_model']:.0f} K (DFT {scores['omega_max_K_dft']:.0f} K), "
          f"band MAE {scores['band_mae_THz']:.3f} THz")
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from phonft.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from phonopy import Phonopy

    from phonft.evaluate.mdr import MDRProtocol, ModelPhonons
    from phonft.models import Model
    from phonft.references.folder import ReferenceFolder

__all__ = ["load_model", "load_reference", "model_phonons", "score_mdr"]


def load_model(spec: str, *, device: str = "auto", dtype: str = "float64",
               options: dict[str, Any] | None = None) -> Model:
    """The model named by ``spec`` (see :mod:`phonft.models`) on ``device`` (``auto``:
    CUDA when visible, else the CPU), in ``dtype`` (float64: phonons need it)."""
    from phonft.models import load_model as load

    return load(spec, dtype=dtype, device=device, options=options)


def load_reference(folder: str | os.PathLike) -> ReferenceFolder:
    """A references folder written by ``phonft references`` (``results/references/<m>/``):
    its DFT phonopy object, fc2 (eV/Å²) and ``thermal.json`` record."""
    from phonft.references.folder import ReferenceFolder

    return ReferenceFolder.load(folder)


def _protocol(protocol: MDRProtocol | Mapping[str, Any] | None) -> MDRProtocol:
    """An :class:`MDRProtocol` from itself, a mapping of its fields, or None (the defaults)."""
    from phonft.evaluate.mdr import MDRProtocol

    if isinstance(protocol, MDRProtocol):
        return protocol
    return MDRProtocol.from_dict(dict(protocol or {}))


def _reference_phonopy(phonon: Phonopy, protocol: MDRProtocol) -> Phonopy:
    """A private copy of an in-memory reference without Born charges, with force constants
    (eV/Å²): its own, else built from its displacements and forces under ``protocol``."""
    from phonft.phonons import produce_force_constants

    ref = copy.deepcopy(phonon)
    ref.nac_params = None
    if ref.force_constants is None:
        forces = (ref.dataset or {}).get("first_atoms") or []
        if not (forces and all("forces" in d for d in forces)) and (ref.dataset or {}).get("forces") is None:
            raise ConfigError("model_phonons: the Phonopy object has neither force constants nor the forces of its "
                              "displacements. Fix: load it with its forces (phonopy.load(..., "
                              "force_sets_filename=...)) or set phonon.force_constants.")
        ref.force_constants = produce_force_constants(ref, protocol.phonon_protocol())
    return ref


def _formula(phonon: Phonopy) -> str:
    """The primitive cell's formula (metals first, e.g. NaCl), the name of an unnamed material."""
    from ase import Atoms

    return Atoms(symbols=list(phonon.primitive.symbols)).get_chemical_formula(mode="metal")


def _is_phonopy(obj: Any) -> bool:
    from phonopy import Phonopy

    return isinstance(obj, Phonopy)


def model_phonons(model: Model | str, reference: Phonopy | ReferenceFolder | str | os.PathLike, *,
                  material: str | None = None, protocol: MDRProtocol | Mapping[str, Any] | None = None,
                  device: str = "auto") -> ModelPhonons:
    """The model's phonons on a reference material under the MDR protocol.

    ``model`` is a loaded model or a spec string. ``reference`` is a references folder (a
    path or :func:`load_reference`'s object) or an in-memory ``phonopy.Phonopy`` with its
    unit cell, supercell and primitive matrices and either force constants or the forces of
    its displacements (it is not modified). ``protocol``: an :class:`MDRProtocol` or a
    mapping of its fields. Returns :class:`~phonft.evaluate.mdr.ModelPhonons`: ``.phonon``
    is a ``phonopy.Phonopy`` on the model-relaxed cell with the model's force constants
    (eV/Å²), ``.thermal_record()`` the MDR thermal record (omega_max in K, S, F, C_V,
    stability), ``.relaxation`` the relaxation's outcome.
    """
    from phonft.evaluate.mdr import ModelPhonons
    from phonft.references.folder import ReferenceFolder

    protocol = _protocol(protocol)
    if isinstance(model, str):
        model = load_model(model, device=device)
    if _is_phonopy(reference):
        return ModelPhonons.from_phonopy(model, _reference_phonopy(reference, protocol),
                                         material or _formula(reference), protocol)
    folder = reference if isinstance(reference, ReferenceFolder) else load_reference(reference)
    return ModelPhonons.compute(model, folder, material or folder.material, protocol)


def score_mdr(phonons: ModelPhonons | Model | str, reference: Phonopy | ReferenceFolder | str | os.PathLike, *,
              material: str | None = None, protocol: MDRProtocol | Mapping[str, Any] | None = None,
              device: str = "auto") -> dict[str, Any]:
    """The ``mdr.csv`` row of a model on one material (``phonft evaluate``'s numbers).

    ``phonons`` is :func:`model_phonons`'s result, or a model (or spec) to run it with.
    ``reference`` is what the phonons were computed on: for a references folder its
    ``thermal.json`` is the DFT side, as in ``phonft evaluate``; for an in-memory Phonopy the
    DFT side is computed from its force constants under the MDR protocol. Keys:
    ``<q>_dft``, ``<q>_model``, ``<q>_abs_err`` for q in omega_max_K, S_300K (J/K/mol),
    F_300K (kJ/mol), C_V_300K (J/K/mol); ``stable_dft``, ``stable_model``,
    ``min_frequency_THz_dft``/``_model``, ``band_mae_THz``, ``relax_converged``.
    """
    from phonft.evaluate.bands import band_record
    from phonft.evaluate.mdr import ModelPhonons
    from phonft.evaluate.metrics import records_row
    from phonft.phonons import phonon_summary
    from phonft.references.folder import ReferenceFolder

    if not isinstance(phonons, ModelPhonons):
        phonons = model_phonons(phonons, reference, material=material, protocol=protocol, device=device)
    if _is_phonopy(reference):
        ref_record = phonon_summary(phonons.reference, phonons.protocol.phonon_protocol())
    else:
        folder = reference if isinstance(reference, ReferenceFolder) else load_reference(reference)
        ref_record = folder.thermal
    bands = band_record(phonons.phonon, phonons.reference, phonons.protocol.band_npoints)
    return records_row(phonons.material, ref_record, phonons.thermal_record(), bands["band_mae_THz"])
