rule finetune_split:
    """Seeded train / validation / test split of a run's materials."""
    output:
        split=path("split"),
    params:
        settings=lambda wc: settings_json("finetune_split", run=wc.run),
    log:
        LAYOUT.log("finetune_split"),
    benchmark:
        LAYOUT.benchmark("finetune_split")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m phonft finetune split --run {wildcards.run:q} --settings {params.settings:q} --out {output.split:q} > {log:q} 2>&1"


rule finetune_replay:
    """Replay set for co-training: upstream data, or the offline pseudo-label set, with a manifest."""
    input:
        split=path("split"),
        references=replay_references,
        base_model=lambda wc: PLAN.base_model_files(wc.run),
    output:
        extxyz=path("replay"),
        manifest=path("replay_manifest"),
    params:
        settings=lambda wc: settings_json("finetune_replay", run=wc.run),
        refs=path("references_root"),
        outdir=lambda wc, output: str(Path(output.manifest).parent),
        cache=CACHE_ARG,
        device=device_arg("finetune_replay"),
    log:
        LAYOUT.log("finetune_replay"),
    benchmark:
        LAYOUT.benchmark("finetune_replay")
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=GPUS,
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m phonft finetune replay --run {wildcards.run:q} --settings {params.settings:q} --split {input.split:q} "
        "--references {params.refs:q} --out {params.outdir:q} {params.cache:q} --device {params.device:q} --threads {threads:q} > {log:q} 2>&1"


rule finetune_train:
    """Fine-tune the run's base model (objective pft, rattled or both) with replay co-training; a NEP with
    gnep_data is first trained by GNEP."""
    input:
        split=path("split"),
        references=train_references,
        replay=path("replay_manifest"),
        augment=lambda wc: PLAN.train_augment(wc.run),
        gnep_data=lambda wc: PLAN.train_gnep_files(wc.run),
        base_model=lambda wc: PLAN.base_model_files(wc.run),
    output:
        model=path("model"),
        train=path("train"),
        metrics=path("metrics"),
    params:
        settings=lambda wc: settings_json("finetune_train", run=wc.run),
        refs=path("references_root"),
        outdir=lambda wc, output: str(Path(output.train).parent),
        replay=lambda wc, input: str(Path(input.replay).parent),
        augment=lambda wc: PLAN.augment_args(wc.run),
        device=device_arg("finetune_train"),
        # phonft in one process, or under torchrun with one data-parallel rank per GPU when gpu > 1.
        launch=lambda wildcards, resources: train_launcher(resources.gpu),
    log:
        LAYOUT.log("finetune_train"),
    benchmark:
        LAYOUT.benchmark("finetune_train")
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=GPUS,
    conda:
        "../../envs/train.yaml"
    shell:
        # --resume: a killed job continues from its last epoch checkpoint.
        "{params.launch:q} finetune train --run {wildcards.run:q} --settings {params.settings:q} --split {input.split:q} "
        "--references {params.refs:q} --replay {params.replay:q} {params.augment:q} --out {params.outdir:q} "
        "--device {params.device:q} --resume --threads {threads:q} > {log:q} 2>&1"


rule finetune_heldout:
    """thermal.json and Hessian MAE of a held-out material under the base or the fine-tuned model (float64)."""
    input:
        unpack(heldout_inputs),
    output:
        thermal=path("heldout"),
    params:
        settings=lambda wc: settings_json("finetune_heldout", run=wc.run),
        model=lambda wc: PLAN.heldout_model(wc.run, wc.variant),
        refdir=lambda wc, input: str(Path(input.reference).parent),
        device=device_arg("finetune_heldout"),
    log:
        LAYOUT.log("finetune_heldout"),
    benchmark:
        LAYOUT.benchmark("finetune_heldout")
    group:
        JOB_GROUPS["finetune_heldout"]
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=GPUS,
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m phonft finetune heldout --model {params.model:q} --reference {params.refdir:q} --material {wildcards.material:q} "
        "--settings {params.settings:q} --out {output.thermal:q} --device {params.device:q} --threads {threads:q} > {log:q} 2>&1"
