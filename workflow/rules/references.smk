rule references:
    """Ingest DFT results into fc2.hdf5 (+ fc3.hdf5), phonopy_params.yaml and thermal.json."""
    input:
        unpack(reference_inputs),
    output:
        params=f"{RESULTS}/references/{{material}}/phonopy_params.yaml",
        fc2=f"{RESULTS}/references/{{material}}/fc2.hdf5",
        thermal=f"{RESULTS}/references/{{material}}/thermal.json",
    params:
        spec=lambda wc: spec_json(wc.material),
        args=reference_args,
        outdir=lambda wc: f"{RESULTS}/references/{wc.material}",
        base=workflow.basedir,
        results=lambda wc, output: str(Path(output.thermal).parents[2]),
    log:
        "logs/references/{material}.log",
    benchmark:
        f"{RESULTS}/benchmarks/references/{{material}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/phonons.yaml"
    shell:
        "phonft references --material {wildcards.material} --spec {params.spec:q} "
        "--base-dir {params.base:q} --results-dir {params.results} {params.args} --out {params.outdir} > {log} 2>&1"
