"""ASE calculators built from a name in the config (a leaf module: ase and the standard library).

Two places build an ASE calculator from a user's string and keyword arguments: the
``engine`` reference format (synthetic forces, :mod:`phonft.references.engine`, and
synthetic augment labels) and the evaluation-only ``ase:<module>:<Class>`` model
(:mod:`phonft.models.ase_calc`). Both go through :func:`make_calculator`, which refuses
anything that is not an ASE calculator class before calling it, and turns an import
failure or a constructor's ``TypeError``/``ValueError`` (bad keyword arguments) into one
:class:`~phonft.errors.ConfigError` naming the spec and the fix.
"""

from __future__ import annotations

import importlib
from typing import Any

from phonft.errors import ConfigError

KNOWN_CALCULATORS = {
    "emt": "ase.calculators.emt:EMT",
    "lj": "ase.calculators.lj:LennardJones",
    "morse": "ase.calculators.morse:MorsePotential",
}
"""Short names of ASE's own calculators, accepted in place of ``module:Class``."""


def calculator_class(name: str, what: str | None = None) -> type:
    """The ASE calculator class named by a short name (``emt``) or ``module:Class``.

    ``module:Class`` imports ``module``, which runs its code: name only modules you trust.
    The class must subclass ``ase.calculators.calculator.BaseCalculator`` (e.g.
    ``Calculator``); anything else (a function, ``os:system``) is refused. ``what`` names
    the thing in errors (default ``engine calculator '<name>'``; e.g. ``model 'ase:...'``).
    """
    from ase.calculators.calculator import BaseCalculator

    target = KNOWN_CALCULATORS.get(name.lower(), name)
    if ":" not in target:
        raise ConfigError(
            f"unknown {what or 'engine calculator'} '{name}'. Use one of {', '.join(KNOWN_CALCULATORS)} "
            "or 'package.module:ClassName'."
        )
    what = what or f"engine calculator '{target}'"
    module, cls = target.split(":", 1)
    try:
        factory = getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"cannot import {what}: {exc}. Fix: install the package that provides it, "
                          "or correct the module and class name (e.g. 'ase.calculators.emt:EMT').") from exc
    if not (isinstance(factory, type) and issubclass(factory, BaseCalculator)):
        raise ConfigError(f"{what} is a {type(factory).__name__}, not an ASE calculator "
                          "class. Fix: name a subclass of ase.calculators.calculator.Calculator, "
                          "e.g. 'ase.calculators.emt:EMT'.")
    return factory


def make_calculator(name: str, kwargs: dict[str, Any] | None = None, *, what: str | None = None,
                    kwargs_key: str = "calculator_kwargs") -> Any:
    """An ASE calculator from a short name (``emt``) or ``module:Class`` (see
    :func:`calculator_class`), built with ``kwargs``.

    A ``TypeError`` or ``ValueError`` of the constructor (a keyword it does not take, a
    value it refuses) becomes a :class:`ConfigError` naming ``kwargs_key``, the config key
    the keyword arguments came from. ASE's ``Calculator`` base class stores keywords it does
    not know as parameters without complaint, so a misspelt option of a calculator that
    passes ``**kwargs`` on to it is not caught here.
    """
    factory = calculator_class(name, what)
    what = what or f"engine calculator '{KNOWN_CALCULATORS.get(name.lower(), name)}'"
    try:
        return factory(**(kwargs or {}))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what} does not take {kwargs_key} {sorted(kwargs or {})} "
                          f"({type(exc).__name__}: {exc}). Fix: correct {kwargs_key}.") from exc


ASE_MODEL_PREFIX = "ase:"
"""Model specs starting with this (``ase:<module>:<Class>``) are evaluation-only ASE calculators
(:mod:`phonft.models.ase_calc`)."""


def is_ase_model(spec: object) -> bool:
    """Whether the model spec ``spec`` names an evaluation-only ASE calculator."""
    return str(spec).startswith(ASE_MODEL_PREFIX)


def check_trainable(spec: object, where: str) -> None:
    """Raise a :class:`ConfigError` when the model spec ``spec``, given as ``where`` (a config
    key), names an evaluation-only ASE calculator, which cannot be fine-tuned or label replay
    frames for a run. Imports nothing beyond the standard library (the planner calls it)."""
    if is_ase_model(spec):
        raise ConfigError(f"{where} is '{spec}', an evaluation-only ASE calculator model: phonft cannot fine-tune "
                          "it (no gradients of its parameters). Fix: fine-tune a chgnet, mace or nep model, and "
                          f"list '{spec}' under evaluate.models to score it.")
