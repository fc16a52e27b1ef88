"""``phonft``: one subcommand per workflow stage.

``phonft <stage>`` (structures, displacements, references, augment, figures) and
``phonft <stage> <action>`` (finetune, evaluate) are what the rule ``<stage>`` or
``<stage>_<action>`` runs; all of them can be used on their own. ``phonft doctor`` and
``phonft --version`` describe the installation. Each takes its config
slice as one ``--settings`` JSON object (built by :func:`phonft.plan.settings`), or, by
hand, ``--config`` YAML where noted. User errors print one line naming the file or
material and the fix, and exit with status 2; nothing is left half-written.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from typing import Any

from phonft.cliutils import (
    add_log_args,
    add_settings_args,
    check_names,
    check_output_path,
    one_line,
    os_error_message,
    pin_threads,
    read_settings,
    setup_logging,
    tune_malloc,
)
from phonft.errors import ConfigError, PhonftError
from phonft.plan import FigureSet

log = logging.getLogger("phonft")


def _entry(settings: dict[str, Any], material: str) -> dict[str, Any]:
    """The material's config entry from the settings (``{}`` when none was given), with
    only known keys (:func:`phonft.specs.check_material`)."""
    from phonft.specs import SpecError, check_material

    entry = settings.get("material") or {}
    try:
        check_material(entry)
    except SpecError as exc:
        raise ConfigError(f"--settings: material '{material}': {exc}") from exc
    return entry


# --------------------------------------------------------------------------- structures

STRUCTURES_SETTINGS = ("material", "mdr_url")


def cmd_structures(args: argparse.Namespace) -> None:
    from phonft.structures import MDR_URL_TEMPLATE, load_structure, write_structure

    settings = read_settings(args, "structures", STRUCTURES_SETTINGS, material=args.material)
    entry = _entry(settings, args.material)
    if args.file:
        entry = {**entry, "structure": {"file": args.file}}
    atoms, prov, mdr_file = load_structure(args.material, entry, args.base_dir, args.cache_dir,
                                           settings.get("mdr_url") or MDR_URL_TEMPLATE)
    write_structure(args.out, args.material, atoms, prov, mdr_file)
    log.info("%s: %s, %d atoms -> %s", args.material, atoms.get_chemical_formula(), len(atoms), args.out)


# --------------------------------------------------------------------------- displacements

DISPLACEMENTS_SETTINGS = ("protocol", "limits", "interfaces", "reference_interface")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Protocol fields given as options (``--supercell``, ``--distance``), checked by the protocol."""
    out: dict[str, Any] = {}
    if args.supercell is not None:
        from phonft.protocols import supercell_rows

        try:
            values = [int(v) for v in args.supercell]
        except ValueError:
            raise ConfigError(f"--supercell {' '.join(args.supercell)}: give 3 integers (the diagonal) or 9 "
                              "(row by row), e.g. --supercell 2 2 2") from None
        out["supercell_matrix"] = [list(row) for row in supercell_rows(values, "--supercell")]
    if args.distance is not None:
        try:
            out["distance_A"] = float(args.distance)
        except ValueError:
            raise ConfigError(f"--distance {args.distance!r}: give a length in Å, e.g. 0.01") from None
    return out


def cmd_displacements(args: argparse.Namespace) -> None:
    from phonft.displacements import (
        CALCULATORS,
        NEEDS_CODE_INPUT,
        read_unitcell,
        write_displacements,
    )
    from phonft.protocols import DisplacementProtocol, SupercellLimits

    settings = read_settings(args, "displacements", DISPLACEMENTS_SETTINGS, material=args.material)
    protocol = DisplacementProtocol.from_dict({**(settings.get("protocol") or {}), **_overrides(args)})
    limits = SupercellLimits.from_dict(settings.get("limits"))
    interfaces = list(settings.get("interfaces", CALCULATORS))
    own = settings.get("reference_interface")
    if own in NEEDS_CODE_INPUT:  # its reference's phonopy_disp.yaml came from phonopy-init on the code's input
        log.info("%s: %s inputs are not written (phonopy needs %s's own input file)", args.material, own, own)
    elif own is not None:
        interfaces.append(own)
    manifest = write_displacements(args.out, args.material, read_unitcell(args.structure), protocol, limits,
                                   interfaces=interfaces)
    log.info("%s: %d fc2 supercells%s -> %s", args.material, manifest["n_displacements_fc2"],
             f", {manifest['n_displacements_fc3']} fc3 supercells" if protocol.fc3 else "", args.out)


