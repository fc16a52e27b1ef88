rule structures:
    """Resolve each material's unit cell: local file, vendored data, MP id or MDR id."""
    input:
        structure_inputs,
    output:
        poscar=f"{RESULTS}/structures/{{material}}/POSCAR",
        record=f"{RESULTS}/structures/{{material}}/structure.json",
    params:
        spec=lambda wc: spec_json(wc.material),
        args=structure_args,
        outdir=lambda wc: f"{RESULTS}/structures/{wc.material}",
        base=workflow.basedir,
    log:
        "logs/structures/{material}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/phonons.yaml"
    shell:
        "phonft structures --material {wildcards.material} --spec {params.spec:q} "
        "--base-dir {params.base:q} {params.args} --out {params.outdir} > {log} 2>&1"
