"""What ``phonft finetune`` does: replay set, training, held-out phonons (the split is
:mod:`phonft.finetune.split`).

Each function reads and writes the files of the results layout (:mod:`phonft.plan.layout`),
atomically. A run's config entry is cut into its settings by :mod:`phonft.plan.runs` and
decoded by :meth:`phonft.protocols.Protocol.from_dict`.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Sequence

from phonft.errors import ConfigError, InputFileError
from phonft.finetune.settings import ReplaySettings, TrainSettings
from phonft.finetune.split import read_split
from phonft.io import atomic_write_json, sha256_file
from phonft.plan.layout import MODEL_FILE
from phonft.plan.runs import replay_fields, train_fields

log = logging.getLogger(__name__)


def build_replay(run: dict[str, Any], split_file: str | os.PathLike, references: str | os.PathLike,
                 out_dir: str | os.PathLike, cache_dir: str | os.PathLike, device: str = "auto",
                 replay_materials: Sequence[str] | None = None) -> Path:
    """Write the run's replay set: upstream data when configured, else pseudo-labels.

    ``replay_materials`` are configured materials (with references) that may join the
    disjoint pseudo-label pool; None takes ``replay.materials`` from the run.
    """
    from phonft.finetune.data import reference_unitcell
    from phonft.finetune.replay import composition, pseudo_label_set, upstream_frames, write_replay

    settings = ReplaySettings.from_dict(replay_fields(run))
    split = read_split(split_file)
    refs = Path(references)
    run_cells = {m: reference_unitcell(refs / m) for part in ("train", "val", "test") for m in split[part]}
    run_formulas = sorted({composition(a) for a in run_cells.values()})
    upstream = run.get("upstream") or {}
    if upstream.get("file") or upstream.get("url"):
        path = _upstream_file(upstream, Path(cache_dir))
        keys = {k: upstream[k] for k in ("energy_key", "forces_key", "stress_key") if upstream.get(k)}
        frames, listing = upstream_frames(path, keys, upstream.get("max_frames"), settings.seed,
                                          settings.val_fraction, run_formulas, upstream.get("group_key"))
        manifest = {"kind": "upstream", "source": {"file": str(path), "url": upstream.get("url"),
                                                   "sha256": sha256_file(path)},
                    "max_frames": upstream.get("max_frames"), **listing}
    else:
        from phonft.models import load_model

        if settings.base_model == "nep":
            raise ConfigError("the replay set of a run with base_model 'nep' (a NEP from scratch) cannot be "
                              "pseudo-labelled: its weights are random until GNEP trains them. Fix: give upstream: "
                              "{file: <labelled extxyz>} (e.g. the GNEP training set), or start from a trained NEP "
                              "(base_model: 'nep:<nep.txt>').")
        materials = replay_materials if replay_materials is not None else (settings.materials or ())
        others = {m: reference_unitcell(refs / m) for m in materials if m not in run_cells}
        model = load_model(settings.base_model, dtype="float64", device=device,
                           options=TrainSettings.from_dict(train_fields(run)).options)
        training = {m: run_cells[m] for m in split["train"]}
        frames, listing = pseudo_label_set(settings, model, training, others, run_formulas)
        manifest = {"kind": "pseudo-label", "labelled_by": settings.base_model,
                    "note": f"{settings.structures} structures, labelled by the frozen base model (no DFT "
                            "information); validation structures are disjoint from the replay training "
                            "structures and from the run's materials", **listing}
    manifest["run_compositions"] = run_formulas
    return write_replay(out_dir, frames, {**manifest, **settings.record()})


def _upstream_file(upstream: dict[str, Any], cache_dir: Path) -> Path:
    """``upstream.file``, or ``upstream.url`` downloaded into the cache; either is checked
    against ``upstream.sha256`` when given."""
    from phonft.cache import check_sha256, fetch

    sha256 = check_sha256(upstream.get("sha256"), "upstream.sha256")
    if upstream.get("file"):
        path = Path(upstream["file"])
        if not path.is_file():
            raise InputFileError(path, "(upstream replay data) does not exist.",
                                 "fix upstream.file, or remove it to use the offline pseudo-label set.")
        if sha256 is not None and (digest := sha256_file(path)) != sha256:
            raise InputFileError(path, f"has SHA-256 {digest}, not upstream.sha256 {sha256}.",
                                 "give the file the digest belongs to, or correct upstream.sha256.")
        return path
    return fetch("upstream", upstream["url"], cache_dir, "upstream", sha256=sha256)


def train(run_name: str, run: dict[str, Any], split_file: str | os.PathLike, references: str | os.PathLike,
          replay_dir: str | os.PathLike, out_dir: str | os.PathLike, *, device: str = "auto",
          resume: bool = False, stop_after: int | None = None,
          augment: str | os.PathLike | None = None) -> dict[str, Any]:
    """Fine-tune the run's base model; write model, train.json and metrics.csv.

    ``augment``: the augment root (``results/augment``) whose
    ``<m>/rattled.extxyz`` frames of the training materials the ``rattled`` and ``both``
    objectives fit (:mod:`phonft.finetune.rattled`); ``pft`` ignores it.

    The checkpoint is keyed by the settings and the inputs' SHA-256 fingerprints
    (:mod:`phonft.finetune.checkpoint`). With ``resume``, a checkpoint of the same key
    continues; a finished one trains nothing and the outputs are rewritten from it (the
    same weights and metrics; train.json differs only in ``resumed_from_epoch``). The
    figures stage draws the training curve (:func:`phonft.figures.plot_training_curve`).

    Launched by ``torchrun``, the ranks train data-parallel
    (:mod:`phonft.finetune.distributed`); rank 0 writes every file, the other ranks
    return ``{"rank": <rank>}``. The checkpoint is independent of the number of ranks,
    so a run resumes on any number of them.
    """
    from phonft.finetune.distributed import init_distributed, shutdown_distributed
    from phonft.models import resolve_device

    ctx, dev = init_distributed(resolve_device(device))
    if not ctx.is_main:
        logging.getLogger("phonft").setLevel(logging.WARNING)  # rank 0 logs for all
    try:
        return _train(run_name, run, split_file, references, replay_dir, Path(out_dir), dev, ctx, resume,
                      stop_after, augment)
    finally:
        shutdown_distributed(ctx)


def _train(run_name: str, run: dict[str, Any], split_file: str | os.PathLike, references: str | os.PathLike,
           replay_dir: str | os.PathLike, out_dir: Path, dev: str, ctx: Any, resume: bool,
           stop_after: int | None, augment: str | os.PathLike | None) -> dict[str, Any]:
    from phonft.finetune.checkpoint import CHECKPOINT_FILE, CheckpointKey, prepare_checkpoint
    from phonft.finetune.strategies import check_strategy, parameter_counts
    from phonft.finetune.trainer import Trainer, write_metrics

    settings = TrainSettings.from_dict(train_fields(run))
    split = read_split(split_file)
    train_set, val_set, replay_train, replay_val = _training_data(settings, split, Path(references), replay_dir)
    rattled, frame_files = _rattled_data(settings, split["train"], train_set, augment)
    gnep_files = _gnep_files(settings)
    key = CheckpointKey.of_run(settings.digest(), settings.base_model, split, Path(references),
                               Path(replay_dir) if replay_dir else None,
                               _keyed_files(settings, split, frame_files, gnep_files, augment))
    model = _base_model(settings, dev, train_set + val_set)
    check_strategy(model, settings)  # a bad strategy setting fails before anything is written
    ckpt = (prepare_checkpoint(out_dir / "checkpoints", key, resume) if ctx.is_main
            else out_dir / "checkpoints" / key.digest / CHECKPOINT_FILE)
    gnep = _gnep_phase(model, settings, gnep_files, split, augment, replay_train, ckpt, resume, ctx.is_main)
    manifest = _manifest_summary(Path(replay_dir) / "manifest.json") if replay_dir else None
    trainer = Trainer(model, settings, train_set, val_set, replay_train, replay_val, checkpoint=ckpt,
                      dft_labels=(manifest or {}).get("kind") == "upstream", key=key.digest, dist=ctx,
                      rattled_train=rattled)
    result = trainer.fit(resume=resume, stop_after=stop_after)
    if not ctx.is_main:
        return {"rank": ctx.rank}
    write_metrics(result.metrics, out_dir / "metrics.csv")
    if stop_after is not None and result.metrics[-1]["epoch"] < settings.epochs and result.stopped is None:
        log.info("stopped after epoch %d as asked; resume with --resume", result.metrics[-1]["epoch"])
        return {"stopped_after": result.metrics[-1]["epoch"]}
    model.load_state_dict(result.state)
    model_path = out_dir / MODEL_FILE
    model.save(model_path)
    record = {
        "run": run_name,
        "model": str(model_path),
        "base_model": settings.base_model,
        "split": split,
        "best_epoch": result.best_epoch, "best_val_loss": result.best_val_loss,
        "validation": {"source": trainer.validation_source, "columns_per_structure": settings.val_columns},
        "stopped_early": result.stopped,
        "resumed_from_epoch": result.resumed_from,
        "device": dev, "world_size": ctx.world_size,
        "seconds": sum(row["seconds"] for row in result.metrics),
        **parameter_counts(model, trainer.params),
        "final": result.metrics[-1], "base": result.metrics[0],
        "forgetting": forgetting_record(result.metrics[0], _row_of(result.metrics, result.best_epoch),
                                        len(replay_val)),
        "replay_manifest": manifest,
        "objective": settings.objective,
        "gnep": gnep,
        "augment": _frames_record(frame_files, rattled) if rattled else None,
        "checkpoint": str(ckpt),
        "checkpoint_key": key.record(),
        **settings.record(),
    }
    atomic_write_json(out_dir / "train.json", record)
    log.info("best epoch %d (val loss %.4g); model -> %s", result.best_epoch, result.best_val_loss, model_path)
    return record


def _base_model(settings: TrainSettings, device: str, samples: Sequence[Any]) -> Any:
    """The run's base model in its training dtype, checked to know every element of ``samples``
    (and to be a NEP when the run has a GNEP phase)."""
    import torch

    from phonft.finetune.gnep_run import check_gnep_model
    from phonft.models import load_model

    torch.manual_seed(settings.seed)
    model = load_model(settings.base_model, dtype=settings.dtype, device=device, options=settings.options)
    for s in samples:
        model.check_elements(s.atoms, f"material '{s.material}'")
    check_gnep_model(model, settings)
    return model


def _keyed_files(settings: TrainSettings, split: dict[str, list[str]], frame_files: dict[str, Path],
                 gnep_files: dict[str, Path], augment: str | os.PathLike | None) -> dict[str, Path]:
    """The data files the checkpoint is keyed by: the rattled frames the objective or the
    GNEP phase reads, and the GNEP data files."""
    keyed = {**frame_files, **{f"gnep:{s}": p for s, p in gnep_files.items()}}
    if "augment" in settings.gnep_data and augment is not None:
        from phonft.finetune.rattled import frames_path

        keyed.update({m: frames_path(augment, m) for m in split["train"]})
    return keyed


def _gnep_files(settings: TrainSettings) -> dict[str, Path]:
    """Local files of the run's ``gnep_data`` (URLs fetched into the cache); none without GNEP."""
    from phonft.finetune.gnep_run import source_files

    return source_files(settings.gnep_data) if settings.gnep_data else {}


