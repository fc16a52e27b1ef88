"""The results layout: one table of every file the workflow writes (stdlib only).

Each entry of :data:`FILES` is a path under the results root, with ``{material}``,
``{run}``, ``{variant}``, ``{model}`` and ``{mp_id}`` fields; :meth:`Layout.path` fills the
fields it is given and keeps the others as Snakemake wildcards, so the same table gives
the rules' patterns and the planner's concrete targets::

    results/
        structures/<m>/              POSCAR, structure.json
        displacements/<m>/           phonopy_disp.yaml, manifest.json (+ VASP/QE inputs)
        references/<m>/              phonopy_params.yaml, fc2.hdf5, thermal.json; kappa.json
                                     (DFT kappa of an fc3 material)
        references/kappa103-ids.json the kappa103 ids to score, when the config lists none
        augment/<m>/                 rattled.extxyz, manifest.json, inputs/{vasp,qe}/
        finetune/<run>/              split.json, replay/{replay.extxyz, manifest.json},
                                     model.pt, train.json, metrics.csv,
                                     checkpoints/<digest>/last.pt,
                                     heldout/{base,finetuned}/<m>/thermal.json
        evaluate/<model>/            <m>/{thermal,bands}.json + phonopy_params.yaml, fc2.hdf5,
                                     band.yaml, total_dos.dat (one folder, written whole),
                                     double_well/<m>.json, kappa/<m>.json,
                                     kappa103/<mp-id>.json, mdr.csv, summary.json,
                                     kappa_mbd.json.gz (Matbench Discovery columns)
        evaluate/strategies.csv      every model side by side (evaluate.compare)
        figures/                     see :mod:`phonft.plan.figures`
        benchmarks/<job>.tsv         Snakemake's timing of each job (see :data:`JOBS`)
    logs/<job>.log
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from phonft.errors import ConfigError, short_repr

VARIANTS = ("base", "finetuned")
"""The two models of a run's held-out step: its base model and the fine-tuned one."""

MODEL_FILE = "model.pt"
"""The fine-tuned model's file name in its run folder (its backend's native format)."""

RESERVED_MATERIALS = ("kappa", "kappa103", "kappa103-ids", "double_well")
"""Names a material may not take: folders beside the materials in evaluate/<model>/, or the
kappa103 id list's name in references/ and logs/references/."""

SAFE_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
"""A name that becomes a folder or file name under results/ (material ids, run names, model
names, kappa103 ids): letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit,
at most 100 characters. No ``/``, no ``..``, no spaces or shell characters; the schema's
``propertyNames`` pattern is the same expression."""


def check_name(kind: str, name: object) -> str:
    """``name`` when it is a :data:`SAFE_NAME`, else a :class:`ConfigError` naming ``kind``."""
    if not isinstance(name, str):
        raise ConfigError(f"{kind} {short_repr(name)} must be a string. Fix: quote it in the YAML file")
    if not re.fullmatch(SAFE_NAME, name):
        raise ConfigError(f"{kind} {short_repr(name)} is not a safe folder name. Fix: use letters, digits, '.', '_' and "
                          "'-' only, starting with a letter or digit (at most 100 characters), e.g. NaCl or mp-149")
    return name


