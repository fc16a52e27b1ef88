"""Every DFT code phonopy reads (``format: calc``) and DFPT force constants (``format: force_constants``).

The data are phonopy's own examples (BSD-3, ``data/dft-phonons/<Name>``): ABINIT, CP2K,
WIEN2k and FHI-aims force outputs, each with the FORCE_SETS that phonopy's own tool
(``phonopy-init --<code> -f``) made from those same files, and the VASP DFPT NaCl run
(FORCE_CONSTANTS and vasprun.xml). Each code read through phonopy's reader must give the
fc2 of the displacement route (FORCE_SETS) to 1e-8 eV/Å²; FORCE_CONSTANTS and vasprun.xml
must give the same fc2. One ``phonft references`` run per new format goes through the
CLI, and a force-constants folder must load for fine-tuning and evaluation. Bad inputs
(unknown interface, missing file, a file of another code) fail with one line, exit 2.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from badinput import assert_clean_failure, phonft
from phonft_testdata import DFT, REPO

CODES = {
    "abinit": ("NaCl-abinit", ["supercell-001.out", "supercell-002.out"]),
    "cp2k": ("NaCl-CP2K", ["NaCl-supercell-001-forces-1_0.xyz", "NaCl-supercell-002-forces-1_0.xyz"]),
    "wien2k": ("NaCl-wien2k", ["NaCl-001.scf.xz", "NaCl-002.scf.xz"]),
    "aims": ("diamond-FHI-aims", ["disp-001/aims.out"]),
}
"""interface -> (vendored folder, force outputs in displacement order)."""

DFPT = "data/dft-phonons/NaCl-VASPdfpt"


def calc_spec(interface: str) -> dict:
    folder, files = CODES[interface]
    return {"format": "calc", "interface": interface, "path": f"data/dft-phonons/{folder}", "files": files}


def dfpt_spec(fc_file: str) -> dict:
    return {"format": "force_constants", "path": f"{DFPT}/{fc_file}", "unitcell": "POSCAR-unitcell",
            "supercell_matrix": [2, 2, 2]}


def _read(spec: dict):
    from phonft.references import Reference

    return Reference.read(spec, base_dir=REPO)


def _args(reference: dict, out: str = "results/references/X") -> list[str]:
    return ["references", "--material", "X", "--settings", json.dumps({"material": {"reference": reference}}),
            "--base-dir", str(REPO), "--out", out]


@pytest.mark.parametrize("interface", sorted(CODES))
def test_each_code_gives_the_fc2_of_phonopys_force_sets(interface):
    """The code's outputs read by phonopy's reader, converted to eV/Å, against FORCE_SETS that
    ``phonopy-init --<code> -f`` wrote from the same outputs (read through phonopy_disp.yaml's units)."""
    folder = CODES[interface][0]
    calc = _read(calc_spec(interface))
    force_sets = _read({"format": "force_sets", "path": f"data/dft-phonons/{folder}"})
    assert calc.raw.fmt == "calc" and calc.fc2.shape == force_sets.fc2.shape
    np.testing.assert_allclose(calc.fc2, force_sets.fc2, rtol=0, atol=1e-8)
    # Both are in Å and eV/Å: the supercell is the code's one, converted (NaCl a = 5.69 Å, diamond 3.57 Å).
    a_A = np.linalg.norm(calc.phonon.unitcell.cell[0])
    assert a_A == pytest.approx(np.linalg.norm(force_sets.phonon.unitcell.cell[0]), rel=1e-12)
    assert 3.0 < a_A < 6.0


def test_units_are_normalised_to_ev_per_angstrom():
    """CP2K writes Hartree/Bohr and WIEN2k mRy/Bohr (with Bohr lengths); NaCl's phonons must come
    out near the VASP result (omega_max about 300 K) whatever the code."""
    omega = {i: _read(calc_spec(i)).summary["omega_max_K"] for i in ("abinit", "cp2k", "wien2k")}
    vasp = _read({"format": "force_sets", "path": "data/dft-phonons/NaCl"}).summary["omega_max_K"]
    for interface, value in omega.items():
        assert value == pytest.approx(vasp, rel=0.1), interface


def test_vasprun_and_qe_are_calc_for_their_interface():
    """The old formats are aliases: the same reader, the same numbers."""
    qe = {"path": "data/dft-phonons/NaCl-QE", "files": ["NaCl-001.out", "NaCl-002.out"]}
    old, new = _read({"format": "qe", **qe}), _read({"format": "calc", "interface": "qe", **qe})
    np.testing.assert_array_equal(old.fc2, new.fc2)
    vasp = {"path": "data/dft-phonons/NaCl", "files": ["vasprun.xml-001", "vasprun.xml-002"]}
    old, new = _read({"format": "vasprun", **vasp}), _read({"format": "calc", "interface": "vasp", **vasp})
    np.testing.assert_array_equal(old.fc2, new.fc2)
    assert old.raw.fmt == "vasprun" and new.raw.fmt == "calc"


def test_dfpt_force_constants_and_vasprun_give_the_same_fc2():
    text, xml = _read(dfpt_spec("FORCE_CONSTANTS.xz")), _read(dfpt_spec("vasprun.xml.xz"))
    assert text.raw.fc_only and xml.raw.fc_only
    np.testing.assert_allclose(text.fc2, xml.fc2, rtol=0, atol=1e-8)
    # DFPT and finite displacements on the same NaCl (PBE): omega_max within 2 %.
    fd = _read({"format": "force_sets", "path": "data/dft-phonons/NaCl"}).summary["omega_max_K"]
    assert text.summary["omega_max_K"] == pytest.approx(fd, rel=0.02)


def test_force_constants_hdf5_in_the_unit_it_names(tmp_path):
    """phonopy's force_constants.hdf5, here compact and in eV/(Å·Bohr) as ABINIT's phonopy writes
    it, comes back in eV/Å², full."""
    from phonopy.file_IO import write_force_constants_to_hdf5
    from phonopy.physical_units import get_physical_units

    ref = _read(dfpt_spec("FORCE_CONSTANTS.xz"))
    p2s = ref.phonon.primitive.p2s_map
    bohr_A = get_physical_units().Bohr
    write_force_constants_to_hdf5(ref.fc2[p2s] * bohr_A, str(tmp_path / "fc.hdf5"), p2s_map=p2s,
                                  physical_unit="eV/angstrom.au")
    spec = {**dfpt_spec("x"), "path": str(tmp_path / "fc.hdf5"), "unitcell": str(REPO / DFPT / "POSCAR-unitcell")}
    np.testing.assert_allclose(_read(spec).fc2, ref.fc2, rtol=0, atol=1e-8)


def test_references_cli_per_new_format(tmp_path):
    """One ``phonft references`` run per new format; the outputs are those of every format."""
    from phonft.references import ReferenceFolder

    for name, spec in (("calc", calc_spec("cp2k")), ("dfpt", dfpt_spec("vasprun.xml.xz"))):
        proc = phonft(*_args(spec, f"results/references/{name}"), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        out = tmp_path / "results" / "references" / name
        assert {p.name for p in out.iterdir()} == {"phonopy_params.yaml", "fc2.hdf5", "thermal.json"}
        folder = ReferenceFolder.load(out)
        assert folder.fc2_eV_A2.shape == (64, 64, 3, 3)
        assert folder.thermal["source"]["format"] == spec["format"]
    dfpt = ReferenceFolder.load(tmp_path / "results/references/dfpt")
    assert dfpt.forces_eV_A.shape == (0, 64, 3) and dfpt.displaced_supercells() == []


def test_force_constants_folder_opens_in_phonopy_and_serves_finetune_and_evaluate(tmp_path):
    """phonopy_params.yaml of a DFPT folder holds the force constants (no displacements), so
    ``phonopy.load`` alone gives its phonons; fine-tuning's sample, held-out phonons and the MDR
    evaluation of a harmonic model made from its fc2 work on it as on any folder."""
    import phonopy
    from phonft_testdata import HarmonicModel

    from phonft.evaluate.mdr import MDRProtocol, ModelPhonons
    from phonft.finetune.data import load_phonon_sample

    out = tmp_path / "NaCl-DFPT"
    ref = _read(dfpt_spec("FORCE_CONSTANTS.xz"))
    ref.write(out, "NaCl-DFPT")
    loaded = phonopy.load(out / "phonopy_params.yaml", produce_fc=False, is_compact_fc=False, log_level=0)
    np.testing.assert_allclose(loaded.force_constants, ref.fc2, rtol=0, atol=1e-12)
    sample = load_phonon_sample(out)
    np.testing.assert_array_equal(sample.fc2_eV_A2, ref.fc2)
    assert len(sample.atoms) == 64 and len(sample.independent_atoms) == 2
    result = ModelPhonons.compute(HarmonicModel(out), out, "NaCl-DFPT", MDRProtocol(batch_atoms=128))
    assert result.thermal_record()["omega_max_K"] == pytest.approx(ref.summary["omega_max_K"], rel=1e-6)
    from phonft.finetune.heldout import thermal_record
    from phonft.protocols import ReferenceProtocol

    heldout = thermal_record(HarmonicModel(out), out, "NaCl-DFPT", ReferenceProtocol())  # phonopy's default set
    assert heldout["hessian_mae_eV_A2"] < 1e-10
    assert heldout["omega_max_K"] == pytest.approx(ref.summary["omega_max_K"], rel=1e-6)


@pytest.mark.parametrize("interface", ["abinit", "aims", "castep", "siesta", "elk", "pwmat"])
def test_displacements_write_inputs_that_phonopy_reads_back(interface, tmp_path):
    """The written supercells, parsed back by phonopy's reader for the code, are phonopy's
    displaced supercells (positions to 1e-6 Å, after the code's length unit)."""
    from phonopy.interface.calculator import (
        get_calculator_physical_units,
        read_crystal_structure,
    )

    from phonft.displacements import generate_fc2, read_unitcell, write_displacements
    from phonft.phonopy_files import load_phonopy_yaml
    from phonft.protocols import DisplacementProtocol

    unitcell = read_unitcell(DFT / "NaCl" / "POSCAR-unitcell")
    protocol = DisplacementProtocol(supercell_matrix=(1, 1, 1))
    manifest = write_displacements(tmp_path / "d", "NaCl", unitcell, protocol, interfaces=[interface])
    assert manifest["calculators"] == ["vasp", interface]
    folder = tmp_path / "d" / interface
    assert load_phonopy_yaml(folder / "phonopy_disp.yaml").calculator == interface
    expected = generate_fc2(unitcell, protocol).supercells_with_displacements
    to_A = get_calculator_physical_units(interface).distance_to_A
    written = sorted(p for p in folder.iterdir() if "001" in p.name)
    assert written, f"no displaced supercell in {sorted(p.name for p in folder.iterdir())}"
    cell, _ = read_crystal_structure(str(written[0]), interface_mode=interface)
    np.testing.assert_allclose(np.asarray(cell.cell) * to_A, expected[0].cell, atol=1e-6)
    diff = cell.scaled_positions - expected[0].scaled_positions
    np.testing.assert_allclose((diff - np.rint(diff)) @ expected[0].cell, 0, atol=1e-6)
    assert list(cell.symbols) == list(expected[0].symbols)


def test_displacements_refuse_codes_that_need_their_own_input(tmp_path):
    from phonft.displacements import read_unitcell, write_displacements
    from phonft.errors import ConfigError
    from phonft.protocols import DisplacementProtocol

    unitcell = read_unitcell(DFT / "NaCl" / "POSCAR-unitcell")
    with pytest.raises(ConfigError, match="phonopy-init --wien2k"):
        write_displacements(tmp_path / "d", "NaCl", unitcell, DisplacementProtocol(), interfaces=["wien2k"])
    assert not (tmp_path / "d").exists()


def test_plan_adds_the_calc_references_interface():
    from phonft.plan import Plan, settings

    config = {"materials": {"A": {"reference": calc_spec("abinit")}, "B": {"reference": calc_spec("wien2k")}},
              "displacements": {"interfaces": ["siesta"]}}
    assert settings(Plan(config), "displacements", material="A")["reference_interface"] == "abinit"
    assert settings(Plan(config), "displacements", material="A")["interfaces"] == ["siesta"]


def test_interfaces_agree_with_phonopy_and_the_schema():
    import yaml
    from phonopy.interface.calculator import calculator_info

    from phonft.specs import FORMATS, INTERFACES

    assert sorted(INTERFACES) == sorted(calculator_info)
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    ref = schema["properties"]["materials"]["additionalProperties"]["properties"]["reference"]["properties"]
    assert ref["interface"]["enum"] == list(INTERFACES) and ref["format"]["enum"] == list(FORMATS)
    assert schema["properties"]["displacements"]["properties"]["interfaces"]["items"]["enum"] == list(INTERFACES)


# ------------------------------------------------------------------ bad inputs: one line, exit 2


@pytest.mark.parametrize(("reference", "message"), [
    ({**calc_spec("cp2k"), "interface": "gaussian"}, "unknown interface 'gaussian'"),
    ({k: v for k, v in calc_spec("cp2k").items() if k != "interface"}, "needs 'interface'"),
    ({**calc_spec("cp2k"), "files": ["NaCl-supercell-001-forces-1_0.xyz", "missing.xyz"]}, "missing.xyz: does not exist"),
    ({**calc_spec("cp2k"), "interface": "abinit"}, "was written for calculator 'cp2k', not ABINIT"),
    ({**calc_spec("abinit"), "files": ["../NaCl-CP2K/NaCl-supercell-001-forces-1_0.xyz",
                                       "../NaCl-CP2K/NaCl-supercell-002-forces-1_0.xyz"]},
     "NaCl-supercell-001-forces-1_0.xyz: holds no forces that phonopy's ABINIT reader finds"),
    ({**calc_spec("cp2k"), "files": ["NaCl-supercell-001-forces-1_0.xyz"]}, "1 CP2K force output files were given"),
    (dfpt_spec("missing"), "missing: does not exist"),
    ({**dfpt_spec("vasprun.xml.xz"), "unitcell": "../NaCl-wien2k/NaCl.struct", "interface": "wien2k",
      "supercell_matrix": [1, 1, 1]}, "vasprun.xml.xz: holds force constants of shape (64, 64, 3, 3)"),
    ({**dfpt_spec("vasprun.xml.xz"), "unitcell": "../MgO/POSCAR-unitcell"}, "holds the atom types Na Cl, not the Mg O"),
    ({**dfpt_spec("FORCE_CONSTANTS.xz"), "supercell_matrix": [2, 2]}, "supercell_matrix"),
    ({k: v for k, v in dfpt_spec("FORCE_CONSTANTS.xz").items() if k != "unitcell"}, "needs 'unitcell'"),
    ({**dfpt_spec("../NaCl/FORCE_SETS")}, "FORCE_SETS: could not be read as a phonopy FORCE_CONSTANTS file"),
])
def test_bad_code_inputs_fail_in_one_line(reference, message, tmp_path):
    assert_clean_failure(_args(reference), cwd=tmp_path, message=message)


def test_wrong_code_output_is_named(tmp_path):
    """A pw.x output listed as CP2K forces: phonopy's CP2K reader fails on it; the file is named."""
    spec = {**calc_spec("cp2k"), "files": ["../NaCl-QE/NaCl-001.out", "../NaCl-QE/NaCl-002.out"]}
    assert_clean_failure(_args(spec), cwd=tmp_path, message="NaCl-001.out: holds no forces that phonopy's CP2K "
                                                           "reader finds: it is not a CP2K force output")