def _gnep_phase(model: Any, settings: TrainSettings, files: dict[str, Path], split: dict[str, list[str]],
                augment: str | os.PathLike | None, replay_train: Sequence[Any], ckpt: Path, resume: bool,
                is_main: bool) -> dict[str, Any] | None:
    """Train the NEP by GNEP before the run's objective (:mod:`phonft.finetune.gnep_run`);
    what train.json records (None without ``gnep_data``). Every data-parallel rank trains
    the same GNEP (it is deterministic); only rank 0 keeps its checkpoint."""
    if not settings.gnep_data:
        return None
    from phonft.finetune.gnep_run import gnep_frames, run_gnep

    frames, sources = gnep_frames(settings.gnep_data, files, split["train"], augment, replay_train)
    folder = ckpt.parent if is_main else None
    return {"sources": sources, **run_gnep(model, settings, frames, folder, resume)}


def _training_data(settings: TrainSettings, split: dict[str, list[str]], refs: Path,
                   replay_dir: str | os.PathLike) -> tuple[list, list, list, list]:
    """The phonon samples of the train and val materials, and the replay train/val frames."""
    from phonft.finetune.data import load_phonon_sample
    from phonft.finetune.replay import load_replay_split

    train_set = [load_phonon_sample(refs / m, m) for m in split["train"]]
    val_set = [load_phonon_sample(refs / m, m) for m in split["val"]]
    replay_file = Path(replay_dir) / "replay.extxyz" if replay_dir else None
    replay_train, replay_val = ([], [])
    if settings.replay_steps and replay_file is None:
        raise ConfigError(f"replay_steps is {settings.replay_steps} but no replay set was given. Fix: pass "
                          "--replay <the finetune replay folder>, or set replay_steps: 0.")
    if settings.replay_steps or (replay_file and replay_file.is_file()):
        # The validation frames measure forgetting even when replay_steps is 0.
        replay_train, replay_val = load_replay_split(replay_file)
    return train_set, val_set, replay_train, replay_val


