"""Synthetic references: forces from an ASE calculator instead of DFT.

This exists for tests and demonstrations of the chain only. Every output made this way
is marked ``"synthetic": true`` with the calculator's name. The calculator is built by
:func:`phonft.ase_calculators.make_calculator` (shared with the ``ase:`` evaluation model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from phonopy import Phonopy
from tqdm import tqdm

from phonft.ase_calculators import make_calculator
from phonft.atoms import to_ase
from phonft.phonons import remove_drift
from phonft.phonopy_files import load_phonopy_yaml, normalised_phonopy
from phonft.references.readers import RawReference, check_forces


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
