"""The references stage: every reader on real DFT data (MDR, FORCE_SETS, vasprun.xml, QE,
phono3py), the stability verdicts, the thermal.json contract and the synthetic engine route."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk

from phonft.cli import main
from phonft.phonons import commensurate_frequencies_THz
from phonft.protocols import THZ_TO_K, ReferenceProtocol
from phonft.references import Reference
from phonft_testdata import DFT, MDR

# ------------------------------------------------------------------ MDR files: S, F, C_V match the stored values


@pytest.mark.parametrize("mdr_id", ["mp-149", "mp-1000"])
def test_thermal_matches_stored_values(mdr_id):
    ref = Reference.read({"format": "mdr", "path": str(MDR / f"{mdr_id}.yaml.bz2")})
    s, stored = ref.summary, ref.raw.source_values
    assert s["temperatures_K"] == stored["temperatures_K"] == [0.0, 75.0, 150.0, 300.0, 600.0]
    i300 = s["temperatures_K"].index(300.0)
    for key in ("entropy_J_per_K_mol", "free_energy_kJ_per_mol", "heat_capacity_J_per_K_mol"):
        ours, theirs = s[key][i300], stored[key][i300]
        assert ours == pytest.approx(theirs, rel=1e-3), key
    # the whole temperature series agrees too (T=0 entropy/C_V are exactly 0)
    np.testing.assert_allclose(s["free_energy_kJ_per_mol"], stored["free_energy_kJ_per_mol"], rtol=1e-3)
    assert s["dynamically_stable"] and s["n_imaginary"] == 0


def test_si_values_and_omega_max():
    ref = Reference.read({"format": "mdr", "path": str(MDR / "mp-149.yaml.bz2")})
    s = ref.summary
    # published Si values stored in the file: S(300 K) = 39.327 J/K/mol, C_V = 40.067 J/K/mol
    assert s["entropy_J_per_K_mol"][3] == pytest.approx(39.32713, rel=1e-3)
    assert s["heat_capacity_J_per_K_mol"][3] == pytest.approx(40.06703, rel=1e-3)
    # omega_max over the 32 commensurate q-points equals the file's stored maximum (15.107 THz)
    assert s["n_commensurate_qpoints"] == 32
    assert s["omega_max_K"] == pytest.approx(ref.raw.source_values["max_stored_frequency_THz"] * THZ_TO_K, rel=1e-6)
    assert ref.raw.source_values["energy_eV_per_atom"] == pytest.approx(-43.36303155 / 8)


def test_stored_force_constants_are_rebuilt_not_copied():
    """The file's own force constants are ignored; ours come from the forces and agree."""
    import yaml

    from phonft.io import read_text

    raw = yaml.safe_load(read_text(MDR / "mp-149.yaml.bz2"))
    stored = np.array(raw["force_constants"]["elements"])  # full (N*N, 3, 3), eV/Å²
    ref = Reference.read({"format": "mdr", "path": str(MDR / "mp-149.yaml.bz2")})
    ours = ref.fc2.reshape(-1, 3, 3)
    assert ours.shape == stored.shape
    np.testing.assert_allclose(ours, stored, atol=2e-3)  # symmetrization differs only slightly


# ------------------------------------------------------------------ FORCE_SETS, vasprun.xml and QE pw.x routes


@pytest.fixture(scope="module")
def nacl_force_sets():
    return Reference.read({"format": "force_sets", "path": str(DFT / "NaCl")})


def test_force_sets_and_vasprun_give_the_same_force_constants(nacl_force_sets):
    vasprun = Reference.read({"format": "vasprun", "path": str(DFT / "NaCl"),
                              "files": ["vasprun.xml-001", "vasprun.xml-002"]})
    assert nacl_force_sets.fc2.shape == (64, 64, 3, 3)
    np.testing.assert_allclose(vasprun.fc2, nacl_force_sets.fc2, rtol=0, atol=1e-6)  # eV/Å²


def test_vasprun_from_tar_archive_matches_force_sets():
    a = Reference.read({"format": "force_sets", "path": str(DFT / "MgO")})
    b = Reference.read({"format": "vasprun", "path": str(DFT / "MgO"), "files": ["vaspruns.tar.lzma"]})
    np.testing.assert_allclose(b.fc2, a.fc2, rtol=0, atol=1e-6)