def _rattled_data(settings: TrainSettings, materials: Sequence[str], train_set: Sequence[Any],
                  augment: str | os.PathLike | None) -> tuple[list, dict[str, Path]]:
    """The rattled frames of the training materials (``rattled`` / ``both``), and their files.

    A missing ``--augment`` root or frame file, or frames that are not rattled copies of
    the material's reference supercell, is one clear error.
    """
    from phonft.finetune.rattled import check_frames, frames_path, read_rattled

    if settings.objective == "pft":
        return [], {}
    if augment is None:
        raise ConfigError(f"objective is {settings.objective}, which fits the training materials' rattled frames, "
                          "but no augment folder was given. Fix: pass --augment <results/augment> (the workflow "
                          "does), or set objective: pft.")
    files = {m: frames_path(augment, m) for m in materials}
    frames = []
    for sample in train_set:
        chunk = read_rattled(files[sample.material], sample.material)
        check_frames(chunk, sample.atoms, files[sample.material])
        frames += chunk
    log.info("objective %s: %d rattled frames of %d training materials", settings.objective, len(frames),
             len(files))
    return frames, files


def _frames_record(files: dict[str, Path], frames: Sequence[Any]) -> dict[str, Any]:
    """What train.json records of the rattled frames: per material, file, digest, frames, label sources."""
    return {m: {"file": str(path), "sha256": sha256_file(path),
                "n_frames": sum(f.material == m for f in frames),
                "label_sources": sorted({f.label_source for f in frames if f.material == m})}
            for m, path in files.items()}


