"""CHGNet behind phonft's model interface.

CHGNet predicts an intensive energy (eV/atom) from crystal graphs whose Cartesian
positions are built inside :class:`chgnet.model.model.BatchedGraph` from fractional
coordinates and the (strained) lattice. This backend keeps those position tensors, so
forces, stresses and Hessian-vector products are all plain autograd on them. Graphs are
rebuilt (neighbour lists included) for every new geometry, exactly as CHGNet's own
calculator does. Its saved format is CHGNet's ``{"model": CHGNet.as_dict()}`` file that
``CHGNet.from_file`` and ``CHGNetCalculator.from_file`` read.
"""

from __future__ import annotations

import copy
import os
import warnings
from typing import Callable, Sequence

import torch
from ase import Atoms

from phonft.models.base import Batch, Model, Outputs

#: eV/Å³ per GPa; CHGNet's internal stress unit is GPa.
_GPA_TO_EV_A3 = 1.0 / 160.21766208


def _cast_graph(graph, structure, dtype: torch.dtype, device: torch.device):
    """CHGNet's converter stores float32 geometry; rebuild it from the structure at ``dtype``
    (a 1e-5 Å displacement is below float32's resolution of fractional coordinates)."""
    graph.atom_frac_coord = torch.tensor(structure.frac_coords, dtype=dtype, device=device, requires_grad=True)
    graph.lattice = torch.tensor(structure.lattice.matrix, dtype=dtype, device=device)
    graph.neighbor_image = graph.neighbor_image.to(device=device, dtype=dtype)
    return graph.to(device)


