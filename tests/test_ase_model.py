"""Evaluation-only ``ase:<module>:<Class>`` models (issue 12, "Any MLIP can be evaluated").

ASE's EMT knows none of the vendored DFT materials, so the reference here is EMT's own:
fcc Cu at EMT's equilibrium lattice, a 2x2x2 conventional supercell (32 atoms), built by
the structures -> displacements -> references chain with the synthetic ``engine`` format.
Scoring ``ase:ase.calculators.emt:EMT`` against it must give MDR errors of ~0.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from badinput import phonft
from phonft.errors import ConfigError
from phonft_testdata import BatchedEMT, emt_cu, emt_relaxed, write_emt_cu_reference, write_emt_reference

EMT_SPEC = "ase:ase.calculators.emt:EMT"
BATCHED_SPEC = "ase:phonft_testdata:BatchedEMT"
MDR_TOLERANCE = 1e-6
"""Largest |model - reference| of omega_max (K), S, F, C_V (J/K/mol, kJ/mol) and band MAE
(THz). The model and the reference are the same calculator on the same cell (the
relaxation takes 0 steps: the reference sits at EMT's equilibrium) with the same
displacements, so they differ only by floating-point rounding (~1e-10 measured)."""


@pytest.fixture(scope="module")
def emt_cu_ref(tmp_path_factory):
    """EMT's own references folder of fcc Cu (:func:`phonft_testdata.write_emt_cu_reference`)."""
    return write_emt_cu_reference(tmp_path_factory.mktemp("emt-cu"))


def _model(spec: str = EMT_SPEC, options=None):
    from phonft.models import load_model

    return load_model(spec, dtype="float64", device="cpu", options=options)


def _rattled_cells(n: int) -> list:
    cells = []
    for seed in range(n):
        atoms = emt_cu().repeat(2)
        atoms.rattle(0.03, seed=seed)
        cells.append(atoms)
    return cells


def test_mdr_errors_against_its_own_reference_are_zero(emt_cu_ref, tmp_path):
    from phonft.evaluate.metrics import QUANTITIES, mdr_table
    from phonft.evaluate.run import evaluate_material

    out = tmp_path / "results" / "evaluate" / "emt"
    thermal = evaluate_material(EMT_SPEC, emt_cu_ref, "Cu", out / "Cu", device="cpu", name="emt")
    assert thermal["model"] == EMT_SPEC and thermal["relaxation"]["n_steps"] == 0
    row = mdr_table(["Cu"], out, emt_cu_ref.parent).iloc[0]
    for name in QUANTITIES:
        assert abs(row[f"{name}_abs_err"]) < MDR_TOLERANCE, (name, row[f"{name}_abs_err"])
    assert row["band_mae_THz"] < MDR_TOLERANCE
    assert 250 < thermal["omega_max_K"] < 450  # EMT Cu, ~8 THz


def test_forces_energy_and_stress_are_emt_s():
    model = _model()
    cells = _rattled_cells(2)
    results = model.predict(cells, stress=True)
    for atoms, result in zip(cells, results):
        # a fresh EMT; the model's reuses its neighbour list between cells, which reorders sums (~1e-14)
        atoms.calc = EMT()
        np.testing.assert_allclose(result["forces"], atoms.get_forces(), rtol=0, atol=1e-12)
        assert result["energy"] == pytest.approx(atoms.get_potential_energy(), rel=0, abs=1e-12)
        np.testing.assert_allclose(result["stress"], atoms.get_stress(voigt=False), rtol=0, atol=1e-12)
        assert result["forces"].dtype == np.float64
    out = model.evaluate(model.prepare(cells), stress=True)
    assert out.forces.dtype == model.dtype and out.forces.shape == (2 * len(cells[0]), 3)
    np.testing.assert_array_equal(out.forces.numpy(), np.concatenate([r["forces"] for r in results]))
    assert isinstance(model.as_ase_calculator(), EMT) and model.as_ase_calculator() is model.calculator


def test_batched_and_loop_paths_agree():
    from phonft.forces import displaced_forces

    loop, batched = _model(), _model(BATCHED_SPEC)
    assert not loop.batched and batched.batched and isinstance(batched.calculator, BatchedEMT)
    cells = _rattled_cells(5)  # 32 atoms each: a 64-atom budget gives chunks of 2, 2, 1
    f_loop = displaced_forces(loop, cells, batch_atoms=64, progress=False)
    f_batched = displaced_forces(batched, cells, batch_atoms=64, progress=False)
    assert batched.calculator.batch_sizes == [2, 2, 1]
    # BatchedEMT builds a fresh EMT per cell, the loop reuses one (its neighbour list reorders sums)
    np.testing.assert_allclose(f_batched, f_loop, rtol=0, atol=1e-12)
    s_loop, s_batched = (m.predict(cells[:2], batch_size=2, stress=True) for m in (loop, batched))
    for a, b in zip(s_loop, s_batched):
        assert a["energy"] == pytest.approx(b["energy"], rel=0, abs=1e-12)
        np.testing.assert_allclose(b["stress"], a["stress"], rtol=0, atol=1e-15)  # Voigt -> 3x3


def test_kappa_batched_equals_loop():
    """The phono3py route (fc2 and fc3 forces): primitive fcc Cu, 3x3x3 supercells (49 fc3
    cells), a 7x7x7 mesh; 0 relaxation steps at EMT's lattice."""
    from phonft.evaluate import kappa as K

    a = float(emt_cu().cell.lengths()[0])
    cubic = ((3, 0, 0), (0, 3, 0), (0, 0, 3))
    task = K.KappaTask("Cu-EMT", bulk("Cu", "fcc", a=a), cubic, cubic, "auto", (7, 7, 7), "Cu")
    batched = _model(BATCHED_SPEC)
    records = [K.model_kappa(m, task, K.KappaProtocol(), progress=False) for m in (_model(), batched)]
    for record in records:
        assert record["status"] == "ok", record["error"]
        assert record["n_supercells"]["fc3"] == 49
    assert len(batched.calculator.batch_sizes) < 49  # fc3 cells went in batches
    k_loop, k_batched = (np.asarray(r["kappa_tot_W_mK"], dtype=float) for r in records)
    assert np.all(np.isfinite(k_loop)) and 1 < k_loop[0, 0] < 100  # EMT Cu: ~13 W/m-K on this mesh
    np.testing.assert_allclose(k_batched, k_loop, rtol=1e-12, atol=1e-12)


def test_double_well_of_an_unstable_emt_reference(tmp_path):
    """bcc Cu is dynamically unstable under EMT (-1.14 THz at a commensurate q): scored
    against its own EMT reference, the model's energy along the mode follows the harmonic
    one at small amplitude (anharmonicity: 0.7% measured at Q = 0.5 amu^1/2 Å) and bends back
    up into a well."""
    from phonft.evaluate.run import evaluate_double_well

    ref = write_emt_reference(tmp_path, "Cu-bcc", emt_relaxed(bulk("Cu", "bcc", a=2.87, cubic=True)), 2)
    well = evaluate_double_well(EMT_SPEC, ref, "Cu-bcc", tmp_path / "well.json", device="cpu")
    amps = np.asarray(well["amplitudes_amu_half_A"])
    e_dft, e_model = (np.asarray(well[k]) for k in ("energy_dft_harmonic_eV_per_cell", "energy_model_eV_per_cell"))
    small = np.isclose(np.abs(amps), 0.5)
    assert well["dft_frequency_THz"] < -0.5 and small.sum() == 2
    np.testing.assert_allclose(e_model[small], e_dft[small], rtol=0.02)
    np.testing.assert_allclose(e_model, e_model[::-1], rtol=0, atol=1e-9)  # E(Q) = E(-Q) in a cubic crystal
    assert well["model_well_depth_meV_per_cell"] > 0 and well["model_minimum_amplitude_amu_half_A"] > 0
    assert (tmp_path / "well.json").is_file()


def test_model_options_are_the_calculator_s_keyword_arguments():
    model = _model(options={"asap_cutoff": True})
    assert model.calculator.parameters["asap_cutoff"] is True


def test_it_is_evaluation_only(tmp_path):
    model = _model()
    batch = model.prepare(_rattled_cells(1))
    assert model.trainable_parameters() == []
    for call in (lambda: model.evaluate(batch, create_graph=True), lambda: model.hvp(batch, None),
                 lambda: model.save(tmp_path / "x.pt"), model.architecture):
        with pytest.raises(ConfigError, match="evaluation-only ASE calculator"):
            call()
    assert not (tmp_path / "x.pt").exists()


def test_cli_scores_an_ase_model(emt_cu_ref, tmp_path):
    proc = phonft("evaluate", "mdr", "--model", EMT_SPEC, "--name", "emt", "--reference",
                  str(emt_cu_ref), "--material", "Cu", "--settings",
                  json.dumps({"model_options": {}}), "--out", "results/evaluate/emt/Cu", "--device", "cpu",
                  cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    thermal = json.loads((tmp_path / "results/evaluate/emt/Cu/thermal.json").read_text())
    reference = json.loads((emt_cu_ref / "thermal.json").read_text())
    assert thermal["model"] == EMT_SPEC and thermal["model_name"] == "emt"
    assert abs(thermal["omega_max_K"] - reference["omega_max_K"]) < MDR_TOLERANCE


# ------------------------------------------------------------------ config and planning


def test_evaluate_models_take_a_spec_with_model_options():
    from test_plan import load_config

    from phonft.plan import Plan
    from phonft.plan.settings import settings

    entry = {"spec": EMT_SPEC, "model_options": {"asap_cutoff": True}}
    plan = Plan(load_config(extra={"evaluate": {"models": {"emt": entry, "emt-plain": {"spec": EMT_SPEC}}}}))
    assert plan.models["emt"].spec == EMT_SPEC and plan.model_inputs("emt") == {}
    assert settings(plan, "evaluate_mdr", model="emt")["model_options"] == {"asap_cutoff": True}
    assert settings(plan, "evaluate_mdr", model="emt-plain")["model_options"] is None


def test_fine_tuning_an_ase_model_is_refused_at_planning():
    from test_plan import load_config

    from phonft.finetune.settings import ReplaySettings, TrainSettings
    from phonft.plan import Plan

    config = load_config(extra={"finetune": {"runs": {"chgnet-pft": {"base_model": EMT_SPEC}}}})
    with pytest.raises(ConfigError, match=r"finetune.runs.chgnet-pft.base_model is 'ase:ase.calculators.emt:EMT', "
                                          "an evaluation-only ASE calculator"):
        _ = Plan(config).models
    for cls in (TrainSettings, ReplaySettings):
        with pytest.raises(ConfigError, match="evaluation-only ASE calculator"):
            cls(base_model=EMT_SPEC)