# --------------------------------------------------------------------------- references

REFERENCES_SETTINGS = ("material", "protocol", "limits")


def cmd_references(args: argparse.Namespace) -> None:
    from phonft.protocols import ReferenceProtocol, SupercellLimits
    from phonft.references import Reference
    from phonft.specs import SpecError, material_reference

    settings = read_settings(args, "references", REFERENCES_SETTINGS, material=args.material)
    try:
        spec = material_reference(args.material, _entry(settings, args.material), args.results_dir)
    except SpecError as exc:
        raise ConfigError(str(exc)) from exc
    protocol = ReferenceProtocol.from_dict(settings.get("protocol"))
    limits = SupercellLimits.from_dict(settings.get("limits"))
    t0 = time.perf_counter()
    ref = Reference.read(spec, base_dir=args.base_dir, displacements_dir=args.displacements, protocol=protocol,
                         max_label_atoms=limits.max_supercell_atoms_fc2)
    ref.write(args.out, args.material)
    s = ref.summary
    log.info("%s: omega_max %.1f K, stable=%s (%d imaginary), S(300 K)=%.3f J/K/mol, %.1f s -> %s",
             args.material, s["omega_max_K"], s["dynamically_stable"], s["n_imaginary"],
             s["entropy_J_per_K_mol"][list(protocol.temperatures_K).index(300.0)]
             if 300.0 in protocol.temperatures_K else float("nan"), time.perf_counter() - t0, args.out)
    if ref.labels is not None:
        log.info("%s: supercell_labels %s: %d-atom fc2 -> %s/labels", args.material, ref.labels.matrix.tolist(),
                 len(ref.labels.phonon.supercell), args.out)


# --------------------------------------------------------------------------- figures


def cmd_figures(args: argparse.Namespace) -> None:
    from phonft.figures import draw_all

    figures = FigureSet.from_dict(read_settings(args, "figures", FIGURE_SETTINGS))
    written = draw_all(args.evaluate, figures, args.out, finetune_dir=args.finetune)
    log.info("wrote %d figures under %s", len(written), args.out)


# --------------------------------------------------------------------------- parser


