"""Synthetic references: forces from an ASE calculator instead of DFT.

This exists for tests and demonstrations of the chain only. Every output made this way
is marked ``"synthetic": true`` with the calculator's name.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
from phonopy import Phonopy
from tqdm import tqdm

from phonft.atoms import to_ase
from phonft.errors import ConfigError
from phonft.phonopy_files import load_phonopy_yaml, normalised_phonopy
from phonft.phonons import remove_drift
from phonft.references.readers import RawReference, check_forces

KNOWN_CALCULATORS = {
    "emt": "ase.calculators.emt:EMT",
    "lj": "ase.calculators.lj:LennardJones",
    "morse": "ase.calculators.morse:MorsePotential",
}


def make_calculator(name: str, kwargs: dict[str, Any] | None = None) -> Any:
    """An ASE calculator from a short name (``emt``) or ``module:Class``.

    ``module:Class`` imports ``module``, which runs its code: name only modules you trust.
    ``Class`` must be an ASE calculator class (a subclass of
    ``ase.calculators.calculator.BaseCalculator``, e.g. of ``Calculator``); anything else
    (a function, ``os:system``) is refused before it is called.
    """
    from ase.calculators.calculator import BaseCalculator

    target = KNOWN_CALCULATORS.get(name.lower(), name)
    if ":" not in target:
        raise ConfigError(
            f"unknown engine calculator '{name}'. Use one of {', '.join(KNOWN_CALCULATORS)} "
            "or 'package.module:ClassName'."
        )
    module, cls = target.split(":", 1)
    try:
        factory = getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"cannot import engine calculator '{target}': {exc}") from exc
    if not (isinstance(factory, type) and issubclass(factory, BaseCalculator)):
        raise ConfigError(f"engine calculator '{target}' is a {type(factory).__name__}, not an ASE calculator "
                          "class. Fix: name a subclass of ase.calculators.calculator.Calculator, "
                          "e.g. 'ase.calculators.emt:EMT'.")
    try:
        return factory(**(kwargs or {}))
    except TypeError as exc:
        raise ConfigError(f"engine calculator '{target}' does not take calculator_kwargs "
                          f"{sorted(kwargs or {})} ({exc}). Fix: correct calculator_kwargs.") from exc


def run_engine(disp_yaml: str | Path, calculator: str, kwargs: dict[str, Any] | None = None) -> RawReference:
    """Compute the forces of every displaced supercell in ``disp_yaml`` with ``calculator``."""
    calc = make_calculator(calculator, kwargs)  # a config error is reported before any file is read
    disp_yaml = Path(disp_yaml)
    ph: Phonopy = normalised_phonopy(load_phonopy_yaml(disp_yaml))
    forces = []
    for cell in tqdm(ph.supercells_with_displacements, desc=f"engine {calculator}", unit="supercell"):
        atoms = to_ase(cell)
        atoms.calc = calc
        forces.append(np.asarray(atoms.get_forces(), dtype=np.float64))
    forces = check_forces(np.asarray(forces), len(forces), len(ph.supercell), disp_yaml)
    ph.forces = remove_drift(forces)
    return RawReference(
        ph, "engine", [disp_yaml], synthetic=True,
        engine={"calculator": calculator, "calculator_kwargs": dict(kwargs or {})},
        notes=[f"SYNTHETIC: forces from the ASE calculator '{calculator}', not from DFT"],
    )
