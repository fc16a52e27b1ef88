"""``phonft finetune {split,replay,train,thermal}``: the finetune stage's commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from phonft.cliutils import add_log_args
from phonft.errors import ConfigError


def _run_entry(args: argparse.Namespace) -> dict[str, Any]:
    if args.run_spec:
        try:
            entry = json.loads(args.run_spec)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--run-spec is not valid JSON ({exc})") from exc
    elif args.config:
        import yaml

        path = Path(args.config)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        runs = ((yaml.safe_load(path.read_text()) or {}).get("finetune") or {}).get("runs") or {}
        if args.run not in runs:
            raise ConfigError(f"{path}: no run '{args.run}' under finetune.runs; known: {', '.join(runs) or 'none'}")
        entry = runs[args.run]
    else:
        raise ConfigError("give the run's settings with --run-spec JSON or --config FILE")
    if not isinstance(entry, dict) or "materials" not in entry:
        raise ConfigError(f"finetune run '{args.run}' must be a mapping with a 'materials' list")
    return entry


def cmd_finetune(args: argparse.Namespace) -> None:
    from phonft.finetune import run as ft

    if args.action == "thermal":
        options = json.loads(args.model_options) if args.model_options else None
        protocol = json.loads(args.protocol) if args.protocol else {}
        ft.thermal(args.model, args.reference, args.material, protocol, args.out, device=args.device,
                   options=options)
        return
    entry = _run_entry(args)
    if args.action == "split":
        ft.write_split(args.run, entry, args.out)
    elif args.action == "replay":
        ft.build_replay(entry, args.split, args.references, args.out, args.cache_dir or _default_cache(),
                        device=args.device, replay_materials=args.replay_materials)
    elif args.action == "train":
        ft.train(args.run, entry, args.split, args.references, args.replay, args.out, device=args.device,
                 resume=args.resume, stop_after=args.stop_after)


def _default_cache() -> Path:
    from phonft.cache import default_cache_dir

    return default_cache_dir()


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="phonon fine-tuning (PFT) with replay co-training",
                       description="Fine-tune a foundation MLIP so that its Hessian matches DFT force constants. "
                                   "Actions: split (seeded train/val/test), replay (upstream or pseudo-label "
                                   "replay set), train (PFT + replay; --resume continues a killed run), thermal "
                                   "(a model's thermal.json on one reference material).")
    p.add_argument("action", choices=["split", "replay", "train", "thermal"])
    p.add_argument("--run", default="run", help="run name (finetune.runs.<name>)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--run-spec", help="the run's config entry as JSON (what Snakemake passes)")
    g.add_argument("--config", help="a phonft config YAML; finetune.runs.<run> is used")
    p.add_argument("--out", required=True, help="output: split.json, replay folder, run folder or thermal.json")
    p.add_argument("--split", help="split.json (replay, train)")
    p.add_argument("--references", default="results/references", help="references root (default results/references)")
    p.add_argument("--replay", help="replay folder holding replay.extxyz (train)")
    p.add_argument("--replay-materials", nargs="*", help="replay: configured materials (under --references) that may "
                                                         "join the disjoint pseudo-label pool (default: replay.materials)")
    p.add_argument("--cache-dir", help="download cache for upstream data (default: $PHONFT_CACHE or ~/.cache/phonft)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--resume", action="store_true", help="train: continue from the run's checkpoint if there is one")
    p.add_argument("--stop-after", type=int, help="train: stop after this many epochs (to test --resume)")
    p.add_argument("--model", help="thermal: model spec (chgnet, mace:<file>, results/finetune/<run>/model...)")
    p.add_argument("--model-options", help="thermal: options of code-built models, as JSON")
    p.add_argument("--reference", help="thermal: the material's references folder")
    p.add_argument("--material", help="thermal: material id")
    p.add_argument("--protocol", help="thermal: ReferenceProtocol fields as JSON (default: the references' defaults)")
    add_log_args(p)
    p.set_defaults(func=cmd_finetune)
