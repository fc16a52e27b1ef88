rule evaluate_mdr:
    """MDR phonon protocol of one model on one reference material: thermal.json and bands.json."""
    input:
        unpack(eval_model_inputs),
        reference=f"{RESULTS}/references/{{material}}/thermal.json",
    output:
        thermal=f"{RESULTS}/evaluate/{{model}}/{{material}}/thermal.json",
        bands=f"{RESULTS}/evaluate/{{model}}/{{material}}/bands.json",
    params:
        model=eval_model_args,
        refdir=lambda wc, input: str(Path(input.reference).parent),
        outdir=lambda wc, output: str(Path(output.thermal).parent),
        protocol=mdr_protocol_json(),
        device=finetune_device(),
    log:
        "logs/evaluate/{model}/{material}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{model}}/{{material}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/train.yaml"
    shell:
        "phonft evaluate mdr {params.model} --reference {params.refdir} --material {wildcards.material} "
        "--out {params.outdir} --protocol {params.protocol:q} --device {params.device} > {log} 2>&1"


rule evaluate_double_well:
    """Energy along the most unstable DFT mode: the model's double well against the DFT harmonic model."""
    input:
        unpack(eval_model_inputs),
        reference=f"{RESULTS}/references/{{material}}/thermal.json",
    output:
        well=f"{RESULTS}/evaluate/{{model}}/{{material}}/double_well.json",
    params:
        model=eval_model_args,
        refdir=lambda wc, input: str(Path(input.reference).parent),
        protocol=mdr_protocol_json(),
        device=finetune_device(),
    log:
        "logs/evaluate/{model}/{material}-double-well.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
    conda:
        "../../envs/train.yaml"
    shell:
        "phonft evaluate double-well {params.model} --reference {params.refdir} --material {wildcards.material} "
        "--out {output.well} --protocol {params.protocol:q} --device {params.device} > {log} 2>&1"


rule evaluate_kappa_reference:
    """DFT per-mode kappa of a vendored fc3 reference, under the phonondb-v1 conductivity protocol."""
    input:
        reference=f"{RESULTS}/references/{{material}}/thermal.json",
    output:
        kappa=f"{KAPPA_REFERENCE_DIR}/{{material}}.json",
    params:
        refdir=lambda wc, input: str(Path(input.reference).parent),
        mesh=" ".join(str(n) for n in KAPPA.get("mesh", [11, 11, 11])),
    log:
        "logs/evaluate/kappa-reference/{material}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/kappa-reference/{{material}}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../../envs/phonons.yaml"
    shell:
        "phonft evaluate kappa-reference --reference {params.refdir} --material {wildcards.material} "
        "--mesh {params.mesh} --out {output.kappa} > {log} 2>&1"


rule evaluate_kappa:
    """A model's kappa on a vendored fc3 material: relax (FixSymmetry), fc2/fc3 at 0.03 Å, phono3py."""
    input:
        unpack(eval_model_inputs),
        reference=f"{RESULTS}/references/{{material}}/thermal.json",
    output:
        kappa=f"{RESULTS}/evaluate/{{model}}/kappa/{{material}}.json",
    params:
        model=eval_model_args,
        refdir=lambda wc, input: str(Path(input.reference).parent),
        mesh=" ".join(str(n) for n in KAPPA.get("mesh", [11, 11, 11])),
        device=finetune_device(),
    log:
        "logs/evaluate/{model}/kappa-{material}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{model}}/kappa-{{material}}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        "../../envs/train.yaml"
    shell:
        "phonft evaluate kappa {params.model} --reference {params.refdir} --material {wildcards.material} "
        "--mesh {params.mesh} --out {output.kappa} --device {params.device} > {log} 2>&1"


rule evaluate_kappa103:
    """A model's kappa on one kappa103 structure (phonondb-v1: fc2/fc3 supercells and q-mesh from the data)."""
    input:
        unpack(eval_model_inputs),
    output:
        kappa=f"{RESULTS}/evaluate/{{model}}/kappa103/{{mp_id}}.json",
    params:
        model=eval_model_args,
        data=f"--data-dir '{KAPPA103['data_dir']}'" if KAPPA103.get("data_dir") else "",
        cache=cache_arg(),
        device=finetune_device(),
    log:
        "logs/evaluate/{model}/kappa103-{mp_id}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{model}}/kappa103-{{mp_id}}.tsv"
    threads: 2
    resources:
        mem_mb=16000,
        runtime=240,
    conda:
        "../../envs/train.yaml"
    shell:
        "phonft evaluate kappa103 {params.model} --id {wildcards.mp_id} {params.data} {params.cache} "
        "--out {output.kappa} --device {params.device} > {log} 2>&1"


rule evaluate_summary:
    """A model's mdr.csv and summary.json: MAEs, instability F1, band MAE, kappa SRME, gain over its base."""
    input:
        unpack(eval_summary_inputs),
    output:
        csv=f"{RESULTS}/evaluate/{{model}}/mdr.csv",
        summary=f"{RESULTS}/evaluate/{{model}}/summary.json",
    params:
        model=lambda wc: EVAL_MODELS[wc.model]["spec"],
        args=eval_summary_args,
        refs=f"{RESULTS}/references",
        model_dir=lambda wc, output: str(Path(output.summary).parent),
        protocol=mdr_protocol_json(),
    log:
        "logs/evaluate/{model}/summary.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    conda:
        "../../envs/phonons.yaml"
    shell:
        "phonft evaluate summary --name {wildcards.model} --model {params.model} --model-dir {params.model_dir} "
        "--references {params.refs} {params.args} --protocol {params.protocol:q} > {log} 2>&1"