def test_quantum_espresso_route_matches_vasp(nacl_force_sets):
    qe = Reference.read({"format": "qe", "path": str(DFT / "NaCl-QE"),
                         "files": ["NaCl-001.out", "NaCl-002.out"]})
    # converted from Bohr / Ry/Bohr to Å / eV/Å
    assert qe.phonon.unitcell.cell[0][0] == pytest.approx(5.69, abs=0.02)
    f_qe = commensurate_frequencies_THz(qe.phonon)
    f_vasp = commensurate_frequencies_THz(nacl_force_sets.phonon)
    assert f_qe.shape == f_vasp.shape
    optical = f_vasp > 1.0
    # two different DFT codes and pseudopotentials: agreement to a few per cent
    rel = np.abs(f_qe[optical] - f_vasp[optical]) / f_vasp[optical]
    assert rel.max() < 0.05, rel.max()
    assert qe.summary["omega_max_K"] == pytest.approx(nacl_force_sets.summary["omega_max_K"], rel=0.02)
    assert qe.raw.phonon.nac_params["factor"] == pytest.approx(14.39965, rel=1e-5)  # VASP-unit NAC


def test_cr_compressed_vasprun_route():
    """Cr (collinear antiferromagnet, 16-atom supercell) from one xz-compressed vasprun.xml.
    phonopy's example ships it beside a FORCE_SETS from a slightly different run (forces
    differ by up to 1e-3 eV/Å), so the two routes agree to that level here: fc2 to 0.1
    eV/Å² (measured 0.0995, of 13.3), omega_max to 0.5 % (measured 511.8 and 513.4 K)."""
    fs = Reference.read({"format": "force_sets", "path": str(DFT / "Cr")})
    xz = Reference.read({"format": "vasprun", "path": str(DFT / "Cr"), "files": ["vasprun.xml.xz"]})
    assert xz.fc2.shape == fs.fc2.shape == (16, 16, 3, 3)
    np.testing.assert_allclose(xz.phonon.forces, fs.phonon.forces, rtol=0, atol=1.1e-3)  # eV/Å
    np.testing.assert_allclose(xz.fc2, fs.fc2, rtol=0, atol=0.11)  # eV/Å²
    assert xz.summary["omega_max_K"] == pytest.approx(fs.summary["omega_max_K"], rel=5e-3)
    assert xz.summary["dynamically_stable"] and fs.summary["dynamically_stable"]


def test_phonopy_params_roundtrip(tmp_path, nacl_force_sets):
    """The written phonopy_params.yaml is itself a valid input (format phonopy_yaml)."""
    nacl_force_sets.write(tmp_path / "NaCl", "NaCl")
    again = Reference.read({"format": "phonopy_yaml", "path": str(tmp_path / "NaCl" / "phonopy_params.yaml")})
    np.testing.assert_allclose(again.fc2, nacl_force_sets.fc2, atol=1e-10)
    assert again.phonon.nac_params is not None  # BORN travelled along


# ------------------------------------------------------------------ third-order data: Si-PBE-fc3, ZnTe (params.xz)


def test_fc3_ingestion(si_fc3):
    ref, out = si_fc3
    assert ref.fc3.shape == (2, 64, 64, 3, 3, 3)  # compact: primitive atoms x supercell^2
    assert np.isfinite(ref.fc3).all() and np.abs(ref.fc3).max() > 1.0  # eV/Å³
    # translational invariance of symmetrized fc3: sum over the last atom vanishes
    assert np.abs(ref.fc3.sum(axis=2)).max() < 1e-6 * np.abs(ref.fc3).max()
    for name in ("fc2.hdf5", "fc3.hdf5", "phonopy_params.yaml", "phono3py_params.yaml", "thermal.json"):
        assert (out / name).is_file()
    assert len(ref.raw.phono3py.dataset["first_atoms"]) == 1  # one first displacement
    assert sum(1 + len(d["second_atoms"]) for d in ref.raw.phono3py.dataset["first_atoms"]) == 111