class CHGNetModel(Model):
    backend = "chgnet"
    readout = "mlp"  # the readout MLP (per atom before pooling when mlp_first, else on the pooled features)

    @classmethod
    def pretrained(cls, name: str = "0.3.0", dtype: str = "float32", device: str = "cpu") -> "CHGNetModel":
        """The CHGNet weights shipped inside the chgnet package (offline)."""
        from chgnet.model import CHGNet

        module = CHGNet.load(model_name=name, use_device="cpu", verbose=False)
        return cls(module, spec="chgnet" if name == "0.3.0" else f"chgnet:{name}", dtype=dtype, device=device)

    @classmethod
    def from_dict(cls, state: dict, path: str | os.PathLike, dtype: str = "float32", device: str = "cpu",
                  spec: str | None = None) -> "CHGNetModel":
        """A CHGNet from the ``model`` entry of a CHGNet file (``CHGNet.as_dict()``) read
        from ``path``; weights that do not fit its ``model_args`` raise an
        :class:`~phonft.errors.InputFileError` naming the file."""
        from chgnet.model import CHGNet

        from phonft.errors import InputFileError

        try:
            module = CHGNet.from_dict(state)
        except Exception as exc:  # TypeError (model_args), KeyError, RuntimeError (state_dict)
            detail = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else ""
            raise InputFileError(path, f"is a CHGNet file whose model_args or weights this chgnet cannot build "
                                       f"({type(exc).__name__}: {detail[:200]}).",
                                 "save it again with CHGNet.as_dict() (or phonft), or use a matching chgnet.") from exc
        return cls(module, spec=spec or f"chgnet:{os.fspath(path)}", dtype=dtype, device=device)

    @property
    def elements(self) -> set[int] | None:
        return set(range(1, 95))  # CHGNet embeds Z = 1..94

    def prepare(self, structures: Sequence[Atoms]) -> Batch:
        return self.collate(self.prepare_items(structures))

    def prepare_items(self, structures: Sequence[Atoms]) -> list:
        from pymatgen.io.ase import AseAtomsAdaptor

        converter = self.module.graph_converter
        graphs = []
        for i, atoms in enumerate(structures):
            self.check_elements(atoms, f"structure {i} ({atoms.get_chemical_formula()})")
            structure = AseAtomsAdaptor.get_structure(atoms)
            graph = converter(structure, graph_id=str(i))
            graphs.append(_cast_graph(graph, structure, self.dtype, self.device))
        return graphs

    def collate(self, items: Sequence) -> Batch:
        """Shallow copies of the graphs with fresh leaves of their fractional coordinates
        (the leaf is what a step's autograd reaches; the neighbour lists are shared)."""
        graphs = []
        for graph in items:
            g = copy.copy(graph)
            g.atom_frac_coord = graph.atom_frac_coord.detach().requires_grad_(True)
            graphs.append(g)
        n_atoms = torch.tensor([int(g.atomic_number.shape[0]) for g in graphs], device=self.device)
        return Batch(n_atoms=n_atoms, graph=graphs)

    def graph_cutoffs(self) -> tuple[float, ...]:
        conv = self.module.graph_converter
        return (float(conv.atom_graph_cutoff), float(conv.bond_graph_cutoff))

    def moved_item(self, item, atoms: Atoms):
        from pymatgen.io.ase import AseAtomsAdaptor

        g = copy.copy(item)
        frac = AseAtomsAdaptor.get_structure(atoms).frac_coords
        g.atom_frac_coord = torch.tensor(frac, dtype=self.dtype, device=self.device, requires_grad=True)
        return g

    def _composition_energy(self, graphs) -> torch.Tensor | float:
        comp = self.module.composition_model
        if comp is None:
            return 0.0
        feas = comp._assemble_graphs(graphs).to(device=self.device, dtype=self.dtype)
        return comp._get_energy(feas)

    def evaluate(self, batch: Batch, *, stress: bool = False, create_graph: bool = False) -> Outputs:
        from chgnet.model.model import BatchedGraph

        net = self.module
        with torch.enable_grad(), warnings.catch_warnings():
            # chgnet converts per-structure volumes with float(); harmless, but it warns
            warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad")
            g = BatchedGraph.from_graphs(batch.graph, bond_basis_expansion=net.bond_basis_expansion,
                                         angle_basis_expansion=net.angle_basis_expansion, compute_stress=stress)
            pred = net._compute(g)
            per_atom = pred["e"] + self._composition_energy(batch.graph)
            energy = per_atom * batch.n_atoms.to(per_atom.dtype) if net.is_intensive else per_atom
            inputs = list(g.atom_positions) + (list(g.strains) if stress else [])
            grads = torch.autograd.grad(energy.sum(), inputs, create_graph=create_graph, retain_graph=True)
        n = len(g.atom_positions)
        forces = -torch.cat(grads[:n], dim=0)
        sigma = None
        if stress:
            volumes = torch.stack([torch.abs(torch.linalg.det(gr.lattice)) for gr in batch.graph])
            sigma = torch.stack(grads[n:]) / volumes.view(-1, 1, 1)
        return Outputs(energy=energy, forces=forces, stress=sigma, positions=list(g.atom_positions))

    def architecture(self) -> Callable[[], torch.nn.Module]:
        """CHGNet's own constructor with this model's ``model_args``; the fresh model keeps
        this one's composition model (per-element reference energies, which CHGNet itself
        keeps fixed in training) and is cast to this model's dtype and device."""
        from chgnet.model import CHGNet

        args, composition = dict(self.module.model_args), self.module.composition_model

        def build() -> torch.nn.Module:
            net = CHGNet(**{**args, "composition_model": None})
            net.composition_model = None if composition is None else copy.deepcopy(composition)
            net.model_args["composition_model"] = args.get("composition_model")
            return net.to(device=self.device, dtype=self.dtype)

        return build

    def save(self, path: str | os.PathLike) -> None:
        from phonft.io import atomic_torch_save

        state = self.exported_module().as_dict()
        state["state_dict"] = {k: v.detach().to("cpu", torch.float32) if v.is_floating_point() else v.cpu()
                               for k, v in state["state_dict"].items()}
        atomic_torch_save({"model": state}, path)
