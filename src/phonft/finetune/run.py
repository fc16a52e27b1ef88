"""What ``phonft finetune`` does: split, replay set, training, held-out phonons.

Each function reads and writes the files of :mod:`phonft.finetune.layout`, atomically.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from phonft.errors import ConfigError, InputFileError
from phonft.finetune.settings import ReplaySettings, TrainSettings
from phonft.finetune.split import SplitError, run_split
from phonft.io import atomic_write_json, sha256_file

log = logging.getLogger(__name__)


def write_split(run_name: str, run: dict[str, Any], out: str | os.PathLike) -> dict[str, Any]:
    try:
        split = run_split(run)
    except SplitError as exc:
        raise ConfigError(f"finetune run '{run_name}': {exc}") from exc
    record = {"run": run_name, **split.as_dict(), "settings": run.get("split") or {}}
    atomic_write_json(out, record)
    log.info("split of %s: train %s, val %s, test %s", run_name, split.train, split.val, split.test)
    return record


def _read_split(path: str | os.PathLike) -> dict[str, list[str]]:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        return {k: list(data[k]) for k in ("train", "val", "test")}
    except (OSError, ValueError, KeyError) as exc:
        raise InputFileError(path, f"is not a valid split file ({exc}).", "rerun `phonft finetune split`.") from exc


def replay_settings(run: dict[str, Any]) -> ReplaySettings:
    opts = dict(run.get("replay") or {})
    known = set(ReplaySettings.__dataclass_fields__)
    unknown = set(opts) - known
    if unknown:
        raise ConfigError(f"finetune run: unknown replay setting(s) {sorted(unknown)}; known: {sorted(known)}")
    return ReplaySettings(base_model=run.get("base_model", "chgnet"), **opts)


def build_replay(run: dict[str, Any], split_file: str | os.PathLike, references: str | os.PathLike,
                 out_dir: str | os.PathLike, cache_dir: str | os.PathLike, device: str = "auto") -> Path:
    """Write the run's replay set: upstream data when configured, else pseudo-labels."""
    from phonft.finetune.replay import assign_split, pseudo_label_set, upstream_frames, write_replay

    settings = replay_settings(run)
    upstream = run.get("upstream") or {}
    if upstream.get("file") or upstream.get("url"):
        path = _upstream_file(upstream, Path(cache_dir))
        frames = upstream_frames(path, upstream.get("max_frames"), settings.seed)
        manifest = {"kind": "upstream", "source": {"file": str(path), "url": upstream.get("url"),
                                                   "sha256": sha256_file(path)},
                    "max_frames": upstream.get("max_frames")}
    else:
        from phonft.finetune.data import reference_unitcell
        from phonft.models import load_model

        train = _read_split(split_file)["train"]
        cells = {m: reference_unitcell(Path(references) / m) for m in train}
        model = load_model(settings.base_model, dtype="float64", device=device,
                           options=TrainSettings.from_config(run).options)
        frames = pseudo_label_set(cells, model, settings)
        manifest = {"kind": "pseudo-label",
                    "note": "offline fallback: rattled/strained copies of the training structures, labelled by "
                            "the frozen base model (no DFT information)",
                    "materials": train, "labelled_by": settings.base_model}
    frames = assign_split(frames, settings.val_fraction, settings.seed)
    return write_replay(out_dir, frames, {**manifest, **settings.record()})


def _upstream_file(upstream: dict[str, Any], cache_dir: Path) -> Path:
    if upstream.get("file"):
        path = Path(upstream["file"])
        if not path.is_file():
            raise InputFileError(path, "(upstream replay data) does not exist.",
                                 "fix upstream.file, or remove it to use the offline pseudo-label set.")
        return path
    from phonft.structures import download

    url = upstream["url"]
    dest = cache_dir / "upstream" / Path(url.split("?")[0]).name
    return dest if dest.is_file() else download("upstream", url, dest)


