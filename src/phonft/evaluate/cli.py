"""``phonft evaluate {mdr,double-well,summary,kappa-reference,kappa,kappa103}``: the evaluate stage."""

from __future__ import annotations

import argparse
import json
from typing import Any

from phonft.errors import ConfigError


def _json_arg(text: str | None, what: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what} is not valid JSON ({exc})") from exc


def _mdr_protocol(args: argparse.Namespace):
    from phonft.evaluate.mdr import MDRProtocol

    return MDRProtocol.from_dict(_json_arg(args.protocol, "--protocol"))


def cmd_mdr(args: argparse.Namespace) -> None:
    from phonft.evaluate.run import evaluate_material

    evaluate_material(args.model, args.reference, args.material, args.out, protocol=_mdr_protocol(args),
                      device=args.device, options=_json_arg(args.model_options, "--model-options"), name=args.name)


def cmd_double_well(args: argparse.Namespace) -> None:
    from phonft.evaluate.run import evaluate_double_well

    evaluate_double_well(args.model, args.reference, args.material, args.out, protocol=_mdr_protocol(args),
                         device=args.device, options=_json_arg(args.model_options, "--model-options"),
                         name=args.name)


def cmd_summary(args: argparse.Namespace) -> None:
    from phonft.evaluate.run import summarize

    kappa = None
    if args.kappa_dir:
        from phonft.evaluate.kappa_io import kappa_summary

        kappa = kappa_summary(args.kappa_dir, args.kappa_reference, args.kappa_materials or [],
                              base_dir=args.base_kappa_dir, kappa103=args.kappa103,
                              kappa103_data=args.kappa103_data, cache_dir=args.cache_dir)
    summarize(args.name, args.model, args.materials, args.model_dir, args.references,
              splits=_json_arg(args.splits, "--splits"), base_dir=args.base_dir, base_name=args.base_name,
              kappa=kappa, protocol=_mdr_protocol(args))


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model spec: chgnet, mace:<file>, results/finetune/<run>/model.pt")
    p.add_argument("--name", help="the model's name in results/evaluate/<name> (default: the spec)")
    p.add_argument("--model-options", help="options of code-built models, as JSON")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")


def _log_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log", help="also write the log to this file")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score a model: MDR phonons, bands, double wells, kappa SRME",
                       description="Score a model on the community's phonon benchmarks: the MDR phonon protocol "
                                   "(thermal.json, bands.json), the double well of unstable modes, Matbench "
                                   "Discovery's kappa SRME (phonondb-v1), and a model's mdr.csv + summary.json.")
    actions = p.add_subparsers(dest="action", required=True, metavar="<action>")

    a = actions.add_parser("mdr", help="MDR protocol on one reference material: thermal.json + bands.json")
    _model_args(a)
    a.add_argument("--reference", required=True, help="the material's references folder")
    a.add_argument("--material", required=True, help="material id")
    a.add_argument("--out", required=True, help="output folder (results/evaluate/<model>/<material>)")
    a.add_argument("--protocol", help="MDRProtocol fields as JSON (default: the MDR defaults)")
    _log_args(a)
    a.set_defaults(func=cmd_mdr)

    a = actions.add_parser("double-well", help="energy along the most unstable DFT mode: model vs DFT harmonic")
    _model_args(a)
    a.add_argument("--reference", required=True, help="the material's references folder (DFT-unstable)")
    a.add_argument("--material", required=True, help="material id")
    a.add_argument("--out", required=True, help="output double_well.json")
    a.add_argument("--protocol", help="MDRProtocol fields as JSON (relaxation settings)")
    _log_args(a)
    a.set_defaults(func=cmd_double_well)

    a = actions.add_parser("summary", help="a model's mdr.csv and summary.json from its per-material results")
    a.add_argument("--name", required=True, help="the model's name")
    a.add_argument("--model", required=True, help="the model's spec (recorded)")
    a.add_argument("--materials", nargs="+", required=True, help="material ids to score")
    a.add_argument("--model-dir", required=True, help="results/evaluate/<name>")
    a.add_argument("--references", default="results/references", help="references root")
    a.add_argument("--splits", help="material -> split role (train/val/test/unseen) as JSON")
    a.add_argument("--base-dir", help="the base model's results/evaluate/<base> (fine-tuned models)")
    a.add_argument("--base-name", help="the base model's name")
    a.add_argument("--kappa-dir", help="the model's folder holding kappa/<material>.json and kappa103/<id>.json")
    a.add_argument("--base-kappa-dir", help="the base model's folder of the same layout")
    a.add_argument("--kappa-reference", help="DFT kappa records folder (<material>.json)")
    a.add_argument("--kappa103", action="store_true", help="also score the model's kappa103 records")
    a.add_argument("--kappa103-data", help="kappa103 folder (default ../shared/data/kappa103, else download)")
    a.add_argument("--cache-dir", help="download cache (default: $PHONFT_CACHE or ~/.cache/phonft)")
    a.add_argument("--kappa-materials", nargs="*", help="materials with kappa records")
    a.add_argument("--protocol", help="MDRProtocol fields as JSON (recorded)")
    _log_args(a)
    a.set_defaults(func=cmd_summary)

    from phonft.evaluate.kappa_cli import add_kappa_actions

    add_kappa_actions(actions, _model_args, _log_args)
