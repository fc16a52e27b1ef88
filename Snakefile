# phonft: crystal structures -> DFT phonon references -> fine-tuned MLIPs -> benchmarks.
# Thin by design: the physics lives in the `phonft` package, each rule calls its CLI.

import os

from snakemake.utils import min_version, validate

min_version("8.0")


# The demo config is read only when no --configfile is given: a config file of your own replaces
# it rather than being merged onto it (so its materials and runs are the only ones planned).
# To extend the demo, give both: --configfile config/config.yaml config/kappa103.yaml.
# --config KEY=VALUE overrides apply either way.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


if "materials" not in config and workflow.overwrite_configfiles:
    GIVEN = " ".join(os.path.relpath(f) for f in workflow.overwrite_configfiles)
    raise WorkflowError(
        f"config: {GIVEN} names no 'materials'. A --configfile replaces config/config.yaml (the demo) "
        f"instead of extending it; to add to the demo, give both: --configfile config/config.yaml {GIVEN}"
    )


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


wildcard_constraints:
    material=MATERIAL_PATTERN,
    run=RUN_PATTERN,
    variant=VARIANT_PATTERN,
    model=MODEL_PATTERN,
    mp_id=r"[A-Za-z0-9_.-]+",


include: "workflow/rules/structures.smk"
include: "workflow/rules/displacements.smk"
include: "workflow/rules/references.smk"
include: "workflow/rules/augment.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/figures.smk"


rule all:
    default_target: True
    input:
        PLAN.targets(),