def train(run_name: str, run: dict[str, Any], split_file: str | os.PathLike, references: str | os.PathLike,
          replay_dir: str | os.PathLike, out_dir: str | os.PathLike, *, device: str = "auto",
          resume: bool = False, stop_after: int | None = None) -> dict[str, Any]:
    """Fine-tune the run's base model; write model, train.json, metrics.csv and the curve."""
    import torch

    from phonft.figures import plot_training_curve
    from phonft.finetune.data import load_phonon_sample
    from phonft.finetune.layout import MODEL_FILE
    from phonft.finetune.replay import load_replay_split
    from phonft.finetune.trainer import Trainer, write_metrics
    from phonft.models import load_model, resolve_device

    settings = TrainSettings.from_config(run)
    split = _read_split(split_file)
    refs = Path(references)
    train_set = [load_phonon_sample(refs / m, m) for m in split["train"]]
    val_set = [load_phonon_sample(refs / m, m) for m in split["val"]]
    replay_train, replay_val = ([], [])
    if settings.replay_steps:
        replay_train, replay_val = load_replay_split(Path(replay_dir) / "replay.extxyz")
    dev = resolve_device(device)
    torch.manual_seed(settings.seed)
    model = load_model(settings.base_model, dtype=settings.dtype, device=dev, options=settings.options)
    for s in train_set + val_set:
        model.check_elements(s.atoms, f"material '{s.material}'")
    out_dir = Path(out_dir)
    ckpt = out_dir / "checkpoints" / settings.digest() / "last.pt"
    trainer = Trainer(model, settings, train_set, val_set, replay_train, replay_val, checkpoint=ckpt)
    t0 = time.perf_counter()
    result = trainer.fit(resume=resume, stop_after=stop_after)
    seconds = time.perf_counter() - t0
    write_metrics(result.metrics, out_dir / "metrics.csv")
    plot_training_curve(result.metrics, out_dir / "training_curve.png", title=run_name, best_epoch=result.best_epoch)
    if stop_after is not None and result.metrics[-1]["epoch"] < settings.epochs:
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
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "resumed_from_epoch": result.resumed_from,
        "device": dev,
        "seconds": seconds,
        "n_parameters": sum(p.numel() for p in model.module.parameters()),
        "n_trainable": sum(p.numel() for p in trainer.params),
        "final": result.metrics[-1],
        "base": result.metrics[0],
        "replay_manifest": _maybe_json(Path(replay_dir) / "manifest.json"),
        "checkpoint": str(ckpt),
        **settings.record(),
    }
    atomic_write_json(out_dir / "train.json", record)
    log.info("best epoch %d (val loss %.4g); model -> %s", result.best_epoch, result.best_val_loss, model_path)
    return record


def _maybe_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return {k: data.get(k) for k in ("kind", "n_frames", "protocol_digest", "sha256")}


def thermal(model_spec: str, reference_dir: str | os.PathLike, material: str, protocol_fields: dict[str, Any],
            out: str | os.PathLike, *, device: str = "auto", options: dict[str, Any] | None = None) -> dict[str, Any]:
    """``thermal.json`` of ``model_spec`` on one reference material (float64)."""
    from phonft.finetune.heldout import thermal_record
    from phonft.models import load_model
    from phonft.protocols import ReferenceProtocol

    protocol = ReferenceProtocol(**_protocol_kwargs(protocol_fields))
    model = load_model(model_spec, dtype="float64", device=device, options=options)
    record = thermal_record(model, reference_dir, material, protocol)
    atomic_write_json(out, record)
    log.info("%s with %s: omega_max %.1f K, Hessian MAE %.4f eV/Å², stable=%s", material, model_spec,
             record["omega_max_K"], record["hessian_mae_eV_A2"], record["dynamically_stable"])
    return record


def _protocol_kwargs(fields: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in fields.items():
        out[k] = tuple(v) if isinstance(v, list) else v
    return out

