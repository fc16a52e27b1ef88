"""Each rule's settings: the config slice its action reads, as one JSON object (stdlib only).

Every rule passes ``--settings`` with :func:`settings` of its own name; the action decodes
the protocol parts with :meth:`phonft.protocols.Protocol.from_dict`. Keys absent from the
config are left out, so that the protocols' defaults (which equal the schema's) apply.

======================== ===========================================================
action (rule)            settings keys
======================== ===========================================================
structures               material (its config entry), mdr_url
displacements            protocol (DisplacementProtocol fields, material overrides in),
                         limits (SupercellLimits: the largest supercells, in atoms)
references               material, protocol (ReferenceProtocol fields), limits
                         (max_supercell_atoms_fc2, for supercell_labels)
augment                  protocol (AugmentSettings fields: the augment block but
                         materials), labels (LabelSettings: materials.<m>.augment.labels)
finetune_split           run (its config entry)
finetune_replay          run, replay_materials
finetune_train           run
finetune_heldout         model_options, protocol (ReferenceProtocol fields)
evaluate_mdr             model_options, protocol (MDRProtocol fields)
evaluate_double_well     model_options, protocol (MDRProtocol fields)
evaluate_kappa_reference mesh
evaluate_kappa           model_options, mesh
evaluate_kappa103_ids    data_dir, ids, first_n
evaluate_kappa103        model_options, data_dir
evaluate_summary         materials, splits, base, kappa, protocol
evaluate_compare         models (name, spec, base, run, heldout), double_well,
                         dft_well_depth_meV
figures                  FigureSet fields
======================== ===========================================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from phonft.errors import ConfigError
from phonft.plan.planner import Plan
from phonft.protocols import SupercellLimits, supercell_rows

LIMIT_KEYS = tuple(f.name for f in dataclasses.fields(SupercellLimits))
"""Keys of ``displacements`` that are :class:`~phonft.protocols.SupercellLimits`, not protocol fields."""

OUTPUT_KEYS = ("interfaces",)
"""Keys of ``displacements`` that choose which DFT inputs are written, not protocol fields."""


def _present(mapping: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The ``keys`` that ``mapping`` has (absent ones are left to the protocols' defaults)."""
    return {k: v for k, v in mapping.items() if k in keys}


def _matrix(values: list[Any], kind: type, what: str) -> list[list[Any]]:
    """3 numbers (a diagonal) or 9 (row by row) as a 3x3 matrix of ``kind``."""
    vals = [kind(v) for v in values]
    if len(vals) == 3:
        return [[vals[i] if i == j else kind(0) for j in range(3)] for i in range(3)]
    if len(vals) == 9:
        return [vals[0:3], vals[3:6], vals[6:9]]
    raise ConfigError(f"{what} takes 3 (diagonal) or 9 numbers, not {len(vals)}")


def displacement_protocol(plan: Plan, material: str) -> dict[str, Any]:
    """DisplacementProtocol fields: ``displacements`` with the material's own supercell,
    primitive matrix and fc3 switch laid over it."""
    entry = plan.materials[material]
    fields = {k: v for k, v in (plan.config.get("displacements") or {}).items()
              if k not in LIMIT_KEYS + OUTPUT_KEYS}
    if "primitive_matrix" in entry:
        fields["primitive_matrix"] = entry["primitive_matrix"]
    prim = fields.get("primitive_matrix")
    if isinstance(prim, list):
        if len(prim) != 9:
            raise ConfigError(f"material '{material}': primitive_matrix takes a letter, 'auto' or 9 numbers")
        fields["primitive_matrix"] = _matrix(prim, float, "primitive_matrix")
    if entry.get("supercell") is not None:
        rows = supercell_rows(entry["supercell"], f"material '{material}': supercell")
        fields["supercell_matrix"] = [list(row) for row in rows]
    if "fc3" in entry:
        fields["fc3"] = bool(entry["fc3"])
    return fields


def _model_options(plan: Plan, model: str) -> dict[str, Any]:
    options = plan.models[model].options
    return {"model_options": dict(options) if options else None}


def _mdr_protocol(plan: Plan) -> dict[str, Any]:
    return dict(plan.evaluate.get("protocol") or {})


def _reference_protocol(plan: Plan) -> dict[str, Any]:
    return dict(plan.config.get("references") or {})


def structures(plan: Plan, material: str) -> dict[str, Any]:
    return {"material": plan.materials[material], **_present(plan.config.get("sources") or {}, ("mdr_url",))}


