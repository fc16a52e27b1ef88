"""``phonft finetune {split,replay,train,heldout}``: the finetune stage's actions.

Each action is what the rule ``finetune_<action>`` runs. Settings arrive as one
``--settings`` JSON object (see :mod:`phonft.plan.settings`); split, replay and train
also take ``--config`` YAML with ``--run``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from phonft.cliutils import add_log_args, add_settings_args, read_settings
from phonft.errors import ConfigError

RUN_SETTINGS = ("run",)
REPLAY_SETTINGS = ("run", "replay_materials")
HELDOUT_SETTINGS = ("model_options", "protocol")


def _run_entry(args: argparse.Namespace, action: str, keys: tuple[str, ...]) -> tuple[dict[str, Any], dict]:
    """The run's config entry and the whole settings object."""
    settings = read_settings(args, f"finetune_{action}", keys, run=args.run)
    entry = settings.get("run")
    if not isinstance(entry, dict) or "materials" not in entry:
        raise ConfigError(f"finetune run '{args.run}': the settings need 'run', a mapping with a 'materials' list")
    return entry, settings


def cmd_split(args: argparse.Namespace) -> None:
    from phonft.finetune.split import write_split

    entry, _ = _run_entry(args, "split", RUN_SETTINGS)
    write_split(args.run, entry, args.out)


def cmd_replay(args: argparse.Namespace) -> None:
    from phonft.finetune import run as ft

    entry, settings = _run_entry(args, "replay", REPLAY_SETTINGS)
    ft.build_replay(entry, args.split, args.references, args.out, args.cache_dir or _default_cache(),
                    device=args.device, replay_materials=settings.get("replay_materials"))


def cmd_train(args: argparse.Namespace) -> None:
    from phonft.finetune import run as ft

    entry, _ = _run_entry(args, "train", RUN_SETTINGS)
    ft.train(args.run, entry, args.split, args.references, args.replay, args.out, device=args.device,
             resume=args.resume, stop_after=args.stop_after, augment=args.augment)


def cmd_heldout(args: argparse.Namespace) -> None:
    from phonft.finetune import run as ft

    settings = read_settings(args, "finetune_heldout", HELDOUT_SETTINGS)
    ft.heldout(args.model, args.reference, args.material, settings.get("protocol"), args.out, device=args.device,
               options=settings.get("model_options"))


def _default_cache() -> Path:
    from phonft.cache import default_cache_dir

    return default_cache_dir()


def _action(actions: argparse._SubParsersAction, name: str, help: str, func, keys: tuple[str, ...], *,
            run: bool = True) -> argparse.ArgumentParser:
    a = actions.add_parser(name, help=help, description=help)
    if run:
        a.add_argument("--run", default="run", help="run name (finetune.runs.<name>)")
    add_settings_args(a, keys, config=run)
    add_log_args(a)
    a.set_defaults(func=func)
    return a


def _device(a: argparse.ArgumentParser) -> None:
    a.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")


def _run_inputs(a: argparse.ArgumentParser, out_help: str) -> None:
    """The arguments of the actions that read a run's split and references."""
    a.add_argument("--split", required=True, help="the run's split.json")
    a.add_argument("--references", default="results/references", help="references root (default results/references)")
    a.add_argument("--out", required=True, help=out_help)
    _device(a)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="phonon fine-tuning (PFT) with replay co-training",
                       description="Fine-tune a foundation MLIP so that its Hessian matches DFT force constants.")
    actions = p.add_subparsers(dest="action", required=True, metavar="<action>")

    a = _action(actions, "split", "seeded train / validation / test split of a run's materials", cmd_split,
                RUN_SETTINGS)
    a.add_argument("--out", required=True, help="output split.json")
    a.set_defaults(out_kind="file")

    a = _action(actions, "replay", "the replay set: upstream data, or the offline pseudo-label set", cmd_replay,
                REPLAY_SETTINGS)
    _run_inputs(a, "output replay folder")
    a.add_argument("--cache-dir", help="download cache for upstream data (default: $PHONFT_CACHE or ~/.cache/phonft)")

    a = _action(actions, "train", "fine-tuning (objective pft, rattled or both) + replay co-training; "
                "--resume continues a killed run", cmd_train,
                RUN_SETTINGS)
    _run_inputs(a, "the run's folder (model.pt, train.json, metrics.csv)")
    a.add_argument("--replay", help="replay folder holding replay.extxyz")
    a.add_argument("--augment", help="augment root holding <material>/rattled.extxyz (objectives rattled and both)")
    a.add_argument("--resume", action="store_true", help="continue from the run's checkpoint if there is one")
    a.add_argument("--stop-after", type=int, help="stop after this many epochs (to test --resume)")

    a = _action(actions, "heldout", "a model's thermal.json and Hessian MAE on one reference material (float64)",
                cmd_heldout, HELDOUT_SETTINGS, run=False)
    a.add_argument("--model", required=True, help="model spec (chgnet, mace:<file>, results/finetune/<run>/model.pt)")
    a.add_argument("--reference", required=True, help="the material's references folder")
    a.add_argument("--material", required=True, help="material id")
    a.add_argument("--out", required=True, help="output thermal.json")
    a.set_defaults(out_kind="file")
    _device(a)
