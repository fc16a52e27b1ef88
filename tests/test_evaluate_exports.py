"""A model's phonons in phonopy's own formats: phonopy_params.yaml, fc2.hdf5, band.yaml and
total_dos.dat beside thermal.json and bands.json (``phonft evaluate mdr``).

One CHGNet run on the vendored MDR silicon (mp-149, 64-atom supercell, one displacement)
writes the folder; every check reads it back with phonopy's own readers and compares it
with the in-memory phonons the metrics were computed on.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from phonft_testdata import HarmonicModel

MATERIAL = "mp-149"


@pytest.fixture(scope="module")
def exported(references, chgnet64, tmp_path_factory):
    """``(folder, ModelPhonons)``: ``evaluate_material`` of CHGNet on mp-149 and the in-memory
    result its exports were written from."""
    from phonft.evaluate import run
    from phonft.evaluate.mdr import MDRProtocol

    captured = {}
    real = run.write_exports

    def capture(result, folder, header):
        captured["result"] = result
        captured["fc_before"] = np.array(result.phonon.force_constants, copy=True)
        return real(result, folder, header)

    out = tmp_path_factory.mktemp("evaluate") / "chgnet" / MATERIAL
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(run, "write_exports", capture)
        mp.setattr("phonft.models.load_model", lambda spec, **kw: chgnet64)
        run.evaluate_material("chgnet", references(MATERIAL), MATERIAL, out, protocol=MDRProtocol(batch_atoms=128),
                              device="cpu")
    return out, captured


def _json(folder: Path, name: str) -> dict:
    return json.loads((folder / name).read_text())


def _thermal(phonon, thermal: dict, cutoff_THz: float | None = None) -> dict[str, np.ndarray]:
    """phonopy's S, F, C_V of ``phonon`` on thermal.json's protocol mesh (100 Å, Gamma-centred
    32x32x32 here) and temperatures."""
    phonon.run_mesh(thermal["protocol"]["mesh"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # phonopy's GammaAcousticWarning, as in phonft.phonons
        phonon.run_thermal_properties(temperatures=thermal["temperatures_K"], cutoff_frequency=cutoff_THz)
    tp = phonon.get_thermal_properties_dict()
    return {"entropy_J_per_K_mol": tp["entropy"], "free_energy_kJ_per_mol": tp["free_energy"],
            "heat_capacity_J_per_K_mol": tp["heat_capacity"]}


def test_the_folder_holds_exactly_the_material_files(exported):
    from phonft.evaluate.run import MATERIAL_FILES
    from phonft.plan.layout import FILES

    folder, _ = exported
    assert sorted(p.name for p in folder.iterdir()) == sorted(MATERIAL_FILES)
    in_layout = {Path(f).name for f in FILES.values() if f.startswith("evaluate/{model}/{material}/")}
    assert in_layout == set(MATERIAL_FILES)  # the rule's outputs (layout entries) are the files written


def test_phonopy_params_reproduce_the_model_force_constants(exported):
    import phonopy

    folder, captured = exported
    model = captured["result"].phonon
    np.testing.assert_array_equal(model.force_constants, captured["fc_before"])  # the exports changed nothing
    loaded = phonopy.load(folder / "phonopy_params.yaml", log_level=0)
    p2s = model.primitive.p2s_map
    assert loaded.force_constants.shape == (2, 64, 3, 3)  # compact: the primitive atoms' rows
    np.testing.assert_allclose(loaded.force_constants, model.force_constants[p2s], rtol=0, atol=1e-10)
    np.testing.assert_allclose(loaded.forces, model.forces, rtol=0, atol=1e-10)  # the model's drift-free forces
    np.testing.assert_allclose(loaded.displacements, model.displacements, rtol=0, atol=1e-10)
    np.testing.assert_allclose(loaded.unitcell.cell, model.unitcell.cell, rtol=0, atol=1e-12)  # the relaxed cell
    np.testing.assert_allclose(loaded.primitive_matrix, model.primitive_matrix, rtol=0, atol=1e-12)
    np.testing.assert_allclose(loaded.unitcell.masses, model.unitcell.masses, rtol=0, atol=1e-12)
    # a reader that rebuilds the force constants from the file's forces (phonopy's own
    # produce + symmetrize, as MDR's post-processing may) gets the same ones back
    loaded.produce_force_constants(calculate_full_force_constants=True)
    loaded.symmetrize_force_constants()
    np.testing.assert_allclose(loaded.force_constants, model.force_constants, rtol=0, atol=1e-10)


def test_phonopy_params_give_the_thermal_properties_of_thermal_json(exported):
    import phonopy
    from phonopy.file_IO import read_force_constants_hdf5

    folder, captured = exported
    thermal = _json(folder, "thermal.json")
    loaded = phonopy.load(folder / "phonopy_params.yaml", log_level=0)
    # The yaml's force constants are written to 1e-15 eV/Å², enough to flip the sign of the
    # three ~1e-7 THz Gamma acoustic modes, which the MDR sums keep when positive (each worth
    # k_B (1 - ln(h nu / k_B T)) / N_q to S). Above a 1e-4 THz cutoff the file's phonons are
    # the model's to 1e-9:
    from_file = _thermal(loaded, thermal, cutoff_THz=1e-4)
    in_memory = _thermal(captured["result"].phonon, thermal, cutoff_THz=1e-4)
    for key, values in from_file.items():
        np.testing.assert_allclose(values, in_memory[key], rtol=1e-9, atol=1e-9, err_msg=key)
    # ... and fc2.hdf5 (binary, exact) on the file's cell gives thermal.json's numbers as written.
    loaded.force_constants = read_force_constants_hdf5(folder / "fc2.hdf5")
    for key, values in _thermal(loaded, thermal).items():
        np.testing.assert_allclose(values, thermal[key], rtol=1e-9, atol=1e-9, err_msg=key)


def test_fc2_hdf5_is_the_compact_force_constants_with_p2s_map(exported):
    import h5py
    from phonopy.file_IO import read_force_constants_hdf5

    folder, captured = exported
    model = captured["result"].phonon
    fc = read_force_constants_hdf5(folder / "fc2.hdf5")
    np.testing.assert_array_equal(fc, model.force_constants[model.primitive.p2s_map])
    with h5py.File(folder / "fc2.hdf5") as f:
        np.testing.assert_array_equal(f["p2s_map"][:], model.primitive.p2s_map)
        assert f["physical_unit"][0].decode() == "eV/angstrom^2"


def test_band_yaml_holds_the_model_bands_of_bands_json(exported):
    folder, _ = exported
    bands, thermal = _json(folder, "bands.json"), _json(folder, "thermal.json")
    band = yaml.load((folder / "band.yaml").read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    assert band["phonft"] == {"material": MATERIAL, "model": "chgnet", "model_name": "chgnet",
                              "protocol_digest": thermal["protocol_digest"]}
    assert band["segment_nqpoint"] == [len(q) for q in bands["qpoints"]]
    qpoints = np.array([p["q-position"] for p in band["phonon"]])
    freqs = np.array([[b["frequency"] for b in p["band"]] for p in band["phonon"]])
    np.testing.assert_allclose(qpoints, np.concatenate(bands["qpoints"]), rtol=0, atol=1e-7)  # written to 1e-7
    np.testing.assert_allclose(freqs, np.concatenate(bands["frequencies_model_THz"]), rtol=0, atol=1e-9)  # THz, 1e-10
    assert band["labels"][0][0] == bands["labels"][0] == "$\\Gamma$"


def test_total_dos_integrates_to_three_modes_per_primitive_atom(exported):
    folder, _ = exported
    thermal = _json(folder, "thermal.json")
    assert (folder / "total_dos.dat").read_text().startswith("# Tetrahedron method")
    nu_THz, dos = np.loadtxt(folder / "total_dos.dat", unpack=True)
    assert np.all(np.diff(nu_THz) > 0) and np.all(dos >= 0)
    # states per THz per primitive cell; the trapezoid rule on phonopy's ~0.08 THz grid
    assert np.trapezoid(dos, nu_THz) == pytest.approx(3 * thermal["n_atoms_primitive"], rel=5e-3)
    assert nu_THz.max() >= thermal["omega_max_K"] / 47.99243  # the grid covers omega_max (K -> THz)


def _phonopy_load() -> str | None:
    beside = Path(sys.executable).with_name("phonopy-load")
    return str(beside) if beside.is_file() else shutil.which("phonopy-load")


def test_phonopy_load_command_opens_the_file(exported, tmp_path):
    script = _phonopy_load()
    if script is None:
        pytest.skip("the phonopy-load script is not installed")
    folder, _ = exported
    thermal = _json(folder, "thermal.json")
    shutil.copy(folder / "phonopy_params.yaml", tmp_path)
    proc = subprocess.run([script, "phonopy_params.yaml", "--mesh", "100", "-t", "--no-fc-symmetry",
                           "--band", "auto"], check=False, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'Force constants were read from "phonopy_params.yaml"' in proc.stdout
    assert (tmp_path / "band.yaml").is_file()
    table = yaml.load((tmp_path / "thermal_properties.yaml").read_text(),
                      Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))["thermal_properties"]
    at_300 = next(row for row in table if row["temperature"] == 300.0)
    i = thermal["temperatures_K"].index(300.0)
    # C_V of a mode tends to k_B as nu -> 0, so the Gamma acoustic signs move it by at most 3 R / N_q
    # (the file is written to 1e-7 J/K/mol)
    bound = 3 * 8.314462618 / int(np.prod(thermal["mesh"])) + 1e-7
    assert at_300["heat_capacity"] == pytest.approx(thermal["heat_capacity_J_per_K_mol"][i], abs=bound)


def test_a_second_run_replaces_the_folder_and_a_failure_keeps_it(exported, references, tmp_path, monkeypatch,
                                                                 capsys):
    from phonft.cli import main

    folder, _ = exported
    out = tmp_path / "chgnet" / MATERIAL
    shutil.copytree(folder, out)
    harmonic = HarmonicModel(references(MATERIAL))
    monkeypatch.setattr("phonft.models.load_model", lambda spec, **kw: harmonic)
    args = ["evaluate", "mdr", "--model", "harmonic-dft", "--reference", str(references(MATERIAL)), "--material",
            MATERIAL, "--out", str(out), "--device", "cpu", "--settings", json.dumps({"protocol": {"band_npoints": 5}})]

    from phonft.evaluate import exports

    def disk_full(*a, **kw):
        raise OSError("disk full")

    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with monkeypatch.context() as m:
        m.setattr(exports, "write_total_dos", disk_full)  # the last file the folder gets
        assert main(args) == 2
    assert "disk full" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # CHGNet's complete folder, untouched
    assert sorted(p.name for p in out.parent.iterdir()) == [MATERIAL]  # no temporary folder left

    assert main(args) == 0  # check_replaceable knows every file of the earlier run
    assert sorted(p.name for p in out.iterdir()) == sorted(before)
    for name, content in before.items():
        assert (out / name).read_bytes() != content, name  # every file is the new model's
    band = yaml.safe_load((out / "band.yaml").read_text())
    assert band["phonft"]["model"] == "harmonic-dft" and band["segment_nqpoint"][0] == 5
