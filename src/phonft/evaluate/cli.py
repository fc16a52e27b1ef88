"""``phonft evaluate {mdr,double-well,summary,kappa-reference,kappa,kappa103}``: the evaluate stage."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from phonft.cliutils import add_log_args
from phonft.errors import ConfigError

log = logging.getLogger(__name__)


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


def _model_options(args: argparse.Namespace) -> dict[str, Any] | None:
    return _json_arg(args.model_options, "--model-options")


def cmd_mdr(args: argparse.Namespace) -> None:
    from phonft.evaluate.run import evaluate_material

    evaluate_material(args.model, args.reference, args.material, args.out, protocol=_mdr_protocol(args),
                      device=args.device, options=_model_options(args), name=args.name)


def cmd_double_well(args: argparse.Namespace) -> None:
    from phonft.evaluate.run import evaluate_double_well

    evaluate_double_well(args.model, args.reference, args.material, args.out, protocol=_mdr_protocol(args),
                         device=args.device, options=_model_options(args), name=args.name)


def cmd_summary(args: argparse.Namespace) -> None:
    from phonft.evaluate.run import summarize

    kappa = None
    if args.kappa_dir:
        from phonft.evaluate.kappa import kappa_summary

        kappa = kappa_summary(args.kappa_dir, args.kappa_reference, args.kappa_materials or [],
                              base_dir=args.base_kappa_dir, kappa103=args.kappa103,
                              kappa103_data=args.kappa103_data, cache_dir=args.cache_dir)
    summarize(args.name, args.model, args.materials, args.model_dir, args.references,
              splits=_json_arg(args.splits, "--splits"), base_dir=args.base_dir, base_name=args.base_name,
              kappa=kappa, protocol=_mdr_protocol(args))


# --------------------------------------------------------------------------- kappa


def _task_from_reference(args: argparse.Namespace):
    from phonft.evaluate.kappa import task_from_phono3py_params

    return task_from_phono3py_params(Path(args.reference) / "phono3py_params.yaml", args.material,
                                     q_mesh=tuple(args.mesh))


def _load_model(args: argparse.Namespace):
    from phonft.models import load_model

    return load_model(args.model, dtype="float64", device=args.device, options=_model_options(args))


def _write_model_kappa(args: argparse.Namespace, task, what: str) -> None:
    from phonft.evaluate.kappa import KappaProtocol, model_kappa, write_kappa_record

    record = model_kappa(_load_model(args), task, KappaProtocol())
    record["model_name"] = args.name or args.model
    write_kappa_record(args.out, record)
    log.info("%s with %s -> %s", what, args.model, args.out)


def cmd_kappa_reference(args: argparse.Namespace) -> None:
    from phonft.evaluate.kappa import KappaProtocol, dft_kappa, write_kappa_record

    record = dft_kappa(Path(args.reference) / "phono3py_params.yaml", _task_from_reference(args), KappaProtocol())
    write_kappa_record(args.out, record)
    log.info("%s: DFT kappa -> %s", args.material, args.out)


def cmd_kappa(args: argparse.Namespace) -> None:
    _write_model_kappa(args, _task_from_reference(args), args.material)


def cmd_kappa103(args: argparse.Namespace) -> None:
    from phonft.evaluate.kappa import load_kappa103

    (task,) = load_kappa103(args.data_dir, ids=[args.id], cache_dir=args.cache_dir)
    _write_model_kappa(args, task, f"kappa103 {args.id}")


# --------------------------------------------------------------------------- parser


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model spec: chgnet, mace:<file>, results/finetune/<run>/model.pt")
    p.add_argument("--name", help="the model's name in results/evaluate/<name> (default: the spec)")
    p.add_argument("--model-options", help="options of code-built models, as JSON")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")


def _material_args(p: argparse.ArgumentParser, reference: str, out: str) -> None:
    """--reference (the material's references folder), --material and --out."""
    p.add_argument("--reference", required=True, help=f"the material's references folder{reference}")
    p.add_argument("--material", required=True, help="material id")
    p.add_argument("--out", required=True, help=out)


def _action(actions: argparse._SubParsersAction, name: str, help: str, func, *, model: bool = True):
    a = actions.add_parser(name, help=help)
    if model:
        _model_args(a)
    add_log_args(a)
    a.set_defaults(func=func)
    return a


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score a model: MDR phonons, bands, double wells, kappa SRME",
                       description="Score a model on the community's phonon benchmarks: the MDR phonon protocol "
                                   "(thermal.json, bands.json), the double well of unstable modes, Matbench "
                                   "Discovery's kappa SRME (phonondb-v1), and a model's mdr.csv + summary.json.")
    actions = p.add_subparsers(dest="action", required=True, metavar="<action>")

    a = _action(actions, "mdr", "MDR protocol on one reference material: thermal.json + bands.json", cmd_mdr)
    _material_args(a, "", "output folder (results/evaluate/<model>/<material>)")
    a.add_argument("--protocol", help="MDRProtocol fields as JSON (default: the MDR defaults)")

    a = _action(actions, "double-well", "energy along the most unstable DFT mode: model vs DFT harmonic",
                cmd_double_well)
    _material_args(a, " (DFT-unstable)", "output double_well.json")
    a.add_argument("--protocol", help="MDRProtocol fields as JSON (relaxation settings)")

    a = _action(actions, "summary", "a model's mdr.csv and summary.json from its per-material results", cmd_summary,
                model=False)
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

    mesh = {"nargs": 3, "type": int, "default": [11, 11, 11], "help": "q-point mesh (default 11 11 11)"}
    a = _action(actions, "kappa-reference", "DFT per-mode kappa of a vendored fc3 reference (phono3py)",
                cmd_kappa_reference, model=False)
    _material_args(a, " (with phono3py_params.yaml)", "output kappa JSON")
    a.add_argument("--mesh", **mesh)

    a = _action(actions, "kappa", "a model's kappa on a vendored fc3 material (phonondb-v1 protocol)", cmd_kappa)
    _material_args(a, " (with phono3py_params.yaml)", "output kappa JSON")
    a.add_argument("--mesh", **mesh)

    a = _action(actions, "kappa103", "a model's kappa on one Matbench Discovery kappa103 structure", cmd_kappa103)
    a.add_argument("--id", required=True, help="the structure's mp id, e.g. mp-149")
    a.add_argument("--data-dir", help="kappa103 folder (default ../shared/data/kappa103 when present, else download)")
    a.add_argument("--cache-dir", help="download cache (default: $PHONFT_CACHE or ~/.cache/phonft)")
    a.add_argument("--out", required=True, help="output kappa JSON")