def test_znte_params_xz():
    ref = Reference.read({"format": "phono3py",
                          "path": str(DFT / "ZnTe-PBEsol-fc3" / "phono3py_params_ZnTe.yaml.xz")})
    assert ref.fc3 is not None and ref.fc3.shape[1:] == (64, 64, 3, 3, 3)
    assert ref.phonon.nac_params is not None
    assert ref.summary["dynamically_stable"]


# ------------------------------------------------------------------ stability (MDR rule) and thermal.json


def test_catio3_is_unstable():
    s = Reference.read({"format": "force_sets", "path": str(DFT / "CaTiO3")}).summary
    assert s["dynamically_stable"] is False
    assert s["n_imaginary"] == 15  # on the commensurate q-points
    assert s["min_frequency_THz"] == pytest.approx(-6.005, abs=0.01)  # the cubic perovskite's tilt modes
    assert s["omega_max_K"] == pytest.approx(1233.6, abs=1.0)


def test_mgo_is_stable():
    s = Reference.read({"format": "force_sets", "path": str(DFT / "MgO")}).summary
    assert s["dynamically_stable"] is True and s["n_imaginary"] == 0
    assert s["omega_max_K"] == pytest.approx(860.7, abs=1.0)


THERMAL_KEYS = {
    "omega_max_K", "entropy_J_per_K_mol", "free_energy_kJ_per_mol", "heat_capacity_J_per_K_mol",
    "temperatures_K", "n_imaginary", "min_frequency_THz", "dynamically_stable",
    "protocol", "protocol_digest", "versions",
}


def test_thermal_json_contract(tmp_path):
    ref = Reference.read({"format": "mdr", "path": str(MDR / "mp-149.yaml.bz2")})
    ref.write(tmp_path / "mp-149", "mp-149")
    thermal = json.loads((tmp_path / "mp-149" / "thermal.json").read_text())
    assert THERMAL_KEYS <= set(thermal)
    assert thermal["protocol_digest"] == ReferenceProtocol().digest()
    assert thermal["protocol"]["gamma_acoustic_tolerance_K"] == -35.0
    assert {"phonopy", "numpy", "phonft"} <= set(thermal["versions"])
    assert sorted(p.name for p in (tmp_path / "mp-149").iterdir()) == ["fc2.hdf5", "phonopy_params.yaml",
                                                                       "thermal.json"]


# ------------------------------------------------------------------ synthetic references (engine)


def test_engine_chain_is_marked_synthetic(chdir_tmp):
    """structures -> displacements -> references with EMT: a real chain, flagged synthetic."""
    bulk("Cu", "fcc", a=3.6, cubic=True).write("Cu.cif")
    spec = json.dumps({"material": {"structure": {"file": "Cu.cif"},
                                    "reference": {"format": "engine", "calculator": "emt"}}})
    cell = json.dumps({"protocol": {"supercell_matrix": [[3, 0, 0], [0, 3, 0], [0, 0, 3]]}})
    assert main(["structures", "--material", "Cu", "--settings", spec, "--out", "results/structures/Cu"]) == 0
    assert main(["displacements", "--material", "Cu", "--structure", "results/structures/Cu/POSCAR",
                 "--settings", cell, "--out", "results/displacements/Cu"]) == 0
    assert main(["references", "--material", "Cu", "--settings", spec, "--displacements", "results/displacements/Cu",
                 "--out", "results/references/Cu"]) == 0
    thermal = json.loads((chdir_tmp / "results/references/Cu/thermal.json").read_text())
    assert thermal["synthetic"] is True and thermal["kind"] == "engine"
    assert thermal["engine"]["calculator"] == "emt"
    assert any("SYNTHETIC" in n for n in thermal["source"]["notes"])
    assert thermal["dynamically_stable"] and 250 < thermal["omega_max_K"] < 450  # EMT Cu, ~7 THz


def test_unknown_engine_calculator(chdir_tmp, capsys):
    spec = json.dumps({"material": {"reference": {"format": "engine", "calculator": "nonsense"}}})
    rc = main(["references", "--material", "X", "--settings", spec, "--displacements", ".", "--out", "o"])
    assert rc == 2 and "nonsense" in capsys.readouterr().err