def _interfaces(plan: Plan, material: str) -> dict[str, Any]:
    """``interfaces`` (``displacements.interfaces`` when given; the stage has the default) and
    ``reference_interface``, the interface of the material's ``calc`` reference, when it has one."""
    out: dict[str, Any] = {}
    given = (plan.config.get("displacements") or {}).get("interfaces")
    if given is not None:
        out["interfaces"] = list(given)
    reference = plan.materials[material].get("reference") or {}
    if reference.get("format") == "calc" and "interface" in reference:
        out["reference_interface"] = reference["interface"]
    return out


def displacements(plan: Plan, material: str) -> dict[str, Any]:
    limits = _present(plan.config.get("displacements") or {}, LIMIT_KEYS)
    return {"protocol": displacement_protocol(plan, material), **({"limits": limits} if limits else {}),
            **_interfaces(plan, material)}


def references(plan: Plan, material: str) -> dict[str, Any]:
    """``limits`` (``displacements.max_supercell_atoms_fc2``, when given) only for a reference
    with ``supercell_labels``, the one thing the references stage checks it against."""
    entry = plan.materials[material]
    out = {"material": entry, "protocol": _reference_protocol(plan)}
    limits = _present(plan.config.get("displacements") or {}, ("max_supercell_atoms_fc2",))
    if limits and (entry.get("reference") or {}).get("supercell_labels") is not None:
        out["limits"] = limits
    return out


def augment(plan: Plan, material: str) -> dict[str, Any]:
    protocol = {k: v for k, v in plan.augment.items() if k != "materials"}
    return {"protocol": protocol, "labels": plan.augment_labels(material)}


def finetune_run(plan: Plan, run: str) -> dict[str, Any]:
    """``finetune_split`` and ``finetune_train``: the run's config entry."""
    return {"run": plan.runs[run]}


def finetune_replay(plan: Plan, run: str) -> dict[str, Any]:
    return {"run": plan.runs[run], "replay_materials": plan.replay_materials(run)}


def finetune_heldout(plan: Plan, run: str) -> dict[str, Any]:
    return {"model_options": plan.runs[run].get("model_options") or None, "protocol": _reference_protocol(plan)}


def evaluate_mdr(plan: Plan, model: str) -> dict[str, Any]:
    """``evaluate_mdr`` and ``evaluate_double_well``: the model's options and the MDR protocol."""
    return {**_model_options(plan, model), "protocol": _mdr_protocol(plan)}


def evaluate_kappa_reference(plan: Plan) -> dict[str, Any]:
    return _present(plan.kappa, ("mesh",))


def evaluate_kappa(plan: Plan, model: str) -> dict[str, Any]:
    return {**_model_options(plan, model), **_present(plan.kappa, ("mesh",))}


def evaluate_kappa103_ids(plan: Plan) -> dict[str, Any]:
    return _present(plan.kappa103, ("data_dir", "ids", "first_n"))


def evaluate_kappa103(plan: Plan, model: str) -> dict[str, Any]:
    return {**_model_options(plan, model), **_present(plan.kappa103, ("data_dir",))}


def evaluate_summary(plan: Plan, model: str) -> dict[str, Any]:
    kappa = None
    if plan.kappa_enabled:
        kappa = {"materials": plan.kappa_materials, "kappa103": bool(plan.kappa103.get("enabled")),
                 "data_dir": plan.kappa103.get("data_dir")}
    return {"materials": plan.eval_materials, "splits": plan.roles(model), "base": plan.models[model].base,
            "kappa": kappa, "protocol": _mdr_protocol(plan)}


def evaluate_compare(plan: Plan) -> dict[str, Any]:
    return {"models": plan.compare_models(), "double_well": plan.double_well,
            "dft_well_depth_meV": dict(plan.compare.get("dft_well_depth_meV") or {})}


def figures(plan: Plan) -> dict[str, Any]:
    return plan.figure_set().as_dict()


SETTINGS: dict[str, Callable[..., dict[str, Any]]] = {
    "structures": structures,
    "displacements": displacements,
    "references": references,
    "augment": augment,
    "finetune_split": finetune_run,
    "finetune_replay": finetune_replay,
    "finetune_train": finetune_run,
    "finetune_heldout": finetune_heldout,
    "evaluate_mdr": evaluate_mdr,
    "evaluate_double_well": evaluate_mdr,
    "evaluate_kappa_reference": evaluate_kappa_reference,
    "evaluate_kappa": evaluate_kappa,
    "evaluate_kappa103_ids": evaluate_kappa103_ids,
    "evaluate_kappa103": evaluate_kappa103,
    "evaluate_summary": evaluate_summary,
    "evaluate_compare": evaluate_compare,
    "figures": figures,
}
"""Rule (action) name -> the function building its settings from the plan and its ids."""


def settings(plan: Plan, action: str, **ids: str) -> dict[str, Any]:
    """The settings of ``action`` (a rule name) for the given wildcards (material, run, model)."""
    return SETTINGS[action](plan, **ids)
