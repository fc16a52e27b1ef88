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
    return out + finetune_outputs()


# --------------------------------------------------------------------------- finetune

from phonft.finetune.layout import MODEL_FILE, VARIANTS  # noqa: E402
from phonft.finetune.split import SplitError, run_split  # noqa: E402

RUNS = dict((config.get("finetune") or {}).get("runs") or {})
RUN_PATTERN = "|".join(re.escape(r) for r in RUNS) or "no-runs"


def run_entry(run):
    entry = RUNS[run]
    unknown = [m for m in entry["materials"] if m not in config["materials"]]
    if unknown:
        raise WorkflowError(f"config: finetune run '{run}' names unknown materials {unknown}")
    return entry


def run_split_of(run):
    try:
        return run_split(run_entry(run))
    except SplitError as exc:
        raise WorkflowError(f"config: finetune run '{run}': {exc}")


def run_spec_json(run):
    """The run's entry as JSON, for the CLI's --run-spec."""
    return json.dumps(run_entry(run), separators=(",", ":"))


def run_references(run, which=("train", "val")):
    """thermal.json of the run's materials in the given parts of the split."""
    split = run_split_of(run)
    names = [m for part in which for m in getattr(split, part)]
    return [f"{RESULTS}/references/{m}/thermal.json" for m in names]


def finetuned_model(run):
    return f"{RESULTS}/finetune/{run}/{MODEL_FILE}"


def thermal_model_inputs(wildcards):
    """The model file a held-out thermal.json needs (none for the base model)."""
    if wildcards.variant == "finetuned":
        return {"model": finetuned_model(wildcards.run)}
    return {}


def thermal_model_args(wildcards, input):
    entry = run_entry(wildcards.run)
    spec = input.model if wildcards.variant == "finetuned" else entry.get("base_model", "chgnet")
    args = [f"--model {spec}"]
    if entry.get("model_options"):
        options = json.dumps(entry["model_options"], separators=(",", ":"))
        args.append(f"--model-options '{options}'")
    return " ".join(args)


def reference_protocol_json():
    cfg = config["references"]
    fields = {"temperatures_K": cfg["temperatures_K"], "mesh": cfg["mesh"], "fc_calculator": cfg["fc_calculator"],
              "use_nac": cfg["use_nac"], "symprec": cfg["symprec"]}
    return json.dumps(fields, separators=(",", ":"))


def finetune_device():
    return (config.get("finetune") or {}).get("device", "auto")


def cache_arg():
    return f"--cache-dir '{config['cache_dir']}'" if config.get("cache_dir") else ""


def finetune_outputs():
    out = []
    for run in RUNS:
        out += [finetuned_model(run), f"{RESULTS}/finetune/{run}/train.json"]
        for m in run_split_of(run).test:
            out += [f"{RESULTS}/finetune/{run}/thermal/{v}/{m}/thermal.json" for v in VARIANTS]
    return out
