"""What each rule asks of a machine beyond cores and memory: GPUs and job groups (stdlib only).

GPUs. The rules that run a model (:data:`DEVICE_RULES`, each passes ``--device``) declare a
``gpu`` resource. Its value comes from the config through :func:`rule_gpus`: 1 when
``finetune.device`` is ``cuda``, else 0 (``cpu``, and ``auto``, which takes a GPU only where
one is given). A GPU profile raises it to 1 with ``set-resources`` (``profiles/slurm``,
``profiles/local``); so ``auto`` on a GPU profile asks for a GPU. :func:`job_device`
checks, per job, that the device and the GPUs granted agree. A fine-tuning job granted more
than one GPU trains data-parallel, one ``torchrun`` rank per GPU (:func:`train_launcher`).

Job groups. On a cluster every job is a queued batch job; :data:`JOB_GROUPS` bundles the
short per-material jobs, so that ``group-components`` in a cluster profile submits many of
them as one job. Local runs ignore groups.
"""

from __future__ import annotations

from phonft.errors import ConfigError

DEVICE_RULES: tuple[str, ...] = (
    "finetune_replay", "finetune_train", "finetune_heldout",
    "evaluate_mdr", "evaluate_double_well", "evaluate_kappa", "evaluate_kappa103",
)
"""Rules that run a model on ``finetune.device``; each declares a ``gpu`` resource."""

JOB_GROUPS: dict[str, str] = {
    "structures": "prep",
    "displacements": "prep",
    "references": "prep",
    "augment": "prep",
    "finetune_heldout": "evaluate",
    "evaluate_mdr": "evaluate",
    "evaluate_double_well": "evaluate",
}
"""Rule -> job group. ``prep``: a material's structure, displacements, reference and rattled
frames (seconds to a minute each, CPU); ``evaluate``: one model on one material (held-out phonons, MDR
phonons, double well). Every rule of a group only reads what rules outside it wrote, or
what the same material's earlier rules of the group wrote, so no group waits on itself."""


def rule_gpus(device: str) -> int:
    """GPUs a model-running rule asks for under ``finetune.device`` (the schema's ``auto``,
    ``cpu`` or ``cuda``): 1 for ``cuda``, else 0."""
    return 1 if device == "cuda" else 0


def job_device(device: str, gpus: int, rule: str) -> str:
    """The ``--device`` of a job of ``rule`` granted ``gpus`` GPUs: ``device`` itself, once
    checked that the two agree (``cpu`` with GPUs wastes them; ``cuda`` without one fails)."""
    gpus = int(gpus)
    if device == "cpu" and gpus > 0:
        raise ConfigError(
            f"finetune.device is 'cpu' but rule {rule} asks for {gpus} GPU(s) (a GPU profile's set-resources); "
            "set finetune.device to auto or cuda, or run without the GPU profile")
    if device == "cuda" and gpus < 1:
        raise ConfigError(
            f"finetune.device is 'cuda' but rule {rule} asks for no GPU (set-resources {rule}:gpu=0); "
            "set finetune.device to auto or cpu, or give the rule gpu=1")
    return device


def train_launcher(gpus: int) -> list[str]:
    """The words that start ``phonft`` in a ``finetune_train`` job granted ``gpus`` GPUs.

    Up to one GPU: ``python -m phonft``. More: ``torchrun --standalone --nproc_per_node
    <gpus> -m -- phonft``, one data-parallel rank per GPU on the job's node
    (:mod:`phonft.finetune.distributed`). The ``--`` ends torchrun's own options: without
    it, torchrun's parser takes phonft's ``--run`` for an abbreviation of ``--run-path``.
    """
    gpus = int(gpus)
    if gpus > 1:
        return ["torchrun", "--standalone", "--nproc_per_node", str(gpus), "-m", "--", "phonft"]
    return ["python", "-m", "phonft"]
