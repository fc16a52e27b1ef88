rule displacements:
    """phonopy fc2 (and phono3py fc3) displaced supercells, as yaml + VASP/QE inputs."""
    input:
        poscar=f"{RESULTS}/structures/{{material}}/POSCAR",
    output:
        disp=f"{RESULTS}/displacements/{{material}}/phonopy_disp.yaml",
        manifest=f"{RESULTS}/displacements/{{material}}/manifest.json",
    params:
        args=displacement_args,
        outdir=lambda wc: f"{RESULTS}/displacements/{wc.material}",
    log:
        "logs/displacements/{material}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/phonons.yaml"
    shell:
        "phonft displacements --material {wildcards.material} --structure {input.poscar} "
        "{params.args} --out {params.outdir} > {log} 2>&1"
