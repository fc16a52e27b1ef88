"""Bad inputs of the training objectives (issue 9): rattled frames missing ``REF_forces``,
labels with NaN, frames of another structure, a missing frame file, no ``--augment`` for a
``rattled`` run and an unknown objective. Each is one clear error from ``finetune train``
(exit status 2) that writes nothing into ``results/``.

The corpus files in ``tests/data/bad/objectives/`` hold a good frame 0 and a bad frame 1
(``other-atoms.extxyz``: one Cu frame); a test copies each into an augment root as the
training material's ``rattled.extxyz``.
"""

from __future__ import annotations

import json
import shutil

import pytest

from badinput import BAD, assert_clean_failure
from phonft.errors import InputFileError
from phonft.finetune.rattled import read_rattled

OBJECTIVES = BAD / "objectives"
RUN = {"materials": ["Si", "mp-149", "MgO"], "split": {"test": ["MgO"], "val": ["mp-149"], "n_test": 1, "n_val": 1},
       "base_model": "mace-small", "model_options": {"elements": ["Si", "Mg", "O"]}, "replay_steps": 0,
       "objective": "rattled", "epochs": 1}

CASES = {
    "missing-forces.extxyz": "frame 1 has no REF_forces.",
    "forces-nan.extxyz": "frame 1 has NaN or infinite REF_forces.",
    "energy-nan.extxyz": "frame 1 has a NaN or infinite REF_energy.",
    "stress-nan.extxyz": "frame 1 has NaN or infinite REF_stress.",
    "other-atoms.extxyz": "frame 0 holds 4 atoms (Cu4), but the material's reference supercell has 16 atoms (Si16)",
}


@pytest.fixture(scope="module")
def inputs(references, tmp_path_factory):
    """The references root and a split: train Si, val mp-149, test MgO."""
    for m in RUN["materials"]:
        refs = references(m).parent
    root = tmp_path_factory.mktemp("objectives")
    (root / "split.json").write_text(json.dumps({"train": ["Si"], "val": ["mp-149"], "test": ["MgO"]}))
    return root / "split.json", refs


def _args(inputs, run: dict, *extra: str) -> list[str]:
    split, refs = inputs
    return ["finetune", "train", "--run", "r", "--settings", json.dumps({"run": run}), "--split", str(split),
            "--references", str(refs), "--out", "results/finetune/r", "--device", "cpu", *extra]


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_frames_are_one_clear_error(name, inputs, tmp_path):
    frames = tmp_path / "results" / "augment" / "Si" / "rattled.extxyz"
    frames.parent.mkdir(parents=True)
    shutil.copy(OBJECTIVES / name, frames)
    line = assert_clean_failure(_args(inputs, RUN, "--augment", "results/augment"), cwd=tmp_path,
                                message=CASES[name])
    assert "results/augment/Si/rattled.extxyz" in line and "Fix:" in line


def test_missing_frame_file(inputs, tmp_path):
    (tmp_path / "results" / "augment").mkdir(parents=True)
    line = assert_clean_failure(_args(inputs, RUN, "--augment", "results/augment"), cwd=tmp_path,
                                message="results/augment/Si/rattled.extxyz: (augment frames) does not exist")
    assert "phonft augment" in line and "objective: pft" in line


@pytest.mark.parametrize("objective", ["rattled", "both"])
def test_rattled_objective_without_augment_frames(objective, inputs, tmp_path):
    assert_clean_failure(_args(inputs, {**RUN, "objective": objective}), cwd=tmp_path,
                         message=f"objective is {objective}, which fits the training materials' rattled frames, "
                                 "but no augment folder was given. Fix: pass --augment")


def test_unknown_objective(inputs, tmp_path):
    assert_clean_failure(_args(inputs, {**RUN, "objective": "rattle"}), cwd=tmp_path,
                         message="objective must be one of ('pft', 'rattled', 'both'), not 'rattle'")


def test_rattled_hessian_weight(inputs, tmp_path):
    """Rattled frames have no force constants: a Hessian weight on them is refused, not ignored."""
    assert_clean_failure(_args(inputs, {**RUN, "rattled_weights": {"hessian": 10}}), cwd=tmp_path,
                         message="rattled_weights.hessian is 10, but rattled frames carry no Hessian labels. Fix:")


def test_frame_0_of_every_label_case_reads(tmp_path):
    """Only frame 1 is to blame: frame 0 of each label case is a valid forces-only frame."""
    for name in CASES:
        if name == "other-atoms.extxyz":
            continue
        good = tmp_path / name
        good.write_text("\n".join((OBJECTIVES / name).read_text().splitlines()[:4]) + "\n")
        (sample,) = read_rattled(good)
        assert sample.energy_eV is None and sample.stress_eV_A3 is None and sample.forces_eV_A.shape == (2, 3)
    with pytest.raises(InputFileError, match=r"forces-nan.extxyz: frame 1 has NaN or infinite REF_forces"):
        read_rattled(OBJECTIVES / "forces-nan.extxyz")
