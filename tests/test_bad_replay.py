"""Bad upstream replay data (issue 13, section 3): a 5-component stress traced back; NaN
stresses, NaN lattices and positions, and overlapping atoms were written into the replay
set silently. Each corpus file in ``tests/data/bad/replay/`` holds a good frame 0 and a
bad frame 1; ``finetune replay`` must name the file, the frame and the key on one line,
exit with status 2 and write nothing into ``results/``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from badinput import BAD, assert_clean_failure
from phonft.errors import InputFileError
from phonft.finetune.data import read_replay

REPLAY = BAD / "replay"

CASES = {
    "stress-5-components.extxyz": "frame 1: REF_stress is not a stress (has 5 components; expected 6 (Voigt) or 9",
    "stress-nan.extxyz": "frame 1: REF_stress holds NaN or infinite values",
    "energy-text.extxyz": "frame 1 has a non-numeric REF_energy or REF_forces",
    "lattice-nan.extxyz": "(frame 1): has a lattice with NaN or infinite values",
    "positions-nan.extxyz": "(frame 1): has NaN or infinite coordinates: atom 1 (Cu)",
    "overlapping-atoms.extxyz": "(frame 1): has overlapping atoms: atoms 1 (Cu) and 5 (Cu) are 0.01 Å apart",
}


@pytest.fixture(scope="module")
def run_inputs(references, tmp_path_factory):
    """A split of three vendored materials and their references folders."""
    root = tmp_path_factory.mktemp("run")
    for m in ("Si", "MgO", "NaCl"):
        refs = references(m).parent
    (root / "split.json").write_text(json.dumps({"train": ["Si"], "val": ["MgO"], "test": ["NaCl"]}))
    return root / "split.json", refs


@pytest.mark.parametrize("name", sorted(CASES))
def test_finetune_replay_refuses(name, run_inputs, tmp_path):
    split, refs = run_inputs
    run = {"materials": ["Si", "MgO", "NaCl"], "upstream": {"file": str(REPLAY / name)}}
    line = assert_clean_failure(["finetune", "replay", "--run", "r", "--settings", json.dumps({"run": run}),
                                 "--split", str(split), "--references", str(refs), "--out", "results/finetune/r/replay",
                                 "--device", "cpu"], cwd=tmp_path, message=CASES[name])
    assert str(REPLAY / name) in line and "Fix:" in line


def test_good_frames_of_the_corpus_read(tmp_path):
    """Frame 0 of every corpus file is valid on its own: only frame 1 is to blame."""
    for name in CASES:
        good = tmp_path / name
        text = (REPLAY / name).read_text().splitlines()
        good.write_text("\n".join(text[:6]) + "\n")
        (sample,) = read_replay(good)
        assert sample.energy_eV == -14.8 and sample.stress_eV_A3.shape == (3, 3)


def test_stress_in_3x3_and_voigt_forms_still_read(tmp_path):
    import ase.io
    from ase.build import bulk

    frames = []
    for stress in (np.arange(6.0) * 1e-3, np.eye(3).ravel() * 1e-3):
        a = bulk("Cu", cubic=True)
        a.info["REF_energy"] = -14.0
        a.info["REF_stress"] = stress
        a.arrays["REF_forces"] = np.zeros((4, 3))
        frames.append(a)
    ase.io.write(tmp_path / "ok.extxyz", frames, format="extxyz")
    voigt, full = read_replay(tmp_path / "ok.extxyz")
    assert voigt.stress_eV_A3[1, 2] == pytest.approx(3e-3) and np.allclose(full.stress_eV_A3, np.eye(3) * 1e-3)


def test_read_replay_names_the_frame(tmp_path):
    with pytest.raises(InputFileError, match=r"stress-nan.extxyz: frame 1: REF_stress holds NaN"):
        read_replay(REPLAY / "stress-nan.extxyz")
