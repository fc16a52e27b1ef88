"""The shared model layer (phonft.models, phonft.forces): saved models load in their own
packages' calculators, unknown elements fail clearly, batched forces equal the ASE loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from phonft.errors import ConfigError
from phonft_testdata import small_mace_model


def test_saved_chgnet_loads_in_chgnet_calculator(tmp_path):
    from ase.build import bulk
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    from phonft.models import load_model

    model = load_model("chgnet", device="cpu")
    with torch.no_grad():
        next(model.module.parameters()).add_(0.01)  # a "fine-tuned" model differs from the shipped one
    path = tmp_path / "model.pt"
    model.save(path)
    atoms = bulk("Si", "diamond", 5.43) * (2, 1, 1)
    atoms.rattle(0.02, seed=0)
    atoms.calc = CHGNetCalculator(CHGNet.from_file(str(path)), use_device="cpu")
    ours = model.predict([atoms])[0]
    assert atoms.get_potential_energy() == pytest.approx(float(ours["energy"]), abs=1e-4)
    np.testing.assert_allclose(atoms.get_forces(), ours["forces"], atol=1e-4)
    again = load_model(str(path), device="cpu")  # the spec of a fine-tuned model is its path
    assert again.backend == "chgnet"


def test_saved_mace_loads_in_mace_calculator(tmp_path):
    from ase.build import bulk
    from phonft.models import load_model
    from phonft.models.mace import unsafe_torch_load_default

    with unsafe_torch_load_default():  # MACECalculator's torch.load needs mace's switch, which an
        from mace.calculators import MACECalculator  # earlier test may have imported and restored

    model = small_mace_model(["Si"], "float64")
    path = tmp_path / "model.pt"
    model.save(path)
    atoms = bulk("Si", "diamond", 5.43) * (2, 1, 1)
    atoms.rattle(0.02, seed=0)
    with unsafe_torch_load_default():
        atoms.calc = MACECalculator(model_paths=str(path), device="cpu", default_dtype="float64")
    ours = model.predict([atoms])[0]
    assert atoms.get_potential_energy() == pytest.approx(float(ours["energy"]), abs=1e-8)
    np.testing.assert_allclose(atoms.get_forces(), ours["forces"], atol=1e-8)
    assert load_model(str(path), device="cpu").backend == "mace"


def test_unknown_element_fails_clearly():
    from ase.build import bulk

    model = small_mace_model(["Si"])
    with pytest.raises(ConfigError, match="does not know element"):
        model.prepare([bulk("NaCl", "rocksalt", 5.6)])


def test_batched_forces_equal_the_ase_loop():
    from ase.build import bulk

    from phonft.forces import atom_budget_chunks, displaced_forces

    model = small_mace_model(("Si",))
    rng = np.random.default_rng(0)
    cells = []
    for _ in range(5):
        a = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
        a.positions += rng.normal(0, 0.02, a.positions.shape)
        cells.append(a)
    batched = displaced_forces(model, cells, batch_atoms=128, remove_drift=False, progress=False)
    calc = model.as_ase_calculator()
    for a, f in zip(cells, batched):
        a = a.copy()
        a.calc = calc
        np.testing.assert_allclose(f, a.get_forces(), atol=1e-10)
    drift = displaced_forces(model, cells, batch_atoms=1000, progress=False)
    np.testing.assert_allclose(drift.mean(axis=1), 0.0, atol=1e-12)
    assert atom_budget_chunks([64] * 5, 128) == [slice(0, 2), slice(2, 4), slice(4, 5)]
    assert atom_budget_chunks([300, 10], 128) == [slice(0, 1), slice(1, 2)]