def _common(p: argparse.ArgumentParser, keys: tuple[str, ...], base_dir: bool = True) -> None:
    p.add_argument("--material", required=True, help="material id, e.g. NaCl or mp-149")
    p.add_argument("--out", required=True, help="output folder, e.g. results/<stage>/<material>")
    add_settings_args(p, keys, config=True)
    if base_dir:
        p.add_argument("--base-dir", default=".", help="folder that relative data paths start from (default: .)")
    add_log_args(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="phonft", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=_VersionAction,
                        help="print phonft's, Python's and the key packages' versions and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<stage>")

    p = sub.add_parser("structures", help="write a material's unit cell (file, vendored data, MP id, MDR id)",
                       description="Resolve a material's structure source and write POSCAR + structure.json.")
    _common(p, STRUCTURES_SETTINGS)
    p.add_argument("--file", help="read the structure from this file (CIF, POSCAR, extxyz), overriding the settings")
    p.add_argument("--cache-dir", help="download cache (default: $PHONFT_CACHE or ~/.cache/phonft)")
    p.set_defaults(func=cmd_structures)

    p = sub.add_parser("displacements", help="phonopy fc2 / phono3py fc3 displaced supercells for DFT",
                       description="Generate finite-displacement supercells and write them as phonopy/phono3py "
                                   "yaml plus VASP and Quantum ESPRESSO inputs.")
    _common(p, DISPLACEMENTS_SETTINGS, base_dir=False)
    p.add_argument("--structure", required=True, help="unit cell file (POSCAR from the structures stage)")
    p.add_argument("--supercell", nargs="+", metavar="N",
                   help="supercell matrix, 3 integers (diagonal) or 9 (row by row); overrides the settings")
    p.add_argument("--distance", metavar="ANGSTROM", help="fc2 displacement in Å; overrides the settings")
    p.set_defaults(func=cmd_displacements)

    p = sub.add_parser("references", help="ingest DFT phonon results into fc2/fc3, thermal.json",
                       description="Read DFT forces (phonopy yaml, FORCE_SETS, vasprun.xml, QE pw.x, MDR, "
                                   "phono3py) and write the normalised reference folder.")
    _common(p, REFERENCES_SETTINGS)
    p.add_argument("--displacements", help="displacements folder (needed by 'engine' references)")
    p.add_argument("--results-dir", default="results", help="results root, for MDR files fetched by structures")
    p.set_defaults(func=cmd_references)

    from phonft.augment.cli import add_parser as add_augment

    add_augment(sub)

    from phonft.finetune.cli import add_parser as add_finetune

    add_finetune(sub)

    from phonft.evaluate.cli import add_parser as add_evaluate

    add_evaluate(sub)

    _add_figures(sub)
    p = sub.add_parser("doctor", help="versions, torch devices, cache folder and which model backends import",
                       description="Print phonft's, Python's and the key packages' versions, torch's devices and "
                                   "threads, the download cache folder and its size, and whether each optional "
                                   "model backend imports (with the reason when not). Exits 0.")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=cmd_doctor)
    return parser


class _VersionAction(argparse.Action):
    """``--version``: :func:`phonft.doctor.version_text` (metadata only, no imports), exit 0."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from phonft.doctor import version_text

        print(version_text())
        parser.exit()


def cmd_doctor(args: argparse.Namespace) -> None:
    """``phonft doctor``: :func:`phonft.doctor.report` as text, or JSON with ``--json``."""
    import json

    from phonft.doctor import report, report_text

    found = report()
    print(json.dumps(found, indent=1) if args.json else report_text(found))


FIGURE_SETTINGS = tuple(f.name for f in dataclasses.fields(FigureSet))


def _add_figures(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("figures", help="draw every figure from results/ (parity, bands, double wells, kappa, ...)",
                       description="Regenerate the paper figures from the evaluate and finetune results; the "
                                   "settings (a phonft.plan.FigureSet) say which.")
    add_settings_args(p, FIGURE_SETTINGS, config=True)
    p.add_argument("--evaluate", default="results/evaluate", help="evaluate results root")
    p.add_argument("--finetune", default="results/finetune", help="finetune results root")
    p.add_argument("--out", required=True, help="output folder (results/figures)")
    add_log_args(p)
    p.set_defaults(func=cmd_figures)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_names(args)
        check_output_path(getattr(args, "log", None), "--log", "file")
        setup_logging(getattr(args, "log", None), getattr(args, "verbose", False))
        check_output_path(getattr(args, "out", None), "--out", getattr(args, "out_kind", "folder"))
        pin_threads(getattr(args, "threads", None))
        tune_malloc()
        args.func(args)
    except PhonftError as exc:
        return _fail(args, exc)
    except OSError as exc:  # disk full, permissions, a folder removed under us: no traceback
        log.debug("traceback", exc_info=True)
        return _fail(args, os_error_message(exc))
    return 0


def _fail(args: argparse.Namespace, exc: BaseException) -> int:
    """Log and print the one-line error; the exit status of a user error."""
    message = one_line(exc)
    if logging.getLogger().handlers:  # not yet when --log itself was refused
        log.error("%s", message)
    print(f"phonft {args.command}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
