"""The augment stage's one action: make, label and write a material's rattled frames.

:func:`make_frames` builds the labelled frames in memory (nothing is written, so a bad
input fails before ``results/`` is touched); :func:`write_augment` writes them with the
DFT inputs and the manifest into ``results/augment/<m>/`` as one atomic folder.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ase import Atoms

from phonft.augment.frames import (
    FRAMES_FILE,
    UNITS,
    check_frame,
    check_supercell,
    read_frames,
    write_frames,
)
from phonft.augment.inputs import write_inputs
from phonft.augment.labels import dft_labels, engine_labels, harmonic_labels
from phonft.augment.rattle import rattled_frames
from phonft.augment.settings import AugmentSettings, LabelSettings
from phonft.errors import ConfigError
from phonft.io import atomic_directory, atomic_write_json, sha256_file

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SOURCES = {"harmonic": "harmonic_dft", "vasprun": "dft", "qe": "dft", "extxyz": "user", "engine": "engine"}
"""Label format -> the frames' ``label_source``."""


def _resolve(base_dir: str | os.PathLike, path: str) -> Path:
    p = Path(os.path.expanduser(path))
    return p if p.is_absolute() else Path(base_dir) / p


def label_files(labels: LabelSettings, base_dir: str | os.PathLike = ".") -> list[Path]:
    """The files the labels read: the DFT outputs (``path``/``files``) or the extxyz (``path``)."""
    if labels.format in ("vasprun", "qe"):
        return [_resolve(base_dir, labels.path) / f for f in labels.files]
    if labels.format == "extxyz":
        return [_resolve(base_dir, labels.path)]
    return []


def _user_frames(path: Path, supercell: Atoms, material: str) -> list[Atoms]:
    """A user's labelled extxyz, checked against the contract and the reference supercell."""
    frames = read_frames(path)
    check_supercell(frames, supercell, path)
    volume = supercell.get_volume()
    for k, a in enumerate(frames):
        u = a.positions - supercell.positions
        a.info.update({"material": material, "frame": k, "config_type": "rattled", "label_source": "user"})
        a.info.setdefault("volume_factor", float(a.get_volume() / volume))
        a.info.setdefault("rattle_std_A", float(u.std()))
    return frames


def make_frames(material: str, reference_dir: str | os.PathLike, settings: AugmentSettings,
                labels: LabelSettings, base_dir: str | os.PathLike = ".") -> tuple[Atoms, list[Atoms]]:
    """The reference supercell and the material's labelled frames (nothing is written)."""
    from phonft.references.folder import ReferenceFolder

    ref = ReferenceFolder.load(reference_dir)
    supercell = ref.supercell()
    files = label_files(labels, base_dir)
    if labels.format == "extxyz":
        return supercell, _user_frames(files[0], supercell, material)
    if labels.format == "harmonic" and settings.distorts_cell:
        raise ConfigError(f"material '{material}': harmonic labels (F = -Phi u) hold only at the reference cell, but "
                          "augment sets volume_factors or angle_std_deg. Fix: drop those settings, or label the "
                          "frames with DFT (format vasprun/qe), your own extxyz or an engine")
    frames = rattled_frames(supercell, settings, material)
    if labels.format == "harmonic":
        harmonic_labels(frames, supercell, ref.fc2_eV_A2)
    elif labels.format == "engine":
        engine_labels(frames, labels.calculator, dict(labels.calculator_kwargs))
    else:
        dft_labels(frames, labels.format, files)
    for k, a in enumerate(frames):
        check_frame(a, f"the {labels.format} labels of frame {k}", files[min(k, len(files) - 1)] if files
                    else reference_dir, "check the label source (config: materials.<m>.augment.labels).")
    return supercell, frames


def write_augment(out_dir: str | os.PathLike, material: str, reference_dir: str | os.PathLike,
                  settings: AugmentSettings, labels: LabelSettings, base_dir: str | os.PathLike = ".") -> dict[str, Any]:
    """Make the frames, then write ``rattled.extxyz``, ``inputs/`` and ``manifest.json`` atomically;
    return the manifest."""
    supercell, frames = make_frames(material, reference_dir, settings, labels, base_dir)
    sources = label_files(labels, base_dir)
    with atomic_directory(out_dir) as tmp:
        write_frames(tmp / FRAMES_FILE, frames)
        inputs = write_inputs(tmp / "inputs", supercell, frames)
        manifest = {"material": material, **settings.record(), "labels": labels.as_dict(),
                    "labels_digest": labels.digest(), "label_source": SOURCES[labels.format],
                    "n_frames": len(frames), "n_atoms_supercell": len(supercell),
                    "reference_dir": str(reference_dir),
                    "label_files": {str(p): sha256_file(p) for p in sources},
                    "files": {FRAMES_FILE: sha256_file(tmp / FRAMES_FILE)},
                    "inputs": inputs,
                    "units": {k: v for k, v in UNITS.items()
                              if k == "REF_forces" or any(k in a.info for a in frames)}}
        atomic_write_json(tmp / MANIFEST, manifest)
    log.info("%s: %d frames (%s labels) -> %s", material, len(frames), labels.format, out_dir)
    return manifest
