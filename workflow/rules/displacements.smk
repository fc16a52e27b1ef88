rule displacements:
    """phonopy fc2 (and phono3py fc3) displaced supercells, as yaml + VASP/QE inputs."""
    input:
        poscar=path("poscar"),
    output:
        disp=path("displacements"),
        manifest=path("displacements_manifest"),
    params:
        settings=lambda wc: settings_json("displacements", material=wc.material),
        outdir=lambda wc, output: str(Path(output.manifest).parent),
    log:
        LAYOUT.log("displacements"),
    benchmark:
        LAYOUT.benchmark("displacements")
    group:
        JOB_GROUPS["displacements"]
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/phonons.yaml"
    shell:
        "python -m phonft displacements --material {wildcards.material:q} --structure {input.poscar:q} "
        "--settings {params.settings:q} --out {params.outdir:q} > {log:q} 2>&1"
