"""``phonft``: one subcommand per workflow stage.

Each subcommand is what the matching Snakemake rule runs; all of them can be used on
their own. User errors print one line naming the file or material and the fix, and exit
with status 2; nothing is left half-written.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from phonft import __version__
from phonft.cliutils import add_log_args, setup_logging
from phonft.errors import ConfigError, PhonftError

log = logging.getLogger("phonft")


def _material_entry(args: argparse.Namespace) -> dict[str, Any]:
    """The material's config mapping, from --spec (JSON) or --config (YAML file)."""
    if getattr(args, "spec", None):
        try:
            entry = json.loads(args.spec)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--spec is not valid JSON ({exc})") from exc
    elif getattr(args, "config", None):
        import yaml

        path = Path(args.config)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        cfg = yaml.safe_load(path.read_text()) or {}
        materials = cfg.get("materials") or {}
        if args.material not in materials:
            raise ConfigError(f"{path}: no material '{args.material}' under 'materials:'; "
                              f"known: {', '.join(materials) or 'none'}")
        entry = materials[args.material] or {}
    else:
        entry = {}
    if not isinstance(entry, dict):
        raise ConfigError(f"the entry of material '{args.material}' must be a mapping")
    return entry


def _ints(values: list[str] | None) -> list[int] | None:
    return None if values is None else [int(v) for v in values]


# --------------------------------------------------------------------------- structures


def cmd_structures(args: argparse.Namespace) -> None:
    from phonft.structures import MDR_URL_TEMPLATE, load_structure, write_structure

    entry = _material_entry(args)
    if args.file:
        entry = {**entry, "structure": {"file": args.file}}
    atoms, prov, mdr_file = load_structure(args.material, entry, args.base_dir, args.cache_dir,
                                           args.mdr_url or MDR_URL_TEMPLATE)
    write_structure(args.out, args.material, atoms, prov, mdr_file)
    log.info("%s: %s, %d atoms -> %s", args.material, atoms.get_chemical_formula(), len(atoms), args.out)


# --------------------------------------------------------------------------- displacements


def cmd_displacements(args: argparse.Namespace) -> None:
    from phonft.displacements import read_unitcell, write_displacements
    from phonft.protocols import DisplacementProtocol

    smat = _ints(args.supercell)
    if smat is not None:
        if len(smat) == 3:
            smat = [[smat[0], 0, 0], [0, smat[1], 0], [0, 0, smat[2]]]
        elif len(smat) == 9:
            smat = [smat[0:3], smat[3:6], smat[6:9]]
        else:
            raise ConfigError("--supercell takes 3 (diagonal) or 9 integers")
    prim: Any = args.primitive
    if prim not in ("auto", "P", "F", "I", "A", "C", "R"):
        vals = [float(x) for x in prim.split()]
        if len(vals) != 9:
            raise ConfigError("--primitive takes 'auto', a centring letter, or 9 numbers")
        prim = tuple(tuple(vals[i:i + 3]) for i in (0, 3, 6))
    protocol = DisplacementProtocol(
        supercell_matrix=None if smat is None else tuple(tuple(r) for r in smat),
        min_length_A=args.min_length, distance_A=args.distance, symprec=args.symprec,
        primitive_matrix=prim, fc3=args.fc3, fc3_distance_A=args.fc3_distance,
    )
    manifest = write_displacements(args.out, args.material, read_unitcell(args.structure), protocol)
    log.info("%s: %d fc2 supercells%s -> %s", args.material, manifest["n_displacements_fc2"],
             f", {manifest['n_displacements_fc3']} fc3 supercells" if args.fc3 else "", args.out)


# --------------------------------------------------------------------------- references


def cmd_references(args: argparse.Namespace) -> None:
    from phonft.protocols import ReferenceProtocol
    from phonft.references import Reference
    from phonft.specs import SpecError, material_reference

    entry = _material_entry(args)
    try:
        spec = material_reference(args.material, entry, args.results_dir)
    except SpecError as exc:
        raise ConfigError(str(exc)) from exc
    mesh: Any = args.mesh[0] if len(args.mesh) == 1 else tuple(int(m) for m in args.mesh)
    protocol = ReferenceProtocol(
        temperatures_K=tuple(float(t) for t in args.temperatures), mesh=mesh,
        fc_calculator=args.fc_calculator, use_nac=args.nac, symprec=args.symprec,
    )
    t0 = time.perf_counter()
    ref = Reference.read(spec, base_dir=args.base_dir, displacements_dir=args.displacements, protocol=protocol)
    ref.write(args.out, args.material)
    s = ref.summary
    log.info("%s: omega_max %.1f K, stable=%s (%d imaginary), S(300 K)=%.3f J/K/mol, %.1f s -> %s",
             args.material, s["omega_max_K"], s["dynamically_stable"], s["n_imaginary"],
             s["entropy_J_per_K_mol"][list(protocol.temperatures_K).index(300.0)]
             if 300.0 in protocol.temperatures_K else float("nan"), time.perf_counter() - t0, args.out)


# --------------------------------------------------------------------------- figures


