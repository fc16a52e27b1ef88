rule references:
    """Ingest DFT results into fc2.hdf5 (+ fc3.hdf5), phonopy_params.yaml and thermal.json."""
    input:
        unpack(reference_inputs),
    output:
        params=path("reference_params"),
        fc2=path("reference_fc2"),
        thermal=path("reference"),
    params:
        settings=lambda wc: settings_json("references", material=wc.material),
        displacements=displacements_dir,
        outdir=lambda wc, output: str(Path(output.thermal).parent),
        base=workflow.basedir,
        results=lambda wc, output: str(Path(output.thermal).parents[2]),
    log:
        LAYOUT.log("references"),
    benchmark:
        LAYOUT.benchmark("references")
    group:
        JOB_GROUPS["references"]
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/phonons.yaml"
    shell:
        "python -m phonft references --material {wildcards.material:q} --settings {params.settings:q} --base-dir {params.base:q} "
        "--results-dir {params.results:q} {params.displacements:q} --out {params.outdir:q} --threads {threads:q} > {log:q} 2>&1"
