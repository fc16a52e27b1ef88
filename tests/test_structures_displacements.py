"""structures and displacements stages, and the synthetic engine chain through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk

from phonft.cli import main
from phonft.errors import InputFileError, NetworkError
from phonft.structures import fetch_mdr, load_structure, read_structure_file
from phonft_testdata import DFT, MDR


@pytest.mark.parametrize("fmt,name", [("cif", "Cu.cif"), ("vasp", "POSCAR"), ("extxyz", "Cu.extxyz")])
def test_local_structure_files(tmp_path, fmt, name):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.write(tmp_path / name, format=fmt)
    read = read_structure_file(tmp_path / name)
    assert read.get_chemical_formula() == "Cu4"
    assert read.cell.volume == pytest.approx(3.6**3, rel=1e-6)


def test_unreadable_structure_file(tmp_path):
    (tmp_path / "bad.cif").write_text("data_x\n_cell_length_a oops\n")
    with pytest.raises(InputFileError, match="bad.cif"):
        read_structure_file(tmp_path / "bad.cif")


def test_structure_from_vendored_reference(repo):
    atoms, prov, _ = load_structure("NaCl-QE", {"reference": {"format": "qe", "path": "data/dft-phonons/NaCl-QE",
                                                               "files": ["NaCl-001.out", "NaCl-002.out"]}}, repo)
    assert prov["kind"] == "reference"
    assert atoms.cell.lengths()[0] == pytest.approx(5.690, abs=0.01)  # Bohr converted to Å


def test_mp_id_without_key_is_a_clear_error(monkeypatch, chdir_tmp, capsys):
    monkeypatch.delenv("MP_API_KEY", raising=False)
    rc = main(["structures", "--material", "Si-mp", "--settings", json.dumps({"material": {"structure": {"mp_id": "mp-149"}}}),
               "--out", "results/structures/Si-mp"])
    err = capsys.readouterr().err
    assert rc == 2 and "Si-mp" in err and "MP_API_KEY" in err and "Traceback" not in err
    assert not (chdir_tmp / "results").exists()


def test_mdr_id_offline_is_a_clear_error(tmp_path):
    with pytest.raises(NetworkError, match="mp-149.*could not download"):
        fetch_mdr("mp-149", "mp-149", tmp_path, url_template="http://127.0.0.1:9/{mdr_id}.yaml.bz2")
    assert not any((tmp_path / "mdr").glob("*"))  # nothing half-downloaded


def test_mdr_id_from_cache(tmp_path, repo):
    (tmp_path / "mdr").mkdir()
    (tmp_path / "mdr" / "mp-149.yaml.bz2").write_bytes((MDR / "mp-149.yaml.bz2").read_bytes())
    atoms, prov, mdr_file = load_structure("mp-149", {"structure": {"mdr_id": "mp-149"}}, repo, cache_dir=tmp_path,
                                           mdr_url="http://127.0.0.1:9/{mdr_id}")
    assert prov["kind"] == "mdr" and mdr_file.is_file() and len(atoms) == 8


def test_displacements_fc2_and_fc3(chdir_tmp):
    settings = {"protocol": {"supercell_matrix": [[2, 0, 0], [0, 2, 0], [0, 0, 2]], "fc3": True}}
    rc = main(["displacements", "--material", "Si", "--structure", str(DFT / "Si-PBE-fc3" / "POSCAR-unitcell"),
               "--settings", json.dumps(settings), "--out", "results/displacements/Si"])
    assert rc == 0
    out = chdir_tmp / "results/displacements/Si"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["n_atoms_supercell"] == 64
    assert manifest["n_displacements_fc2"] == 1
    # phono3py's own set for this structure (the vendored phono3py_disp.yaml) has 111
    assert manifest["n_displacements_fc3"] == 111
    assert len(list((out / "vasp").glob("POSCAR-*"))) == 1
    assert len(list((out / "qe").glob("supercell-*.in"))) == 1
    assert len(list((out / "vasp-fc3").glob("POSCAR-*"))) == 111
    assert "protocol_digest" in manifest and manifest["protocol"]["distance_A"] == 0.01
    qe_text = (out / "qe" / "supercell-001.in").read_text()
    assert "CELL_PARAMETERS bohr" in qe_text


def test_supercell_from_min_length(chdir_tmp):
    rc = main(["displacements", "--material", "NaCl", "--structure", str(DFT / "NaCl" / "POSCAR-unitcell"),
               "--settings", json.dumps({"protocol": {"min_length_A": 15}}), "--out", "out"])
    assert rc == 0
    manifest = json.loads((chdir_tmp / "out" / "manifest.json").read_text())
    assert np.diag(manifest["supercell_matrix"]).tolist() == [3, 3, 3]  # 5.69 Å * 3 >= 15 Å


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
