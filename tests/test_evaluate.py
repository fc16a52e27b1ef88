"""The evaluate stage: MDR protocol, bands, double well, relaxation, metrics, summary and CLI.

The end-to-end checks use a *harmonic model* built from the DFT force constants: its
forces are exactly -Φu, so the MDR pipeline (relaxation, fresh 0.01 Å displacements,
batched forces, drift removal, symmetrized fc) must give back the references'
thermal.json, and its energy along a mode must be the DFT harmonic curve.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from phonft_testdata import HarmonicModel, reference_phonopy, small_mace_model, write_thermal_case


def test_mdr_pipeline_returns_the_reference_for_the_harmonic_dft_model(references):
    from phonft.evaluate.mdr import MDRProtocol, ModelPhonons

    ref_dir = references("MgO")
    model = HarmonicModel(ref_dir)
    result = ModelPhonons.compute(model, ref_dir, "MgO", MDRProtocol(batch_atoms=128))
    record = result.thermal_record()
    ref = json.loads((ref_dir / "thermal.json").read_text())
    assert set(ref) - {"source"} <= set(record)  # the references' keys, plus model extras
    assert record["relaxation"]["converged"] and record["relaxation"]["symmetry_kept"]
    ref_fc = reference_phonopy(ref_dir).force_constants
    np.testing.assert_allclose(result.phonon.force_constants, ref_fc, atol=1e-10)
    assert record["omega_max_K"] == pytest.approx(ref["omega_max_K"], rel=1e-9)
    # Thermal sums keep the three Gamma acoustic modes when their ~1e-7 THz noise is positive and
    # drop them when negative (MDR rule), worth up to 3k/N_q: 0.0065 J/K/mol on MgO's 41^3 mesh.
    for key in ("entropy_J_per_K_mol", "free_energy_kJ_per_mol", "heat_capacity_J_per_K_mol"):
        np.testing.assert_allclose(record[key], ref[key], rtol=1e-3, atol=1e-2)
    assert record["dynamically_stable"] == ref["dynamically_stable"]
    assert model.calls == 1  # every displaced supercell in one batch (64 atoms each, 2 cells)


def test_bands_follow_phonopy_on_the_seekpath_path(references):
    from phonopy.phonon.band_structure import get_band_qpoints_by_seekpath

    from phonft.evaluate.bands import band_frequencies_THz, band_mae_THz, band_record, seekpath_path

    ph = reference_phonopy(references("MgO"))
    path = seekpath_path(ph, npoints=11)
    qpts, labels, _ = get_band_qpoints_by_seekpath(ph.primitive, 11)
    assert labels == path.labels and len(qpts) == len(path.segments)
    freqs, _ = band_frequencies_THz(ph, path)
    for seg_q, seg_f in zip(path.segments, freqs):
        for q, f in zip(seg_q[::5], seg_f[::5]):
            np.testing.assert_allclose(f, np.sort(ph.get_frequencies(q)), atol=1e-10)
    assert band_mae_THz([f + 0.5 for f in freqs], freqs) == pytest.approx(0.5)
    record = band_record(ph, ph, npoints=11)
    assert record["band_mae_THz"] == 0.0 and record["labels"][0] == "$\\Gamma$"


def test_double_well_pattern_is_the_unstable_eigenmode(references):
    from phonft.evaluate.double_well import displacements_A, harmonic_energy_eV, most_unstable_mode

    ph = reference_phonopy(references("CaTiO3"))
    mode = most_unstable_mode(ph)
    assert mode.frequency_THz < -5.0 and np.allclose(mode.qpoint, [0.5, 0.5, 0.5])  # R-point tilt
    masses = np.asarray(ph.supercell.masses)
    w = mode.pattern
    assert np.linalg.norm(w) == pytest.approx(1.0)
    # mass-weighted supercell Hessian times the pattern is lambda times the pattern
    fc = np.asarray(ph.force_constants)
    hw = np.einsum("ijab,jb->ia", fc, w / np.sqrt(masses)[:, None]) / np.sqrt(masses)[:, None]
    np.testing.assert_allclose(hw, mode.eigenvalue_eV_A2_amu * w, atol=2e-4 * abs(mode.eigenvalue_eV_A2_amu))
    for q in (0.3, 2.0):
        u = displacements_A(ph, mode, q)
        assert harmonic_energy_eV(fc, u) == pytest.approx(0.5 * mode.eigenvalue_eV_A2_amu * q * q, rel=1e-5)


def test_double_well_of_the_harmonic_model_is_the_dft_parabola(references):
    from phonft.evaluate.double_well import double_well_record
    from phonft.evaluate.mdr import MDRProtocol, relaxed_phonopy

    ref_dir = references("CaTiO3")
    model = HarmonicModel(ref_dir)
    ref = reference_phonopy(ref_dir)
    ph_model, _ = relaxed_phonopy(model, ref, "CaTiO3", MDRProtocol())
    rec = double_well_record(model, ref, ph_model, np.linspace(-2, 2, 5))
    np.testing.assert_allclose(rec["energy_model_eV_per_cell"], rec["energy_dft_harmonic_eV_per_cell"],
                               rtol=1e-9, atol=1e-12)
    assert rec["energy_dft_harmonic_eV_per_cell"][0] < 0  # inverted parabola: no well in harmonic DFT
    assert rec["model_well_depth_meV_per_cell"] == pytest.approx(-1000 * min(rec["energy_model_eV_per_cell"]))


def test_relaxation_keeps_symmetry_and_converges():
    from ase.build import bulk

    from phonft.evaluate.relax import relax

    model = small_mace_model(("Si",))
    atoms = bulk("Si", "diamond", a=5.6)
    result = relax(atoms, model.as_ase_calculator(), fmax_eV_A=0.005, max_steps=300)
    assert result.converged and result.max_force_eV_A < 0.005
    assert result.spacegroup_before == result.spacegroup_after == 227
    assert not np.allclose(result.atoms.cell, atoms.cell)  # the cell did relax


def test_instability_scores_by_hand():
    from phonft.evaluate.metrics import instability_scores

    # DFT stable flags vs model flags; positive class = unstable
    s = instability_scores([False, False, True, True, True], [False, True, False, True, True])
    assert (s.tp, s.fn, s.fp, s.tn) == (1, 1, 1, 2)
    assert s.precision == 0.5 and s.recall == 0.5 and s.f1 == 0.5 and s.accuracy == 0.6
    none = instability_scores([True, True], [True, True])
    assert none.precision is None and none.recall is None and none.f1 is None and none.accuracy == 1.0
    miss = instability_scores([False], [True])
    assert miss.recall == 0.0 and miss.precision is None


def test_summary_mae_and_improvement_over_base(tmp_path):
    from phonft.evaluate.run import summarize

    for m, (dft, base, ft) in {"A": (500.0, 400.0, 450.0), "B": (800.0, 900.0, 820.0)}.items():
        write_thermal_case(tmp_path, "refs", m, dft, True)
        write_thermal_case(tmp_path, "base", m, base, m != "B", band=2.0)
        write_thermal_case(tmp_path, "ft", m, ft, True, band=1.0)
    summarize("base", "chgnet", ["A", "B"], tmp_path / "base", tmp_path / "refs")
    out = summarize("ft", "x/model.pt", ["A", "B"], tmp_path / "ft", tmp_path / "refs", base_dir=tmp_path / "base",
                    base_name="base", splits={"A": "test", "B": "unseen"})
    assert out["mae"]["omega_max_K_mae"] == pytest.approx(35.0)  # (50 + 20) / 2
    assert out["base"]["mae"]["omega_max_K_mae"] == pytest.approx(100.0)
    assert out["improvement_percent"]["omega_max_K_mae"] == pytest.approx(65.0)
    assert out["improvement_percent"]["S_300K_mae"] == pytest.approx(65.0)
    assert out["improvement_percent"]["band_mae_THz"] == pytest.approx(50.0)
    assert out["base"]["instability"]["fp"] == 1 and out["instability"]["fp"] == 0
    assert out["mae_by_split"]["test"]["omega_max_K_mae"] == 50.0
    assert out["improvement_percent_by_split"]["unseen"]["omega_max_K_mae"] == pytest.approx(80.0)
    assert out["protocol"]["name"] == "mdr" and len(out["protocol_digest"]) == 16 and "phonopy" in out["versions"]
    table = pd.read_csv(tmp_path / "ft" / "mdr.csv")
    assert table["split"].tolist() == ["test", "unseen"]
    assert table["omega_max_K_abs_err"].tolist() == [50.0, 20.0]
    base = json.loads((tmp_path / "base" / "summary.json").read_text())
    assert "improvement_percent" not in base and math.isclose(base["instability"]["accuracy"], 0.5)


def test_mdr_protocol_digest_and_unknown_keys():
    from phonft.errors import ConfigError
    from phonft.evaluate.mdr import MDRProtocol

    p = MDRProtocol.from_dict({"fmax_eV_A": 0.005, "temperatures_K": [0, 300]})
    assert p.temperatures_K == (0, 300) and p.digest() == MDRProtocol.from_dict(p.as_dict()).digest()
    assert p.digest() != MDRProtocol(fmax_eV_A=0.01).digest()
    with pytest.raises(ConfigError, match="fmax"):
        MDRProtocol.from_dict({"fmax": 0.1})


def test_double_well_refuses_a_stable_reference(references, tmp_path):
    from phonft.errors import ConfigError
    from phonft.evaluate.run import evaluate_double_well

    with pytest.raises(ConfigError, match="dynamically stable"):
        evaluate_double_well("chgnet", references("MgO"), "MgO", tmp_path / "w.json")
    assert not (tmp_path / "w.json").exists()


def test_cli_evaluate_mdr_and_summary(references, tmp_path):
    """`phonft evaluate mdr` with a code-built MACE model writes both records, then `summary`."""
    from phonft.cli import main

    ref = references("mp-149")
    out = tmp_path / "ev" / "mace" / "mp-149"
    options = {"elements": ["Si"], "seed": 0, "r_max": 4.0}
    settings = {"model_options": options, "protocol": {"max_steps": 50, "band_npoints": 5}}
    assert main(["evaluate", "mdr", "--model", "mace-small", "--name", "mace", "--reference", str(ref),
                 "--material", "mp-149", "--out", str(out), "--device", "cpu",
                 "--settings", json.dumps(settings)]) == 0
    thermal = json.loads((out / "thermal.json").read_text())
    bands = json.loads((out / "bands.json").read_text())
    assert thermal["model_name"] == "mace" and thermal["protocol"]["max_steps"] == 50
    assert bands["band_mae_THz"] > 0 and len(bands["frequencies_model_THz"]) == len(bands["qpoints"])
    refs_root = ref.parent
    assert main(["evaluate", "summary", "--name", "mace", "--model", "mace-small", "--model-dir", str(out.parent),
                 "--references", str(refs_root), "--settings", json.dumps({"materials": ["mp-149"]})]) == 0
    summary = json.loads((out.parent / "summary.json").read_text())
    assert summary["n_materials"] == 1 and summary["mae"]["omega_max_K_mae"] >= 0
    import pandas as pd  # the rule's declared kappa_mbd.json.gz: an empty table when no kappa is scored

    mbd = pd.read_json(out.parent / "kappa_mbd.json.gz")
    assert mbd.empty and "kappa_tot_rta" in mbd.columns
    # an unknown protocol key is a one-line error (exit 2), nothing written
    assert main(["evaluate", "mdr", "--model", "chgnet", "--reference", str(ref), "--material", "mp-149",
                 "--out", str(tmp_path / "bad"), "--settings", '{"protocol": {"fmax": 1}}']) == 2
    assert not (tmp_path / "bad").exists()
