"""``phonft evaluate {kappa-reference,kappa,kappa103}``: thermal conductivity under phonondb-v1."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def _task_from_reference(args: argparse.Namespace):
    from phonft.evaluate.kappa import task_from_phono3py_params

    return task_from_phono3py_params(Path(args.reference) / "phono3py_params.yaml", args.material,
                                     q_mesh=tuple(args.mesh))


def cmd_kappa_reference(args: argparse.Namespace) -> None:
    from phonft.evaluate.kappa import KappaProtocol, dft_kappa, write_kappa_record

    task = _task_from_reference(args)
    record = dft_kappa(Path(args.reference) / "phono3py_params.yaml", task, KappaProtocol())
    write_kappa_record(args.out, record)
    log.info("%s: DFT kappa -> %s", args.material, args.out)


def _model(args: argparse.Namespace):
    from phonft.models import load_model

    options = json.loads(args.model_options) if args.model_options else None
    return load_model(args.model, dtype="float64", device=args.device, options=options)


def cmd_kappa(args: argparse.Namespace) -> None:
    from phonft.evaluate.kappa import KappaProtocol, model_kappa, write_kappa_record

    record = model_kappa(_model(args), _task_from_reference(args), KappaProtocol())
    record["model_name"] = args.name or args.model
    write_kappa_record(args.out, record)
    log.info("%s with %s -> %s", args.material, args.model, args.out)


def cmd_kappa103(args: argparse.Namespace) -> None:
    from phonft.evaluate.kappa import KappaProtocol, load_kappa103, model_kappa, write_kappa_record

    (task,) = load_kappa103(args.data_dir, ids=[args.id], cache_dir=args.cache_dir)
    record = model_kappa(_model(args), task, KappaProtocol())
    record["model_name"] = args.name or args.model
    write_kappa_record(args.out, record)
    log.info("kappa103 %s with %s -> %s", args.id, args.model, args.out)


def add_kappa_actions(actions: argparse._SubParsersAction, model_args, log_args) -> None:
    a = actions.add_parser("kappa-reference", help="DFT per-mode kappa of a vendored fc3 reference (phono3py)")
    a.add_argument("--reference", required=True, help="the material's references folder (with phono3py_params.yaml)")
    a.add_argument("--material", required=True, help="material id")
    a.add_argument("--mesh", nargs=3, type=int, default=[11, 11, 11], help="q-point mesh (default 11 11 11)")
    a.add_argument("--out", required=True, help="output kappa JSON")
    log_args(a)
    a.set_defaults(func=cmd_kappa_reference)

    a = actions.add_parser("kappa", help="a model's kappa on a vendored fc3 material (phonondb-v1 protocol)")
    model_args(a)
    a.add_argument("--reference", required=True, help="the material's references folder (with phono3py_params.yaml)")
    a.add_argument("--material", required=True, help="material id")
    a.add_argument("--mesh", nargs=3, type=int, default=[11, 11, 11], help="q-point mesh (default 11 11 11)")
    a.add_argument("--out", required=True, help="output kappa JSON")
    log_args(a)
    a.set_defaults(func=cmd_kappa)

    a = actions.add_parser("kappa103", help="a model's kappa on one Matbench Discovery kappa103 structure")
    model_args(a)
    a.add_argument("--id", required=True, help="the structure's mp id, e.g. mp-149")
    a.add_argument("--data-dir", help="kappa103 folder (default ../shared/data/kappa103 when present, else download)")
    a.add_argument("--cache-dir", help="download cache (default: $PHONFT_CACHE or ~/.cache/phonft)")
    a.add_argument("--out", required=True, help="output kappa JSON")
    log_args(a)
    a.set_defaults(func=cmd_kappa103)
