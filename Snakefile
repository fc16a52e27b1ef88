# phonft: crystal structures -> DFT phonon references -> fine-tuned MLIPs -> benchmarks.
# Thin by design: the physics lives in the `phonft` package, each rule calls its CLI.

from snakemake.utils import min_version, validate

min_version("8.0")


configfile: "config/config.yaml"


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
include: "workflow/rules/finetune.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/figures.smk"


rule all:
    default_target: True
    input:
        PLAN.targets(),
