rule augment:
    """Rattled supercells of a material's reference supercell, labelled, with VASP/QE inputs."""
    input:
        unpack(augment_inputs),
    output:
        frames=path("augment_frames"),
        manifest=path("augment_manifest"),
    params:
        settings=lambda wc: settings_json("augment", material=wc.material),
        reference=lambda wc, input: str(Path(input.params).parent),
        outdir=lambda wc, output: str(Path(output.manifest).parent),
        base=workflow.basedir,
    log:
        LAYOUT.log("augment"),
    benchmark:
        LAYOUT.benchmark("augment")
    group:
        JOB_GROUPS["augment"]
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/phonons.yaml"
    shell:
        "python -m phonft augment --material {wildcards.material:q} --reference {params.reference:q} "
        "--settings {params.settings:q} --base-dir {params.base:q} --out {params.outdir:q} --threads {threads:q} > {log:q} 2>&1"
