"""Every scored model side by side: ``results/evaluate/strategies.csv``.

One row per model (base models, every fine-tuning run, extra models), read from what the
earlier rules wrote; nothing is recomputed but means and ratios:

- the MDR MAEs (omega_max, S, F, C_V at 300 K) and band MAE over the model's held-out
  materials (its run's test materials; for a base or extra model, those of every run
  built on it), from ``evaluate/<model>/mdr.csv``;
- instability precision, recall and F1 over every scored material (``summary.json``);
- the double-well depth (meV per primitive cell) of the unstable materials, and its error
  against a DFT depth where ``evaluate.compare.dft_well_depth_meV`` gives one;
- the run's strategy, objective, training wall time and trainable parameters
  (``finetune/<run>/train.json``; blank where a field is absent);
- the cost of one phonon calculation under the MDR protocol: relaxation steps and wall
  time (relax + displaced-supercell forces + phonopy) per held-out material
  (``<m>/thermal.json``: ``relaxation.n_steps``, ``seconds.total``), and for a fine-tuned
  model the ratio to its base model on the same materials.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from phonft.errors import InputFileError
from phonft.evaluate.metrics import QUANTITIES
from phonft.io import atomic_write_text, read_json
from phonft.plan.layout import Layout

COLUMNS = (
    "model", "kind", "run", "base_model", "strategy", "objective", "n_materials", "materials",
    *(f"{q}_mae" for q in QUANTITIES), "band_mae_THz",
    "instability_precision", "instability_recall", "instability_f1",
    "double_well_depth_meV_per_cell", "double_well_depth_error_meV_per_cell",
    "train_seconds", "trainable_parameters", "trainable_fraction",
    "relax_steps_per_material", "phonon_seconds_per_material", "relax_steps_ratio", "phonon_seconds_ratio",
)
"""The columns of ``strategies.csv``, in order (units: K, J/K/mol, kJ/mol, THz, meV, s)."""


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputFileError(path, "is missing.", "run the evaluate (and finetune) stages of this model first.")
    return read_json(path)


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return sum(vals) / len(vals) if vals else None


def mdr_maes(mdr_csv: Path, materials: Sequence[str]) -> dict[str, float | None]:
    """MAE of each MDR quantity and the mean band MAE over ``materials`` (rows of ``mdr.csv``)."""
    if not mdr_csv.is_file():
        raise InputFileError(mdr_csv, "is missing.", "run the evaluate summary of this model first.")
    table = pd.read_csv(mdr_csv).set_index("material")
    missing = [m for m in materials if m not in table.index]
    if missing:
        raise InputFileError(mdr_csv, f"has no row for {missing}.", "rerun the evaluate summary of this model.")
    rows = table.loc[list(materials)]
    out = {f"{q}_mae": _mean(rows[f"{q}_abs_err"].tolist()) for q in QUANTITIES}
    out["band_mae_THz"] = _mean(rows["band_mae_THz"].tolist())
    return out


def phonon_cost(layout: Layout, model: str, materials: Sequence[str]) -> dict[str, list[float | None]]:
    """Per material: relaxation steps and wall time (s) of the MDR protocol, from ``thermal.json``
    (``None`` where a record predates the ``seconds`` key)."""
    steps, seconds = [], []
    for m in materials:
        record = _read(Path(layout.path("mdr", model=model, material=m)))
        steps.append((record.get("relaxation") or {}).get("n_steps"))
        seconds.append((record.get("seconds") or {}).get("total"))
    return {"steps": steps, "seconds": seconds}


def _ratio(model: Sequence[float | None], base: Sequence[float | None]) -> float | None:
    """sum(model)/sum(base) over the materials both have (the mean cost ratio)."""
    pairs = [(m, b) for m, b in zip(model, base, strict=True) if m is not None and b is not None]
    total = sum(b for _, b in pairs)
    return sum(m for m, _ in pairs) / total if pairs and total > 0 else None


def double_well(layout: Layout, model: str, materials: Sequence[str],
                dft_depth_meV: Mapping[str, float]) -> dict[str, float | None]:
    """Mean model well depth (meV per primitive cell) over ``materials`` and its mean absolute
    error against the DFT depths given (``None`` without one)."""
    depths = {m: float(_read(Path(layout.path("double_well", model=model, material=m)))
                       ["model_well_depth_meV_per_cell"]) for m in materials}
    errors = [abs(d - float(dft_depth_meV[m])) for m, d in depths.items() if m in dft_depth_meV]
    return {"double_well_depth_meV_per_cell": _mean(list(depths.values())),
            "double_well_depth_error_meV_per_cell": _mean(errors)}


def training(layout: Layout, run: str | None) -> dict[str, Any]:
    """Strategy, objective, training wall time (s) and trainable parameters of ``run``, from its
    ``train.json`` (wall time from the rule's benchmark file when train.json has none)."""
    out: dict[str, Any] = {"strategy": None, "objective": None, "train_seconds": None,
                           "trainable_parameters": None, "trainable_fraction": None}
    if run is None:
        return out
    train = _read(Path(layout.path("train", run=run)))
    protocol = train.get("protocol") or {}
    out["strategy"] = train.get("strategy", protocol.get("strategy"))
    out["objective"] = train.get("objective", protocol.get("objective"))
    out["train_seconds"] = train.get("seconds", _benchmark_seconds(Path(layout.benchmark("finetune_train", run=run))))
    n = train.get("trainable_parameters", train.get("n_trainable"))
    total = train.get("n_parameters")
    out["trainable_parameters"] = n
    out["trainable_fraction"] = train.get("trainable_fraction", n / total if n is not None and total else None)
    return out


def _benchmark_seconds(path: Path) -> float | None:
    """The ``s`` column of a Snakemake benchmark file (its first row), or None without one."""
    if not path.is_file():
        return None
    with path.open() as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return float(rows[0]["s"]) if rows and rows[0].get("s") not in (None, "", "NA") else None


def model_row(layout: Layout, entry: Mapping[str, Any], double_well_materials: Sequence[str],
              dft_depth_meV: Mapping[str, float]) -> dict[str, Any]:
    """One row of ``strategies.csv`` for ``entry`` (name, base, run, heldout: its materials)."""
    name, base, run = entry["name"], entry.get("base"), entry.get("run")
    materials = list(entry["heldout"])
    instability = _read(Path(layout.path("summary", model=name))).get("instability") or {}
    cost = phonon_cost(layout, name, materials)
    base_cost = phonon_cost(layout, base, materials) if base else None
    row: dict[str, Any] = {
        "model": name, "kind": "finetuned" if base else ("base" if run else "extra"),
        "run": run if base else None, "base_model": base or entry.get("spec"),
        "n_materials": len(materials), "materials": " ".join(materials),
        **mdr_maes(Path(layout.path("mdr_csv", model=name)), materials),
        "instability_precision": instability.get("precision"), "instability_recall": instability.get("recall"),
        "instability_f1": instability.get("f1"),
        **double_well(layout, name, double_well_materials, dft_depth_meV),
        **training(layout, run if base else None),
        "relax_steps_per_material": _mean(cost["steps"]), "phonon_seconds_per_material": _mean(cost["seconds"]),
        "relax_steps_ratio": _ratio(cost["steps"], base_cost["steps"]) if base_cost else None,
        "phonon_seconds_ratio": _ratio(cost["seconds"], base_cost["seconds"]) if base_cost else None,
    }
    return {c: row.get(c) for c in COLUMNS}


def strategies_table(results: str | os.PathLike, models: Sequence[Mapping[str, Any]], *,
                     double_well_materials: Sequence[str] = (),
                     dft_depth_meV: Mapping[str, float] | None = None) -> pd.DataFrame:
    """The rows of ``strategies.csv`` for ``models`` (each: name, spec, base, run, heldout)."""
    layout = Layout(str(results))
    rows = [model_row(layout, e, list(double_well_materials), dict(dft_depth_meV or {})) for e in models]
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    return table.astype({c: "Int64" for c in INTEGER_COLUMNS})


INTEGER_COLUMNS = ("n_materials", "trainable_parameters")
"""Counts, written as integers (a float format would round large parameter counts)."""


def write_strategies(results: str | os.PathLike, models: Sequence[Mapping[str, Any]], out: str | os.PathLike, *,
                     double_well_materials: Sequence[str] = (),
                     dft_depth_meV: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Write ``strategies.csv`` (blank cells: not applicable or not recorded); returns the table."""
    table = strategies_table(results, models, double_well_materials=double_well_materials,
                             dft_depth_meV=dft_depth_meV)
    atomic_write_text(out, table.to_csv(index=False, float_format="%.6g"))
    return table
