# Shared helpers: material lookup, reference inputs and CLI arguments.
# Only the stdlib-only `phonft.specs` is imported here, so that parsing the
# workflow stays fast and needs no phonopy in the environment that runs snakemake.

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from phonft.specs import SpecError, material_reference, resolve  # noqa: E402

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
    return out + finetune_outputs() + evaluate_outputs() + figure_outputs()


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


def replay_materials(run):
    """Configured materials the run's disjoint pseudo-label replay may use.

    ``replay.materials`` when given; otherwise every material that the run neither trains
    on nor is scored on by `evaluate` (replaying a scored material would pin it to the
    base model). Compositions of the run's materials are dropped later, in the package.
    """
    chosen = (run_entry(run).get("replay") or {}).get("materials")
    if chosen is not None:
        return list(chosen)
    scored = set(EVAL_MATERIALS) | set(EVAL.get("double_well", [])) | set(KAPPA.get("materials", []))
    return [m for m in MATERIALS if m not in run_entry(run)["materials"] and m not in scored]


def replay_references(wildcards):
    """References the replay set reads: every material of the run, plus its replay materials."""
    others = [f"{RESULTS}/references/{m}/thermal.json" for m in replay_materials(wildcards.run)]
    return run_references(wildcards.run, ("train", "val", "test")) + others


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
    return f"--model {spec} {model_options_arg(entry.get('model_options'))}".strip()


def model_options_arg(options):
    """--model-options with a code-built model's options as JSON ('' when there are none)."""
    return f"--model-options '{json.dumps(options, separators=(',', ':'))}'" if options else ""


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


# --------------------------------------------------------------------------- evaluate

EVAL = config.get("evaluate") or {}
KAPPA = EVAL.get("kappa") or {}
KAPPA103 = KAPPA.get("kappa103") or {}
KAPPA_REFERENCE_DIR = f"{RESULTS}/evaluate/kappa-reference"


