"""A written ``results/references/<m>/`` folder, read back only by
:class:`~phonft.references.folder.ReferenceFolder`: round trip, private phonopy copies,
broken folders, and the reference's thermal.json record (the "old" dict below is the
literal the former copy built, so the record stays identical).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from phonft.errors import InputFileError
from phonft.io import sha256_file
from phonft_testdata import REPO


@pytest.fixture(scope="module")
def mgo(tmp_path_factory):
    """A freshly read MgO reference (with Born charges) and the folder it wrote."""
    from phonft.references import Reference

    ref = Reference.read({"format": "force_sets", "path": "data/dft-phonons/MgO"}, base_dir=REPO)
    out = tmp_path_factory.mktemp("refs") / "MgO"
    ref.write(out, "MgO")
    return ref, out


def test_reference_folder_round_trips_what_reference_wrote(mgo):
    from phonft.atoms import to_ase
    from phonft.references import ReferenceFolder

    ref, out = mgo
    folder = ReferenceFolder.load(out)
    assert folder.material == "MgO" and folder.path == out
    np.testing.assert_array_equal(folder.fc2_eV_A2, ref.fc2)
    assert folder.fc2_eV_A2.dtype == np.float64 and folder.fc2_eV_A2.shape == (64, 64, 3, 3)
    assert folder.thermal == json.loads((out / "thermal.json").read_text())
    assert folder.thermal["omega_max_K"] == ref.summary["omega_max_K"]
    assert folder.protocol_digest == ref.protocol.digest()
    assert folder.sha256 == {"thermal.json": sha256_file(out / "thermal.json"),
                             "fc2.hdf5": sha256_file(out / "fc2.hdf5")}
    assert folder.dynamically_stable is True
    # displacements and DFT forces (eV/Å) as read from the DFT files
    np.testing.assert_allclose(folder.forces_eV_A, ref.phonon.forces, atol=1e-9)
    cells = folder.displaced_supercells()
    assert len(cells) == len(ref.phonon.supercells_with_displacements) == 2
    for got, want in zip(cells, ref.phonon.supercells_with_displacements, strict=True):
        np.testing.assert_allclose(got.positions, want.positions, atol=1e-9)
    np.testing.assert_allclose(folder.supercell().positions, to_ase(ref.phonon.supercell).positions, atol=1e-9)
    np.testing.assert_allclose(folder.unitcell().cell.array, to_ase(ref.phonon.unitcell).cell.array, atol=1e-9)
    assert folder.independent_atoms().tolist() == list(ref.phonon.symmetry.get_independent_atoms())


def test_phonopy_copies_are_private_and_choose_fc_and_nac(mgo):
    from phonft.references import ReferenceFolder

    folder = ReferenceFolder.load(mgo[1])
    assert folder.phonon.nac_params is not None  # MgO has a BORN file
    ph = folder.phonopy(with_nac=False)
    np.testing.assert_array_equal(ph.force_constants, folder.fc2_eV_A2)
    assert ph.nac_params is None and folder.phonon.nac_params is not None
    ph.force_constants[:] = 0.0
    ph.forces = np.zeros_like(ph.forces)
    assert np.abs(folder.forces_eV_A).max() > 0.01 and np.abs(folder.fc2_eV_A2).max() > 1.0
    bare = folder.phonopy(with_fc=False)
    assert bare.force_constants is None and bare.nac_params is not None


def _break(out, name: str, how: str) -> None:
    path = out / name
    if how == "missing":
        path.unlink()
    elif how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    elif how == "wrong-shape":
        from phonopy.file_IO import write_force_constants_to_hdf5

        write_force_constants_to_hdf5(np.zeros((8, 8, 3, 3)), str(path))
    elif how == "no-forces":
        import phonopy

        ph = phonopy.load(path, produce_fc=False, log_level=0)
        ph.save(path, settings={"force_sets": False, "displacements": True, "force_constants": False})
    elif how == "not-thermal":
        path.write_text(json.dumps({"material": "MgO"}))


@pytest.mark.parametrize("name, how, problem", [
    ("phonopy_params.yaml", "missing", "is missing from the references folder"),
    ("fc2.hdf5", "missing", "is missing from the references folder"),
    ("thermal.json", "missing", "is missing from the references folder"),
    ("phonopy_params.yaml", "truncated", "truncated or corrupt"),
    ("phonopy_params.yaml", "no-forces", "holds no DFT forces"),
    ("fc2.hdf5", "truncated", "truncated or corrupt"),
    ("thermal.json", "truncated", "truncated or corrupt"),
    ("fc2.hdf5", "wrong-shape", "has shape (8, 8, 3, 3), but the supercell has 64 atoms"),
    ("thermal.json", "not-thermal", "is not a references thermal.json"),
])
def test_a_broken_folder_names_the_file(mgo, tmp_path, name, how, problem):
    from phonft.references import ReferenceFolder

    out = tmp_path / "MgO"
    shutil.copytree(mgo[1], out)
    _break(out, name, how)
    with pytest.raises(InputFileError) as err:
        ReferenceFolder.load(out)
    assert err.value.path == str(out / name)
    assert problem in str(err.value)
    if how != "truncated":  # (a parser's own message may span lines)
        assert "\n" not in str(err.value)


def test_a_broken_folder_is_a_one_line_cli_error(mgo, tmp_path, capsys):
    from phonft.cli import main

    out = tmp_path / "MgO"
    shutil.copytree(mgo[1], out)
    _break(out, "fc2.hdf5", "missing")
    assert main(["evaluate", "mdr", "--model", "chgnet", "--reference", str(out), "--material", "MgO",
                 "--out", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"phonft evaluate: error: {out / 'fc2.hdf5'}: is missing from the references folder." in err.splitlines()[-1]
    assert not (tmp_path / "ev").exists()


def test_reference_thermal_record_is_the_former_literal(mgo):
    from phonft.references.reference import _portable

    ref, _ = mgo
    raw = ref.raw
    old = {
        "material": "MgO",
        "kind": "engine" if raw.synthetic else "dft",
        "synthetic": raw.synthetic,
        **({"engine": raw.engine} if raw.engine else {}),
        **ref.summary,
        "source": {
            "format": raw.fmt,
            "files": [_portable(p) for p in raw.files],
            "sha256": {p.name: sha256_file(p) for p in raw.files if p.is_file()},
            "notes": raw.notes,
            **({"stored_values": raw.source_values} if raw.source_values else {}),
        },
        "has_fc3": ref.fc3 is not None,
        **ref.protocol.record(),
    }
    assert list(ref.thermal_record("MgO").items()) == list(old.items())  # same keys, same order, same values
