#!/usr/bin/env python
"""How much do MDR's three protocol choices move a model's phonons?

MDR's reference scripts (hyllios/utils ``benchmark_ph``) relax to fmax/2 in up to 15 FIRE
runs of 500 steps, keep symmetry with FixSymmetry's default tolerance (0.01 Å) and
displace along x, y, z only (phonopy ``is_diagonal=False``). phonft up to issue 12 relaxed
once to fmax in up to 1000 steps, with FixSymmetry at 1e-5 Å, and used phonopy's default
diagonal displacements. This script scores a model (float64, CPU) on vendored materials
under the old protocol, each MDR choice alone, and all three (the current defaults), and
writes the properties, the relaxation steps and wall times, and the number of displaced
supercells, as JSON and a markdown table of the differences from the old protocol.

    python scripts/mdr_protocol_drift.py                        # CHGNet, 4 materials
    python scripts/mdr_protocol_drift.py --materials MgO ZnO --out drift.json

Wall times are of one process on whatever the machine was doing; treat them as rough.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
OLD = {"relax_fmax_factor": 1.0, "max_steps": 1000, "relax_runs": 1, "fix_symmetry_symprec": 1e-5,
       "is_diagonal": True}
"""phonft's MDR protocol before issue 12 (the fields that differ from MDR's scripts)."""
VARIANTS: dict[str, dict[str, Any]] = {
    "old": OLD,
    "relax fmax/2, 15x500": {**OLD, "relax_fmax_factor": 0.5, "max_steps": 500, "relax_runs": 15},
    "FixSymmetry 0.01": {**OLD, "fix_symmetry_symprec": 0.01},
    "is_diagonal=False": {**OLD, "is_diagonal": False},
    "MDR (all three)": {},
}
"""Variant name -> MDRProtocol fields laid over the current defaults."""
T_REPORT_K = 300.0


def reference_folder(material: str, config: dict[str, Any], root: Path) -> Path:
    """The normalised references folder of a vendored ``material`` (built under ``root``)."""
    from phonft.references import Reference

    out = root / material
    if not (out / "thermal.json").is_file():
        Reference.read(config["materials"][material]["reference"], base_dir=REPO).write(out, material)
    return out


def score(model, ref_dir: Path, material: str, fields: dict[str, Any]) -> dict[str, Any]:
    """One material under one variant: properties at 300 K, band MAE, steps, seconds."""
    from phonft.evaluate.bands import band_record
    from phonft.evaluate.mdr import MDRProtocol, ModelPhonons

    protocol = MDRProtocol.from_dict({**fields, "batch_atoms": 128})
    result = ModelPhonons.compute(model, ref_dir, material, protocol)
    thermal = result.thermal_record()
    i = [float(t) for t in thermal["temperatures_K"]].index(T_REPORT_K)
    relax = thermal["relaxation"]
    return {
        "omega_max_K": thermal["omega_max_K"],
        "S_J_per_K_mol": thermal["entropy_J_per_K_mol"][i],
        "F_kJ_per_mol": thermal["free_energy_kJ_per_mol"][i],
        "C_V_J_per_K_mol": thermal["heat_capacity_J_per_K_mol"][i],
        "band_mae_THz": band_record(result.phonon, result.reference, protocol.band_npoints)["band_mae_THz"],
        "relax_steps": relax["n_steps"], "relax_runs": len(relax["steps_per_run"]),
        "converged": relax["converged"], "max_force_eV_A": relax["max_force_eV_A"],
        "spacegroup_after": relax["spacegroup_after"], "cell_A": relax["cell_A"],
        "n_displacements": thermal["n_displacements"],
        "relax_s": thermal["seconds"]["relax"], "forces_s": thermal["seconds"]["forces"],
        "total_s": thermal["seconds"]["total"], "protocol_digest": thermal["protocol_digest"],
    }


def table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Markdown: each variant's value (old) or difference from the old protocol."""
    cols = ("omega_max_K", "S_J_per_K_mol", "F_kJ_per_mol", "C_V_J_per_K_mol", "band_mae_THz")
    head = ("| material | variant | ω_max (K) | S (J/K/mol) | F (kJ/mol) | C_V (J/K/mol) | band MAE (THz) "
            "| relax steps (runs) | converged | relax s | forces s | displacements |")
    lines = [head, "|" + "---|" * 12]
    for material, by_variant in results.items():
        old = by_variant["old"]
        for name, row in by_variant.items():
            vals = [f"{row[c]:.4g}" if name == "old" else f"{row[c] - old[c]:+.2g}" for c in cols]
            lines.append(f"| {material} | {name} | " + " | ".join(vals)
                         + f" | {row['relax_steps']} ({row['relax_runs']}) | {row['converged']} "
                         f"| {row['relax_s']:.1f} | {row['forces_s']:.1f} | {row['n_displacements']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="chgnet", help="model spec (default chgnet)")
    ap.add_argument("--materials", nargs="+", default=["MgO", "ZnO", "MgB2", "CaTiO3"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--config", default=str(REPO / "config/config.yaml"))
    ap.add_argument("--out", default="mdr_protocol_drift.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from phonft.models import load_model

    config = yaml.safe_load(Path(args.config).read_text())
    model = load_model(args.model, dtype="float64", device="cpu")
    results: dict[str, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for material in args.materials:
            ref_dir = reference_folder(material, config, Path(tmp))
            results[material] = {}
            for name in ["old", *[v for v in args.variants if v != "old"]]:
                row = results[material][name] = score(model, ref_dir, material, VARIANTS[name])
                brief = {k: v for k, v in row.items() if k != "cell_A"}
                print(f"{material} / {name}: {json.dumps(brief)}", file=sys.stderr, flush=True)
            Path(args.out).write_text(json.dumps({"model": args.model, "results": results}, indent=1))
    print(table(results))


if __name__ == "__main__":
    main()
