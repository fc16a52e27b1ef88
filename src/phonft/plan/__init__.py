"""The workflow's planner: what runs, on what, and where it is written (stdlib only).

A shared leaf layer: it imports only the standard library and the stdlib-only
:mod:`phonft.errors`, :mod:`phonft.protocols` and :mod:`phonft.specs`, so Snakemake can use
it while it parses the workflow (no numpy, no data read, no download). It holds:

- :mod:`~phonft.plan.layout`: the results layout, one table of every path, and each
  rule's log and benchmark file;
- :mod:`~phonft.plan.runs`: a fine-tuning run's seeded split and its settings slices;
- :mod:`~phonft.plan.planner`: :class:`Plan`, the materials, runs, scored models (the
  model registry), split roles, targets and each rule's inputs;
- :mod:`~phonft.plan.settings`: each rule's ``--settings`` JSON object;
- :mod:`~phonft.plan.figures`: the figure list that the ``figures`` rule declares and
  :func:`phonft.figures.draw_all` draws;
- :mod:`~phonft.plan.resources`: the rules' GPU requests and job groups.
"""

from phonft.plan.figures import CAPTIONS, Figure, FigureSet, figure_list
from phonft.plan.layout import FILES, JOBS, MODEL_FILE, VARIANTS, Layout
from phonft.plan.planner import EvalModel, Plan, model_name
from phonft.plan.resources import DEVICE_RULES, JOB_GROUPS, job_device, rule_gpus, train_launcher
from phonft.plan.runs import Split, SplitError, make_split, replay_fields, run_split, train_fields
from phonft.plan.settings import SETTINGS, settings

__all__ = [
    "CAPTIONS", "DEVICE_RULES", "FILES", "JOB_GROUPS", "JOBS", "MODEL_FILE", "SETTINGS", "VARIANTS", "EvalModel", "Figure", "FigureSet", "Layout",
    "Plan", "Split", "SplitError", "figure_list", "job_device", "make_split", "model_name", "replay_fields",
    "rule_gpus", "run_split", "settings", "train_fields", "train_launcher",
]
