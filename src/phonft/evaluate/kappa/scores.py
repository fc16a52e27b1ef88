"""Kappa scores: per-material SRD/SRE/SRME with Matbench Discovery's penalties
(:func:`score_kappa`), a model's ``kappa`` block of ``summary.json`` (:func:`kappa_summary`)
and the parity points of the figures (:func:`kappa_parity_points`).

Records read (written by the ``evaluate_kappa*`` rules):
- ``results/references/<material>/kappa.json``: DFT records of vendored fc3 data, beside
  their reference;
- ``results/evaluate/<model>/kappa/<material>.json``: the model on those materials;
- ``results/evaluate/<model>/kappa103/<mp-id>.json``: the model on kappa103 structures,
  whose DFT records come from the kappa103 data set itself.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from phonft.errors import ConfigError, PhonftError
from phonft.evaluate import srme as metrics
from phonft.evaluate.kappa.kappa103 import kappa103_references
from phonft.evaluate.kappa.mbd import write_kappa_mbd
from phonft.evaluate.kappa.records import read_kappa_record
from phonft.io import read_json

KAPPA103_PREFIX = "kappa103:"


def score_kappa(model_records: Mapping[str, Mapping[str, Any]], ref_records: Mapping[str, Mapping[str, Any]]
                ) -> tuple[Any, dict[str, Any]]:
    """Per-material SRD/SRE/SRME with Matbench Discovery's penalties, and their means.

    Every reference material is scored; one without a model record counts as failed
    (SRME 2, SRE 2). A model record without a reference is an error.

    Returns
    -------
    table : pandas.DataFrame
        Indexed by material id: ``srme``, ``sre``, ``srd``, ``kappa_model_W_mK``,
        ``kappa_dft_W_mK`` (averaged, first temperature), ``penalty`` (reason or None),
        ``has_imaginary_modes``, ``broken_symmetry``, ``failed``, ``error``,
        ``spectrum_w1_THz`` (:func:`~phonft.evaluate.srme.spectrum_w1`, None without both
        spectra).
    summary : dict
        ``srme``, ``sre``, ``srd`` (means), ``failure_rate`` (fraction censored to SRME 2,
        for any reason, as Matbench Discovery's ``κ_failure_rate``), ``imaginary_mode_rate``
        (fraction flagged for imaginary modes; missing flags count as unflagged),
        ``spectrum_w1_THz`` (mean over materials with both spectra, each rounded to 4
        decimals as upstream, or None), ``n_materials``, ``n_penalised``, ``n_failed``,
        ``n_imaginary``, ``n_broken_symmetry``, ``n_missing``, ``n_spectrum_w1``.
    """
    import pandas as pd

    extra = sorted(set(model_records) - set(ref_records))
    if extra:
        raise ConfigError(f"kappa scoring: no reference for {', '.join(extra)}; compute or load the DFT "
                          "records of the same materials")
    rows = []
    for mid, ref in ref_records.items():
        pred = model_records.get(mid)
        missing = pred is None
        if missing:
            pred = {"failed": True, "error": "no model record"}
        try:
            m = metrics.material_metrics(pred, ref)
        except ValueError as exc:
            raise PhonftError(f"kappa scoring, material {mid}: {exc}. Fix: compute the model and the reference "
                              "with the same q_mesh, supercells and primitive cell.") from exc
        kp = pred.get("kappa_tot_avg_W_mK")
        rows.append({
            "id": mid, "srme": m["srme"], "sre": m["sre"], "srd": m["srd"],
            "kappa_model_W_mK": float(kp[0]) if kp is not None and not pred.get("failed") else np.nan,
            "kappa_dft_W_mK": float(np.atleast_1d(ref["kappa_tot_avg_W_mK"])[0]),
            "penalty": m["penalty"], "has_imaginary_modes": pred.get("has_imaginary_modes"),
            "broken_symmetry": pred.get("broken_symmetry"), "failed": bool(pred.get("failed")),
            "missing": missing, "error": pred.get("error"),
            "spectrum_w1_THz": metrics.spectrum_w1(pred.get("frequencies_THz"), pred.get("mode_weights"),
                                                   ref.get("frequencies_THz"), ref.get("mode_weights")),
        })
    table = pd.DataFrame(rows).set_index("id") if rows else pd.DataFrame(
        columns=["srme", "sre", "srd", "penalty"]).rename_axis("id")
    return table, _means(table, rows)


def _means(table, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``summary`` of :func:`score_kappa`: means, rates and counts over its rows."""
    w1 = [round(r["spectrum_w1_THz"], 4) for r in rows if r["spectrum_w1_THz"] is not None]
    summary = {
        "srme": float(table["srme"].mean()) if rows else float("nan"),
        "sre": float(table["sre"].mean()) if rows else float("nan"),
        "srd": float(table["srd"].mean()) if rows else float("nan"),
        "failure_rate": float(table["penalty"].notna().mean()) if rows else float("nan"),
        "imaginary_mode_rate": float(np.mean([r["has_imaginary_modes"] is True for r in rows])) if rows
        else float("nan"),
        "spectrum_w1_THz": float(np.mean(w1)) if w1 else None,
        "n_spectrum_w1": len(w1),
        "n_materials": len(rows),
        "n_penalised": int(table["penalty"].notna().sum()) if rows else 0,
        "n_failed": int((table["penalty"] == "failed").sum()) if rows else 0,
        "n_imaginary": int((table["penalty"] == "imaginary_modes").sum()) if rows else 0,
        "n_broken_symmetry": int((table["penalty"] == "broken_symmetry").sum()) if rows else 0,
        "n_missing": int(table["missing"].sum()) if rows else 0,
    }
    return summary


def _model_records(model_dir: Path, materials: Sequence[str], kappa103: bool) -> dict[str, Any]:
    """A model's kappa records: the vendored materials, and every kappa103 record it has."""
    preds = {m: read_kappa_record(model_dir / "kappa" / f"{m}.json") for m in materials}
    if kappa103:
        for f in sorted((model_dir / "kappa103").glob("*.json")):
            preds[KAPPA103_PREFIX + f.stem] = read_kappa_record(f)
    return preds


def _reference_records(references: Path | None, materials: Sequence[str], kappa103_ids: Sequence[str],
                       kappa103_data: str | None, cache_dir: str | None) -> dict[str, Any]:
    """DFT records: the vendored materials' ``<references>/<m>/kappa.json``, and the kappa103
    data set's (read once)."""
    refs = {m: read_kappa_record(Path(references) / m / "kappa.json") for m in materials}
    if kappa103_ids:
        for mid, rec in kappa103_references(kappa103_ids, kappa103_data, cache_dir).items():
            refs[KAPPA103_PREFIX + mid] = rec
    return refs


def _score(preds: dict[str, Any], refs: dict[str, Any]) -> dict[str, Any]:
    table, means = score_kappa(preds, refs)
    rows = table.reset_index().to_dict("records")
    rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]
    vendored = [r["srme"] for r in rows if not str(r["id"]).startswith(KAPPA103_PREFIX)]
    k103 = [r["srme"] for r in rows if str(r["id"]).startswith(KAPPA103_PREFIX)]
    return {"srme_mean": means["srme"], "sre_mean": means["sre"], "srd_mean": means["srd"],
            **{k: v for k, v in means.items() if k not in ("srme", "sre", "srd")},
            "srme_mean_vendored": sum(vendored) / len(vendored) if vendored else None,
            "srme_mean_kappa103": sum(k103) / len(k103) if k103 else None,
            "n_kappa103": len(k103), "per_material": rows}


