"""Kappa results on disk: a model's SRME block for ``summary.json`` and the parity points.

Layout (written by the ``evaluate_kappa*`` rules):
- ``results/evaluate/kappa-reference/<material>.json``: DFT records of vendored fc3 data;
- ``results/evaluate/<model>/kappa/<material>.json``: the model on those materials;
- ``results/evaluate/<model>/kappa103/<mp-id>.json``: the model on kappa103 structures,
  whose DFT records come from the kappa103 data set itself.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

KAPPA103_PREFIX = "kappa103:"


def _model_records(model_dir: Path, materials: Sequence[str], kappa103: bool) -> dict[str, Any]:
    """A model's kappa records: the vendored materials, and every kappa103 record it has."""
    from phonft.evaluate.kappa import read_kappa_record

    preds = {m: read_kappa_record(model_dir / "kappa" / f"{m}.json") for m in materials}
    if kappa103:
        for f in sorted((model_dir / "kappa103").glob("*.json")):
            preds[KAPPA103_PREFIX + f.stem] = read_kappa_record(f)
    return preds


def _reference_records(reference_dir: Path | None, materials: Sequence[str], kappa103_ids: Sequence[str],
                       kappa103_data: str | None, cache_dir: str | None) -> dict[str, Any]:
    """DFT records: the vendored materials' files, and the kappa103 data set's (read once)."""
    from phonft.evaluate.kappa import kappa103_references, read_kappa_record

    refs = {m: read_kappa_record(Path(reference_dir) / f"{m}.json") for m in materials}
    if kappa103_ids:
        for mid, rec in kappa103_references(kappa103_ids, kappa103_data, cache_dir).items():
            refs[KAPPA103_PREFIX + mid] = rec
    return refs


def _score(preds: dict[str, Any], refs: dict[str, Any]) -> dict[str, Any]:
    from phonft.evaluate.kappa import score_kappa

    table, means = score_kappa(preds, refs)
    rows = table.reset_index().to_dict("records")
    rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]
    vendored = [r["srme"] for r in rows if not str(r["id"]).startswith(KAPPA103_PREFIX)]
    k103 = [r["srme"] for r in rows if str(r["id"]).startswith(KAPPA103_PREFIX)]
    return {"srme_mean": means["srme"], "sre_mean": means["sre"], **{k: v for k, v in means.items()
                                                                     if k not in ("srme", "sre")},
            "srme_mean_vendored": sum(vendored) / len(vendored) if vendored else None,
            "srme_mean_kappa103": sum(k103) / len(k103) if k103 else None,
            "n_kappa103": len(k103), "per_material": rows}


def kappa_summary(model_dir: str | os.PathLike, reference_dir: str | os.PathLike | None, materials: Sequence[str],
                  *, base_dir: str | os.PathLike | None = None, kappa103: bool = False,
                  kappa103_data: str | None = None, cache_dir: str | None = None) -> dict[str, Any] | None:
    """The ``kappa`` block of a model's ``summary.json``: SRME and SRE per material and
    their means (Matbench Discovery's penalties applied), and the base model's, if given."""
    preds = _model_records(Path(model_dir), materials, kappa103)
    ids = [k.removeprefix(KAPPA103_PREFIX) for k in preds if k.startswith(KAPPA103_PREFIX)]
    refs = _reference_records(reference_dir and Path(reference_dir), materials, ids, kappa103_data, cache_dir)
    if not refs:
        return None
    out = _score(preds, refs)
    if base_dir is not None:
        bpreds = _model_records(Path(base_dir), materials, kappa103)
        common = {k: v for k, v in refs.items() if not k.startswith(KAPPA103_PREFIX) or k in bpreds}
        out["base"] = _score({k: v for k, v in bpreds.items() if k in common}, common)
        out["base"].pop("per_material")
    return out


def kappa_parity_points(evaluate_dir: str | os.PathLike, models: Sequence[str]
                        ) -> dict[str, list[tuple[str, float, float]]]:
    """model -> [(material, DFT kappa, model kappa)] in W/m/K from each model's summary.json
    (penalised materials are left out: they have no meaningful kappa)."""
    from phonft.io import read_json

    points: dict[str, list[tuple[str, float, float]]] = {}
    for model in models:
        summary = read_json(Path(evaluate_dir) / model / "summary.json")
        rows = ((summary.get("kappa") or {}).get("per_material")) or []
        points[model] = [(str(r["id"]).removeprefix(KAPPA103_PREFIX), r["kappa_dft_W_mK"], r["kappa_model_W_mK"])
                         for r in rows if not r.get("penalty") and r.get("kappa_model_W_mK")]
    return points
