"""Real-size force-constant labels without new DFT (issue 14): ``supercell_labels``.

A reference's DFT fc2 is Fourier-interpolated by phonopy to a larger commensurate supercell
(:mod:`phonft.references.supercell_labels`). The vendored MgO 2x2x2 set (64 atoms) gives
the 4x4x4 supercell (512 atoms). Checked: the interpolation to the DFT supercell itself and
the fold back from 4x4x4 return the DFT fc2 (1e-10 eV/Å²); the expanded fc2 obeys the
acoustic sum rule and index symmetry, and has the DFT phonons at the DFT supercell's
q-points; the references stage writes ``labels/`` without touching its other outputs; the
fine-tuning data train on the expanded supercell; bad matrices fail with one line.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from badinput import assert_clean_failure, phonft
from phonft_testdata import REPO

MGO = {"format": "force_sets", "path": "data/dft-phonons/MgO"}
BIG = [4, 4, 4]


def _args(reference: dict, out: str, limits: dict | None = None) -> list[str]:
    settings = {"material": {"reference": reference}, **({"limits": limits} if limits else {})}
    return ["references", "--material", "MgO", "--settings", json.dumps(settings), "--base-dir", str(REPO),
            "--out", out]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """``phonft references`` for MgO without (``plain``) and with (``labels``) supercell_labels [4, 4, 4]."""
    root = tmp_path_factory.mktemp("labels")
    for name, ref in (("plain", MGO), ("labels", {**MGO, "supercell_labels": BIG})):
        proc = phonft(*_args(ref, f"results/references/{name}"), cwd=root)
        assert proc.returncode == 0, proc.stderr
    return root / "results" / "references"


@pytest.fixture(scope="module")
def mgo(runs):
    from phonft.references.folder import ReferenceFolder

    return ReferenceFolder.load(runs / "labels")


def test_own_supercell_gives_back_the_dft_fc2(mgo):
    from phonft.references.supercell_labels import expand_force_constants

    atoms, fc2 = expand_force_constants(mgo, np.diag(mgo.phonon.supercell_matrix))
    assert np.allclose(atoms.positions, mgo.supercell().positions, atol=1e-10)
    assert fc2.dtype == np.float64
    assert np.max(np.abs(fc2 - mgo.fc2_eV_A2)) < 1e-10


def test_folding_the_expanded_fc2_back_gives_the_dft_fc2(mgo):
    """4x4x4 -> dynamical matrices at the 2x2x2 commensurate q-points -> 2x2x2 fc2."""
    from phonft.references.supercell_labels import expand_force_constants

    assert mgo.labels_fc2_eV_A2.shape == (512, 512, 3, 3)
    _, folded = expand_force_constants(mgo.labels_phonon, mgo.phonon.supercell_matrix, mgo.labels_fc2_eV_A2)
    assert np.max(np.abs(folded - mgo.fc2_eV_A2)) < 1e-10
    assert np.max(np.abs(mgo.fc2_eV_A2)) > 1.0  # a real comparison, not of zeros


def test_expanded_fc2_is_physical_and_keeps_the_dft_phonons(mgo):
    from phonopy.harmonic.dynmat_to_fc import get_commensurate_points

    fc = mgo.labels_fc2_eV_A2
    assert np.max(np.abs(fc.sum(axis=1))) < 1e-10  # acoustic sum rule
    assert np.max(np.abs(fc - fc.transpose(1, 0, 3, 2))) < 1e-10  # Phi_ij^ab = Phi_ji^ba
    dft, big = mgo.phonopy(with_nac=False), copy.deepcopy(mgo.labels_phonon)
    big.force_constants = fc
    smat = np.rint(np.linalg.inv(dft.primitive.primitive_matrix)).astype(int)  # DFT supercell in primitive cells
    qpoints = get_commensurate_points(smat)
    freqs = []
    for ph in (dft, big):
        ph.run_qpoints(qpoints)
        freqs.append(ph.get_qpoints_dict()["frequencies"])
    dft_f, big_f = freqs
    assert len(qpoints) == 32 and np.allclose(qpoints[0], 0)
    # sqrt turns 1e-14 round-off in the zero eigenvalues of the Gamma acoustic modes into ~1e-7 THz
    assert np.max(np.abs(dft_f[0, :3])) < 1e-5 and np.max(np.abs(big_f[0, :3])) < 1e-5
    assert np.max(np.abs(dft_f[0, 3:] - big_f[0, 3:])) < 1e-8  # THz
    assert np.max(np.abs(dft_f[1:] - big_f[1:])) < 1e-8


def test_references_run_writes_labels_and_leaves_the_rest_byte_identical(runs):
    plain, labels = runs / "plain", runs / "labels"
    assert sorted(p.name for p in labels.iterdir()) == sorted([*(p.name for p in plain.iterdir()), "labels"])
    for f in plain.iterdir():
        assert f.read_bytes() == (labels / f.name).read_bytes(), f.name
    record = json.loads((labels / "labels" / "labels.json").read_text())
    assert record["n_atoms"] == 512 and record["exact_on_source_qpoints"] is True
    assert record["material"] == "MgO" and record["protocol_digest"]
    assert sorted(p.name for p in (labels / "labels").iterdir()) == ["fc2.hdf5", "labels.json",
                                                                     "phonopy_params.yaml"]


def test_training_sample_is_the_512_atom_supercell(runs, mgo):
    from phonft.finetune.data import load_phonon_sample, real_size_sample

    sample = load_phonon_sample(runs / "labels", "MgO")
    assert sample.n_atoms == 512 and sample.fc2_eV_A2.shape == (512, 512, 3, 3)
    assert np.array_equal(sample.fc2_eV_A2, mgo.labels_fc2_eV_A2)
    assert sorted(sample.independent_atoms.tolist()) == [0, 256]  # Mg and O: one orbit each
    assert np.allclose(sample.column(5), mgo.labels_fc2_eV_A2[:, 1, :, 2])
    assert load_phonon_sample(runs / "plain").n_atoms == 64  # no labels/: the DFT supercell
    assert len(mgo.phonopy().supercell) == 64  # held-out/evaluate: the DFT reference
    small = real_size_sample(runs / "plain", [3, 3, 3])
    assert small.n_atoms == 216 and np.max(np.abs(small.fc2_eV_A2.sum(axis=1))) < 1e-10


@pytest.mark.parametrize(("labels", "limits", "message"), [
    ([4.5, 4, 4], None, "supercell_labels must hold integers only"),
    ([4, 0, 4], None, "determinant 0"),
    ([[1, 0, 0], [0, 1, 0], [0, 0, -2]], None, "left-handed"),
    ([4, 4], None, "must be 3 integers, 9, or a 3x3 matrix"),
    ("444", None, "must be a list of integers"),
    (BIG, {"max_supercell_atoms_fc2": 500}, "512 atoms"),
])
def test_bad_supercell_labels_fail_with_one_line(labels, limits, message, tmp_path):
    line = assert_clean_failure(_args({**MGO, "supercell_labels": labels}, "results/references/MgO", limits),
                                cwd=tmp_path, message=message)
    assert "supercell_labels" in line and "Fix:" in line


def test_too_large_a_supercell_is_refused_before_it_is_built(mgo):
    from phonft.errors import ConfigError
    from phonft.references.supercell_labels import supercell_labels

    with pytest.raises(ConfigError, match="holds 512 atoms.*max_supercell_atoms_fc2 = 100"):
        supercell_labels(mgo.phonon, mgo.fc2_eV_A2, BIG, max_atoms=100)


def test_planner_passes_the_atom_limit_only_with_supercell_labels():
    from snakemake.utils import validate

    from phonft.plan import Plan, settings

    config = {"displacements": {"max_supercell_atoms_fc2": 600},
              "materials": {"MgO": {"reference": {**MGO, "supercell_labels": BIG}},
                            "NaCl": {"reference": {"format": "force_sets", "path": "data/dft-phonons/NaCl"}}}}
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    plan = Plan(config)
    assert settings(plan, "references", material="MgO")["limits"] == {"max_supercell_atoms_fc2": 600}
    assert "limits" not in settings(plan, "references", material="NaCl")
