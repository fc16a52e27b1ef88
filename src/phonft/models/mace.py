"""MACE behind phonft's model interface.

Three sources: a local ``.model`` file, a named MACE-MP foundation model (downloaded by
:func:`phonft.cache.download` into mace-torch's standard cache, ``~/.cache/mace``), or a small random
``ScaleShiftMACE`` built in code (:func:`small_mace`), which tests use because no weights
ship with mace-torch. The forward pass is MACE's own; phonft passes its own position
leaf and a zero strain (``displacement``), then takes forces, stresses and
Hessian-vector products by autograd. The native format is the pickled module that
``MACECalculator(model_paths=...)`` loads.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from ase import Atoms

from phonft.models.base import Batch, Model, Outputs

MACE_MP_NAMES = ("small", "medium", "large", "small-0b", "medium-0b", "small-0b2", "medium-0b2",
                 "large-0b2", "medium-0b3", "medium-mpa-0", "small-omat-0", "medium-omat-0",
                 "mace-matpes-pbe-0", "mace-matpes-r2scan-0", "mh-1")


_NO_WEIGHTS_ONLY = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


@contextlib.contextmanager
def unsafe_torch_load_default() -> Iterator[None]:
    """Let ``torch.load`` calls without ``weights_only`` unpickle, for this block only.

    Under torch>=2.6, ``torch.load`` defaults to ``weights_only=True``. e3nn 0.4.4 loads its
    ``constants.pt`` at import without saying ``weights_only``, which then fails; mace works
    round this by setting ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` for the whole process when
    imported (so mace must be imported before e3nn). Importing mace inside this block keeps
    that switch to the import: the variable is restored to its previous state (unset, or
    its old value) afterwards, so every later ``torch.load`` keeps torch's safe default.
    """
    before = os.environ.get(_NO_WEIGHTS_ONLY)
    os.environ[_NO_WEIGHTS_ONLY] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(_NO_WEIGHTS_ONLY, None)
        else:
            os.environ[_NO_WEIGHTS_ONLY] = before


def _import_mace():
    """Import mace, then e3nn through it, with torch's unsafe load default scoped to the import."""
    with unsafe_torch_load_default():
        import mace  # noqa: F401
        import mace.data
        import mace.modules
        import mace.tools

    return mace


def small_mace(elements: Sequence[str], *, r_max: float = 4.5, num_channels: int = 16, max_L: int = 1,
               num_interactions: int = 2, correlation: int = 2, seed: int = 0) -> torch.nn.Module:
    """A small random ``ScaleShiftMACE`` for the given elements (tests and offline checks).

    Its energy surface is smooth, like every MACE, so its exact Hessian equals finite
    differences of its forces. Weights are drawn from ``torch.manual_seed(seed)``.
    """
    _import_mace()
    from ase.data import atomic_numbers
    from e3nn import o3
    from mace import modules

    zs = sorted(atomic_numbers[s] for s in elements)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return modules.ScaleShiftMACE(
            r_max=r_max, num_bessel=8, num_polynomial_cutoff=5, max_ell=2,
            interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
            interaction_cls_first=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
            num_interactions=num_interactions, num_elements=len(zs),
            hidden_irreps=o3.Irreps(f"{num_channels}x0e" + (f" + {num_channels}x1o" if max_L >= 1 else "")),
            MLP_irreps=o3.Irreps("16x0e"), atomic_energies=np.full(len(zs), -3.0),
            avg_num_neighbors=12.0, atomic_numbers=zs, correlation=correlation,
            gate=torch.nn.functional.silu, atomic_inter_scale=1.0, atomic_inter_shift=0.0,
        )


_SMALL_MACE_MINIMA = {"num_channels": 1, "max_L": 0, "num_interactions": 1, "correlation": 1}


def check_small_mace_options(options: Mapping[str, Any], where: str = "model 'mace-small'") -> dict[str, Any]:
    """The keyword arguments of :func:`small_mace`, checked: known keys only, ``elements``
    a non-empty list of element symbols, ``r_max`` (Å) a positive number, the sizes
    positive integers. Raises :class:`~phonft.errors.ConfigError` naming the bad key."""
    from ase.data import atomic_numbers

    from phonft.errors import ConfigError

    params = inspect.signature(small_mace).parameters
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise ConfigError(f"{where}: unknown model_options key(s) {', '.join(map(repr, unknown))}; known: "
                          f"{', '.join(params)}. Fix: remove or correct them.")
    out = dict(options)
    elements = out.get("elements")
    if elements is None:
        raise ConfigError(f"{where} needs model_options.elements, a list of element symbols such as ['Si', 'O'].")
    if (not isinstance(elements, (list, tuple)) or not elements
            or not all(isinstance(e, str) and atomic_numbers.get(e, 0) > 0 for e in elements)
            or len(set(elements)) != len(elements)):
        raise ConfigError(f"{where}: model_options.elements must be a list of distinct element symbols such as "
                          f"['Si', 'O'], not {elements!r}.")
    for key, value in out.items():
        if key == "elements":
            continue
        if key == "r_max":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < float("inf")
            want = "a positive number of Å"
        else:
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= _SMALL_MACE_MINIMA.get(key, 0)
            want = f"an integer ≥ {_SMALL_MACE_MINIMA.get(key, 0)}"
        if not ok:
            raise ConfigError(f"{where}: model_options.{key} must be {want}, not {value!r}.")
    return out


def foundation_file(name: str) -> str:
    """The checkpoint of the MACE-MP foundation model ``name`` (one of mace-torch's
    ``mace_mp_names``), in mace-torch's own cache (``$XDG_CACHE_HOME/mace`` or ``~/.cache/mace``,
    under the file name mace-torch gives it, so either package finds the other's download).
    A missing file is downloaded by :func:`phonft.cache.download` (progress bar, offline
    error within seconds); upstream publishes no checksums, so none is pinned."""
    from phonft.cache import download
    from phonft.errors import ConfigError

    _import_mace()
    with unsafe_torch_load_default():  # mace.calculators sets the process-wide switch again
        from mace.calculators.foundations_models import local_model_path, mace_mp_names, mace_mp_urls
    from mace.tools.utils import get_cache_dir

    if name not in mace_mp_names or name not in mace_mp_urls:
        known = ", ".join(n for n in mace_mp_names if n in mace_mp_urls)
        raise ConfigError(f"model 'mace-mp:{name}': mace-torch knows no foundation model {name!r}. Fix: use one of "
                          f"{known}, or name a local file as 'mace:/path/to/model.model'.")
    if name == "medium-mpa-0" and os.path.isfile(local_model_path):
        return local_model_path
    url = mace_mp_urls[name]
    path = Path(get_cache_dir()) / "".join(c for c in os.path.basename(url) if c.isalnum() or c == "_")
    if not path.is_file():
        download(f"mace-mp:{name}", url, path)
    return str(path)


class MACEModel(Model):
    backend = "mace"
    readout = "readouts"  # one readout block per interaction, summed into the energy

    @classmethod
    def from_file(cls, path: str | os.PathLike, dtype: str = "float32", device: str = "cpu",
                  spec: str | None = None) -> "MACEModel":
        from phonft.errors import InputFileError
        from phonft.models.base import read_model_file

        _import_mace()
        module = read_model_file(path)
        if not (isinstance(module, torch.nn.Module) and hasattr(module, "atomic_numbers")):
            raise InputFileError(path, f"holds a {type(module).__name__}, not a pickled MACE model.",
                                 "delete it so that it is downloaded again, or name another model file.")
        return cls(module, spec=spec or f"mace:{os.fspath(path)}", dtype=dtype, device=device)

    @classmethod
    def foundation(cls, name: str, dtype: str = "float32", device: str = "cpu") -> "MACEModel":
        """A MACE-MP foundation model, downloaded once into mace-torch's cache
        (:func:`foundation_file`)."""
        return cls.from_file(foundation_file(name), dtype=dtype, device=device, spec=f"mace-mp:{name}")

    @property
    def elements(self) -> set[int] | None:
        return {int(z) for z in self.module.atomic_numbers.tolist()}

    @property
    def r_max(self) -> float:
        return float(self.module.r_max)

    def prepare(self, structures: Sequence[Atoms]) -> Batch:
        return self.collate(self.prepare_items(structures))

    def prepare_items(self, structures: Sequence[Atoms]) -> list:
        _import_mace()
        from mace import data as mdata
        from mace.tools import AtomicNumberTable

        z_table = AtomicNumberTable(sorted(self.elements))
        heads = list(getattr(self.module, "heads", None) or ["Default"])
        default = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)  # AtomicData uses the default dtype: keep Å to 1e-16
        try:
            return self._atomic_data(structures, z_table, heads, mdata)
        finally:
            torch.set_default_dtype(default)

    def collate(self, items: Sequence) -> Batch:
        """mace's own collation (new tensors: the items are never changed)."""
        from mace.tools import torch_geometric

        loader = torch_geometric.dataloader.DataLoader(list(items), batch_size=len(items), shuffle=False)
        data = next(iter(loader)).to(self.device).to_dict()
        data = {k: (v.to(self.dtype) if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in data.items()}
        n_atoms = torch.tensor([int(item.positions.shape[0]) for item in items], device=self.device)
        return Batch(n_atoms=n_atoms, graph=data)

    def graph_cutoffs(self) -> tuple[float, ...]:
        return (self.r_max,)

    def moved_item(self, item, atoms: Atoms):
        moved = copy.copy(item)
        moved.positions = torch.tensor(atoms.positions, dtype=torch.float64)
        return moved

    def _atomic_data(self, structures, z_table, heads, mdata) -> list:
        items = []
        for i, atoms in enumerate(structures):
            self.check_elements(atoms, f"structure {i} ({atoms.get_chemical_formula()})")
            clean = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
            config = mdata.config_from_atoms(clean, head_name=heads[0])
            items.append(mdata.AtomicData.from_config(config, z_table=z_table, cutoff=self.r_max, heads=heads))
        return items

    def evaluate(self, batch: Batch, *, stress: bool = False, create_graph: bool = False) -> Outputs:
        data: dict[str, Any] = dict(batch.graph)
        positions = data["positions"].detach().clone().requires_grad_(True)
        data["positions"] = positions
        inputs = [positions]
        if stress:
            strain = torch.zeros((batch.n_structures, 3, 3), dtype=self.dtype, device=self.device, requires_grad=True)
            data["displacement"] = strain
            inputs.append(strain)
        with torch.enable_grad():
            out = self.module(data, training=create_graph, compute_force=False, compute_displacement=stress)
            energy = out["energy"]
            grads = torch.autograd.grad(energy.sum(), inputs, create_graph=create_graph, retain_graph=True)
        sigma = None
        if stress:
            cells = batch.graph["cell"].view(-1, 3, 3)
            volumes = torch.abs(torch.linalg.det(cells))
            sigma = grads[1] / volumes.view(-1, 1, 1)
        return Outputs(energy=energy, forces=-grads[0], stress=sigma, positions=[positions])

    def architecture(self) -> Callable[[], torch.nn.Module]:
        """The model's class built from its own config (mace's ``extract_config_mace_model``):
        the same hyper-parameters, atomic energies (E0s) and scale/shift, fresh weights."""
        from phonft.errors import ConfigError

        _import_mace()
        from mace.tools.scripts_utils import extract_config_mace_model

        config = extract_config_mace_model(self.module)
        if "error" in config:
            raise ConfigError(f"strategy 'scratch': the architecture of model '{self.spec}' cannot be read "
                              f"({type(self.module).__name__}: {config['error']}), so it cannot be rebuilt from "
                              "random weights. Fix: use a ScaleShiftMACE base_model, or another strategy.")
        cls = type(self.module)
        return lambda: cls(**config).to(device=self.device, dtype=self.dtype)

    def save(self, path: str | os.PathLike) -> None:
        from phonft.io import atomic_torch_save

        atomic_torch_save(self.exported_module(), path)
