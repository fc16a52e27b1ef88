"""NaCl through three routes: FORCE_SETS, vasprun.xml and Quantum ESPRESSO pw.x."""

from __future__ import annotations

import numpy as np
import pytest

from phonft.phonons import commensurate_frequencies_THz
from phonft.references import Reference
from phonft_testdata import DFT


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


def test_phonopy_params_roundtrip(tmp_path, nacl_force_sets):
    """The written phonopy_params.yaml is itself a valid input (format phonopy_yaml)."""
    nacl_force_sets.write(tmp_path / "NaCl", "NaCl")
    again = Reference.read({"format": "phonopy_yaml", "path": str(tmp_path / "NaCl" / "phonopy_params.yaml")})
    np.testing.assert_allclose(again.fc2, nacl_force_sets.fc2, atol=1e-10)
    assert again.phonon.nac_params is not None  # BORN travelled along
