"""The models ``evaluate`` scores, as the planner names them (stdlib only)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from phonft.errors import ConfigError


@dataclass(frozen=True)
class EvalModel:
    """A model that ``evaluate`` scores (a folder of ``results/evaluate``).

    ``spec`` is the model spec or, for a fine-tuned model, its file; ``run`` the run whose
    split gives the materials' roles (None: every material is ``unseen``); ``base`` the
    base model's name, for fine-tuned models.
    """

    name: str
    spec: str
    options: Mapping[str, Any] | None = None
    run: str | None = None
    base: str | None = None


def extra_model(name: str, entry: str | Mapping[str, Any]) -> EvalModel:
    """The ``evaluate.models.<name>`` entry: a spec, or ``{spec, model_options}`` (e.g. an
    ``ase:<module>:<Class>`` calculator and its keyword arguments)."""
    if isinstance(entry, str):
        return EvalModel(name, entry)
    if not isinstance(entry, Mapping) or not isinstance(entry.get("spec"), str) \
            or set(entry) - {"spec", "model_options"}:
        raise ConfigError(f"evaluate.models.{name} must be a model spec or a mapping with 'spec' and optionally "
                          f"'model_options', not {entry!r:.80}. Fix: e.g. {{spec: 'ase:ase.calculators.emt:EMT'}}.")
    return EvalModel(name, entry["spec"], dict(entry.get("model_options") or {}) or None)
