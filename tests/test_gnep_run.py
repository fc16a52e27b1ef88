"""The GNEP phase of a finetune run: ``base_model: nep`` trained by GNEP on the augment frames,
then PFT, written as model.pt + nep.txt; and the settings that cannot work fail clearly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from phonft.cli import main
from phonft.errors import ConfigError
from phonft.finetune.settings import TrainSettings
from phonft_testdata import TINY_MACE_RUN, tiny_run_inputs
from test_objectives import harmonic_frames, write_frames

NEP_RUN = {**TINY_MACE_RUN, "base_model": "nep", "replay_steps": 0, "epochs": 1, "dtype": "float64",
           "model_options": {"elements": ["Si", "Mg", "O", "C", "Ge"], "cutoff": [5.0, 4.0], "n_max": [3, 3],
                             "basis_size": [4, 4], "neurons": 6, "seed": 0},
           "gnep_data": ["augment"], "gnep": {"epochs": 6, "batch_size": 2, "lr": 0.02},
           "max_drift": {"energy_eV_atom": None, "force_eV_A": None, "error_ratio": None}}


@pytest.fixture(scope="module")
def inputs(references, tmp_path_factory) -> dict[str, Path]:
    from phonft.finetune.data import load_phonon_sample

    root = tmp_path_factory.mktemp("gnep_run")
    si = load_phonon_sample(references("Si"), "Si")
    write_frames(root / "augment", "Si", harmonic_frames(si, 4, 0.03, seed=3))
    return {**tiny_run_inputs(references, root), "augment": root / "augment"}


def _train(inputs, out: Path, run: dict) -> int:
    return main(["finetune", "train", "--run", "t", "--settings", json.dumps({"run": run}), "--split",
                 str(inputs["split"]), "--references", str(inputs["refs"]), "--replay", str(inputs["replay"]),
                 "--augment", str(inputs["augment"]), "--device", "cpu", "--out", str(out)])


def test_nep_from_scratch_is_trained_by_gnep_then_pft_and_written_as_nep_txt(inputs, tmp_path):
    from phonft.models import load_model

    assert _train(inputs, tmp_path, NEP_RUN) == 0
    record = json.loads((tmp_path / "train.json").read_text())
    gnep = record["gnep"]
    assert gnep["sources"]["augment"] == {"materials": ["Si"], "n_frames": 4}
    assert gnep["final"]["epoch"] == 6 and len(gnep["history"]) == 7
    assert gnep["final"]["force_rmse_meV_A"] < 0.7 * gnep["first"]["force_rmse_meV_A"], gnep
    assert record["checkpoint_key"]["augment"]["Si"]  # the frames key the checkpoint
    assert (tmp_path / "checkpoints" / record["checkpoint_key"]["key"] / "gnep.pt").is_file()
    pt = load_model(str(tmp_path / "model.pt"), dtype="float64", device="cpu")
    txt = load_model(f"nep:{tmp_path / 'nep.txt'}", dtype="float64", device="cpu")
    assert np.array_equal(pt.module.parameters_numpy().flat(), txt.module.parameters_numpy().flat())
    assert pt.nep_spec.max_neighbors == tuple(gnep["initialise"]["max_neighbors"])


def test_gnep_alone_with_zero_epochs(inputs, tmp_path):
    """``epochs: 0`` with gnep_data: the GNEP model is the run's model."""
    assert _train(inputs, tmp_path, {**NEP_RUN, "epochs": 0, "gnep": {"epochs": 2, "batch_size": 4}}) == 0
    record = json.loads((tmp_path / "train.json").read_text())
    assert record["best_epoch"] == 0 and record["gnep"]["final"]["epoch"] == 2


@pytest.mark.parametrize("change, words", [
    ({"gnep_data": []}, "base_model 'nep' is a NEP from scratch"),
    ({"gnep_data": [], "epochs": 0}, "epochs must be at least 1"),
    ({"gnep": {"optimizer": "sgd"}}, "optimizer"),
])
def test_settings_that_cannot_work_are_config_errors(change, words):
    from phonft.plan.runs import train_fields

    with pytest.raises(ConfigError, match=words):
        TrainSettings.from_dict(train_fields({**NEP_RUN, **change}))


def test_gnep_on_a_chgnet_is_one_clear_error(inputs, tmp_path, capsys):
    run = {**TINY_MACE_RUN, "gnep_data": ["augment"], "replay_steps": 0}
    assert _train(inputs, tmp_path, run) == 2
    assert "GNEP trains NEP models" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "model.pt").exists() and not (tmp_path / "checkpoints").exists()


def test_trained_nep_txt_is_read_by_calorine_to_the_same_energies(inputs, tmp_path):
    """The issue's export check: a NEP trained by phonft (GNEP then PFT) is written as nep.txt,
    reloaded by calorine's CPUNEP, and gives phonft's energies and forces."""
    from ase.build import bulk

    from phonft.models import load_model

    calculators = pytest.importorskip("calorine.calculators", reason="calorine (a test oracle) is not installed")
    assert _train(inputs, tmp_path, NEP_RUN) == 0
    model = load_model(str(tmp_path / "model.pt"), dtype="float64", device="cpu")
    atoms = bulk("Si", cubic=True) * (2, 1, 1)
    atoms.rattle(0.05, seed=4)
    (ours,) = model.predict([atoms])
    atoms.calc = calculators.CPUNEP(str(tmp_path / "nep.txt"))
    assert abs(atoms.get_potential_energy() - float(ours["energy"])) < 1e-6 * len(atoms)
    assert np.abs(atoms.get_forces() - ours["forces"]).max() < 1e-5


def test_architecture_from_a_nep_in(tmp_path):
    """``model_options.nep_in`` sets the architecture from GPUMD's keywords; other options
    override it; GPUMD's one-number ``zbl`` is the outer cutoff (inner = half)."""
    from phonft.errors import InputFileError
    from phonft.models import load_model

    nep_in = tmp_path / "nep.in"
    nep_in.write_text("type 2 Te Pb   # two types\nversion 4\ncutoff 7 4.5\nn_max 5 3\nbasis_size 6 7\n"
                      "l_max 4 2 1\nneuron 12\nzbl 2.0\ngeneration 1000\nlambda_v 0.2\n")
    spec = load_model("nep", options={"nep_in": str(nep_in), "neurons": 9}).nep_spec
    assert spec.types == ("Te", "Pb") and spec.cutoff == (7.0, 4.5) and spec.n_max == (5, 3)
    assert spec.basis_size == (6, 7) and spec.l_max == (4, 2, 1) and spec.n_neurons == 9 and spec.zbl == (1.0, 2.0)
    nep_in.write_text("type 2 Te\n")
    with pytest.raises(InputFileError, match="line 1: 'type'"):
        load_model("nep", options={"nep_in": str(nep_in)})
    with pytest.raises(ConfigError, match="needs model_options.elements"):
        load_model("nep", options={"n_max": [2, 2]})
    with pytest.raises(ConfigError, match="unknown model_options"):
        load_model("nep", options={"elements": ["Si"], "n_maxx": 2})
