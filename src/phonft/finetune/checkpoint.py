"""Training checkpoints: the key that names them, and reading them back safely.

A run's checkpoint is ``<run>/checkpoints/<key>/last.pt``. The key is the first 16 hex
digits of the SHA-256 of the run's :class:`CheckpointKey`: the training settings' digest
and SHA-256 fingerprints of everything else the trained weights depend on — the split,
every file of the training and validation materials' references folders, the replay set
(``manifest.json`` and ``replay.extxyz``), the rattled frames of the training materials
(``results/augment/<m>/rattled.extxyz``, objectives ``rattled`` and ``both``) and the
base model's file when its spec names one. The key record is written beside the checkpoint (``key.json``) and into
``train.json`` (``checkpoint_key``).

A run resumes only the checkpoint of its own key. A changed reference, split, replay set
or setting therefore trains afresh, and the log names what changed
(:func:`prepare_checkpoint`); checkpoints of other keys are left in place, never read.

The number of data-parallel ranks is not part of the key: every rank holds the same
weights, optimiser and EMA state, and a step's shards together are the single-process
batch (:mod:`phonft.finetune.distributed`), so a checkpoint resumes on any number of ranks;
it records the ``world_size`` that wrote it (checkpoints of older phonft lack it: 1).

Checkpoints hold tensors and plain Python containers only, and are read with
``torch.load(weights_only=True)``, which runs no code from the file
(:func:`load_checkpoint`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from phonft.errors import InputFileError
from phonft.io import atomic_write_json, sha256_file

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "last.pt"
KEY_FILE = "key.json"
#: What a checkpoint must hold (written by :meth:`phonft.finetune.trainer.Trainer.fit`).
CHECKPOINT_ENTRIES = ("key", "epoch", "model", "optimizer", "ema", "best", "metrics")
REPLAY_FILES = ("manifest.json", "replay.extxyz")


def _sha256_json(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def reference_files() -> tuple[str, ...]:
    """The files of a references folder that training reads (:class:`ReferenceFolder`)."""
    from phonft.references.folder import FC2, PARAMS, THERMAL

    return (PARAMS, FC2, THERMAL)


def model_file(spec: str) -> Path | None:
    """The local file a model spec names (``chgnet:<file>``, ``mace:<file>``, a path), else None."""
    kind, _, arg = spec.partition(":")
    path = Path(arg if kind in ("chgnet", "mace") and arg else spec)
    return path if path.is_file() else None


@dataclass(frozen=True)
class CheckpointKey:
    """Everything a checkpoint's weights depend on, as digests (SHA-256 hex unless noted).

    ``settings``: :meth:`TrainSettings.digest` (16 hex); ``split``: the train / val / test
    lists; ``references``: material -> file name -> digest, for the train and val
    materials; ``replay``: file name -> digest (empty without a replay set);
    ``base_model``: file -> digest when the base model's spec names a local file;
    ``augment``: material -> digest of its rattled frames (empty under ``objective: pft``).
    """

    settings: str
    split: str
    references: dict[str, dict[str, str]]
    replay: dict[str, str] = field(default_factory=dict)
    base_model: dict[str, str] = field(default_factory=dict)
    augment: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_run(cls, settings_digest: str, base_model: str, split: dict[str, list[str]], references: Path,
               replay_dir: Path | None, frame_files: dict[str, Path] | None = None) -> CheckpointKey:
        """Hash the run's inputs: the split, its train and val references, the replay set and
        the rattled frame files (material -> path)."""
        refs = {m: {name: sha256_file(references / m / name) for name in reference_files()
                    if (references / m / name).is_file()}
                for m in sorted(set(split["train"]) | set(split["val"]))}
        replay = {name: sha256_file(replay_dir / name) for name in REPLAY_FILES
                  if replay_dir is not None and (replay_dir / name).is_file()}
        model = model_file(base_model)
        return cls(settings=settings_digest,
                   split=_sha256_json({k: split[k] for k in ("train", "val", "test")}),
                   references=refs, replay=replay,
                   base_model={str(model): sha256_file(model)} if model else {},
                   augment={m: sha256_file(path) for m, path in sorted((frame_files or {}).items())})

    @property
    def digest(self) -> str:
        """The key: 16 hex digits of the SHA-256 of the whole record."""
        return _sha256_json(asdict(self))[:16]

    def record(self) -> dict[str, Any]:
        """The key and its parts, as written to ``key.json`` and ``train.json``."""
        return {"key": self.digest, **asdict(self)}

    def changes(self, other: dict[str, Any]) -> list[str]:
        """What differs between this key and the key record ``other``, in words."""
        words = {"settings": "the training settings", "split": "the split", "replay": "the replay set",
                 "base_model": "the base model file", "augment": "the rattled frames"}
        out = [w for part, w in words.items()
               if other.get(part, {} if part == "augment" else None) != getattr(self, part)]
        theirs = other.get("references") or {}
        materials = sorted(m for m in set(theirs) | set(self.references) if theirs.get(m) != self.references.get(m))
        if materials:
            out.append(f"the references of {', '.join(materials)}")
        return out


def prepare_checkpoint(checkpoints: Path, key: CheckpointKey, resume: bool) -> Path:
    """The checkpoint file of ``key`` under ``checkpoints``; writes its ``key.json`` once.

    With ``resume`` and no checkpoint of this key, logs why every other checkpoint there
    is not resumed (what changed since it was written).
    """
    path = checkpoints / key.digest / CHECKPOINT_FILE
    if resume and not path.is_file():
        others = sorted(p for p in checkpoints.glob(f"*/{CHECKPOINT_FILE}") if p.parent.name != key.digest)
        for other in others:
            log.warning("not resuming %s: %s; training afresh under key %s", other, _why_other(other, key),
                        key.digest)
        if not others:
            log.info("no checkpoint to resume: training from epoch 1 (key %s)", key.digest)
    if not (path.parent / KEY_FILE).is_file():  # the folder's name is the digest of its content
        atomic_write_json(path.parent / KEY_FILE, key.record())
    return path


def _why_other(checkpoint: Path, key: CheckpointKey) -> str:
    try:
        record = json.loads((checkpoint.parent / KEY_FILE).read_text())
    except (OSError, ValueError):
        return "it has no readable key record (written by an older phonft)"
    changed = key.changes(record) if isinstance(record, dict) else []
    return f"{' and '.join(changed)} changed since it was written" if changed else "its key differs"


def load_checkpoint(path: Path, device: Any) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``; a corrupt one is an
    :class:`~phonft.errors.InputFileError` naming the file and the command that clears it."""
    import torch

    fix = f"delete it (rm {shlex.quote(str(path))}) and rerun; training then starts afresh from epoch 1."
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle, disallowed global: all mean unreadable
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise InputFileError(path, f"is not a readable training checkpoint (truncated or corrupt: {reason}).",
                             fix) from exc
    missing = [k for k in CHECKPOINT_ENTRIES if not isinstance(state, dict) or k not in state]
    if missing:
        raise InputFileError(path, f"is not a phonft training checkpoint (no {', '.join(missing)}).", fix)
    return state
