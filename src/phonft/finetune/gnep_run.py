"""The GNEP phase of a finetune run: a NEP fitted to energies, forces and virials, then PFT.

A run whose ``gnep_data`` is not empty first trains its NEP base model by GNEP
(:mod:`phonft.finetune.gnep`: exact gradients, Adam) on the labelled frames of its
sources, then goes on with the run's objective (PFT by default) from that model. Sources:

* ``augment``: the rattled frames of the run's training materials
  (``results/augment/<m>/rattled.extxyz``, :mod:`phonft.finetune.rattled`);
* ``replay``: the run's replay training frames (``results/finetune/<run>/replay``);
* a path to an extxyz file (GPUMD's ``train.xyz`` keys or mace's ``REF_*`` keys);
* an ``https://`` URL, downloaded once into the cache (``url#sha256=<hex>`` checks it).

The GNEP phase has its own checkpoint beside the trainer's (``gnep.pt``), so an
interrupted run resumes inside it, and a finished one is not repeated.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

from phonft.errors import ConfigError
from phonft.io import sha256_file
from phonft.plan.runs import GNEP_URL_PREFIXES, local_gnep_sources

log = logging.getLogger(__name__)

GNEP_CHECKPOINT = "gnep.pt"


def source_files(sources: Sequence[str], cache_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Local files of the path and URL sources (URLs fetched into ``cache_dir``)."""
    from phonft.cache import check_sha256, default_cache_dir, fetch

    local = local_gnep_sources(sources)
    files: dict[str, Path] = {}
    for source in sources:
        if source in local:
            path = Path(source)
            if not path.is_file():
                raise ConfigError(f"finetune.runs.<run>.gnep_data: file {path} does not exist. Fix: give an "
                                  "extxyz file, 'augment', 'replay' or an https:// URL.")
            files[source] = path
        elif source.startswith(GNEP_URL_PREFIXES):
            url, _, digest = source.partition("#sha256=")
            files[source] = fetch("gnep_data", url, cache_dir or default_cache_dir(), "gnep",
                                  sha256=check_sha256(digest or None, "gnep_data sha256"))
    return files


def gnep_frames(sources: Sequence[str], files: dict[str, Path], train_materials: Sequence[str],
                augment: str | os.PathLike | None, replay_train: Sequence[Any]) -> tuple[list, dict[str, Any]]:
    """The labelled frames of every source, and what train.json records of them."""
    from phonft.finetune.gnep import from_rattled, read_training_frames
    from phonft.finetune.rattled import frames_path, read_rattled

    frames: list = []
    record: dict[str, Any] = {}
    for source in sources:
        if source == "augment":
            if augment is None:
                raise ConfigError("gnep_data names 'augment' but no augment folder was given. Fix: pass --augment "
                                  "<results/augment> (the workflow does), or drop 'augment' from gnep_data.")
            chunk = []
            for m in train_materials:
                chunk += from_rattled(read_rattled(frames_path(augment, m), m))
            record[source] = {"materials": list(train_materials), "n_frames": len(chunk)}
        elif source == "replay":
            chunk = from_replay(replay_train)
            record[source] = {"n_frames": len(chunk)}
        else:
            chunk = read_training_frames(files[source])
            record[source] = {"file": str(files[source]), "sha256": sha256_file(files[source]),
                              "n_frames": len(chunk)}
        frames += chunk
    if not frames:
        raise ConfigError(f"gnep_data {list(sources)} holds no labelled frames. Fix: give a source with frames.")
    return frames, record


def from_replay(samples: Sequence[Any]) -> list:
    """Replay frames (:class:`~phonft.finetune.data.ReplaySample`) as GNEP's labelled frames."""
    from phonft.finetune.gnep import LabelledFrame

    out = []
    for s in samples:
        virial = None if s.stress_eV_A3 is None else -s.stress_eV_A3.reshape(3, 3) * s.atoms.get_volume()
        out.append(LabelledFrame(atoms=s.atoms, energy_eV=s.energy_eV, forces_eV_A=s.forces_eV_A,
                                 virial_eV=virial))
    return out


def check_gnep_model(model: Any, settings: Any) -> None:
    """A run with ``gnep_data`` must fine-tune a NEP: one clear error otherwise."""
    if settings.gnep_data and model.backend != "nep":
        raise ConfigError(f"gnep_data is set but base_model '{settings.base_model}' is a {model.backend} model; "
                          "GNEP trains NEP models. Fix: use base_model: nep or nep:<nep.txt>, or remove gnep_data.")


def run_gnep(model: Any, settings: Any, frames: Sequence[Any], checkpoint_dir: Path | None, resume: bool
             ) -> dict[str, Any]:
    """Initialise and train the NEP by GNEP; what train.json records.

    :func:`~phonft.finetune.gnep.initialise` is deterministic, so it runs on a resume too,
    before the checkpoint's weights replace the initial ones. ``checkpoint_dir`` None (the
    data-parallel ranks other than 0) trains without a checkpoint.
    """
    from phonft.finetune.gnep import initialise, train_gnep

    check_gnep_model(model, settings)
    checkpoint = None if checkpoint_dir is None else checkpoint_dir / GNEP_CHECKPOINT
    if checkpoint is not None and not resume and checkpoint.is_file():
        checkpoint.unlink()  # a fresh run starts over
    init = initialise(model, frames)
    history = train_gnep(model, frames, settings.gnep, checkpoint=checkpoint)
    last = history.last
    log.info("GNEP: %d epochs on %d frames in %.1f s; train RMSE E %.3g meV/atom, F %.3g meV/Å", last["epoch"],
             len(frames), last["wall_s"], last["energy_rmse_meV_atom"], last["force_rmse_meV_A"])
    return {"n_frames": len(frames), "stopped": history.stopped, "resumed_from_epoch": history.resumed_from,
            "first": history.rows[0], "final": last, "seconds": last["wall_s"], "history": history.rows,
            "initialise": {k: v for k, v in init.items() if k not in ("descriptor_min", "descriptor_max")}}
