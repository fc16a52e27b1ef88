"""Paths to the vendored test data (and the optional GPL-3 shared data)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
DFT = DATA / "dft-phonons"
MDR = DATA / "mdr"
SHARED = REPO.parent / "shared" / "data"


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
