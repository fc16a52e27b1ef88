"""GNEP and SNES training of NEP models (phonft.finetune.gnep), on synthetic data.

The labels come from a random "teacher" NEP (Si/Ge, small cutoffs), so the tests run
without the GPL-3 shared data; a student with other random weights learns them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from ase.build import bulk

from phonft.errors import ConfigError, InputFileError
from phonft.finetune.gnep import (GNEPSettings, LabelledFrame, SNESSettings, from_rattled, initialise,
                                  read_training_frames, train_gnep, train_snes)
from phonft.finetune.gnep.data import FrameSet, squared_errors, weighted_rmse
from phonft.finetune.gnep.frames import stress_to_virial
from phonft.finetune.gnep.init import _descriptor_ranges, _energies, _switch_off_constant_neurons
from phonft.models.nep.backend import NEPModel
from phonft.models.nep.module import NEP, random_parameters
from phonft.models.nep.nepfile import NEPSpec

SPEC = NEPSpec(types=("Si", "Ge"), cutoff=(4.0, 3.0), n_max=(3, 2), basis_size=(4, 4), l_max=(4, 2, 0),
               n_neurons=6)


def nep(seed: int) -> NEPModel:
    return NEPModel(NEP(SPEC, random_parameters(SPEC, np.random.default_rng(seed))), spec="nep")


def structures(n: int = 6, seed: int = 0):
    """Rattled, strained 8-atom diamond cells with 0..8 Ge atoms (varied compositions)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        a = bulk("Si", "diamond", 5.5, cubic=True)
        symbols = np.array(["Si"] * 8)
        symbols[rng.permutation(8)[:k % 9]] = "Ge"
        a.set_chemical_symbols(symbols.tolist())
        a.set_cell(a.cell.array @ (np.eye(3) + 0.02 * rng.standard_normal((3, 3))), scale_atoms=True)
        a.positions += 0.1 * rng.standard_normal(a.positions.shape)
        out.append(a)
    return out


def teacher_frames(n: int = 6, seed: int = 0) -> list[LabelledFrame]:
    """Frames labelled by an initialised random teacher NEP: energy, forces and virial."""
    atoms = structures(n, seed)
    teacher = nep(100)
    initialise(teacher, [LabelledFrame(a, energy_eV=-4.0 * len(a)) for a in atoms])
    out = teacher.evaluate(teacher.prepare(atoms), stress=True)
    frames, start = [], 0
    for b, a in enumerate(atoms):
        forces = out.forces[start:start + len(a)].detach().numpy()
        frames.append(LabelledFrame(a, float(out.energy[b].detach()), forces, stress_to_virial(out.stress[b].detach().numpy(), a)))
        start += len(a)
    return frames


@pytest.fixture(scope="module")
def frames():
    return teacher_frames()


def test_teacher_has_zero_loss_on_its_labels(frames):
    """The labels' conventions (energy per atom, forces, virial sign W = -stress V) are the
    loss's: the teacher that made them has zero error on all three."""
    teacher = nep(100)
    initialise(teacher, [LabelledFrame(f.atoms, energy_eV=-4.0 * f.n_atoms) for f in frames])
    batch, labels = FrameSet.build(teacher, frames).batch(range(len(frames)))
    terms = squared_errors(teacher, batch, labels, virial=True, create_graph=False)
    assert set(terms) == {"energy", "forces", "virial"}
    assert all(float(sse) < 1e-20 for sse, _ in terms.values())


def test_initialise_scaler_neighbours_and_shift(frames):
    student = nep(1)
    before = FrameSet.build(student, frames)
    e_before = _rmse(student, before)["energy"]
    info = initialise(student, frames)
    lo, hi, most = _descriptor_ranges(student, FrameSet.build(student, frames).batches)
    scaled_span = (hi - lo) * student.module.q_scaler.numpy()
    assert np.all(scaled_span <= 1 + 1e-12) and scaled_span.max() > 1 - 1e-12
    assert tuple(student.module.spec.max_neighbors) == most == tuple(info["max_neighbors"])
    from ase.neighborlist import neighbor_list

    brute = tuple(max(int(np.bincount(neighbor_list("i", f.atoms, rc)).max()) for f in frames) for rc in SPEC.cutoff)
    assert most == brute
    e_after = _rmse(student, FrameSet.build(student, frames))["energy"]
    # measured: 3.98 eV/atom before (a random NEP), 38 meV/atom after (the least-squares shift)
    assert e_after < 0.05 and e_after < 0.02 * e_before


def _rmse(model, data):
    batch, labels = data.batch(range(len(data)))
    terms = squared_errors(model, batch, labels, virial=True, create_graph=False)
    return {k: float(np.sqrt(float(s) / n)) for k, (s, n) in terms.items()}