def _row_of(metrics: list[dict[str, float]], epoch: int) -> dict[str, float]:
    return next(m for m in metrics if m["epoch"] == epoch)


def forgetting_record(base: dict[str, float], kept: dict[str, float], n_frames: int) -> dict[str, Any]:
    """Forgetting of the kept model on the replay validation frames, against the base model.

    ``error``: MAE against the frames' labels (DFT for upstream data, the base model for
    pseudo-labels) for the base and the kept model, and their ratio; ``drift``: MAE of the
    kept model against the base model's own predictions. Units: eV/atom, eV/Å, eV/Å³.
    """
    from phonft.finetune.trainer import FORGETTING_KEYS

    if not n_frames:
        return {"n_frames": 0}
    error = {q: {"base": base.get(f"replay_{q}_mae"), "model": kept.get(f"replay_{q}_mae")}
             for q in ("energy", "force", "stress") if f"replay_{q}_mae" in kept}
    for q, pair in error.items():
        pair["ratio"] = pair["model"] / pair["base"] if pair["base"] else None
    return {"n_frames": n_frames, "epoch": kept["epoch"], "error": error,
            "drift": {k.removeprefix("drift_"): kept[k] for k in FORGETTING_KEYS if k.startswith("drift_") and k in kept},
            "units": {"energy": "eV/atom", "force": "eV/Å", "stress": "eV/Å³"}}


def _manifest_summary(path: Path) -> dict[str, Any] | None:
    """What train.json records of the replay set's manifest (None when there is none)."""
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return {**{k: data.get(k) for k in ("kind", "n_frames", "counts", "protocol_digest", "sha256")},
            "structures": (data.get("protocol") or {}).get("structures") if data.get("kind") != "upstream" else None}


def heldout(model_spec: str, reference_dir: str | os.PathLike, material: str,
            protocol_fields: dict[str, Any] | None, out: str | os.PathLike, *, device: str = "auto",
            options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The held-out step: ``thermal.json`` (with the Hessian MAE) of ``model_spec`` on one
    reference material, in float64, under the references' protocol of ``protocol_fields``."""
    from phonft.finetune.heldout import thermal_record
    from phonft.models import load_model
    from phonft.protocols import ReferenceProtocol

    protocol = ReferenceProtocol.from_dict(protocol_fields)
    model = load_model(model_spec, dtype="float64", device=device, options=options)
    record = thermal_record(model, reference_dir, material, protocol)
    atomic_write_json(out, record)
    log.info("%s with %s: omega_max %.1f K, Hessian MAE %.4f eV/Å², stable=%s", material, model_spec,
             record["omega_max_K"], record["hessian_mae_eV_A2"], record["dynamically_stable"])
    return record
