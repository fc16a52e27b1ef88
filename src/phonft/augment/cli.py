"""``phonft augment``: the command the ``augment`` rule runs (see :mod:`phonft.augment`)."""

from __future__ import annotations

import argparse
import logging

from phonft.cliutils import add_log_args, add_settings_args, read_settings

log = logging.getLogger("phonft")

AUGMENT_SETTINGS = ("protocol", "labels")
"""Keys of ``phonft augment --settings``: AugmentSettings and LabelSettings fields."""


def cmd_augment(args: argparse.Namespace) -> None:
    from phonft.augment.settings import AugmentSettings, LabelSettings
    from phonft.augment.stage import write_augment

    settings = read_settings(args, "augment", AUGMENT_SETTINGS, material=args.material)
    protocol = AugmentSettings.from_dict(settings.get("protocol"))
    labels = LabelSettings.from_dict(settings.get("labels"))
    if args.n_frames is not None:
        protocol = AugmentSettings.from_dict({**protocol.as_dict(), "n_frames": args.n_frames})
    manifest = write_augment(args.out, args.material, args.reference, protocol, labels, args.base_dir)
    log.info("%s: %d rattled frames, labels %s -> %s", args.material, manifest["n_frames"], manifest["label_source"],
             args.out)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("augment", help="rattled supercells of a material, labelled, with DFT inputs",
                       description="Rattle the material's reference supercell (seeded), label the frames (harmonic "
                                   "DFT fc2, DFT outputs, a labelled extxyz or an ASE engine) and write "
                                   "rattled.extxyz, VASP/QE inputs and manifest.json.")
    p.add_argument("--material", required=True, help="material id, e.g. NaCl or mp-149")
    p.add_argument("--reference", required=True, help="the material's references folder (results/references/<m>)")
    p.add_argument("--out", required=True, help="output folder, e.g. results/augment/<material>")
    p.add_argument("--n-frames", type=int, help="number of frames; overrides the settings")
    add_settings_args(p, AUGMENT_SETTINGS, config=True)
    p.add_argument("--base-dir", default=".", help="folder that relative label paths start from (default: .)")
    add_log_args(p)
    p.set_defaults(func=cmd_augment)
