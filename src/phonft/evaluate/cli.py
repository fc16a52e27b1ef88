"""``phonft evaluate {mdr,double-well,kappa-reference,kappa,kappa103-ids,kappa103,summary,compare}``:
the evaluate stage.

Each action is what the rule ``evaluate_<action>`` runs (dashes become underscores).
Settings arrive as one ``--settings`` JSON object (see :mod:`phonft.plan.settings`); the
protocols in it are decoded by :meth:`phonft.protocols.Protocol.from_dict`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from phonft.cliutils import add_log_args, add_settings_args, read_settings
from phonft.errors import ConfigError
from phonft.io import atomic_write_json

log = logging.getLogger(__name__)

MDR_SETTINGS = ("model_options", "protocol")
KAPPA_REFERENCE_SETTINGS = ("mesh",)
KAPPA_SETTINGS = ("model_options", "mesh")
KAPPA103_IDS_SETTINGS = ("data_dir", "ids", "first_n")
KAPPA103_SETTINGS = ("model_options", "data_dir")
SUMMARY_SETTINGS = ("materials", "splits", "base", "kappa", "protocol")
COMPARE_SETTINGS = ("models", "double_well", "dft_well_depth_meV")


def _settings(args: argparse.Namespace, keys: tuple[str, ...]) -> dict[str, Any]:
    return read_settings(args, f"evaluate_{args.action.replace('-', '_')}", keys)


def _mdr_protocol(settings: dict[str, Any]):
    from phonft.evaluate.mdr import MDRProtocol

    return MDRProtocol.from_dict(settings.get("protocol"))


def cmd_mdr(args: argparse.Namespace) -> None:
    from phonft.evaluate.run import evaluate_material

    s = _settings(args, MDR_SETTINGS)
    evaluate_material(args.model, args.reference, args.material, args.out, protocol=_mdr_protocol(s),
                      device=args.device, options=s.get("model_options"), name=args.name)


def cmd_double_well(args: argparse.Namespace) -> None:
    from phonft.evaluate.run import evaluate_double_well

    s = _settings(args, MDR_SETTINGS)
    evaluate_double_well(args.model, args.reference, args.material, args.out, protocol=_mdr_protocol(s),
                         device=args.device, options=s.get("model_options"), name=args.name)


def cmd_summary(args: argparse.Namespace) -> None:
    from phonft.evaluate.run import summarize

    s = _settings(args, SUMMARY_SETTINGS)
    if not s.get("materials"):
        raise ConfigError("evaluate summary: the settings name no 'materials' to score")
    kappa, mbd_out = None, Path(args.model_dir) / "kappa_mbd.json.gz"
    if not s.get("kappa"):  # the rule's declared output: an empty table when no kappa is scored
        from phonft.evaluate.kappa.mbd import write_kappa_mbd

        write_kappa_mbd({}, mbd_out)
    else:
        from phonft.evaluate.kappa import kappa_summary

        k = s["kappa"]
        kappa = kappa_summary(args.model_dir, args.references, k.get("materials") or [], base_dir=args.base_dir,
                              kappa103=bool(k.get("kappa103")), kappa103_data=k.get("data_dir"),
                              cache_dir=args.cache_dir, mbd_out=mbd_out)
    summarize(args.name, args.model, s.get("materials") or [], args.model_dir, args.references,
              splits=s.get("splits"), base_dir=args.base_dir, base_name=s.get("base"), kappa=kappa,
              protocol=_mdr_protocol(s))


def cmd_compare(args: argparse.Namespace) -> None:
    from phonft.evaluate.compare import write_strategies

    s = _settings(args, COMPARE_SETTINGS)
    models = s.get("models") or []
    if not models:
        raise ConfigError("evaluate compare: the settings name no 'models' to compare")
    for entry in models:
        if not isinstance(entry, dict) or not {"name", "heldout"} <= set(entry):
            raise ConfigError(f"evaluate compare: each entry of 'models' needs 'name' and 'heldout' (and optionally "
                              f"'base', 'run', 'spec'); got {entry!r}")
    table = write_strategies(args.results, models, args.out, double_well_materials=s.get("double_well") or [],
                             dft_depth_meV=s.get("dft_well_depth_meV"))
    log.info("%d models compared -> %s", len(table), args.out)


# --------------------------------------------------------------------------- kappa


def _task_from_reference(args: argparse.Namespace, settings: dict[str, Any]):
    from phonft.evaluate.kappa import task_from_phono3py_params

    mesh = {"q_mesh": tuple(settings["mesh"])} if settings.get("mesh") else {}
    return task_from_phono3py_params(Path(args.reference) / "phono3py_params.yaml", args.material, **mesh)


def _write_model_kappa(args: argparse.Namespace, task, options: dict[str, Any] | None, what: str) -> None:
    from phonft.evaluate.kappa import KappaProtocol, model_kappa, write_kappa_record
    from phonft.models import load_model

    model = load_model(args.model, dtype="float64", device=args.device, options=options)
    record = model_kappa(model, task, KappaProtocol())
    record["model_name"] = args.name or args.model
    write_kappa_record(args.out, record)
    log.info("%s with %s -> %s", what, args.model, args.out)


def cmd_kappa_reference(args: argparse.Namespace) -> None:
    from phonft.evaluate.kappa import KappaProtocol, dft_kappa, write_kappa_record

    task = _task_from_reference(args, _settings(args, KAPPA_REFERENCE_SETTINGS))
    record = dft_kappa(Path(args.reference) / "phono3py_params.yaml", task, KappaProtocol())
    write_kappa_record(args.out, record)
    log.info("%s: DFT kappa -> %s", args.material, args.out)


def cmd_kappa(args: argparse.Namespace) -> None:
    s = _settings(args, KAPPA_SETTINGS)
    _write_model_kappa(args, _task_from_reference(args, s), s.get("model_options"), args.material)


def cmd_kappa103_ids(args: argparse.Namespace) -> None:
    from phonft.evaluate.kappa import load_kappa103

    s = _settings(args, KAPPA103_IDS_SETTINGS)
    tasks = load_kappa103(s.get("data_dir"), s.get("ids") or None, s.get("first_n"), args.cache_dir)
    atomic_write_json(args.out, {"ids": [t.id for t in tasks], "settings": s})
    log.info("kappa103: %d structures to score -> %s", len(tasks), args.out)


def cmd_kappa103(args: argparse.Namespace) -> None:
    from phonft.evaluate.kappa import load_kappa103

    s = _settings(args, KAPPA103_SETTINGS)
    (task,) = load_kappa103(s.get("data_dir"), ids=[args.id], cache_dir=args.cache_dir)
    _write_model_kappa(args, task, s.get("model_options"), f"kappa103 {args.id}")


# --------------------------------------------------------------------------- parser

CACHE_HELP = "download cache (default: $PHONFT_CACHE or ~/.cache/phonft)"


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model spec: chgnet, mace:<file>, results/finetune/<run>/model.pt, "
                   "ase:<module>:<Class> (an ASE calculator; model_options are its keyword arguments)")
    p.add_argument("--name", help="the model's name in results/evaluate/<name> (default: the spec)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")


def _material_args(p: argparse.ArgumentParser, reference: str, out: str, out_kind: str = "file") -> None:
    """--reference (the material's references folder), --material and --out (a ``file`` or ``folder``)."""
    p.add_argument("--reference", required=True, help=f"the material's references folder{reference}")
    p.add_argument("--material", required=True, help="material id")
    p.add_argument("--out", required=True, help=out)
    p.set_defaults(out_kind=out_kind)


def _action(actions: argparse._SubParsersAction, name: str, help: str, func, keys: tuple[str, ...], *,
            model: bool = True) -> argparse.ArgumentParser:
    a = actions.add_parser(name, help=help, description=help)
    if model:
        _model_args(a)
    add_settings_args(a, keys)
    add_log_args(a)
    a.set_defaults(func=func)
    return a


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score a model: MDR phonons, bands, double wells, kappa SRME",
                       description="Score a model on the community's phonon benchmarks: the MDR phonon protocol "
                                   "(thermal.json, bands.json, and phonopy_params.yaml, fc2.hdf5, band.yaml and total_dos.dat for phonopy's own "
                                   "tools), the double well of unstable modes, Matbench "
                                   "Discovery's kappa SRME (phonondb-v1), and a model's mdr.csv + summary.json.")
    actions = p.add_subparsers(dest="action", required=True, metavar="<action>")

    a = _action(actions, "mdr", "MDR protocol on one reference material: thermal.json + bands.json, and the model's "
                "phonons in phonopy's formats (phonopy_params.yaml, fc2.hdf5, band.yaml, total_dos.dat)", cmd_mdr,
                MDR_SETTINGS)
    _material_args(a, "", "output folder (results/evaluate/<model>/<material>), replaced whole", "folder")

    a = _action(actions, "double-well", "energy along the most unstable DFT mode: model vs DFT harmonic",
                cmd_double_well, MDR_SETTINGS)
    _material_args(a, " (DFT-unstable)", "output JSON (results/evaluate/<model>/double_well/<material>.json)")

    a = _action(actions, "kappa-reference", "DFT per-mode kappa of a vendored fc3 reference (phono3py)",
                cmd_kappa_reference, KAPPA_REFERENCE_SETTINGS, model=False)
    _material_args(a, " (with phono3py_params.yaml)", "output kappa JSON (results/references/<material>/kappa.json)")

    a = _action(actions, "kappa", "a model's kappa on a vendored fc3 material (phonondb-v1 protocol)", cmd_kappa,
                KAPPA_SETTINGS)
    _material_args(a, " (with phono3py_params.yaml)", "output kappa JSON")

    a = _action(actions, "kappa103-ids", "the kappa103 ids to score (reads, or downloads, the data)",
                cmd_kappa103_ids, KAPPA103_IDS_SETTINGS, model=False)
    a.add_argument("--cache-dir", help=CACHE_HELP)
    a.add_argument("--out", required=True, help="output JSON with the ids")
    a.set_defaults(out_kind="file")

    a = _action(actions, "kappa103", "a model's kappa on one Matbench Discovery kappa103 structure", cmd_kappa103,
                KAPPA103_SETTINGS)
    a.add_argument("--id", required=True, help="the structure's mp id, e.g. mp-149")
    a.add_argument("--cache-dir", help=CACHE_HELP)
    a.add_argument("--out", required=True, help="output kappa JSON")
    a.set_defaults(out_kind="file")

    a = _action(actions, "summary", "a model's mdr.csv and summary.json from its per-material results", cmd_summary,
                SUMMARY_SETTINGS, model=False)
    a.add_argument("--name", required=True, help="the model's name")
    a.add_argument("--model", required=True, help="the model's spec (recorded)")
    a.add_argument("--model-dir", required=True, help="results/evaluate/<name> (with kappa/ and kappa103/ records)")
    a.add_argument("--references", default="results/references", help="references root (DFT kappa: <m>/kappa.json)")
    a.add_argument("--base-dir", help="the base model's results/evaluate/<base> (fine-tuned models)")
    a.add_argument("--cache-dir", help=CACHE_HELP)

    a = _action(actions, "compare", "every model side by side: MAEs, F1, double wells, training and phonon cost",
                cmd_compare, COMPARE_SETTINGS, model=False)
    a.add_argument("--results", default="results", help="the results root the models' files are read from")
    a.add_argument("--out", required=True, help="output CSV (results/evaluate/strategies.csv)")
    a.set_defaults(out_kind="file")
