# The workflow's side of the planner (phonft.plan, stdlib only: parsing imports no numpy,
# reads no data and downloads nothing): the plan of this config, the wildcard patterns,
# and the input functions and settings that the rules call with their wildcards.

import json
import re
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from phonft.errors import ConfigError  # noqa: E402
from phonft.plan import JOB_GROUPS, VARIANTS, Plan, job_device, rule_gpus, settings, train_launcher  # noqa: E402

try:
    PLAN = Plan(config, base_dir=workflow.basedir)
    MODELS = PLAN.models
except ConfigError as exc:
    raise WorkflowError(f"config: {exc}")

LAYOUT = PLAN.layout
path = LAYOUT.path


def pattern(names):
    """A wildcard constraint matching exactly ``names`` (a never-matching one when empty)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


MATERIAL_PATTERN = pattern(PLAN.materials)
RUN_PATTERN = pattern(PLAN.runs)
MODEL_PATTERN = pattern(MODELS)
VARIANT_PATTERN = pattern(VARIANTS)


def checked(function, *args):
    """Call a planner function; a config error becomes Snakemake's one-line WorkflowError."""
    try:
        return function(*args)
    except ConfigError as exc:
        raise WorkflowError(f"config: {exc}")


def settings_json(action, **ids):
    """The rule's --settings: its config slice as compact JSON (shell-quoted by :q, like every field)."""
    return json.dumps(checked(lambda: settings(PLAN, action, **ids)), separators=(",", ":"))


# Each job runs the repository's package, `python -m phonft`, with src/ first on PYTHONPATH. The
# same code runs in a plain venv (where phonft is also installed) and in the --sdm conda
# environments of envs/ (where it is not). Snakemake's own prefix for bash (strict mode) is kept.
shell.prefix(f"set -euo pipefail; export PYTHONPATH={shlex.quote(str(Path(workflow.basedir) / 'src'))}"
             '${{PYTHONPATH:+:$PYTHONPATH}}; ')

DEVICE = config["finetune"]["device"]
# GPUs asked by the model-running rules (phonft.plan.resources), 1 for device cuda, else 0; a GPU
# profile raises it with set-resources. Local runs limit them only under --resources gpu=N.
GPUS = rule_gpus(DEVICE)


def device_arg(name):
    """A --device param: finetune.device, checked against the GPUs of the job (of the rule named)."""
    return lambda wildcards, resources: checked(job_device, DEVICE, resources.gpu, name)


# Options that may be absent are lists of words: a shell line's {params.x:q} quotes each word.
CACHE_ARG = ["--cache-dir", config["cache_dir"]] if config["cache_dir"] else []


def kappa103_ids():
    """The kappa103 ids to score: from the config, or from the evaluate_kappa103_ids checkpoint."""
    ids = PLAN.kappa103_ids
    if ids is None:
        with open(checkpoints.evaluate_kappa103_ids.get().output.ids) as f:
            ids = json.load(f)["ids"]
    return ids


# ------------------------------------------------------------------ input functions


def structure_inputs(wildcards):
    return checked(PLAN.structure_inputs, wildcards.material)


def reference_inputs(wildcards):
    return checked(PLAN.reference_inputs, wildcards.material)


def augment_inputs(wildcards):
    return checked(PLAN.augment_inputs, wildcards.material)


def displacements_dir(wildcards):
    """--displacements for engine references (they compute forces on these supercells)."""
    if checked(PLAN.reference_spec, wildcards.material).synthetic:
        return ["--displacements", path("displacements_dir", material=wildcards.material)]
    return []


def train_references(wildcards):
    return PLAN.run_references(wildcards.run, ("train", "val"))


def replay_references(wildcards):
    return PLAN.replay_references(wildcards.run)


def heldout_inputs(wildcards):
    return PLAN.heldout_inputs(wildcards.run, wildcards.variant, wildcards.material)


def model_inputs(wildcards):
    return PLAN.model_inputs(wildcards.model)


def model_spec(wildcards):
    return MODELS[wildcards.model].spec


def base_dir_arg(wildcards):
    """--base-dir of a fine-tuned model's summary: its base model's evaluate folder."""
    base = MODELS[wildcards.model].base
    return ["--base-dir", path("model_dir", model=base)] if base else []


def summary_inputs(wildcards):
    return PLAN.summary_inputs(wildcards.model, kappa103_ids())


def figure_reports():
    """The figures as report() outputs, each with its caption and category."""
    out = []
    for fig in PLAN.figures():
        caption, category = fig.caption
        labels = {"figure": fig.kind.replace("_", " ")}
        if fig.subject is not None:
            labels["subject"] = fig.subject
        out.append(report(f"{path('figures_dir')}/{fig.relpath}", caption=f"../report/{caption}",
                          category=category, labels=labels))
    return out
