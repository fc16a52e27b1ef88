"""Kappa records: the record of one material (JSON-ready dicts), and their files."""

from __future__ import annotations

import gzip
import json
import logging
import os
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from phonft.errors import InputFileError
from phonft.evaluate.kappa.protocol import KappaProtocol, KappaTask
from phonft.io import atomic_write_bytes, to_json

log = logging.getLogger(__name__)


def base_record(task: KappaTask, kind: str, protocol: KappaProtocol, **extra: Any) -> dict[str, Any]:
    """A record with every key, not yet computed (``status: "running"``), and the protocol."""
    return {
        "id": task.id, "kind": kind, **extra, "task": task.describe(),
        "status": "running", "failed": False, "error": None, "error_traceback": None,
        "has_imaginary_modes": None, "broken_symmetry": None,
        "spacegroup_initial": None, "spacegroup_final": None, "min_frequency_THz": None,
        "relaxation": None, "temperatures_K": [protocol.temperature_K], "q_mesh": list(task.q_mesh),
        "kappa_tot_W_mK": None, "kappa_p_W_mK": None, "kappa_c_W_mK": None, "kappa_tot_avg_W_mK": None,
        "mode_kappa_tot_W_mK": None, "mode_kappa_tot_avg_W_mK": None, "mode_weights": None, "qpoints": None, "frequencies_THz": None,
        "timings_s": {}, **protocol.record(),
    }


def mark_failed(record: dict[str, Any], exc: BaseException, stage: str) -> dict[str, Any]:
    """Mark ``record`` failed during ``stage`` with the error and its traceback; log it."""
    log.error("%s: kappa failed during %s: %s: %s", record["id"], stage, type(exc).__name__, exc)
    record.update(status="failed", failed=True, error=f"{stage}: {type(exc).__name__}: {exc}",
                  error_traceback=traceback.format_exc())
    return record


def finish_record(record: dict[str, Any], t0: float) -> dict[str, Any]:
    """Record the total time; return the record as JSON-ready values."""
    record["timings_s"]["total"] = time.perf_counter() - t0
    return jsonable(record)


def jsonable(obj: Any) -> Any:
    """numpy arrays and scalars (also inside dicts, lists and tuples) as plain Python values."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    return obj


def write_kappa_record(path: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    """Write a record as JSON, atomically; gzip-compressed when ``path`` ends in ``.gz``."""
    path = Path(path)
    data = to_json(jsonable(dict(record))).encode("utf-8")
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    return atomic_write_bytes(path, data)


def read_kappa_record(path: str | os.PathLike) -> dict[str, Any]:
    """Read a record written by :func:`write_kappa_record` (plain or ``.gz``)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "does not exist.", "run the kappa evaluation that writes it.")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        return json.loads(raw)
    except (OSError, ValueError) as exc:
        raise InputFileError(path, f"is not a kappa record ({exc}).", "delete it and run the evaluation again.") from exc
