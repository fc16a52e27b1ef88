rule figures:
    """Every figure, redrawn from results/: parity, improvement, bands, double wells, kappa, training curves."""
    input:
        summaries=[f"{RESULTS}/evaluate/{m}/summary.json" for m in EVAL_MODELS],
        wells=[f"{RESULTS}/evaluate/{m}/{w}/double_well.json" for m in EVAL_MODELS for w in EVAL.get("double_well", [])],
        metrics=[f"{RESULTS}/finetune/{r}/metrics.csv" for r in RUNS],
    output:
        figure_reports(),
    params:
        models=" ".join(EVAL_MODELS),
        materials=" ".join(EVAL_MATERIALS),
        wells=" ".join(EVAL.get("double_well", [])),
        runs=" ".join(RUNS),
        evaluate=lambda wc, input: str(Path(input.summaries[0]).parents[1]),
        finetune=lambda wc, input: str(Path(input.metrics[0]).parents[1]) if input.metrics else "none",
        out=lambda wc, output: str(Path(output[0]).parent),
        kappa="--kappa " if KAPPA.get("materials") or KAPPA103.get("enabled") else "",
    log:
        "logs/figures.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/plot.yaml"
    shell:
        "phonft figures --evaluate {params.evaluate} --models {params.models} --materials {params.materials} "
        "--double-well {params.wells} --runs {params.runs} --finetune {params.finetune} {params.kappa}"
        "--out {params.out} > {log} 2>&1"
