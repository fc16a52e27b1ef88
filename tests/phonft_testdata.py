"""Shared test helpers: paths to the vendored test data (and the optional GPL-3 shared
data), the reference specs of the vendored materials, toy and small models, and writers of
result records. Fixtures live in conftest.py, which imports from here; tests import
helpers from here, never from conftest."""

import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
DFT = DATA / "dft-phonons"
MDR = DATA / "mdr"
SHARED = REPO.parent / "shared" / "data"

#: Reference specs of the vendored materials the ``references`` fixture builds folders of.
REFERENCE_SPECS = {
    "mp-149": {"format": "mdr", "path": "data/mdr/mp-149.yaml.bz2"},
    "MgO": {"format": "force_sets", "path": "data/dft-phonons/MgO"},
    "NaCl": {"format": "force_sets", "path": "data/dft-phonons/NaCl"},
    "CaTiO3": {"format": "force_sets", "path": "data/dft-phonons/CaTiO3"},
    "Si": {"format": "vasprun", "path": "data/dft-phonons/Si", "files": ["vasprun.xml"]},
}


def small_mace_model(elements=("Si",), dtype="float64", seed=0):
    """A small, randomly initialised MACE (r_max 4 Å) for ``elements``, on the CPU."""
    from phonft.models import load_model

    return load_model("mace-small", dtype=dtype, device="cpu",
                      options={"elements": list(elements), "seed": seed, "r_max": 4.0})


def pair_springs(stiffness_eV_A2: dict, r0_A: dict, cutoff_A: float = 2.6):
    """A toy :class:`phonft.models.base.Model`: harmonic springs between neighbours.

    ``E = 1/2 sum_pairs k_AB (r - r0_AB)^2`` with one trainable stiffness per element
    pair (``"Si-Si"``, ...), so which parameters a structure's loss can move is known
    exactly. Forces and Hessian-vector products come from autograd, as for real models.
    """
    import torch
    from ase.neighborlist import neighbor_list

    from phonft.models.base import Batch, Model, Outputs

    class PairSprings(Model):
        backend = "springs"

        def __init__(self):
            module = torch.nn.Module()
            module.k = torch.nn.ParameterDict({key: torch.nn.Parameter(torch.tensor(float(v)))
                                               for key, v in stiffness_eV_A2.items()})
            self.r0 = dict(r0_A)
            super().__init__(module, "springs", dtype="float64")

        @property
        def elements(self):
            return None

        def prepare(self, structures):
            graphs = []
            for a in structures:
                i, j, shift = neighbor_list("ijS", a, cutoff_A)
                sym = a.get_chemical_symbols()
                keys = ["-".join(sorted((sym[x], sym[y]))) for x, y in zip(i, j)]
                graphs.append({"pos": a.positions.copy(), "i": i, "j": j, "keys": keys,
                               "shift": shift @ a.cell.array, "r0": [self.r0[k] for k in keys]})
            return Batch(n_atoms=torch.tensor([len(a) for a in structures]), graph=graphs)

        def evaluate(self, batch, *, stress=False, create_graph=False):
            energies, forces, positions = [], [], []
            for g in batch.graph:
                pos = torch.tensor(g["pos"], dtype=self.dtype, requires_grad=True)
                d = pos[g["j"]] + torch.tensor(g["shift"], dtype=self.dtype) - pos[g["i"]]
                k = torch.stack([self.module.k[key] for key in g["keys"]])
                r0 = torch.tensor(g["r0"], dtype=self.dtype)
                e = 0.25 * (k * (d.norm(dim=1) - r0) ** 2).sum()  # each pair appears twice
                f = -torch.autograd.grad(e, pos, create_graph=True)[0]
                energies.append(e)
                forces.append(f)
                positions.append(pos)
            return Outputs(energy=torch.stack(energies), forces=torch.cat(forces), stress=None, positions=positions)

        def save(self, path):
            torch.save(self.module.state_dict(), path)

    return PairSprings()


