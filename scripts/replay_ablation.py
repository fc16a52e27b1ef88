#!/usr/bin/env python
"""The replay ablation's table: held-out phonons and forgetting of every fine-tuning run.

Reads what the workflow wrote for each run (``results/evaluate/<run>/summary.json`` from the
MDR protocol, ``results/finetune/<run>/train.json`` for forgetting) and prints one markdown
row per run, base model first. Make the results with

    snakemake --cores 2 --configfile config/config.yaml config/replay-ablation.yaml [config/replay-ablation-upstream.yaml]
    python scripts/replay_ablation.py [--split test] [--out results/ablation/replay_ablation.json]

Across seeded splits (config/replay-splits.yaml), ``--by-split`` prints one row per variant:
runs named ``<variant>-s<k>`` are split seed k of that variant, and the demo run ``chgnet-pft``
is split seed 0 of ``pft``. Each run is compared with the base model on its own test
materials; the row gives every split's mean change, their mean, and the worst drift.

    snakemake --cores 2 --configfile config/config.yaml config/replay-splits.yaml
    python scripts/replay_ablation.py --by-split

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
import re
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
            "forgetting_frames": forgetting.get("n_frames"), "training_seconds": train["seconds"],
            "kept_epoch": train.get("best_epoch"), "test": (train.get("split") or {}).get(split, [])}


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


SPLIT_VARIANTS = ("pft", "pft-vc8", "pft-r2", "pft-el1", "pft-el5", "noreplay", "noreplay-unbounded")
ALIASES = {"chgnet-pft": "pft-s0"}  # the demo run is split seed 0 of the default variant


def split_runs(results: Path) -> dict[str, dict[int, str]]:
    """variant -> {split seed: run}, from the runs under ``results/evaluate`` named ``<variant>-s<k>``."""
    found: dict[str, dict[int, str]] = {}
    for summary in sorted((results / "evaluate").glob("*/summary.json")):
        run = summary.parent.name
        match = re.fullmatch(r"(.+)-s(\d+)", ALIASES.get(run, run))
        if match and (results / "finetune" / run / "train.json").is_file():
            found.setdefault(match.group(1), {})[int(match.group(2))] = run
    return found


def by_split(results: Path, split: str) -> list[dict]:
    """One row per variant: each split seed's mean change against the base, their mean, the worst drift."""
    rows = []
    for variant, runs in split_runs(results).items():
        per_seed = {seed: run_row(run, results, split) for seed, run in sorted(runs.items())}
        changes = {seed: r["mean_change_percent"] for seed, r in per_seed.items()}
        rows.append({"variant": variant, "runs": runs, "replay": next(iter(per_seed.values()))["replay"],
                     "change_by_seed": changes, "mean_change_percent": sum(changes.values()) / len(changes),
                     **_drift_stats(list(per_seed.values())),
                     "test": {seed: r["test"] for seed, r in per_seed.items()}})
    order = {v: i for i, v in enumerate(SPLIT_VARIANTS)}
    return sorted(rows, key=lambda r: (order.get(r["variant"], len(order)), r["variant"]))


def _drift_stats(rows: list[dict]) -> dict[str, float]:
    """``mean_<key>`` and ``max_<key>`` over the runs of a variant, for both drift keys (None counts 0)."""
    stats = {}
    for key in ("drift_force_meV_A", "drift_energy_meV_atom"):
        values = [r[key] or 0.0 for r in rows]
        stats[f"max_{key}"], stats[f"mean_{key}"] = max(values), sum(values) / len(values)
    return stats


def split_markdown(rows: list[dict]) -> str:
    seeds = sorted({s for r in rows for s in r["change_by_seed"]})
    head = ("| variant | replay | " + " | ".join(f"split {s}" for s in seeds)
            + " | mean change | drift F mean / max (meV/Å) | drift E mean / max (meV/atom) |")
    lines = [head, "|" + "---|" * (len(seeds) + 5)]
    for r in rows:
        cells = " | ".join(f"{r['change_by_seed'][s]:+.0f} %" if s in r["change_by_seed"] else "–" for s in seeds)
        lines.append(f"| {r['variant']} | {r['replay']} | {cells} | {r['mean_change_percent']:+.1f} % | "
                     f"{r['mean_drift_force_meV_A']:.1f} / {r['max_drift_force_meV_A']:.1f} | "
                     f"{r['mean_drift_energy_meV_atom']:.2f} / {r['max_drift_energy_meV_atom']:.2f} |")
    tests = {s: t for r in rows for s, t in r["test"].items()}
    lines.append("")
    lines.append("Test materials: " + "; ".join(f"split {s}: {', '.join(tests[s])}" for s in seeds))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", default=["chgnet-pft-noreplay-unbounded", "chgnet-pft-noreplay",
                                                  "chgnet-pft-training", "chgnet-pft",
                                                  "chgnet-pft-fd", "chgnet-pft-upstream"])
    ap.add_argument("--results", default="results")
    ap.add_argument("--split", default="test", help="which split role's MAEs to report (test, val, unseen)")
    ap.add_argument("--out", default=None, help="JSON of the rows (default results/ablation/replay_<kind>.json)")
    ap.add_argument("--by-split", action="store_true",
                    help="one row per variant across split seeds (config/replay-splits.yaml)")
    args = ap.parse_args()
    results = Path(args.results)
    if args.by_split:
        rows = by_split(results, args.split)
        if not rows:
            raise SystemExit("no <variant>-s<k> run has results yet: run `snakemake --configfile config/config.yaml "
                             "config/replay-splits.yaml` first")
        print(split_markdown(rows))
        _write(Path(args.out or results / "ablation" / "replay_splits.json"), rows)
        return
    runs = [r for r in args.runs if (results / "evaluate" / r / "summary.json").is_file()]
    rows = [run_row(r, results, args.split) for r in runs]
    if not rows:
        raise SystemExit("no run has results yet: run `snakemake --configfile config/config.yaml config/replay-ablation.yaml` first")
    print(markdown(rows))
    _write(Path(args.out or results / "ablation" / "replay_ablation.json"), rows)


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