def cmd_figures(args: argparse.Namespace) -> None:
    from phonft.figures import draw_all

    written = draw_all(args.evaluate, args.models, args.out, materials=args.materials,
                       double_well=args.double_well, runs=args.runs, finetune_dir=args.finetune, kappa=args.kappa)
    log.info("wrote %d figures under %s", len(written), args.out)


# --------------------------------------------------------------------------- parser


def _common(p: argparse.ArgumentParser, spec: bool = True) -> None:
    p.add_argument("--material", required=True, help="material id, e.g. NaCl or mp-149")
    p.add_argument("--out", required=True, help="output folder, e.g. results/<stage>/<material>")
    if spec:
        g = p.add_mutually_exclusive_group()
        g.add_argument("--spec", help="the material's config entry as JSON (what Snakemake passes)")
        g.add_argument("--config", help="a phonft config YAML; the entry under materials.<material> is used")
        p.add_argument("--base-dir", default=".", help="folder that relative data paths start from (default: .)")
    add_log_args(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="phonft", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"phonft {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<stage>")

    p = sub.add_parser("structures", help="write a material's unit cell (file, vendored data, MP id, MDR id)",
                       description="Resolve a material's structure source and write POSCAR + structure.json.")
    _common(p)
    p.add_argument("--file", help="read the structure from this file (CIF, POSCAR, extxyz), overriding the spec")
    p.add_argument("--cache-dir", help="download cache (default: $PHONFT_CACHE or ~/.cache/phonft)")
    p.add_argument("--mdr-url", help="URL template for MDR files, with {mdr_id}")
    p.set_defaults(func=cmd_structures)

    p = sub.add_parser("displacements", help="phonopy fc2 / phono3py fc3 displaced supercells for DFT",
                       description="Generate finite-displacement supercells and write them as phonopy/phono3py "
                                   "yaml plus VASP and Quantum ESPRESSO inputs.")
    _common(p, spec=False)
    p.add_argument("--structure", required=True, help="unit cell file (POSCAR from the structures stage)")
    p.add_argument("--supercell", nargs="+", metavar="N", help="3 (diagonal) or 9 integers; default: from --min-length")
    p.add_argument("--min-length", type=float, default=10.0, help="minimum supercell vector length in Å (default 10)")
    p.add_argument("--distance", type=float, default=0.01, help="fc2 displacement in Å (default 0.01)")
    p.add_argument("--symprec", type=float, default=1e-5, help="symmetry tolerance in Å (default 1e-5)")
    p.add_argument("--primitive", default="auto", help="primitive matrix: auto, P/F/I/A/C/R or 9 numbers")
    p.add_argument("--fc3", action="store_true", help="also write the phono3py fc3 displacement set")
    p.add_argument("--fc3-distance", type=float, default=0.03, help="fc3 displacement in Å (default 0.03)")
    p.set_defaults(func=cmd_displacements)

    p = sub.add_parser("references", help="ingest DFT phonon results into fc2/fc3, thermal.json",
                       description="Read DFT forces (phonopy yaml, FORCE_SETS, vasprun.xml, QE pw.x, MDR, "
                                   "phono3py) and write the normalised reference folder.")
    _common(p)
    p.add_argument("--displacements", help="displacements folder (needed by 'engine' references)")
    p.add_argument("--results-dir", default="results", help="results root, for MDR files fetched by structures")
    p.add_argument("--temperatures", nargs="+", default=["0", "75", "150", "300", "600"], help="temperatures in K")
    p.add_argument("--mesh", nargs="+", type=float, default=[100.0],
                   help="phonopy mesh: a length in Å (default 100) or 3 integers")
    p.add_argument("--fc-calculator", default="traditional", choices=["traditional", "symfc"],
                   help="force-constants solver (default traditional)")
    p.add_argument("--nac", action="store_true", help="apply the NAC correction from BORN (MDR protocol: off)")
    p.add_argument("--symprec", type=float, default=1e-5, help="symmetry tolerance in Å")
    p.set_defaults(func=cmd_references)

    from phonft.finetune.cli import add_parser as add_finetune

    add_finetune(sub)

    from phonft.evaluate.cli import add_parser as add_evaluate

    add_evaluate(sub)

    _add_figures(sub)
    return parser


def _add_figures(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("figures", help="draw every figure from results/ (parity, bands, double wells, kappa, ...)",
                       description="Regenerate the paper figures from the evaluate and finetune results.")
    p.add_argument("--evaluate", default="results/evaluate", help="evaluate results root")
    p.add_argument("--models", nargs="+", required=True, help="model names under --evaluate")
    p.add_argument("--materials", nargs="*", default=[], help="materials with band overlays")
    p.add_argument("--double-well", nargs="*", default=[], help="materials with a double-well scan")
    p.add_argument("--runs", nargs="*", default=[], help="fine-tuning runs with a training curve")
    p.add_argument("--finetune", default="results/finetune", help="finetune results root")
    p.add_argument("--kappa", action="store_true", help="draw the kappa parity plot (summaries with kappa scores)")
    p.add_argument("--out", required=True, help="output folder (results/figures)")
    add_log_args(p)
    p.set_defaults(func=cmd_figures)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(getattr(args, "log", None), getattr(args, "verbose", False))
    try:
        args.func(args)
    except PhonftError as exc:
        log.error("%s", exc)
        print(f"phonft {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
