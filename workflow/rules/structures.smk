rule structures:
    """Resolve each material's unit cell: local file, vendored data, MP id or MDR id."""
    input:
        structure_inputs,
    output:
        poscar=path("poscar"),
        record=path("structure"),
    params:
        settings=lambda wc: settings_json("structures", material=wc.material),
        outdir=lambda wc, output: str(Path(output.record).parent),
        base=workflow.basedir,
        cache=CACHE_ARG,
    log:
        LAYOUT.log("structures"),
    benchmark:
        LAYOUT.benchmark("structures")
    group:
        JOB_GROUPS["structures"]
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/phonons.yaml"
    shell:
        "python -m phonft structures --material {wildcards.material:q} --settings {params.settings:q} "
        "--base-dir {params.base:q} {params.cache:q} --out {params.outdir:q} > {log:q} 2>&1"
