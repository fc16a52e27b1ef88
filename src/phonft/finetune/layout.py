"""File layout of ``results/finetune/<run>/`` (stdlib only: the Snakefile imports it).

::

    results/finetune/<run>/
        split.json                       train / val / test materials
        replay/replay.extxyz, manifest.json
        model.pt                         fine-tuned model, in its backend's native format
                                         (CHGNet.from_file / MACECalculator read it)
        train.json                       settings, digest, versions, best epoch, timings
        metrics.csv                      per-epoch metrics (figures draws them:
                                         results/figures/training_curve/<run>.png)
        checkpoints/<digest>/last.pt     epoch checkpoint (for --resume)
        thermal/{base,finetuned}/<m>/thermal.json   held-out phonons of both models
"""

from __future__ import annotations

VARIANTS = ("base", "finetuned")


MODEL_FILE = "model.pt"
