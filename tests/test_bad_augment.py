"""Bad inputs of the augment stage: labels with NaN, an extxyz frame without REF_forces,
frames of another structure, DFT outputs of another frame or in another number, harmonic
labels on distorted cells and bad settings. Each is run through ``phonft augment`` and must
fail with one line naming the file or key and the fix, exit status 2, and nothing written
under results/ (:mod:`badinput`). The committed inputs are ``tests/data/bad/augment/*.extxyz``
(2-atom NaCl frames: the labels are checked before the atoms are compared with the
supercell); the others are derived here from the vendored data.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes
from badinput import BAD, assert_clean_failure
from phonft_testdata import DFT

CORPUS = BAD / "augment"


def _args(reference, labels: dict | None = None, **protocol) -> list[str]:
    settings = {"protocol": protocol, "labels": labels or {}}
    return ["augment", "--material", "NaCl", "--reference", str(reference), "--settings", json.dumps(settings),
            "--out", "results/augment/NaCl"]


@pytest.fixture(scope="module")
def nacl(references):
    return references("NaCl")


@pytest.mark.parametrize(("case", "message"), [
    ("nan-forces.extxyz", "frame 1 has NaN or infinite REF_forces"),
    ("missing-ref-forces.extxyz", "frame 1 has no REF_forces"),
])
def test_corpus_extxyz_labels(nacl, tmp_path, case, message):
    line = assert_clean_failure(_args(nacl, {"format": "extxyz", "path": str(CORPUS / case)}), cwd=tmp_path,
                                message=message)
    assert case in line and "Fix: label every frame with REF_forces" in line
    assert not (tmp_path / "results").exists()


def test_nan_energy_label(nacl, tmp_path):
    text = (CORPUS / "nan-forces.extxyz").read_text().replace("nan", "0.0").replace("REF_energy=-6.0", "REF_energy=nan")
    bad = tmp_path / "nan-energy.extxyz"
    bad.write_text(text)
    assert_clean_failure(_args(nacl, {"format": "extxyz", "path": str(bad)}), cwd=tmp_path,
                         message="frame 0 has a NaN or infinite REF_energy")


def test_frames_of_another_structure(nacl, tmp_path):
    """The corpus frames are valid but hold 2 atoms, not the 64 of the NaCl supercell."""
    text = (CORPUS / "nan-forces.extxyz").read_text().replace("nan", "0.0")
    ok = tmp_path / "two-atoms.extxyz"
    ok.write_text(text)
    assert_clean_failure(_args(nacl, {"format": "extxyz", "path": str(ok)}), cwd=tmp_path,
                         message="frame 0 holds 2 atoms (ClNa), but the material's reference supercell has 64 atoms")


def test_vasprun_of_another_structure(nacl, tmp_path):
    """A Si vasprun.xml listed as a NaCl frame's output."""
    labels = {"format": "vasprun", "path": str(DFT / "Si"), "files": ["vasprun.xml"]}
    assert_clean_failure(_args(nacl, labels, n_frames=1), cwd=tmp_path,
                         message="is listed for frame 0 but holds Si16 (16 atoms)")


def test_pw_outputs_for_other_frames(nacl, tmp_path):
    """The NaCl-QE outputs are of phonopy displacements, not of the rattled frames."""
    labels = {"format": "qe", "path": str(DFT / "NaCl-QE"), "files": ["NaCl-001.out", "NaCl-002.out"]}
    line = assert_clean_failure(_args(nacl, labels, n_frames=2), cwd=tmp_path, message="is listed for frame 0 but")
    assert "NaCl-001.out" in line


def test_wrong_number_of_outputs(nacl, tmp_path):
    labels = {"format": "qe", "path": str(DFT / "NaCl-QE"), "files": ["NaCl-001.out"]}
    assert_clean_failure(_args(nacl, labels, n_frames=3), cwd=tmp_path,
                         message="1 Quantum ESPRESSO pw.x output files are listed but augment makes 3 frames")


def test_missing_output(nacl, tmp_path):
    labels = {"format": "vasprun", "path": str(tmp_path), "files": ["nope.xml"]}
    assert_clean_failure(_args(nacl, labels, n_frames=1), cwd=tmp_path, message="nope.xml: does not exist")


@pytest.mark.parametrize(("labels", "protocol", "message"), [
    ({}, {"volume_factors": [0.95, 1.05]}, "harmonic labels (F = -Phi u) hold only at the reference cell"),
    ({}, {"angle_std_deg": 1.0}, "harmonic labels (F = -Phi u) hold only at the reference cell"),
    ({}, {"rattle_std_A": []}, "rattle_std_A is empty"),
    ({}, {"rattle_std_A": [0.01, -0.1]}, "'rattle_std_A' must be a list of positive numbers"),
    ({}, {"n_frames": 0}, "'n_frames' must be 1 or more"),
    ({}, {"min_distance_A": 0}, "'min_distance_A' must be positive"),
    ({}, {"sigma": 0.1}, "unknown setting 'sigma'"),
    ({"format": "xyz"}, {}, "format 'xyz' is not one of harmonic, vasprun, qe, extxyz, engine"),
    ({"format": "vasprun"}, {}, "format 'vasprun' needs path and files"),
    ({"format": "engine", "calculator": "nope"}, {}, "unknown engine calculator 'nope'"),
])
def test_bad_settings(nacl, tmp_path, labels, protocol, message):
    assert_clean_failure(_args(nacl, labels, **protocol), cwd=tmp_path, message=message)


def test_missing_references_folder(tmp_path):
    assert_clean_failure(_args(tmp_path / "references" / "NaCl"), cwd=tmp_path,
                         message="phonopy_params.yaml: is missing from the references folder")


class NaNForces(Calculator):
    """An ASE calculator whose forces are NaN (a diverged engine)."""

    implemented_properties = ("energy", "forces")

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results = {"energy": 0.0, "forces": np.full((len(self.atoms), 3), np.nan)}


def test_engine_with_nan_forces(nacl, tmp_path):
    from phonft.augment.settings import AugmentSettings, LabelSettings
    from phonft.augment.stage import write_augment
    from phonft.errors import InputFileError

    labels = LabelSettings(format="engine", calculator=f"{__name__}:NaNForces")
    with pytest.raises(InputFileError, match="frame 0 has NaN or infinite REF_forces"):
        write_augment(tmp_path / "results" / "augment" / "NaCl", "NaCl", nacl, AugmentSettings(n_frames=2), labels)
    assert not (tmp_path / "results").exists()
