rule evaluate_mdr:
    """MDR phonon protocol of one model on one reference material: thermal.json and bands.json, and
    the same phonons in phonopy's formats (phonopy_params.yaml, fc2.hdf5, band.yaml, total_dos.dat)."""
    input:
        unpack(model_inputs),
        reference=path("reference"),
    output:
        thermal=path("mdr"),
        bands=path("bands"),
        params=path("mdr_params"),
        fc2=path("mdr_fc2"),
        band_yaml=path("mdr_band_yaml"),
        dos=path("mdr_dos"),
    params:
        model=model_spec,
        settings=lambda wc: settings_json("evaluate_mdr", model=wc.model),
        refdir=lambda wc, input: str(Path(input.reference).parent),
        outdir=lambda wc, output: str(Path(output.thermal).parent),
        device=device_arg("evaluate_mdr"),
    log:
        LAYOUT.log("evaluate_mdr"),
    benchmark:
        LAYOUT.benchmark("evaluate_mdr")
    group:
        JOB_GROUPS["evaluate_mdr"]
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=GPUS,
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m phonft evaluate mdr --model {params.model:q} --name {wildcards.model:q} --reference {params.refdir:q} "
        "--material {wildcards.material:q} --settings {params.settings:q} --out {params.outdir:q} "
        "--device {params.device:q} --threads {threads:q} > {log:q} 2>&1"


rule evaluate_double_well:
    """Energy along the most unstable DFT mode: the model's double well against the DFT harmonic model."""
    input:
        unpack(model_inputs),
        reference=path("reference"),
    output:
        well=path("double_well"),
    params:
        model=model_spec,
        settings=lambda wc: settings_json("evaluate_double_well", model=wc.model),
        refdir=lambda wc, input: str(Path(input.reference).parent),
        device=device_arg("evaluate_double_well"),
    log:
        LAYOUT.log("evaluate_double_well"),
    benchmark:
        LAYOUT.benchmark("evaluate_double_well")
    group:
        JOB_GROUPS["evaluate_double_well"]
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
        gpu=GPUS,
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m phonft evaluate double-well --model {params.model:q} --name {wildcards.model:q} --reference {params.refdir:q} "
        "--material {wildcards.material:q} --settings {params.settings:q} --out {output.well:q} "
        "--device {params.device:q} --threads {threads:q} > {log:q} 2>&1"


rule evaluate_kappa_reference:
    """DFT per-mode kappa of a vendored fc3 reference, beside it, under the phonondb-v1 conductivity protocol."""
    input:
        reference=path("reference"),
    output:
        kappa=path("reference_kappa"),
    params:
        settings=settings_json("evaluate_kappa_reference"),
        refdir=lambda wc, input: str(Path(input.reference).parent),
    log:
        LAYOUT.log("evaluate_kappa_reference"),
    benchmark:
        LAYOUT.benchmark("evaluate_kappa_reference")
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../../envs/phonons.yaml"
    shell:
        "python -m phonft evaluate kappa-reference --reference {params.refdir:q} --material {wildcards.material:q} "
        "--settings {params.settings:q} --out {output.kappa:q} > {log:q} 2>&1"


rule evaluate_kappa:
    """A model's kappa on a vendored fc3 material: relax (FixSymmetry), fc2/fc3 at 0.03 Å, phono3py."""
    input:
        unpack(model_inputs),
        reference=path("reference"),
    output:
        kappa=path("kappa"),
    params:
        model=model_spec,
        settings=lambda wc: settings_json("evaluate_kappa", model=wc.model),
        refdir=lambda wc, input: str(Path(input.reference).parent),
        device=device_arg("evaluate_kappa"),
    log:
        LAYOUT.log("evaluate_kappa"),
    benchmark:
        LAYOUT.benchmark("evaluate_kappa")
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=GPUS,
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m phonft evaluate kappa --model {params.model:q} --name {wildcards.model:q} --reference {params.refdir:q} "
        "--material {wildcards.material:q} --settings {params.settings:q} --out {output.kappa:q} "
        "--device {params.device:q} --threads {threads:q} > {log:q} 2>&1"


checkpoint evaluate_kappa103_ids:
    """The kappa103 ids to score, read from the data (downloaded once when absent), when the config lists none."""
    output:
        ids=path("kappa103_ids"),
    params:
        settings=settings_json("evaluate_kappa103_ids"),
        cache=CACHE_ARG,
    log:
        LAYOUT.log("evaluate_kappa103_ids"),
    benchmark:
        LAYOUT.benchmark("evaluate_kappa103_ids")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/phonons.yaml"
    shell:
        "python -m phonft evaluate kappa103-ids --settings {params.settings:q} {params.cache:q} --out {output.ids:q} > {log:q} 2>&1"


rule evaluate_kappa103:
    """A model's kappa on one kappa103 structure (phonondb-v1: fc2/fc3 supercells and q-mesh from the data)."""
    input:
        unpack(model_inputs),
    output:
        kappa=path("kappa103"),
    params:
        model=model_spec,
        settings=lambda wc: settings_json("evaluate_kappa103", model=wc.model),
        cache=CACHE_ARG,
        device=device_arg("evaluate_kappa103"),
    log:
        LAYOUT.log("evaluate_kappa103"),
    benchmark:
        LAYOUT.benchmark("evaluate_kappa103")
    threads: 2
    resources:
        mem_mb=16000,
        runtime=240,
        gpu=GPUS,
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m phonft evaluate kappa103 --model {params.model:q} --name {wildcards.model:q} --id {wildcards.mp_id:q} "
        "--settings {params.settings:q} {params.cache:q} --out {output.kappa:q} --device {params.device:q} --threads {threads:q} > {log:q} 2>&1"


rule evaluate_summary:
    """A model's mdr.csv and summary.json: MAEs, instability F1, band MAE, kappa SRME, gain over its base."""
    input:
        unpack(summary_inputs),
    output:
        csv=path("mdr_csv"),
        summary=path("summary"),
        mbd=path("kappa_mbd"),
    params:
        model=model_spec,
        settings=lambda wc: settings_json("evaluate_summary", model=wc.model),
        refs=path("references_root"),
        model_dir=lambda wc, output: str(Path(output.summary).parent),
        base_dir=base_dir_arg,
        cache=CACHE_ARG,
    log:
        LAYOUT.log("evaluate_summary"),
    benchmark:
        LAYOUT.benchmark("evaluate_summary")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    conda:
        "../../envs/phonons.yaml"
    shell:
        "python -m phonft evaluate summary --name {wildcards.model:q} --model {params.model:q} --model-dir {params.model_dir:q} "
        "--references {params.refs:q} {params.base_dir:q} --settings {params.settings:q} {params.cache:q} --threads {threads:q} > {log:q} 2>&1"


rule evaluate_compare:
    """Every scored model side by side, results/evaluate/strategies.csv: held-out MAEs, instability F1,
    double wells, training time and trainable parameters, and the cost of one phonon calculation."""
    input:
        **PLAN.compare_inputs(),
    output:
        csv=path("strategies"),
    params:
        settings=settings_json("evaluate_compare"),
        results=lambda wc, output: str(Path(output.csv).parents[1]),
    log:
        LAYOUT.log("evaluate_compare"),
    benchmark:
        LAYOUT.benchmark("evaluate_compare")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    conda:
        "../../envs/phonons.yaml"
    shell:
        "python -m phonft evaluate compare --results {params.results:q} --settings {params.settings:q} "
        "--out {output.csv:q} > {log:q} 2>&1"