def reference_phonopy(ref_dir):
    """The DFT phonopy object the evaluate stage works with: fc2 attached, no NAC."""
    from phonft.references.folder import ReferenceFolder

    return ReferenceFolder.load(ref_dir).phonopy(with_nac=False)


class HarmonicModel:
    """Duck-typed phonft Model whose energy is ½uᵀΦu on the reference supercell (eV, eV/Å);
    the unit cell sits at its equilibrium (zero force and stress)."""

    spec = "harmonic-dft"

    def __init__(self, ref_dir):
        ph = reference_phonopy(ref_dir)
        self.fc = np.asarray(ph.force_constants)
        self.r0 = np.asarray(ph.supercell.positions)
        self.cell = np.asarray(ph.supercell.cell)
        self.n_unit = len(ph.unitcell)
        self.calls = 0

    def set_dtype(self, dtype):
        return self

    def check_elements(self, atoms, where):
        pass

    def _one(self, atoms):
        if len(atoms) == self.n_unit:
            return {"energy": np.float64(0.0), "forces": np.zeros((len(atoms), 3)), "stress": np.zeros((3, 3))}
        d = atoms.positions - self.r0
        frac = d @ np.linalg.inv(self.cell)
        u = (frac - np.rint(frac)) @ self.cell
        f = -np.einsum("ijab,jb->ia", self.fc, u)
        return {"energy": np.float64(-0.5 * np.sum(f * u)), "forces": f, "stress": np.zeros((3, 3))}

    def predict(self, structures, batch_size=8, stress=False):
        self.calls += 1
        return [self._one(a) for a in structures]

    def as_ase_calculator(self):
        from ase.calculators.calculator import Calculator, all_changes

        model = self

        class _Calc(Calculator):
            implemented_properties = ["energy", "free_energy", "forces", "stress"]

            def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
                super().calculate(atoms, properties, system_changes)
                r = model._one(self.atoms)
                self.results = {"energy": float(r["energy"]), "free_energy": float(r["energy"]),
                                "forces": r["forces"], "stress": np.zeros(6)}

        return _Calc()


def write_thermal_case(root, model, material, omega, stable, band=1.0):
    """A minimal ``<root>/<model>/<material>/thermal.json`` (+ ``bands.json`` unless ``model`` is
    ``"refs"``) whose values derive from ``omega`` (omega_max, K): what ``summarize`` and the
    figures read."""
    d = root / model / material
    d.mkdir(parents=True, exist_ok=True)
    rec = {"material": material, "omega_max_K": omega, "dynamically_stable": stable, "min_frequency_THz": 0.0,
           "temperatures_K": [0.0, 300.0], "entropy_J_per_K_mol": [0.0, omega / 10],
           "free_energy_kJ_per_mol": [1.0, omega / 100], "heat_capacity_J_per_K_mol": [0.0, omega / 20]}
    (d / "thermal.json").write_text(json.dumps(rec))
    if model != "refs":
        (d / "bands.json").write_text(json.dumps({"band_mae_THz": band}))


#: A tiny fine-tuning run on a small random MACE model (the finetune CLI and resume tests).
TINY_MACE_RUN = {
    "materials": ["Si", "mp-149", "MgO"],
    "split": {"test": ["MgO"], "val": ["mp-149"], "n_test": 1, "n_val": 1},
    "base_model": "mace-small",
    "model_options": {"elements": ["Si", "Mg", "O", "C", "Ge"], "seed": 0},
    "epochs": 2,
    "lr": 1e-3,
    "replay_steps": 1,
    "replay": {"copies": 3, "min_atoms": 8, "max_atoms": 16},
}


def hessian_by_hvp(model, atoms) -> np.ndarray:
    """Full (N, N, 3, 3) Hessian of a float64 phonft model by Hessian-vector products (eV/Å²)."""
    import torch

    n = len(atoms)
    batch = model.prepare([atoms])
    out = model.evaluate(batch, create_graph=True)
    fc = np.zeros((n, n, 3, 3))
    for c in range(3 * n):
        v = torch.zeros(n, 3, dtype=torch.float64)
        v.view(-1)[c] = 1.0
        j, b = divmod(c, 3)
        fc[:, j, :, b] = model.hvp(batch, v, out, create_graph=False).detach().numpy()
    return fc