FILES = {
    "structure_dir": "structures/{material}",
    "poscar": "structures/{material}/POSCAR",
    "structure": "structures/{material}/structure.json",
    "displacements_dir": "displacements/{material}",
    "displacements": "displacements/{material}/phonopy_disp.yaml",
    "displacements_manifest": "displacements/{material}/manifest.json",
    "references_root": "references",
    "reference_dir": "references/{material}",
    "reference_params": "references/{material}/phonopy_params.yaml",
    "reference_fc2": "references/{material}/fc2.hdf5",
    "reference": "references/{material}/thermal.json",
    "reference_kappa": "references/{material}/kappa.json",
    "kappa103_ids": "references/kappa103-ids.json",
    "augment_root": "augment",
    "augment_dir": "augment/{material}",
    "augment_frames": "augment/{material}/rattled.extxyz",
    "augment_manifest": "augment/{material}/manifest.json",
    "finetune_root": "finetune",
    "run_dir": "finetune/{run}",
    "split": "finetune/{run}/split.json",
    "replay_dir": "finetune/{run}/replay",
    "replay": "finetune/{run}/replay/replay.extxyz",
    "replay_manifest": "finetune/{run}/replay/manifest.json",
    "model": "finetune/{run}/" + MODEL_FILE,
    "train": "finetune/{run}/train.json",
    "metrics": "finetune/{run}/metrics.csv",
    "heldout": "finetune/{run}/heldout/{variant}/{material}/thermal.json",
    "evaluate_root": "evaluate",
    "model_dir": "evaluate/{model}",
    "mdr_dir": "evaluate/{model}/{material}",
    "mdr": "evaluate/{model}/{material}/thermal.json",
    "bands": "evaluate/{model}/{material}/bands.json",
    "mdr_params": "evaluate/{model}/{material}/phonopy_params.yaml",
    "mdr_fc2": "evaluate/{model}/{material}/fc2.hdf5",
    "mdr_band_yaml": "evaluate/{model}/{material}/band.yaml",
    "mdr_dos": "evaluate/{model}/{material}/total_dos.dat",
    "double_well": "evaluate/{model}/double_well/{material}.json",
    "kappa": "evaluate/{model}/kappa/{material}.json",
    "kappa103": "evaluate/{model}/kappa103/{mp_id}.json",
    "mdr_csv": "evaluate/{model}/mdr.csv",
    "summary": "evaluate/{model}/summary.json",
    "kappa_mbd": "evaluate/{model}/kappa_mbd.json.gz",
    "strategies": "evaluate/strategies.csv",
    "figures_dir": "figures",
}

JOBS = {
    "structures": "structures/{material}",
    "displacements": "displacements/{material}",
    "references": "references/{material}",
    "augment": "augment/{material}",
    "finetune_split": "finetune/{run}/split",
    "finetune_replay": "finetune/{run}/replay",
    "finetune_train": "finetune/{run}/train",
    "finetune_heldout": "finetune/{run}/heldout/{variant}/{material}",
    "evaluate_mdr": "evaluate/{model}/{material}/mdr",
    "evaluate_double_well": "evaluate/{model}/{material}/double_well",
    "evaluate_kappa_reference": "references/{material}/kappa",
    "evaluate_kappa": "evaluate/{model}/kappa/{material}",
    "evaluate_kappa103_ids": "references/kappa103-ids",
    "evaluate_kappa103": "evaluate/{model}/kappa103/{mp_id}",
    "evaluate_summary": "evaluate/{model}/summary",
    "evaluate_compare": "evaluate/compare",
    "figures": "figures",
}
"""Each rule's job name: its log is ``logs/<job>.log``, its timing ``results/benchmarks/<job>.tsv``."""


class _KeepFields(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@dataclass(frozen=True)
class Layout:
    """Paths under one results root (``results`` by default) and the logs folder."""

    root: str = "results"
    logs: str = "logs"

    def path(self, key: str, **fields: str) -> str:
        """The path of ``FILES[key]``; fields not given stay ``{name}`` wildcards."""
        return f"{self.root}/" + FILES[key].format_map(_KeepFields(fields))

    def log(self, job: str, **fields: str) -> str:
        """The log file of a rule's job (see :data:`JOBS`)."""
        return f"{self.logs}/" + JOBS[job].format_map(_KeepFields(fields)) + ".log"

    def benchmark(self, job: str, **fields: str) -> str:
        """The benchmark (timing) file of a rule's job, under ``<root>/benchmarks/``."""
        return f"{self.root}/benchmarks/" + JOBS[job].format_map(_KeepFields(fields)) + ".tsv"
