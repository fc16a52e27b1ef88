#!/usr/bin/env python
"""The replay ablation's table: held-out phonons and forgetting of every fine-tuning run.

Reads what the workflow wrote for each run (``results/evaluate/<run>/summary.json`` from the
MDR protocol, ``results/finetune/<run>/train.json`` for forgetting) and prints one markdown
row per run, base model first. Make the results with

    snakemake --cores 2 --configfile config/config.yaml config/replay-ablation.yaml [config/replay-ablation-upstream.yaml]
    python scripts/replay_ablation.py [--split test] [--out results/ablation/replay_ablation.json]

Held-out MAEs are over the run's ``--split`` materials (default ``test``): omega_max (K),
S and C_V at 300 K (J/K/mol), F at 300 K (kJ/mol). "mean change" is the mean relative
change of those four MAEs against the base model (negative: better). Forgetting is the
kept model's drift from the base model's own predictions on the held-back replay structures
(force meV/Å, energy meV/atom), and, where the replay labels are DFT, the ratio of its
force error to the base model's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

QUANTITIES = (("omega_max_K_mae", "ω_max"), ("S_300K_mae", "S"), ("F_300K_mae", "F"), ("C_V_300K_mae", "C_V"))


def run_row(run: str, results: Path, split: str) -> dict:
    summary = json.loads((results / "evaluate" / run / "summary.json").read_text())
    train = json.loads((results / "finetune" / run / "train.json").read_text())
    model, base = summary["mae_by_split"][split], summary["base"]["mae_by_split"][split]
    change = [100.0 * (model[k] - base[k]) / base[k] for k, _ in QUANTITIES]
    forgetting = train.get("forgetting") or {}
    drift, error = forgetting.get("drift") or {}, forgetting.get("error") or {}
    manifest = train.get("replay_manifest") or {}
    protocol = train["protocol"]
    return {"run": run, "replay": _replay_label(protocol, manifest), "column": protocol["column"],
            **{name: model[k] for k, name in QUANTITIES}, "mean_change_percent": sum(change) / len(change),
            "f1": summary["instability"]["f1"], "base": {name: base[k] for k, name in QUANTITIES},
            "base_f1": summary["base"]["instability"]["f1"],
            "drift_force_meV_A": 1e3 * drift["force_mae"] if "force_mae" in drift else None,
            "drift_energy_meV_atom": 1e3 * drift["energy_mae"] if "energy_mae" in drift else None,
            "force_error_ratio": (error.get("force") or {}).get("ratio") if manifest.get("kind") == "upstream" else None,
            "forgetting_frames": forgetting.get("n_frames"), "training_seconds": train["seconds"]}


def _replay_label(protocol: dict, manifest: dict) -> str:
    budget = protocol.get("max_drift") or {}
    suffix = "" if any(v is not None for v in budget.values()) else " (no forgetting budget)"
    return _replay_kind(protocol, manifest) + suffix


def _replay_kind(protocol: dict, manifest: dict) -> str:
    if not protocol["replay_steps"]:
        return "none"
    if manifest.get("kind") == "upstream":
        return f"upstream DFT, {protocol['replay_steps']} steps"
    structures = manifest.get("structures") or "training"  # train.json before the disjoint default: training
    return f"pseudo-labels, {structures} structures, {protocol['replay_steps']} steps"


def _fmt(x, spec=".1f") -> str:
    return "–" if x is None else format(x, spec)


def markdown(rows: list[dict]) -> str:
    head = ("| model | replay | column | ω_max (K) | S (J/K/mol) | F (kJ/mol) | C_V (J/K/mol) | mean change "
            "| F1 | drift F (meV/Å) | drift E (meV/atom) | F error / base |")
    lines = [head, "|" + "---|" * 12]
    b = rows[0]
    lines.append(f"| base | – | – | {b['base']['ω_max']:.1f} | {b['base']['S']:.2f} | {b['base']['F']:.2f} | "
                 f"{b['base']['C_V']:.2f} | – | {_fmt(b['base_f1'], '.2f')} | 0 | 0 | 1 |")
    for r in rows:
        lines.append(f"| {r['run']} | {r['replay']} | {r['column']} | {r['ω_max']:.1f} | {r['S']:.2f} | {r['F']:.2f} | "
                     f"{r['C_V']:.2f} | {r['mean_change_percent']:+.0f} % | {_fmt(r['f1'], '.2f')} | "
                     f"{_fmt(r['drift_force_meV_A'])} | {_fmt(r['drift_energy_meV_atom'], '.2f')} | "
                     f"{_fmt(r['force_error_ratio'], '.3f')} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", default=["chgnet-pft-noreplay-unbounded", "chgnet-pft-noreplay",
                                                  "chgnet-pft-training", "chgnet-pft",
                                                  "chgnet-pft-fd", "chgnet-pft-upstream"])
    ap.add_argument("--results", default="results")
    ap.add_argument("--split", default="test", help="which split role's MAEs to report (test, val, unseen)")
    ap.add_argument("--out", default="results/ablation/replay_ablation.json")
    args = ap.parse_args()
    results = Path(args.results)
    runs = [r for r in args.runs if (results / "evaluate" / r / "summary.json").is_file()]
    rows = [run_row(r, results, args.split) for r in runs]
    if not rows:
        raise SystemExit("no run has results yet: run `snakemake --configfile config/config.yaml config/replay-ablation.yaml` first")
    print(markdown(rows))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
