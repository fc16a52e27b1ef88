"""Evaluation-only models: any ASE calculator behind phonft's :class:`Model` interface.

The spec ``ase:<module>:<Class>`` (e.g. ``ase:ase.calculators.emt:EMT``,
``ase:sevenn.calculator:SevenNetCalculator``, ``ase:calorine.calculators:CPUNEP``)
imports ``<module>``, checks that ``<Class>`` is an ASE calculator class and builds it
with the config's ``model_options`` as keyword arguments
(:func:`phonft.ase_calculators.make_calculator`, shared with the ``engine`` references).
Energies (eV), forces (eV/Å) and stresses (eV/Å³, ASE sign) come from the calculator, as
float64 numbers; phonft adds no autograd, so the model can be scored (MDR phonons, bands,
double wells, kappa) but not fine-tuned: :meth:`evaluate` with ``create_graph``,
:meth:`hvp` and :meth:`save` raise a :class:`~phonft.errors.ConfigError`.

Batched calculators
-------------------
A calculator whose object has a callable :data:`BATCH_METHOD` (``calculate_batch``)
is called once per chunk of structures instead of once per structure::

    calculate_batch(atoms_list: list[ase.Atoms], properties: list[str]) -> list[dict]

``properties`` holds ``"energy"`` and ``"forces"``, and ``"stress"`` when stresses are
wanted; each returned dict has ``"energy"`` (eV, a number), ``"forces"`` (eV/Å, shape
(n_atoms, 3)) and, when asked, ``"stress"`` (eV/Å³, Voigt 6 or 3x3, ASE sign). The atoms
come without a calculator attached and must not be changed. Wrapping a backend's own
batched inference in a Calculator subclass with this method is enough for phonft's
displaced-supercell and double-well evaluations to use it; relaxations go through the
calculator's ordinary single-structure interface. Calculators without the method are
evaluated one structure at a time.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from ase import Atoms

from phonft.ase_calculators import ASE_MODEL_PREFIX, make_calculator
from phonft.errors import ConfigError, PhonftError
from phonft.models.base import Batch, Model, Outputs

BATCH_METHOD = "calculate_batch"
"""The method name phonft probes for on a calculator object to evaluate a list of structures in one call."""


def _evaluation_only(spec: str, action: str) -> ConfigError:
    return ConfigError(f"model '{spec}' is an evaluation-only ASE calculator: it cannot {action} (phonft has no "
                       "gradients of its parameters). Fix: score it with 'phonft evaluate' only, and fine-tune a "
                       "chgnet, mace or nep model instead.")


class ASECalculatorModel(Model):
    """An ASE calculator as an evaluation-only phonft model.

    ``module`` is an empty ``torch.nn.Module``: the calculator holds no parameters that
    phonft could train, so :meth:`trainable_parameters` is empty. ``device`` is recorded
    (it sets the default batch size of batched calculators) but not passed to the
    calculator; give the calculator its own device option through ``model_options``.
    """

    backend = "ase"
    readout = None

    def __init__(self, calculator: Any, spec: str, dtype: str = "float64", device: str = "cpu"):
        super().__init__(torch.nn.Module(), spec, dtype=dtype, device=device)
        self.calculator = calculator

    @classmethod
    def from_spec(cls, spec: str, options: dict[str, Any] | None = None, *, dtype: str = "float64",
                  device: str = "cpu") -> ASECalculatorModel:
        """Build the calculator of ``ase:<module>:<Class>`` with ``options`` as keyword arguments."""
        target = spec[len(ASE_MODEL_PREFIX):]
        if target.count(":") != 1 or not all(target.split(":")):
            raise ConfigError(f"model '{spec}': an ASE calculator model is named 'ase:<module>:<Class>', e.g. "
                              "'ase:ase.calculators.emt:EMT'. Fix: give the module and the class.")
        calc = make_calculator(target, options, what=f"model '{spec}'", kwargs_key="model_options")
        return cls(calc, spec, dtype=dtype, device=device)

    @property
    def elements(self) -> set[int] | None:
        return None  # an ASE calculator does not say which elements it knows

    def check_elements(self, atoms: Atoms, where: str) -> None:
        """Evaluate the calculator once on ``atoms`` (the unit cell, before any relaxation):
        a calculator that cannot handle it (an element it does not know, a missing file)
        raises a :class:`ConfigError` naming the model, ``where`` and the calculator's own
        message, instead of a traceback in the middle of the protocol."""
        try:
            self._one(_bare(atoms), stress=False)
        except PhonftError:
            raise
        except Exception as exc:  # any calculator's own error type: report it in one line
            detail = " ".join(str(exc).split())[:300]
            raise ConfigError(f"{where}: model '{self.spec}' failed on {atoms.get_chemical_formula()} "
                              f"({type(exc).__name__}: {detail}). Fix: score it only on materials whose elements "
                              "its calculator knows, or correct its model_options.") from exc

    @property
    def batched(self) -> bool:
        """Whether the calculator evaluates a list of structures in one call (:data:`BATCH_METHOD`)."""
        return callable(getattr(self.calculator, BATCH_METHOD, None))

    def prepare(self, structures: Sequence[Atoms]) -> Batch:
        """The structures themselves (copies without a calculator) as the batch's graph."""
        atoms = [_bare(a) for a in structures]
        return Batch(n_atoms=torch.tensor([len(a) for a in atoms], device=self.device), graph=atoms)

    def evaluate(self, batch: Batch, *, stress: bool = False, create_graph: bool = False) -> Outputs:
        """The calculator's energies, forces and stresses as tensors (no autograd: ``create_graph`` raises)."""
        if create_graph:
            raise _evaluation_only(self.spec, "give differentiable forces (fine-tuning, Hessian columns)")
        results = self.calculate(batch.graph, stress=stress)
        energy = self._tensor([r["energy"] for r in results])
        forces = self._tensor(np.concatenate([r["forces"] for r in results]) if results else np.zeros((0, 3)))
        stresses = self._tensor(np.stack([r["stress"] for r in results])) if stress and results else None
        return Outputs(energy=energy, forces=forces, stress=stresses, positions=[])

    def _tensor(self, values: Any) -> torch.Tensor:
        return torch.as_tensor(np.asarray(values), dtype=self.dtype, device=self.device)

    def hvp(self, batch: Batch, v: torch.Tensor, outputs: Outputs | None = None,
            create_graph: bool = True) -> torch.Tensor:
        raise _evaluation_only(self.spec, "give Hessian-vector products")

    def architecture(self):
        raise _evaluation_only(self.spec, "be rebuilt from random weights (strategy 'scratch')")

    def save(self, path: str | os.PathLike) -> None:
        raise _evaluation_only(self.spec, "be saved as a fine-tuned model")

    def as_ase_calculator(self):
        """The calculator itself."""
        return self.calculator

    def predict(self, structures: Sequence[Atoms], batch_size: int = 8, stress: bool = False
                ) -> list[dict[str, np.ndarray]]:
        """Energies (eV), forces (eV/Å) and stresses (eV/Å³, 3x3) of many structures, float64:
        ``batch_size`` structures per call of a batched calculator, else one at a time."""
        out: list[dict[str, np.ndarray]] = []
        for start in range(0, len(structures), max(1, batch_size)):
            chunk = [_bare(a) for a in structures[start:start + batch_size]]
            for r in self.calculate(chunk, stress=stress):
                out.append({k: np.asarray(v, dtype=np.float64) for k, v in r.items()})
        return out

    def calculate(self, structures: Sequence[Atoms], stress: bool = False) -> list[dict[str, np.ndarray]]:
        """One result per structure (``energy``, ``forces`` and with ``stress`` a 3x3 ``stress``,
        float64): one :data:`BATCH_METHOD` call when the calculator has it, else a loop."""
        if self.batched:
            properties = ["energy", "forces", "stress"] if stress else ["energy", "forces"]
            raw = getattr(self.calculator, BATCH_METHOD)(list(structures), properties)
            if len(raw) != len(structures):
                raise ConfigError(f"model '{self.spec}': {BATCH_METHOD} returned {len(raw)} results for "
                                  f"{len(structures)} structures. Fix: return one result dict per structure.")
            return [_checked(r, a, stress) for r, a in zip(raw, structures)]
        return [self._one(a, stress) for a in structures]

    def _one(self, atoms: Atoms, stress: bool) -> dict[str, np.ndarray]:
        work = atoms.copy()
        work.calc = self.calculator
        result = {"energy": work.get_potential_energy(), "forces": work.get_forces()}
        if stress:
            result["stress"] = work.get_stress(voigt=False)
        return _checked(result, atoms, stress)


def _bare(atoms: Atoms) -> Atoms:
    """A copy of ``atoms`` without calculator or constraints."""
    copy = atoms.copy()
    copy.calc = None
    copy.set_constraint()
    return copy


def _checked(result: dict[str, Any], atoms: Atoms, stress: bool) -> dict[str, np.ndarray]:
    """``result`` as float64 arrays of the right shapes (a Voigt stress made 3x3)."""
    from ase.stress import voigt_6_to_full_3x3_stress

    out = {"energy": np.asarray(result["energy"], dtype=np.float64).reshape(()),
           "forces": np.asarray(result["forces"], dtype=np.float64).reshape(len(atoms), 3)}
    if stress:
        s = np.asarray(result["stress"], dtype=np.float64)
        out["stress"] = voigt_6_to_full_3x3_stress(s) if s.shape == (6,) else s.reshape(3, 3)
    return out
