"""NEP behind phonft's model interface (:class:`NEPModel`).

A batch is the structures' concatenated neighbour lists (ASE's ``neighbor_list``, which
is correct for any periodic cell, one smaller than twice the cutoff included: every
image within the cutoff is its own pair). Energies come from the pair vectors
``r_j - r_i + S cell`` of a position leaf and a zero strain, so forces, stresses and
Hessian-vector products are autograd. The native formats are a torch file
(``{"nep": {"spec", "parameters"}}``, float64) and GPUMD's ``nep.txt``, written side by side.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from ase import Atoms

from phonft.models.base import Batch, Model, Outputs
from phonft.models.nep.module import NEP, random_parameters
from phonft.models.nep.nepfile import NEPParameters, NEPSpec, read_nep_txt, write_nep_txt


def neighbour_pairs(atoms: Atoms, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre, neighbour and integer cell shift of every pair closer than ``cutoff`` (Å)."""
    from ase.neighborlist import neighbor_list

    i, j, shifts = neighbor_list("ijS", atoms, cutoff, self_interaction=False)
    return i, j, shifts


class NEPModel(Model):
    backend = "nep"
    readout = None

    def __init__(self, module: NEP, spec: str, dtype: str = "float64", device: str = "cpu"):
        super().__init__(module, spec=spec, dtype=dtype, device=device)

    @classmethod
    def from_nep_txt(cls, path: str | os.PathLike, dtype: str = "float64", device: str = "cpu",
                     spec: str | None = None) -> "NEPModel":
        nep_spec, params = read_nep_txt(path)
        return cls(NEP(nep_spec, params), spec=spec or f"nep:{os.fspath(path)}", dtype=dtype, device=device)

    @classmethod
    def from_state(cls, state: dict, path: str | os.PathLike, dtype: str = "float64", device: str = "cpu",
                   spec: str | None = None) -> "NEPModel":
        """The model in a phonft NEP torch file's ``{"spec", "parameters"}`` entry."""
        from phonft.errors import InputFileError

        try:
            fields = dict(state["spec"])
            nep_spec = NEPSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
            params = NEPParameters.from_flat(nep_spec, np.asarray(state["parameters"], dtype=np.float64))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputFileError(path, f"is not a phonft NEP model file ({type(exc).__name__}: {exc}).",
                                 "rerun the finetune rule that writes it, or give its nep.txt.") from exc
        return cls(NEP(nep_spec, params), spec=spec or os.fspath(path), dtype=dtype, device=device)

    @property
    def nep_spec(self) -> NEPSpec:
        return self.module.spec

    @property
    def elements(self) -> set[int] | None:
        return {int(z) for z in self.module.atomic_numbers.tolist()}

    def prepare(self, structures: Sequence[Atoms]) -> Batch:
        return self.collate(self.prepare_items(structures))

    def graph_cutoffs(self) -> tuple[float, ...]:
        return (max(self.nep_spec.cutoff + ((self.nep_spec.zbl[1],) if self.nep_spec.zbl else ())),)

    def prepare_items(self, structures: Sequence[Atoms]) -> list:
        """Per structure: types, neighbour pairs (i, j, image shifts), positions and cell (numpy)."""
        (cutoff,), index = self.graph_cutoffs(), {s: t for t, s in enumerate(self.nep_spec.types)}
        items = []
        for b, atoms in enumerate(structures):
            self.check_elements(atoms, f"structure {b} ({atoms.get_chemical_formula()})")
            i, j, shifts = neighbour_pairs(atoms, cutoff)
            items.append({"types": np.array([index[s] for s in atoms.get_chemical_symbols()], dtype=np.int64),
                          "centre": i, "neighbour": j, "shifts": shifts, "positions": atoms.positions.copy(),
                          "cells": atoms.cell.array.copy()})
        return items

    def moved_item(self, item: dict, atoms: Atoms) -> dict:
        return {**item, "positions": atoms.positions.copy()}

    def collate(self, items: Sequence[dict]) -> Batch:
        parts: dict[str, list] = {k: [] for k in ("types", "centre", "neighbour", "shifts", "pair_structure")}
        offset = 0
        for b, item in enumerate(items):
            parts["types"].append(item["types"])
            parts["centre"].append(item["centre"] + offset)
            parts["neighbour"].append(item["neighbour"] + offset)
            parts["shifts"].append(item["shifts"])
            parts["pair_structure"].append(np.full(len(item["centre"]), b))
            offset += len(item["types"])
        tensor = {k: torch.as_tensor(np.concatenate(v), device=self.device) for k, v in parts.items()}
        tensor["shifts"] = tensor["shifts"].to(self.dtype)
        n_atoms = torch.tensor([len(item["types"]) for item in items], device=self.device)
        tensor["atom_structure"] = torch.repeat_interleave(torch.arange(len(items), device=self.device), n_atoms)
        tensor["positions"] = torch.as_tensor(np.concatenate([item["positions"] for item in items]),
                                              dtype=self.dtype, device=self.device)
        tensor["cells"] = torch.as_tensor(np.stack([item["cells"] for item in items]), dtype=self.dtype,
                                          device=self.device)
        return Batch(n_atoms=n_atoms, graph=tensor)

    def evaluate(self, batch: Batch, *, stress: bool = False, create_graph: bool = False) -> Outputs:
        g = batch.graph
        positions = g["positions"].detach().clone().requires_grad_(True)
        inputs = [positions]
        with torch.enable_grad():
            pos, cells = positions, g["cells"]
            if stress:
                strain = torch.zeros_like(cells).requires_grad_(True)
                inputs.append(strain)
                pos = pos + torch.einsum("na,nab->nb", pos, strain[g["atom_structure"]])
                cells = cells + cells @ strain
            vectors = (pos[g["neighbour"]] - pos[g["centre"]]
                       + torch.einsum("pa,pab->pb", g["shifts"], cells[g["pair_structure"]]))
            per_atom = self.module.atomic_energies(g["types"], g["centre"], g["neighbour"], vectors)
            energy = per_atom.new_zeros(batch.n_structures).index_add(0, g["atom_structure"], per_atom)
            grads = torch.autograd.grad(energy.sum(), inputs, create_graph=create_graph, retain_graph=True)
        sigma = None
        if stress:
            volumes = torch.abs(torch.linalg.det(g["cells"]))
            sigma = grads[1] / volumes.view(-1, 1, 1)
        return Outputs(energy=energy, forces=-grads[0], stress=sigma, positions=[positions])

    def architecture(self) -> Callable[[], torch.nn.Module]:
        """The same NEP spec and q_scaler with fresh random weights (seeded by torch's RNG)."""
        nep_spec, q_scaler = self.nep_spec, self.module.q_scaler.detach().cpu().numpy()

        def build() -> torch.nn.Module:
            seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
            params = random_parameters(nep_spec, np.random.default_rng(seed))
            params.q_scaler = q_scaler.copy()
            return NEP(nep_spec, params).to(device=self.device, dtype=self.dtype)

        return build

    def save(self, path: str | os.PathLike) -> None:
        """Write the torch file at ``path`` and GPUMD's ``nep.txt`` beside it."""
        from phonft.io import atomic_torch_save

        module = self.exported_module()
        params = module.parameters_numpy()
        spec = dataclasses.asdict(module.spec)
        atomic_torch_save({"nep": {"spec": spec, "parameters": torch.as_tensor(params.flat())}}, path)
        write_nep_txt(Path(path).with_name("nep.txt"), module.spec, params)
