"""An ASE calculator for any :class:`~phonft.models.base.Model`, at the model's dtype.

phonft evaluates phonons through this calculator in float64, so phonopy sees the same
numbers the trainer's Hessian columns are made of. The fine-tuned model is also saved in
its backend's native format, for the backend's own calculator.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress


class PhonftCalculator(Calculator):
    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, model: Any, **kwargs):
        super().__init__(**kwargs)
        self.model = model

    def calculate(self, atoms=None, properties=("energy", "forces"), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        want_stress = "stress" in properties and bool(self.atoms.pbc.all())
        (result,) = self.model.predict([self.atoms], batch_size=1, stress=want_stress)
        self.results = {"energy": float(result["energy"]), "free_energy": float(result["energy"]),
                        "forces": np.asarray(result["forces"], dtype=float)}
        if want_stress:
            self.results["stress"] = full_3x3_to_voigt_6_stress(result["stress"])
