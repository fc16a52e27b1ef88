"""The plan of one config: materials, runs and their splits, the scored models, the
targets, and each rule's inputs (stdlib only).

:class:`Plan` is built from the config mapping as Snakemake validated it (schema defaults
filled in); it starts no process, imports no numpy and reads no data but the config, so
parsing the workflow stays fast and offline.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from phonft.ase_calculators import check_trainable
from phonft.errors import ConfigError
from phonft.plan.evalmodels import EvalModel, extra_model
from phonft.plan.figures import Figure, FigureSet, figure_list
from phonft.plan.keys import check_keys
from phonft.plan.layout import RESERVED_MATERIALS, VARIANTS, Layout, check_name
from phonft.plan.runs import Split, local_gnep_sources, run_split
from phonft.protocols import supercell_rows
from phonft.specs import (
    ReferenceSpec,
    SpecError,
    check_material,
    material_reference,
    resolve,
)


def model_name(spec: str) -> str:
    """A folder-safe name of a model spec: ``mace-mp:medium-0b3`` -> ``mace-mp-medium-0b3``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", spec).strip("-")


class Plan:
    """Everything the workflow derives from its config, as plain names and paths."""

    def __init__(self, config: Mapping[str, Any], base_dir: str = ".", results: str = "results") -> None:
        if not isinstance(config, Mapping) or not config.get("materials"):
            raise ConfigError("the config has no 'materials'")
        check_keys(config)
        self.config = config
        self.base_dir = base_dir
        self.layout = Layout(results)
        self.materials: dict[str, dict[str, Any]] = {m: dict(e or {}) for m, e in config["materials"].items()}
        self.runs: dict[str, dict[str, Any]] = dict((config.get("finetune") or {}).get("runs") or {})
        self.evaluate: dict[str, Any] = dict(config.get("evaluate") or {})
        self.kappa: dict[str, Any] = dict(self.evaluate.get("kappa") or {})
        self.kappa103: dict[str, Any] = dict(self.kappa.get("kappa103") or {})
        self.double_well: list[str] = list(self.evaluate.get("double_well") or [])
        self.kappa_materials: list[str] = list(self.kappa.get("materials") or [])
        self.compare: dict[str, Any] = dict(self.evaluate.get("compare") or {})
        self.augment: dict[str, Any] = dict(config.get("augment") or {})
        self._check_materials()
        self.splits: dict[str, Split] = {run: self._split(run) for run in self.runs}
        self.eval_materials: list[str] = self._eval_materials()

    # ------------------------------------------------------------------ config

    def _check_materials(self) -> None:
        """Material ids and run names are safe folder names; entries have known keys, a
        valid reference and supercell; runs name configured materials."""
        reserved = sorted(set(self.materials) & set(RESERVED_MATERIALS))
        if reserved:
            raise ConfigError(f"materials may not be named {reserved}: results/ uses these names")
        for material, entry in self.materials.items():
            check_name("material id", material)
            try:
                check_material(entry)
            except SpecError as exc:
                raise ConfigError(f"material '{material}': {exc}") from exc
            if entry.get("supercell") is not None:
                supercell_rows(entry["supercell"], f"material '{material}': supercell")
        for run, entry in self.runs.items():
            check_name("finetune run name", run)
            unknown = [m for m in entry.get("materials") or [] if m not in self.materials]
            if unknown:
                raise ConfigError(f"finetune run '{run}' names unknown materials {unknown}")
        unknown = [m for m in self.augment.get("materials") or [] if m not in self.materials]
        if unknown:
            raise ConfigError(f"augment.materials names unknown materials {unknown}. Fix: list materials of the "
                              "config's materials block")

    def _split(self, run: str) -> Split:
        try:
            return run_split(self.runs[run])
        except ConfigError as exc:
            raise ConfigError(f"finetune run '{run}': {exc}") from exc

    def _eval_materials(self) -> list[str]:
        names = list(self.evaluate.get("materials") or [])
        if not names:
            for split in self.splits.values():
                names += [m for m in split.test if m not in names]
        names += [m for m in self.evaluate.get("extra_materials") or [] if m not in names]
        unknown = [m for m in names + self.double_well + self.kappa_materials if m not in self.materials]
        if unknown:
            raise ConfigError(f"evaluate names unknown materials {unknown}")
        return names

    def reference_spec(self, material: str) -> ReferenceSpec:
        """The material's resolved reference (format and input files)."""
        try:
            mapping = material_reference(material, self.materials[material], self.layout.root)
            return resolve(mapping, self.base_dir)
        except SpecError as exc:
            raise ConfigError(f"material '{material}': {exc}") from exc

    # ------------------------------------------------------------------ finetune

    def replay_materials(self, run: str) -> list[str]:
        """Configured materials the run's disjoint pseudo-label replay may use.

        ``replay.materials`` when given; otherwise every material that the run neither
        trains on nor is scored on by `evaluate` (replaying a scored material would pin it
        to the base model). Compositions of the run's materials are dropped later, in the
        package.
        """
        entry = self.runs[run]
        chosen = (entry.get("replay") or {}).get("materials")
        if chosen is not None:
            return list(chosen)
        scored = set(self.eval_materials) | set(self.double_well) | set(self.kappa_materials)
        return [m for m in self.materials if m not in entry["materials"] and m not in scored]

    # ------------------------------------------------------------------ augment

    def augment_materials(self) -> list[str]:
        """Materials whose rattled frames the ``augment`` rule makes, in order, each once:
        ``augment.materials`` (the materials asked for by name), then the training
        materials of every run with a rattled objective (:meth:`rattled_materials`)."""
        names: list[str] = []
        for m in [*(self.augment.get("materials") or []), *self.rattled_materials()]:
            if m not in names:
                names.append(m)
        return names

    def augment_labels(self, material: str) -> dict[str, Any]:
        """The material's ``augment.labels`` mapping (``{}``: the default, harmonic labels)."""
        return dict((self.materials[material].get("augment") or {}).get("labels") or {})

    def augment_inputs(self, material: str) -> dict[str, Any]:
        """Input files of ``augment``: the material's references folder files, and the label
        files (DFT outputs or the user's extxyz) where the labels read any."""
        p = self.layout.path
        out: dict[str, Any] = {"params": p("reference_params", material=material),
                               "fc2": p("reference_fc2", material=material)}
        labels = self.augment_labels(material)
        if labels.get("format") in ("vasprun", "qe") and labels.get("path"):
            out["labels"] = [os.path.join(self.base_dir, labels["path"], f) for f in labels.get("files") or []]
        elif labels.get("format") == "extxyz" and labels.get("path"):
            out["labels"] = [os.path.join(self.base_dir, labels["path"])]
        return out

    # ------------------------------------------------------------------ evaluate

    @cached_property
    def models(self) -> dict[str, EvalModel]:
        """Every scored model by name: each run's base model (first run wins), each run's
        fine-tuned model, and ``evaluate.models``, in that order."""
        models: dict[str, EvalModel] = {}
        for run, entry in self.runs.items():
            if "base_model" not in entry:
                raise ConfigError(f"finetune run '{run}' has no base_model (the schema's default fills it)")
            options = entry.get("model_options") or None
            check_trainable(entry["base_model"], f"finetune.runs.{run}.base_model")
            if entry["base_model"] == "nep":  # a NEP from scratch: random weights, nothing to score
                models[run] = EvalModel(run, self.layout.path("model", run=run), options, run, "")
                continue
            base = model_name(entry["base_model"])
            models.setdefault(base, EvalModel(base, entry["base_model"], options, run))
            models[run] = EvalModel(run, self.layout.path("model", run=run), options, run, base)
        for name, entry in (self.evaluate.get("models") or {}).items():
            models[name] = extra_model(name, entry)
        for name in models:
            check_name("model name", name)
        if "strategies.csv" in models:
            raise ConfigError("the model name 'strategies.csv' is the comparison table's file name in "
                              "results/evaluate. Fix: rename the model or run")
        bases = {e.base for e in models.values()} - {""}
        clash = [r for r in self.runs if r in bases or models[r].base is None]
        if clash:
            raise ConfigError(f"finetune run names {clash} clash with a base or extra model name")
        return models

    def roles(self, model: str) -> dict[str, str]:
        """Scored material -> its role (train/val/test/unseen) in the run behind ``model``."""
        run = self.models[model].run
        roles = self.splits[run].roles() if run is not None else {}
        return {m: roles.get(m, "unseen") for m in self.eval_materials}

    @property
    def kappa_enabled(self) -> bool:
        """Whether any kappa is scored (vendored fc3 materials or kappa103)."""
        return bool(self.kappa_materials) or bool(self.kappa103.get("enabled"))

    @property
    def kappa103_ids(self) -> list[str] | None:
        """The kappa103 ids to score: none when kappa103 is off, ``ids`` (first ``first_n``)
        when the config lists them, else None: the data decide (``evaluate_kappa103_ids``)."""
        if not self.kappa103.get("enabled"):
            return []
        ids = [check_name("kappa103 id", i) for i in self.kappa103.get("ids") or []]
        if not ids:
            return None
        return ids[: self.kappa103["first_n"]] if self.kappa103.get("first_n") else ids

    @property
    def compare_enabled(self) -> bool:
        """Whether ``strategies.csv`` (and its figure) is made: ``evaluate.compare.enabled``
        true or false, or ``auto`` (the default): when the config has more than one run."""
        enabled = self.compare.get("enabled", "auto")
        return len(self.runs) > 1 if enabled == "auto" else bool(enabled)

    def heldout(self, model: str) -> list[str]:
        """The scored materials ``model`` is compared on: its run's test materials, or for a base
        or extra model those of every run built on it (every run, for an extra model); every
        scored material when none of them is scored."""
        entry = self.models[model]
        if entry.base is not None:
            runs = [entry.run]
        else:
            runs = [r for r, e in self.models.items() if e.base == model] if entry.run else list(self.runs)
        test = {m for r in runs for m in self.splits[r].test}
        return [m for m in self.eval_materials if m in test] or list(self.eval_materials)

    def compare_models(self) -> list[dict[str, Any]]:
        """The ``evaluate_compare`` rows: each model's name, spec, base, run and held-out materials."""
        return [{"name": n, "spec": e.spec, "base": e.base, "run": e.run, "heldout": self.heldout(n)}
                for n, e in self.models.items()]

    # ------------------------------------------------------------------ targets

    def figure_set(self) -> FigureSet:
        return FigureSet(models=tuple(self.models), finetuned=tuple(m for m, e in self.models.items() if e.base),
                         materials=tuple(self.eval_materials), double_well=tuple(self.double_well),
                         runs=tuple(self.runs), kappa=self.kappa_enabled, strategies=self.compare_enabled)

    def figures(self) -> list[Figure]:
        return figure_list(self.figure_set())

    def figure_paths(self) -> list[str]:
        return [f"{self.layout.path('figures_dir')}/{f.relpath}" for f in self.figures()]

    def targets(self) -> list[str]:
        """Every final file of the workflow (``rule all``)."""
        p = self.layout.path
        out = [p(key, material=m) for m in self.materials for key in ("structure", "displacements_manifest",
                                                                      "reference")]
        out += [p("augment_frames", material=m) for m in self.augment_materials()]
        for run, split in self.splits.items():
            out += [p("model", run=run), p("train", run=run)]
            out += [p("heldout", run=run, variant=v, material=m) for m in split.test for v in VARIANTS]
        for model in self.models:
            out += [p("summary", model=model), p("mdr_csv", model=model)]
        if self.compare_enabled:
            out.append(p("strategies"))
        return out + self.figure_paths()

    # ------------------------------------------------------------------ rule inputs

    def structure_inputs(self, material: str) -> list[str]:
        """Input files of ``structures``: the structure file, none for online sources, or the
        reference's data (whose unit cell is used)."""
        src = self.materials[material].get("structure") or {}
        if "file" in src:
            return [src["file"]]
        if "mp_id" in src or "mdr_id" in src:
            return []
        return [str(f) for f in self.reference_spec(material).inputs]

    def reference_inputs(self, material: str) -> dict[str, Any]:
        """Input files of ``references``: the DFT data, or the displacements for engines."""
        p, entry = self.layout.path, self.materials[material]
        spec = self.reference_spec(material)
        if spec.synthetic:
            return {"displacements": p("displacements", material=material)}
        if "mdr_id" in (entry.get("structure") or {}) and not entry.get("reference"):
            return {"data": [p("structure", material=material)]}
        return {"data": [str(f) for f in spec.inputs]}

    def run_references(self, run: str, parts: Sequence[str] = ("train", "val")) -> list[str]:
        """thermal.json of the run's materials in the given parts of its split."""
        split = self.splits[run]
        return [self.layout.path("reference", material=m) for part in parts for m in getattr(split, part)]

    def uses_rattled(self, run: str) -> bool:
        """Whether the run's objective fits rattled frames (``rattled`` or ``both``; default ``pft``)."""
        return self.runs[run].get("objective", "pft") != "pft"

    def uses_augment(self, run: str) -> bool:
        """Whether the run reads its training materials' rattled frames: a ``rattled`` /
        ``both`` objective, or ``augment`` among its ``gnep_data`` sources."""
        return self.uses_rattled(run) or "augment" in (self.runs[run].get("gnep_data") or [])

    def train_augment(self, run: str) -> list[str]:
        """The rattled frames ``finetune_train`` reads: its training materials' ``rattled.extxyz``
        when :meth:`uses_augment`, none otherwise."""
        if not self.uses_augment(run):
            return []
        return [self.layout.path("augment_frames", material=m) for m in self.splits[run].train]

    def base_model_files(self, run: str) -> list[str]:
        """The base model's file when it is another run's output (``results/finetune/<r>/model.pt``,
        bare or after ``nep:``/``chgnet:``/``mace:``), so that run trains first; else none."""
        spec = str(self.runs[run].get("base_model", ""))
        path = spec.partition(":")[2] if spec.startswith(("nep:", "chgnet:", "mace:")) else spec
        return [path] if path.startswith(f"{self.layout.root}/") else []

    def train_gnep_files(self, run: str) -> list[str]:
        """The local extxyz files among the run's ``gnep_data`` (URLs are fetched by the rule)."""
        return local_gnep_sources(self.runs[run].get("gnep_data") or [])

    def augment_args(self, run: str) -> list[str]:
        """``--augment <root>`` for ``finetune train`` of a run that reads rattled frames."""
        return ["--augment", self.layout.path("augment_root")] if self.uses_augment(run) else []

    def rattled_materials(self) -> list[str]:
        """Materials whose rattled frames a run trains on: the training materials of every
        run that :meth:`uses_augment`, in config order (the augment stage must cover them)."""
        needed = {m for run in self.runs if self.uses_augment(run) for m in self.splits[run].train}
        return [m for m in self.materials if m in needed]

    def replay_references(self, run: str) -> list[str]:
        """References the replay set reads: every material of the run, plus its replay materials."""
        others = [self.layout.path("reference", material=m) for m in self.replay_materials(run)]
        return self.run_references(run, ("train", "val", "test")) + others

    def heldout_inputs(self, run: str, variant: str, material: str) -> dict[str, str]:
        """The held-out step's reference, and the fine-tuned model file for that variant."""
        out = {"reference": self.layout.path("reference", material=material)}
        if variant == "finetuned":
            out["model"] = self.layout.path("model", run=run)
        elif self.base_model_files(run):
            out["model"] = self.base_model_files(run)[0]
        return out

    def heldout_model(self, run: str, variant: str) -> str:
        """The model spec of a held-out variant: the run's base model, or its model file."""
        return self.runs[run]["base_model"] if variant == "base" else self.layout.path("model", run=run)

    def model_inputs(self, model: str) -> dict[str, str]:
        """The model file a rule needs (fine-tuned models; none for base and extra models)."""
        spec = self.models[model].spec
        return {"model": spec} if spec.startswith(f"{self.layout.root}/") else {}

    def summary_inputs(self, model: str, kappa103_ids: Sequence[str] = ()) -> dict[str, list[str]]:
        """Files a model's summary reads: its and its base's per-material results, kappa records."""
        p, kappa = self.layout.path, self.kappa_materials
        out = {"thermal": [p("mdr", model=model, material=m) for m in self.eval_materials],
               "bands": [p("bands", model=model, material=m) for m in self.eval_materials],
               "kappa": [p("kappa", model=model, material=m) for m in kappa]
               + [p("kappa103", model=model, mp_id=i) for i in kappa103_ids],
               "kappa_reference": [p("reference_kappa", material=m) for m in kappa]}
        base = self.models[model].base
        if base:
            out["base"] = [p("mdr", model=base, material=m) for m in self.eval_materials]
            out["base_kappa"] = [p("kappa", model=base, material=m) for m in kappa]
        return out

    def compare_inputs(self) -> dict[str, list[str]]:
        """Files ``strategies.csv`` is read from: each model's summary, mdr.csv, held-out
        thermal.json (and its base's), double wells, and each run's train.json."""
        p, out = self.layout.path, {"summaries": [], "thermal": [], "wells": [], "train": []}
        for name, entry in self.models.items():
            out["summaries"] += [p("summary", model=name), p("mdr_csv", model=name)]
            models = [name] + ([entry.base] if entry.base else [])
            out["thermal"] += [p("mdr", model=m, material=x) for m in models for x in self.heldout(name)]
            out["wells"] += [p("double_well", model=name, material=w) for w in self.double_well]
        out["train"] = [p("train", run=r) for r in self.runs]
        return {k: list(dict.fromkeys(v)) for k, v in out.items()}

    def figure_inputs(self) -> dict[str, list[str]]:
        """Files the figures are drawn from."""
        p = self.layout.path
        return {"summaries": [p("summary", model=m) for m in self.models],
                "wells": [p("double_well", model=m, material=w) for m in self.models for w in self.double_well],
                "metrics": [p("metrics", run=r) for r in self.runs],
                "strategies": [p("strategies")] if self.compare_enabled else []}
