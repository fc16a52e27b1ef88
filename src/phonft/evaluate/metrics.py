"""MDR phonon metrics of a model against the references, and instability classification.

Per material: omega_max (K) and S, F, C_V at 300 K from the model's and the references'
``thermal.json``; per model: their MAEs, the band MAE (THz), and dynamical instability
scored as a classification against DFT (the positive class is *unstable*), with
precision, recall and F1 as in the phase-prediction scores of George et al. 2026.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from phonft.io import read_json

QUANTITIES = {
    "omega_max_K": ("omega_max_K", None, "K"),
    "S_300K": ("entropy_J_per_K_mol", 300.0, "J/K/mol"),
    "F_300K": ("free_energy_kJ_per_mol", 300.0, "kJ/mol"),
    "C_V_300K": ("heat_capacity_J_per_K_mol", 300.0, "J/K/mol"),
}
"""Metric name -> (thermal.json key, temperature in K or None, unit)."""


def quantity(record: dict[str, Any], name: str) -> float:
    """One MDR quantity from a ``thermal.json`` record (the value at 300 K for S, F, C_V)."""
    key, temperature, _ = QUANTITIES[name]
    if temperature is None:
        return float(record[key])
    temps = [float(t) for t in record["temperatures_K"]]
    if temperature not in temps:
        raise KeyError(f"{record.get('material')}: thermal.json has no {temperature} K (has {temps})")
    return float(record[key][temps.index(temperature)])


def material_row(material: str, model_dir: Path, ref_dir: Path, split: str = "") -> dict[str, Any]:
    """One row of ``mdr.csv``: DFT and model values, errors, stability and band MAE, from the
    material's ``thermal.json`` (references and model) and ``bands.json`` (model)."""
    bands = model_dir / material / "bands.json"
    band_mae = float(read_json(bands)["band_mae_THz"]) if bands.is_file() else math.nan
    return records_row(material, read_json(ref_dir / material / "thermal.json"),
                       read_json(model_dir / material / "thermal.json"), band_mae, split)


def records_row(material: str, ref: dict[str, Any], mod: dict[str, Any], band_mae_THz: float = math.nan,
                split: str = "") -> dict[str, Any]:
    """:func:`material_row` from the ``thermal.json`` records themselves (references ``ref``,
    model ``mod``) and the band MAE in THz."""
    row: dict[str, Any] = {"material": material, "split": split}
    for name in QUANTITIES:
        dft, model = quantity(ref, name), quantity(mod, name)
        row[f"{name}_dft"], row[f"{name}_model"], row[f"{name}_abs_err"] = dft, model, abs(model - dft)
    row["stable_dft"] = bool(ref["dynamically_stable"])
    row["stable_model"] = bool(mod["dynamically_stable"])
    row["min_frequency_THz_dft"] = float(ref["min_frequency_THz"])
    row["min_frequency_THz_model"] = float(mod["min_frequency_THz"])
    row["band_mae_THz"] = float(band_mae_THz)
    relax = mod.get("relaxation") or {}
    row["relax_converged"] = bool(relax.get("converged", True))
    return row


def mdr_table(materials: list[str], model_dir: str | Path, ref_dir: str | Path,
              splits: dict[str, str] | None = None) -> pd.DataFrame:
    """The per-material table of one model (the content of ``mdr.csv``)."""
    splits = splits or {}
    rows = [material_row(m, Path(model_dir), Path(ref_dir), splits.get(m, "")) for m in materials]
    return pd.DataFrame(rows)


def mae(table: pd.DataFrame) -> dict[str, float]:
    """MAE of each MDR quantity and the mean band MAE, over the table's materials."""
    out = {f"{name}_mae": float(table[f"{name}_abs_err"].mean()) for name in QUANTITIES}
    out["band_mae_THz"] = float(table["band_mae_THz"].mean())
    return out


@dataclass(frozen=True)
class InstabilityScores:
    """Dynamical instability as a binary classification (positive: unstable in DFT)."""

    tp: int
    fp: int
    fn: int
    tn: int
    precision: float | None
    recall: float | None
    f1: float | None
    accuracy: float


def instability_scores(stable_dft: list[bool], stable_model: list[bool]) -> InstabilityScores:
    """Precision, recall and F1 of predicting instability; ``None`` where undefined (0/0)."""
    pairs = list(zip(stable_dft, stable_model, strict=True))
    tp = sum(1 for d, m in pairs if not d and not m)
    fp = sum(1 for d, m in pairs if d and not m)
    fn = sum(1 for d, m in pairs if not d and m)
    tn = sum(1 for d, m in pairs if d and m)
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    if precision is None or recall is None:
        f1 = None
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = (tp + tn) / len(pairs) if pairs else math.nan
    return InstabilityScores(tp, fp, fn, tn, precision, recall, f1, accuracy)


def _by_split(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """MAEs per split role (train / val / test / unseen), where the table records roles."""
    if "split" not in table or table["split"].isna().all():
        return {}
    return {str(k): mae(g) for k, g in table.groupby(table["split"].fillna(""), sort=True) if str(k)}


def error_reduction_percent(base: float | None, model: float | None) -> float | None:
    """100·(base − model)/base (positive: the model is better); None where undefined."""
    if model is None or base is None or not math.isfinite(base) or base == 0:
        return None
    return 100.0 * (base - model) / base


def improvement_percent(base: dict[str, float], model: dict[str, float]) -> dict[str, float | None]:
    """:func:`error_reduction_percent` for every error metric of ``base``."""
    return {key: error_reduction_percent(b, model.get(key)) for key, b in base.items()}


def summary(name: str, model_spec: str, table: pd.DataFrame, *, base: pd.DataFrame | None = None,
            base_name: str | None = None, kappa: dict[str, Any] | None = None) -> dict[str, Any]:
    """``summary.json`` of one model: MAEs, instability scores, kappa SRME and, for a
    fine-tuned model, the percentage improvement over its base on the same materials."""
    model_mae, model_split = mae(table), _by_split(table)
    out: dict[str, Any] = {
        "model": name,
        "model_spec": model_spec,
        "materials": table["material"].tolist(),
        "n_materials": int(len(table)),
        "mae": model_mae,
        "mae_by_split": model_split,
        "units": {q: unit for q, (_, _, unit) in QUANTITIES.items()} | {"band_mae": "THz"},
        "instability": asdict(instability_scores(table["stable_dft"].tolist(), table["stable_model"].tolist())),
        "kappa": kappa,
    }
    if base is not None:
        base = base.set_index("material").loc[table["material"]].reset_index()
        base_mae, base_split = mae(base), _by_split(base)
        out["base"] = {"model": base_name, "mae": base_mae,
                       "instability": asdict(instability_scores(base["stable_dft"].tolist(),
                                                                base["stable_model"].tolist())),
                       "mae_by_split": base_split}
        out["improvement_percent"] = improvement_percent(base_mae, model_mae)
        out["improvement_percent_by_split"] = {k: improvement_percent(base_split[k], model_split[k])
                                               for k in model_split if k in base_split}
        if kappa and (kappa.get("base") or {}).get("srme_mean") is not None:
            out["improvement_percent"]["kappa_srme"] = error_reduction_percent(kappa["base"]["srme_mean"],
                                                                               kappa["srme_mean"])
    return out