def tiny_run_inputs(references, root: Path) -> dict:
    """The tiny MACE run's references root, ``split.json`` and pseudo-label replay folder,
    built under ``root`` through ``phonft finetune split`` and ``replay`` (CPU)."""
    from phonft.cli import main

    for m in TINY_MACE_RUN["materials"]:
        refs = references(m).parent
    spec = json.dumps({"run": TINY_MACE_RUN})
    assert main(["finetune", "split", "--run", "t", "--settings", spec, "--out", str(root / "split.json")]) == 0
    assert main(["finetune", "replay", "--run", "t", "--settings", spec, "--split", str(root / "split.json"),
                 "--references", str(refs), "--out", str(root / "replay"), "--device", "cpu"]) == 0
    return {"refs": refs, "split": root / "split.json", "replay": root / "replay"}


def _emt_class():
    from ase.calculators.emt import EMT

    return EMT


class BatchedEMT(_emt_class()):
    """ASE's EMT with phonft's batched-calculator method (``calculate_batch``): each call
    evaluates a list of structures and records its length in ``batch_sizes``. Stresses come
    back in Voigt form, as ASE calculators store them. Model spec: ``ase:phonft_testdata:BatchedEMT``."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.batch_sizes: list[int] = []

    def calculate_batch(self, atoms_list, properties):
        from ase.calculators.emt import EMT

        self.batch_sizes.append(len(atoms_list))
        out = []
        for atoms in atoms_list:
            work = atoms.copy()
            work.calc = EMT()
            result = {"energy": work.get_potential_energy(), "forces": work.get_forces()}
            if "stress" in properties:
                result["stress"] = work.get_stress()
            out.append(result)
        return out


def emt_relaxed(atoms):
    """``atoms`` relaxed under ASE's EMT (cell and positions, symmetry kept) to 1e-6 eV/Å."""
    from ase.calculators.emt import EMT

    from phonft.evaluate.relax import relax

    return relax(atoms, EMT(), fmax_eV_A=1e-6, max_steps=2000).atoms


def emt_cu():
    """Conventional fcc Cu at EMT's equilibrium lattice."""
    from ase.build import bulk

    return emt_relaxed(bulk("Cu", "fcc", a=3.6, cubic=True))


def write_emt_reference(root: Path, material: str, atoms, supercell: int) -> Path:
    """``root/results/references/<material>``: EMT's own phonons of ``atoms`` (an
    ``supercell`` x ``supercell`` x ``supercell`` supercell), made by the structures ->
    displacements -> references chain with the synthetic ``engine`` format. Returns the
    references folder."""
    from phonft.cli import main

    atoms.write(root / f"{material}.vasp", direct=True)
    spec = json.dumps({"material": {"structure": {"file": str(root / f"{material}.vasp")},
                                    "reference": {"format": "engine", "calculator": "emt"}}})
    cell = json.dumps({"protocol": {"supercell_matrix": (np.eye(3, dtype=int) * supercell).tolist()}})
    r = root / "results"
    assert main(["structures", "--material", material, "--settings", spec, "--out",
                 str(r / "structures" / material)]) == 0
    assert main(["displacements", "--material", material, "--structure", str(r / "structures" / material / "POSCAR"),
                 "--settings", cell, "--out", str(r / "displacements" / material)]) == 0
    assert main(["references", "--material", material, "--settings", spec, "--displacements",
                 str(r / "displacements" / material), "--out", str(r / "references" / material)]) == 0
    return r / "references" / material


def write_emt_cu_reference(root: Path) -> Path:
    """EMT's own references folder of fcc Cu (:func:`emt_cu`, 2x2x2 conventional supercell,
    32 atoms): ``root/results/references/Cu``."""
    return write_emt_reference(root, "Cu", emt_cu(), 2)
