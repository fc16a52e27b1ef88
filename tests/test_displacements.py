"""The displacements stage: phonopy fc2 and phono3py fc3 displaced supercells, supercell choice."""

from __future__ import annotations

import json

import numpy as np

from phonft.cli import main
from phonft_testdata import DFT


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