def test_energy_shift_is_exact():
    """References = the network with its constant neurons switched off + known per-element
    energies: initialise recovers them and the model then has no energy error at all."""
    atoms = structures(6, seed=3)
    student = nep(2)
    dummy = [LabelledFrame(a, energy_eV=0.0) for a in atoms]
    initialise(student, dummy)  # fixes q_scaler, which the check below needs unchanged
    _switch_off_constant_neurons(student.module)
    base = _energies(student, FrameSet.build(student, dummy).batches)
    shift = {"Si": -4.1, "Ge": -3.7}
    frames = [LabelledFrame(a, energy_eV=float(e + sum(shift[s] for s in a.get_chemical_symbols())))
              for a, e in zip(atoms, base)]
    info = initialise(student, frames)
    assert info["energy_shift_eV_atom"] == pytest.approx(shift, abs=1e-12)
    assert _rmse(student, FrameSet.build(student, frames))["energy"] < 1e-13


def test_gnep_lowers_force_rmse(frames):
    student = nep(1)
    initialise(student, frames)
    settings = GNEPSettings(epochs=40, batch_size=2, lr=1e-2, lr_final=1e-3)
    history = train_gnep(student, frames, settings, progress=False)
    first, last = history.rows[0], history.rows[-1]
    assert [r["epoch"] for r in history.rows] == list(range(41))
    assert last["structure_evaluations"] == 40 * len(frames)
    # measured: force RMSE 632 -> 115 meV/Å (5.5x) in 40 epochs; the test asks for 3x
    assert last["force_rmse_meV_A"] < first["force_rmse_meV_A"] / 3


def test_resume_is_bitwise(frames, tmp_path):
    settings = GNEPSettings(epochs=4, batch_size=4, lr=1e-2, lr_final=1e-3, optimizer="adamw", weight_decay=1e-4)

    def fresh():
        model = nep(1)
        initialise(model, frames)
        return model

    whole = fresh()
    full = train_gnep(whole, frames, settings, progress=False, checkpoint=tmp_path / "a.pt")
    first = fresh()
    part = train_gnep(first, frames, settings, progress=False, checkpoint=tmp_path / "b.pt",
                      stop=lambda row: row["epoch"] == 2)
    assert part.stopped == "stop" and part.last["epoch"] == 2
    resumed = fresh()
    rest = train_gnep(resumed, frames, settings, progress=False, checkpoint=tmp_path / "b.pt")
    assert rest.resumed_from == 2 and rest.last["epoch"] == 4
    for name, p in whole.module.state_dict().items():
        assert torch.equal(p, resumed.module.state_dict()[name]), name
    assert [r["force_rmse_meV_A"] for r in rest.rows] == [r["force_rmse_meV_A"] for r in full.rows]


def test_snes_lowers_the_loss(frames):
    student = nep(1)
    initialise(student, frames)
    settings = SNESSettings(generations=40, population=12, batch=3, sigma0=0.05, lambda_1=0.0, lambda_2=0.0)
    history = train_snes(student, frames, settings, progress=False)
    assert len(history.rows) == 40 and history.last["structure_evaluations"] == 40 * 12 * 3
    start = np.mean([r["loss"] for r in history.rows[:4]])
    end = np.mean([r["loss"] for r in history.rows[-4:]])
    # measured: mean loss of the first 4 generations 0.62, of the last 4 0.28
    assert end < 0.7 * start
    assert all(p.requires_grad for p in student.module.parameters())


def test_loss_masks_frames_without_a_label(frames):
    model = nep(1)
    initialise(model, frames)
    partial = [dataclasses.replace(frames[0]), dataclasses.replace(frames[1], energy_eV=None, virial_eV=None),
               dataclasses.replace(frames[2], forces_eV_A=None)]
    data = FrameSet.build(model, partial)
    batch, labels = data.batch([0, 1, 2])
    terms = squared_errors(model, batch, labels, virial=True, create_graph=False)
    assert terms["energy"][1] == 2 and terms["virial"][1] == 12 and terms["forces"][1] == 2 * 8 * 3
    alone = {i: squared_errors(model, *data.batch([i]), virial=True, create_graph=False) for i in range(3)}
    assert float(terms["energy"][0]) == pytest.approx(float(alone[0]["energy"][0] + alone[2]["energy"][0]))
    assert float(terms["forces"][0]) == pytest.approx(float(alone[0]["forces"][0] + alone[1]["forces"][0]))
    assert "energy" not in alone[1] and "forces" not in alone[2]
    weights = GNEPSettings().weights
    assert weighted_rmse({}, weights) is None


GPUMD_XYZ = """2
energy=-10.5 virial="1 2 3 2 5 6 3 6 9" Lattice="3 0 0 0 3 0 0 0 3" pbc="T T T" Properties=species:S:1:pos:R:3:force:R:3
Si 0 0 0 0.1 0.2 0.3
Si 1 1 1 -0.1 -0.2 -0.3
2
Energy=-11.0 virial="1 4 6 4 2 5 6 5 3" Lattice="3 0 0 0 3 0 0 0 3" pbc="T T T" Properties=species:S:1:pos:R:3:forces:R:3
Si 0 0 0 0.1 0.2 0.3
Si 1 1 1 -0.1 -0.2 -0.3
2
energy=-12.0 stress="0.1 0 0 0 0.2 0 0 0 0.3" Lattice="3 0 0 0 3 0 0 0 3" pbc="T T T" Properties=species:S:1:pos:R:3
Si 0 0 0
Si 1 1 1
"""