def model_name(spec):
    """A folder-safe name of a model spec: 'mace-mp:medium-0b3' -> 'mace-mp-medium-0b3'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", spec).strip("-")


def _evaluated_models():
    models = {}
    for run, entry in RUNS.items():
        spec = entry.get("base_model", "chgnet")
        base = model_name(spec)
        models.setdefault(base, {"spec": spec, "options": entry.get("model_options"), "run": run})
        models[run] = {"spec": finetuned_model(run), "options": entry.get("model_options"), "run": run,
                       "base": base}
    for name, spec in (EVAL.get("models") or {}).items():
        models[name] = {"spec": spec, "options": None, "run": None}
    clash = [r for r in RUNS if r in models and models[r].get("base") is None]
    if clash:
        raise WorkflowError(f"config: finetune run names {clash} clash with a base or extra model name")
    return models


EVAL_MODELS = _evaluated_models()
MODEL_PATTERN = "|".join(re.escape(m) for m in EVAL_MODELS) or "no-models"


def _evaluated_materials():
    names = list(EVAL.get("materials") or [])
    if not EVAL.get("materials"):
        for run in RUNS:
            names += [m for m in run_split_of(run).test if m not in names]
    names += [m for m in EVAL.get("extra_materials", []) if m not in names]
    unknown = [m for m in names + list(EVAL.get("double_well", [])) + list(KAPPA.get("materials", []))
               if m not in config["materials"]]
    if unknown:
        raise WorkflowError(f"config: evaluate names unknown materials {unknown}")
    return names


EVAL_MATERIALS = _evaluated_materials()


def eval_splits(model):
    """material -> its role (train/val/test/unseen) in the run behind ``model``."""
    run = EVAL_MODELS[model].get("run")
    if run is None:
        return {m: "unseen" for m in EVAL_MATERIALS}
    split = run_split_of(run)
    roles = {m: part for part in ("train", "val", "test") for m in getattr(split, part)}
    return {m: roles.get(m, "unseen") for m in EVAL_MATERIALS}


def eval_model_inputs(wildcards):
    """The fine-tuned model file a rule needs (none for base and extra models)."""
    spec = EVAL_MODELS[wildcards.model]["spec"]
    return {"model": spec} if spec.startswith(f"{RESULTS}/") else {}


def eval_model_args(wildcards):
    info = EVAL_MODELS[wildcards.model]
    return f"--model {info['spec']} --name {wildcards.model} {model_options_arg(info.get('options'))}".strip()


def mdr_protocol_json():
    return json.dumps(EVAL.get("protocol") or {}, separators=(",", ":"))


def kappa103_tasks():
    """Ids of the kappa103 structures to score (read from the data's id list at parse time)."""
    if not KAPPA103.get("enabled"):
        return []
    from phonft.evaluate.kappa import load_kappa103

    tasks = load_kappa103(KAPPA103.get("data_dir"), KAPPA103.get("ids") or None, KAPPA103.get("first_n"),
                          config.get("cache_dir"))
    return [t.id for t in tasks]


def eval_summary_inputs(wildcards):
    model = wildcards.model
    inputs = {
        "thermal": [f"{RESULTS}/evaluate/{model}/{m}/thermal.json" for m in EVAL_MATERIALS],
        "bands": [f"{RESULTS}/evaluate/{model}/{m}/bands.json" for m in EVAL_MATERIALS],
        "kappa": [f"{RESULTS}/evaluate/{model}/kappa/{m}.json" for m in KAPPA.get("materials", [])]
        + [f"{RESULTS}/evaluate/{model}/kappa103/{i}.json" for i in kappa103_tasks()],
        "kappa_reference": [f"{KAPPA_REFERENCE_DIR}/{m}.json" for m in KAPPA.get("materials", [])],
    }
    base = EVAL_MODELS[model].get("base")
    if base:
        inputs["base"] = [f"{RESULTS}/evaluate/{base}/{m}/thermal.json" for m in EVAL_MATERIALS]
        inputs["base_kappa"] = [f"{RESULTS}/evaluate/{base}/kappa/{m}.json" for m in KAPPA.get("materials", [])]
    return inputs


def eval_summary_args(wildcards):
    model = wildcards.model
    args = [f"--materials {' '.join(EVAL_MATERIALS)}",
            f"--splits '{json.dumps(eval_splits(model), separators=(',', ':'))}'"]
    base = EVAL_MODELS[model].get("base")
    if base:
        args += [f"--base-dir {RESULTS}/evaluate/{base}", f"--base-name {base}"]
    if KAPPA.get("materials") or KAPPA103.get("enabled"):
        args += [f"--kappa-dir {RESULTS}/evaluate/{model}", f"--kappa-reference {KAPPA_REFERENCE_DIR}"]
        if KAPPA.get("materials"):
            args.append(f"--kappa-materials {' '.join(KAPPA['materials'])}")
        if KAPPA103.get("enabled"):
            args.append("--kappa103" + (f" --kappa103-data '{KAPPA103['data_dir']}'" if KAPPA103.get("data_dir") else ""))
            args.append(cache_arg())
        if base:
            args.append(f"--base-kappa-dir {RESULTS}/evaluate/{base}")
    return " ".join(args)


def evaluate_outputs():
    out = []
    for model in EVAL_MODELS:
        out += [f"{RESULTS}/evaluate/{model}/summary.json", f"{RESULTS}/evaluate/{model}/mdr.csv"]
    return out


# --------------------------------------------------------------------------- figures

FIGURES = f"{RESULTS}/figures"


def figure_outputs():
    """Every figure the `figures` rule draws."""
    if not EVAL_MODELS:
        return []
    out = [f"{FIGURES}/mdr_parity.png"]
    if any(info.get("base") for info in EVAL_MODELS.values()):
        out.append(f"{FIGURES}/improvement.png")
    out += [f"{FIGURES}/bands/{m}.png" for m in EVAL_MATERIALS]
    out += [f"{FIGURES}/double_well/{m}.png" for m in EVAL.get("double_well", [])]
    out += [f"{FIGURES}/training_curve/{r}.png" for r in RUNS]
    if KAPPA.get("materials") or KAPPA103.get("enabled"):
        out.append(f"{FIGURES}/kappa_parity.png")
    return out


FIGURE_CAPTIONS = {"mdr_parity": ("mdr_parity.rst", "Evaluation"), "improvement": ("improvement.rst", "Evaluation"),
                   "kappa_parity": ("kappa_parity.rst", "Evaluation"), "bands": ("bands.rst", "Band structures"),
                   "double_well": ("double_well.rst", "Unstable modes"),
                   "training_curve": ("training_curve.rst", "Fine-tuning")}


def figure_reports():
    """The figures as report() outputs, each with its caption and category."""
    out = []
    for path in figure_outputs():
        rel = Path(path).relative_to(FIGURES)
        kind = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        caption, category = FIGURE_CAPTIONS[kind]
        labels = {"figure": kind.replace("_", " ")}
        if len(rel.parts) > 1:
            labels["subject"] = rel.stem
        out.append(report(path, caption=f"../report/{caption}", category=category, labels=labels))
    return out
