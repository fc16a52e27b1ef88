"""``phonft finetune split``: write a run's ``split.json``, and read it back.

The split itself is planned by :func:`phonft.plan.runs.run_split` (stdlib only), so the
workflow knows each run's held-out materials while it parses, before this step runs.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from phonft.errors import ConfigError, InputFileError
from phonft.io import atomic_write_json
from phonft.plan.runs import run_split

log = logging.getLogger(__name__)


def write_split(run_name: str, run: dict[str, Any], out: str | os.PathLike) -> dict[str, Any]:
    """Write ``split.json`` of the run entry ``run``: train, val and test materials and the settings."""
    try:
        split = run_split(run)
    except ConfigError as exc:
        raise ConfigError(f"finetune run '{run_name}': {exc}") from exc
    record = {"run": run_name, **split.as_dict(), "settings": run.get("split") or {}}
    atomic_write_json(out, record)
    log.info("split of %s: train %s, val %s, test %s", run_name, split.train, split.val, split.test)
    return record


def read_split(path: str | os.PathLike) -> dict[str, list[str]]:
    """The train, val and test materials of a ``split.json``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        return {k: list(data[k]) for k in ("train", "val", "test")}
    except (OSError, ValueError, KeyError) as exc:
        raise InputFileError(path, f"is not a valid split file ({exc}).", "rerun `phonft finetune split`.") from exc