REF_XYZ = """2
REF_energy=-10.5 REF_stress="0.1 0.01 0 0.01 0.2 0 0 0 0.3" Lattice="3 0 0 0 3 0 0 0 3" pbc="T T T" Properties=species:S:1:pos:R:3:REF_forces:R:3
Si 0 0 0 0.1 0.2 0.3
Si 1 1 1 -0.1 -0.2 -0.3
"""


def test_reader_gpumd_and_ref_conventions(tmp_path):
    (tmp_path / "train.xyz").write_text(GPUMD_XYZ)
    (tmp_path / "ref.xyz").write_text(REF_XYZ)
    g = read_training_frames(tmp_path / "train.xyz")
    assert [f.energy_eV for f in g] == [-10.5, -11.0, -12.0]
    assert np.allclose(g[0].forces_eV_A[0], [0.1, 0.2, 0.3]) and np.allclose(g[1].forces_eV_A[1], [-0.1, -0.2, -0.3])
    assert np.allclose(g[0].virial_eV, [[1, 2, 3], [2, 5, 6], [3, 6, 9]])
    assert np.allclose(g[1].virial_eV, [[1, 4, 6], [4, 2, 5], [6, 5, 3]])
    assert g[2].forces_eV_A is None and np.allclose(np.diag(g[2].virial_eV), [-2.7, -5.4, -8.1])  # -stress * 27 Å^3
    r = read_training_frames(tmp_path / "ref.xyz")[0]
    assert r.energy_eV == -10.5 and np.allclose(r.forces_eV_A[0], [0.1, 0.2, 0.3])
    assert np.allclose(r.virial_eV, -27 * np.array([[0.1, 0.01, 0], [0.01, 0.2, 0], [0, 0, 0.3]]))


def test_from_rattled_converts_stress():
    from phonft.finetune.rattled import RattledSample

    a = bulk("Si", "diamond", 5.43)
    sample = RattledSample(a, np.zeros((2, 3)), -10.0, np.eye(3) * 0.01)
    frame = from_rattled([sample])[0]
    assert frame.energy_eV == -10.0 and np.allclose(frame.virial_eV, -0.01 * a.get_volume() * np.eye(3))
    assert from_rattled([RattledSample(a, np.zeros((2, 3)), None, None)])[0].virial_eV is None


@pytest.mark.parametrize("text, words", [
    ("", "holds no frames"),
    (GPUMD_XYZ.split("2\nEnergy")[0] + "1\nLattice=\"3 0 0 0 3 0 0 0 3\" pbc=\"T T T\" Properties=species:S:1:pos:R:3\n"
     "Si 0 0 0\n", "frame 1 carries no energy"),
    (GPUMD_XYZ.replace("energy=-10.5", "energy=nan"), "frame 0 has a NaN"),
    (GPUMD_XYZ.replace("energy=-12.0", 'energy="a b"'), "frame 2: a label is malformed"),
    (GPUMD_XYZ.replace('virial="1 4 6 4 2 5 6 5 3"', 'virial="1 2 3 4 5 6"'), "write each virial as 9 numbers"),
    (GPUMD_XYZ.replace('Properties=species:S:1:pos:R:3\n', 'Properties=species:S:1:pos:R:3:force:R:2\n'), "frame"),
    ("2\nnot an extxyz\nSi 0 0\n", "not a readable extxyz"),
])
def test_reader_bad_frames(tmp_path, text, words):
    path = tmp_path / "bad.xyz"
    path.write_text(text)
    with pytest.raises(InputFileError) as err:
        read_training_frames(path)
    message = str(err.value)
    assert str(path) in message and words in message and "Fix:" in message and "\n" not in message


def test_reader_missing_file(tmp_path):
    with pytest.raises(InputFileError, match="does not exist"):
        read_training_frames(tmp_path / "absent.xyz")


@pytest.mark.parametrize("fields, key", [({"epochs": 0}, "epochs"), ({"optimizer": "sgd"}, "optimizer"),
                                         ({"lr": 1e-3, "lr_final": 1e-2}, "lr_final"),
                                         ({"schedule": "step"}, "schedule"), ({"max_seconds": -1}, "max_seconds"),
                                         ({"weights": {"forces": -1.0}}, "forces")])
def test_settings_errors_name_the_key(fields, key):
    with pytest.raises(ConfigError, match=repr(key)):
        GNEPSettings.from_dict(fields)


def test_settings_round_trip():
    s = GNEPSettings.from_dict({"weights": {"virial": 0.0}, "schedule": "exponential"})
    assert s.weights.virial == 0.0 and s.weights.forces == 2.0 and GNEPSettings.from_dict(s.as_dict()) == s
    assert SNESSettings.from_dict({"population": 10}).weights.forces == 1.0
    with pytest.raises(ConfigError, match="'population'"):
        SNESSettings.from_dict({"population": 1})