def kappa_summary(model_dir: str | os.PathLike, references: str | os.PathLike | None, materials: Sequence[str],
                  *, base_dir: str | os.PathLike | None = None, kappa103: bool = False,
                  kappa103_data: str | None = None, cache_dir: str | None = None,
                  mbd_out: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The ``kappa`` block of a model's ``summary.json``: SRME and SRE per material and
    their means (Matbench Discovery's penalties applied), and the base model's, if given.

    ``model_dir`` (and ``base_dir``) hold ``kappa/<m>.json`` and ``kappa103/<id>.json``;
    ``references`` is the references root, holding the DFT ``<m>/kappa.json``. With
    ``mbd_out``, the model's records are also written there in Matbench Discovery's column
    names (:func:`~phonft.evaluate.kappa.mbd.write_kappa_mbd`)."""
    preds = _model_records(Path(model_dir), materials, kappa103)
    if mbd_out is not None:
        write_kappa_mbd(preds, mbd_out)
    ids = [k.removeprefix(KAPPA103_PREFIX) for k in preds if k.startswith(KAPPA103_PREFIX)]
    refs = _reference_records(references and Path(references), materials, ids, kappa103_data, cache_dir)
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
    points: dict[str, list[tuple[str, float, float]]] = {}
    for model in models:
        summary = read_json(Path(evaluate_dir) / model / "summary.json")
        rows = ((summary.get("kappa") or {}).get("per_material")) or []
        points[model] = [(str(r["id"]).removeprefix(KAPPA103_PREFIX), r["kappa_dft_W_mK"], r["kappa_model_W_mK"])
                         for r in rows if not r.get("penalty") and r.get("kappa_model_W_mK")]
    return points
