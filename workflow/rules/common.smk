# Shared helpers: material lookup, reference inputs and CLI arguments.
# Only the stdlib-only `phonft.references.spec` is imported here, so that parsing the
# workflow stays fast and needs no phonopy in the environment that runs snakemake.

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from phonft.references.spec import SpecError, material_reference, resolve  # noqa: E402

RESULTS = "results"
MATERIALS = list(config["materials"])

MATERIAL_PATTERN = "|".join(re.escape(m) for m in MATERIALS)


def material_entry(material):
    """The config mapping of one material."""
    return config["materials"][material] or {}


def reference_mapping(material):
    try:
        return material_reference(material, material_entry(material), RESULTS)
    except SpecError as exc:
        raise WorkflowError(f"config: {exc}")


def reference_spec(material):
    try:
        return resolve(reference_mapping(material), workflow.basedir)
    except SpecError as exc:
        raise WorkflowError(f"config: material '{material}': {exc}")


def structure_inputs(wildcards):
    """Input files of `structures` (none for online sources)."""
    src = material_entry(wildcards.material).get("structure") or {}
    if "file" in src:
        return [src["file"]]
    if "mp_id" in src or "mdr_id" in src:
        return []
    return [str(p) for p in reference_spec(wildcards.material).inputs]


def reference_inputs(wildcards):
    """Input files of `references`; the DFT data, or the displacements for engines."""
    m = wildcards.material
    spec = reference_spec(m)
    if spec.synthetic:
        return {"displacements": f"{RESULTS}/displacements/{m}/phonopy_disp.yaml"}
    if "mdr_id" in (material_entry(m).get("structure") or {}) and not material_entry(m).get("reference"):
        return {"data": [f"{RESULTS}/structures/{m}/structure.json"]}
    return {"data": [str(p) for p in spec.inputs]}


def spec_json(material):
    """The material's entry as JSON, for the CLI's --spec (shell-quoted by :q)."""
    return json.dumps(material_entry(material), separators=(",", ":"))


def displacement_args(wildcards):
    entry = material_entry(wildcards.material)
    cfg = config["displacements"]
    args = [f"--distance {cfg['distance_A']}", f"--fc3-distance {cfg['fc3_distance_A']}",
            f"--symprec {cfg['symprec']}", f"--min-length {cfg['min_length_A']}"]
    if entry.get("supercell"):
        args.append("--supercell " + " ".join(str(int(x)) for x in entry["supercell"]))
    prim = entry.get("primitive_matrix", cfg["primitive_matrix"])
    prim = prim if isinstance(prim, str) else " ".join(str(x) for x in prim)
    args.append(f"--primitive '{prim}'")
    if entry.get("fc3"):
        args.append("--fc3")
    return " ".join(args)


def reference_args(wildcards):
    cfg = config["references"]
    mesh = cfg["mesh"]
    mesh = " ".join(str(x) for x in mesh) if isinstance(mesh, list) else str(mesh)
    args = ["--temperatures " + " ".join(str(t) for t in cfg["temperatures_K"]), f"--mesh {mesh}",
            f"--fc-calculator {cfg['fc_calculator']}", f"--symprec {cfg['symprec']}"]
    if cfg["use_nac"]:
        args.append("--nac")
    if reference_spec(wildcards.material).synthetic:
        args.append(f"--displacements {RESULTS}/displacements/{wildcards.material}")
    return " ".join(args)


def structure_args(wildcards):
    args = [f"--mdr-url '{config['sources']['mdr_url']}'"]
    if config.get("cache_dir"):
        args.append(f"--cache-dir '{config['cache_dir']}'")
    return " ".join(args)


def all_outputs():
    out = []
    for m in MATERIALS:
        out += [
            f"{RESULTS}/structures/{m}/structure.json",
            f"{RESULTS}/displacements/{m}/manifest.json",
            f"{RESULTS}/references/{m}/thermal.json",
        ]
    return out
