"""What ``phonft evaluate`` runs: one material under one model, and a model's summary."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from phonft.evaluate.exports import EXPORT_FILES, write_exports
from phonft.evaluate.mdr import MDRProtocol, ModelPhonons
from phonft.io import atomic_directory, atomic_write_json, atomic_write_text
from phonft.references.folder import ReferenceFolder

log = logging.getLogger(__name__)

DOUBLE_WELL_AMPLITUDES = np.linspace(-10.0, 10.0, 41)
"""Normal-coordinate amplitudes (amu^½·Å) of the double-well scan; ±10 moves O by ~0.6 Å in CaTiO3."""


def evaluate_material(model_spec: str, ref_dir: str | os.PathLike, material: str, out_dir: str | os.PathLike, *,
                      protocol: MDRProtocol | None = None, device: str = "auto",
                      options: dict[str, Any] | None = None, name: str | None = None) -> dict[str, Any]:
    """Write ``thermal.json``, ``bands.json`` and the same phonons in phonopy's formats
    (:data:`~phonft.evaluate.exports.EXPORT_FILES`: ``phonopy_params.yaml``, ``fc2.hdf5``,
    ``band.yaml``, ``total_dos.dat``) of ``model_spec`` on ``material`` into ``out_dir``.

    The folder is written whole (:func:`~phonft.io.atomic_directory`): every file or, on any
    failure, the folder as it was. It is replaced, so it may hold only these files.
    """
    from phonft.evaluate.bands import band_record
    from phonft.models import load_model

    out_dir = check_replaceable(out_dir, MATERIAL_FILES, "evaluate mdr")
    protocol = protocol or MDRProtocol()
    ref = ReferenceFolder.load(ref_dir)
    model = load_model(model_spec, dtype="float64", device=device, options=options)
    result = ModelPhonons.compute(model, ref, material, protocol)
    provenance = _provenance(name or model_spec, ref)
    thermal = {**result.thermal_record(), **provenance}
    bands = {"material": material, "model": model_spec, **band_record(result.phonon, result.reference, protocol.band_npoints),
             **provenance, **protocol.record()}
    with atomic_directory(out_dir) as tmp:
        atomic_write_json(tmp / "bands.json", bands)
        atomic_write_json(tmp / "thermal.json", thermal)
        write_exports(result, tmp, {"phonft": {"material": material, "model": model_spec, "model_name": name or model_spec,
                                               "protocol_digest": thermal["protocol_digest"]}})
    log.info("%s with %s: omega_max %.1f K (DFT %.1f), band MAE %.3f THz, stable=%s", material, model_spec,
             thermal["omega_max_K"], ref.thermal["omega_max_K"], bands["band_mae_THz"],
             thermal["dynamically_stable"])
    return thermal


MATERIAL_FILES = ("thermal.json", "bands.json", *EXPORT_FILES)
"""What :func:`evaluate_material` writes into a material's folder."""
_LEGACY_FILES = ("double_well.json",)
"""Files that earlier layouts kept in a material's folder; replacing them is expected."""


def check_replaceable(folder: str | os.PathLike, owned: tuple[str, ...], action: str) -> Path:
    """``folder``, when it is absent or holds only ``owned`` files (an earlier result), so
    that replacing it whole loses nothing else; else a :class:`ConfigError`."""
    from phonft.errors import ConfigError

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{action}: --out {folder} is a file, not a folder. Fix: give a folder path.")
    other = sorted(p.name for p in folder.iterdir() if p.name not in (*owned, *_LEGACY_FILES)
                   and not p.name.startswith(".")) if folder.is_dir() else []
    if other:
        raise ConfigError(f"{action}: --out {folder} holds other files ({', '.join(other[:5])}), and the folder is "
                          f"replaced whole. Fix: give a new or empty folder, e.g. results/evaluate/<model>/<material>.")
    return folder


def evaluate_double_well(model_spec: str, ref_dir: str | os.PathLike, material: str, out: str | os.PathLike, *,
                         protocol: MDRProtocol | None = None, device: str = "auto",
                         options: dict[str, Any] | None = None, name: str | None = None) -> dict[str, Any]:
    """Write ``double_well.json``: the energy along the reference's most unstable mode,
    from the DFT harmonic model and from ``model_spec`` on its own relaxed cell."""
    from phonft.errors import ConfigError
    from phonft.evaluate.double_well import double_well_record
    from phonft.evaluate.mdr import relaxed_phonopy
    from phonft.models import load_model

    protocol = protocol or MDRProtocol()
    folder = ReferenceFolder.load(ref_dir)
    if folder.dynamically_stable:
        raise ConfigError(f"{material}: the reference ({folder.path / 'thermal.json'}) is dynamically stable, so "
                          "there is no double well. Fix: list only DFT-unstable materials under evaluate.double_well")
    model = load_model(model_spec, dtype="float64", device=device, options=options)
    ref = folder.phonopy(with_nac=False)
    ph_model, relaxation = relaxed_phonopy(model, ref, f"{material} ({folder.path})", protocol)
    well = double_well_record(model, ref, ph_model, DOUBLE_WELL_AMPLITUDES)
    record = {"material": material, "model": model_spec, **well, "relaxation": relaxation.as_dict(),
              **_provenance(name or model_spec, folder), **protocol.record()}
    atomic_write_json(out, record)
    log.info("%s with %s: mode at q=%s (DFT %.2f THz), model well depth %.2f meV per cell", material, model_spec,
             well["qpoint"], well["dft_frequency_THz"], well["model_well_depth_meV_per_cell"])
    return record


def _provenance(name: str, ref: ReferenceFolder) -> dict[str, Any]:
    return {"model_name": name, "reference": dict(ref.sha256)}


def summarize(name: str, model_spec: str, materials: list[str], model_dir: str | os.PathLike,
              references: str | os.PathLike, *, splits: dict[str, str] | None = None,
              base_dir: str | os.PathLike | None = None, base_name: str | None = None,
              kappa: dict[str, Any] | None = None, protocol: MDRProtocol | None = None) -> dict[str, Any]:
    """Write ``mdr.csv`` and ``summary.json`` of one model into ``model_dir``."""
    from phonft.evaluate.metrics import mdr_table, summary

    protocol = protocol or MDRProtocol()
    model_dir = Path(model_dir)
    table = mdr_table(materials, model_dir, Path(references), splits)
    base = mdr_table(materials, Path(base_dir), Path(references), splits) if base_dir else None
    record = {**summary(name, model_spec, table, base=base, base_name=base_name, kappa=kappa),
              "splits": splits or {}, **protocol.record()}
    atomic_write_text(model_dir / "mdr.csv", table.to_csv(index=False, float_format="%.6g"))
    atomic_write_json(model_dir / "summary.json", record)
    m = record["mae"]
    log.info("%s: MAE omega_max %.1f K, S %.2f J/K/mol, F %.2f kJ/mol, C_V %.2f J/K/mol, band %.3f THz on %d "
             "materials", name, m["omega_max_K_mae"], m["S_300K_mae"], m["F_300K_mae"], m["C_V_300K_mae"],
             m["band_mae_THz"], len(materials))
    return record
