rule figures:
    """Every figure of phonft.plan's figure list, redrawn from results/: parity, improvement, bands,
    double wells, kappa, training curves."""
    input:
        **PLAN.figure_inputs(),
    output:
        figure_reports(),
    params:
        settings=settings_json("figures"),
        evaluate=lambda wc, input: str(Path(input.summaries[0]).parents[1]),
        finetune=lambda wc, input: str(Path(input.metrics[0]).parents[1]) if input.metrics else path("finetune_root"),
        out=lambda wc, output: str(Path(output[0]).parent),
    log:
        LAYOUT.log("figures"),
    benchmark:
        LAYOUT.benchmark("figures")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/plot.yaml"
    shell:
        "python -m phonft figures --settings {params.settings:q} --evaluate {params.evaluate:q} --finetune {params.finetune:q} "
        "--out {params.out:q} > {log:q} 2>&1"
