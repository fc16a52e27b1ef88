rule finetune_split:
    """Seeded train / validation / test split of a run's materials."""
    output:
        split=f"{RESULTS}/finetune/{{run}}/split.json",
    params:
        spec=lambda wc: run_spec_json(wc.run),
    log:
        "logs/finetune/{run}/split.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/train.yaml"
    shell:
        "phonft finetune split --run {wildcards.run} --run-spec {params.spec:q} --out {output.split} > {log} 2>&1"


rule finetune_replay:
    """Replay set for co-training: upstream data, or the offline pseudo-label set, with a manifest."""
    input:
        split=f"{RESULTS}/finetune/{{run}}/split.json",
        references=replay_references,
    output:
        extxyz=f"{RESULTS}/finetune/{{run}}/replay/replay.extxyz",
        manifest=f"{RESULTS}/finetune/{{run}}/replay/manifest.json",
    params:
        spec=lambda wc: run_spec_json(wc.run),
        refs=f"{RESULTS}/references",
        outdir=lambda wc, output: str(Path(output.manifest).parent),
        cache=cache_arg(),
        device=finetune_device(),
        materials=lambda wc: " ".join(replay_materials(wc.run)),
    log:
        "logs/finetune/{run}/replay.log",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/train.yaml"
    shell:
        "phonft finetune replay --run {wildcards.run} --run-spec {params.spec:q} --split {input.split} "
        "--references {params.refs} --replay-materials {params.materials} --out {params.outdir} {params.cache} "
        "--device {params.device} > {log} 2>&1"


rule finetune:
    """Fine-tune the run's base model with the PFT phonon loss and replay co-training."""
    input:
        split=f"{RESULTS}/finetune/{{run}}/split.json",
        references=lambda wc: run_references(wc.run, ("train", "val")),
        replay=f"{RESULTS}/finetune/{{run}}/replay/manifest.json",
    output:
        model=f"{RESULTS}/finetune/{{run}}/model.pt",
        train=f"{RESULTS}/finetune/{{run}}/train.json",
        metrics=f"{RESULTS}/finetune/{{run}}/metrics.csv",
    params:
        spec=lambda wc: run_spec_json(wc.run),
        refs=f"{RESULTS}/references",
        outdir=lambda wc, output: str(Path(output.train).parent),
        replay=lambda wc, input: str(Path(input.replay).parent),
        device=finetune_device(),
    log:
        "logs/finetune/{run}/train.log",
    benchmark:
        f"{RESULTS}/benchmarks/finetune/{{run}}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
    conda:
        "../../envs/train.yaml"
    shell:
        # --resume: a killed job continues from its last epoch checkpoint.
        "phonft finetune train --run {wildcards.run} --run-spec {params.spec:q} --split {input.split} "
        "--references {params.refs} --replay {params.replay} --out {params.outdir} "
        "--device {params.device} --resume > {log} 2>&1"


rule finetune_thermal:
    """thermal.json of a held-out material with the base or the fine-tuned model (float64)."""
    input:
        unpack(thermal_model_inputs),
        reference=f"{RESULTS}/references/{{material}}/thermal.json",
    output:
        thermal=f"{RESULTS}/finetune/{{run}}/thermal/{{variant}}/{{material}}/thermal.json",
    params:
        model=thermal_model_args,
        refdir=lambda wc, input: str(Path(input.reference).parent),
        protocol=reference_protocol_json(),
        device=finetune_device(),
    log:
        "logs/finetune/{run}/thermal-{variant}-{material}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/train.yaml"
    shell:
        "phonft finetune thermal {params.model} --reference {params.refdir} --material {wildcards.material} "
        "--protocol {params.protocol:q} --out {output.thermal} --device {params.device} > {log} 2>&1"
