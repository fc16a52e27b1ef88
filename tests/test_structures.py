"""The structures stage: structure files, vendored references, Materials Project and MDR ids."""

from __future__ import annotations

import json

import pytest
from ase.build import bulk

from phonft.cli import main
from phonft.errors import InputFileError, NetworkError
from phonft.structures import fetch_mdr, load_structure, read_structure_file
from phonft_testdata import MDR


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
    assert not any(p.is_file() for p in (tmp_path / "mdr").rglob("*"))  # nothing half-downloaded


def test_mdr_id_from_cache(tmp_path, repo):
    from phonft.cache import cache_path

    cached = cache_path(tmp_path, "mdr", "http://127.0.0.1:9/mp-149", "mp-149.yaml.bz2")  # keyed by the URL
    cached.parent.mkdir(parents=True)
    cached.write_bytes((MDR / "mp-149.yaml.bz2").read_bytes())
    atoms, prov, mdr_file = load_structure("mp-149", {"structure": {"mdr_id": "mp-149"}}, repo, cache_dir=tmp_path,
                                           mdr_url="http://127.0.0.1:9/{mdr_id}")
    assert prov["kind"] == "mdr" and mdr_file.is_file() and len(atoms) == 8
