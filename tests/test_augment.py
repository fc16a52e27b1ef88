"""The augment stage (phonft.augment): seeded rattles, exact cell distortions, the four label
sources and the frames file contract, on the vendored NaCl, Si and NaCl-QE data."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from ase import Atoms
from hypothesis import given, settings
from hypothesis import strategies as st
from phonft_testdata import DFT, REPO

from phonft.augment.frames import read_frames, write_frames
from phonft.augment.labels import dft_labels, engine_labels
from phonft.augment.rattle import (
    distort_cell,
    frame_parameters,
    material_rng,
    mc_rattle,
    rattled_frames,
)
from phonft.augment.settings import AugmentSettings, LabelSettings
from phonft.augment.stage import make_frames, write_augment
from phonft.errors import ConfigError, InputFileError

EV_PER_A3_PER_GPA = 1.0 / 160.21766208  # 1 GPa in eV/Å³
RY_EV, BOHR_A = 13.605693122994, 0.529177210903  # CODATA 2018 (ASE's units are CODATA 2014: 1e-7 apart)


@pytest.fixture(scope="module")
def nacl(references):
    from phonft.references.folder import ReferenceFolder

    folder = references("NaCl")
    return folder, ReferenceFolder.load(folder)


def _rattle(ref, **fields) -> list[Atoms]:
    return rattled_frames(ref.supercell(), AugmentSettings.from_dict(fields), "NaCl")


# ------------------------------------------------------------------ rattle


def test_rattle_is_seeded_and_reproducible(nacl):
    _, ref = nacl
    a, b = _rattle(ref), _rattle(ref)
    assert len(a) == 10
    assert all(np.array_equal(x.positions, y.positions) for x, y in zip(a, b))
    assert not np.array_equal(a[0].positions, a[1].positions)
    other_seed = _rattle(ref, seed=1)
    other_material = rattled_frames(ref.supercell(), AugmentSettings(), "KCl")
    assert not np.allclose(a[0].positions, other_seed[0].positions)
    assert not np.allclose(a[0].positions, other_material[0].positions)
    assert [f.info["frame"] for f in a] == list(range(10))
    assert {f.info["config_type"] for f in a} == {"rattled"} and {f.info["material"] for f in a} == {"NaCl"}


@pytest.mark.parametrize("sigmas", [(0.01,), (0.01, 0.05)])
def test_rattle_sigma_matches_the_setting(nacl, sigmas):
    """(n - 1) s² / σ² follows chi-square with n - 1 degrees of freedom: two-sided p above 1e-4."""
    from scipy.stats import chi2

    _, ref = nacl
    frames = _rattle(ref, n_frames=40, rattle_std_A=list(sigmas))
    supercell = ref.supercell()
    for k, sigma in enumerate(sigmas):
        u = np.concatenate([(f.positions - supercell.positions).ravel() for f in frames[k::len(sigmas)]])
        assert {f.info["rattle_std_A"] for f in frames[k::len(sigmas)]} == {sigma}
        n = u.size
        stat = (n - 1) * u.var(ddof=1) / sigma**2
        p = 2 * min(chi2.cdf(stat, n - 1), chi2.sf(stat, n - 1))
        assert p > 1e-4, (sigma, u.std(), p)
        assert abs(u.mean()) < 5 * sigma / np.sqrt(n)


def test_frame_parameters_cover_every_pair():
    s = AugmentSettings(n_frames=6, rattle_std_A=(0.01, 0.02), volume_factors=(0.95, 1.0, 1.05))
    assert frame_parameters(s) == [(0.01, 0.95), (0.02, 0.95), (0.01, 1.0), (0.02, 1.0), (0.01, 1.05), (0.02, 1.05)]


def test_volume_factors_are_applied_exactly(nacl):
    _, ref = nacl
    s = AugmentSettings(n_frames=6, rattle_std_A=(0.01, 0.02), volume_factors=(0.95, 1.0, 1.05))
    frames = rattled_frames(ref.supercell(), s, "NaCl")
    v0 = ref.supercell().get_volume()
    for f, (sigma, factor) in zip(frames, frame_parameters(s)):
        assert f.info["volume_factor"] == factor and f.info["rattle_std_A"] == sigma
        assert f.get_volume() / v0 == pytest.approx(factor, rel=1e-12)


def test_angle_distortion_is_applied_exactly(nacl):
    _, ref = nacl
    sc = ref.supercell()
    deltas = np.array([1.0, -2.0, 0.5])
    out = distort_cell(sc, 1.03, deltas)
    assert out.cell.cellpar()[3:] == pytest.approx(sc.cell.cellpar()[3:] + deltas, abs=1e-9)
    assert out.get_volume() / sc.get_volume() == pytest.approx(1.03, rel=1e-12)
    a0, a1 = sc.cell[0] / np.linalg.norm(sc.cell[0]), out.cell[0] / np.linalg.norm(out.cell[0])
    assert a1 == pytest.approx(a0, abs=1e-12)  # the a axis stays in place
    assert out.get_scaled_positions() == pytest.approx(sc.get_scaled_positions(), abs=1e-12)
    frames = _rattle(ref, n_frames=3, angle_std_deg=2.0, rattle_std_A=[0.01])
    assert all(not np.allclose(f.cell.cellpar()[3:], 90.0) for f in frames)


def test_mc_rattle_keeps_the_minimum_distance(nacl):
    """Na-Cl is 2.82 Å in NaCl: a 0.3 Å Gaussian rattle brings pairs below 2.3 Å, the MC one does not."""
    _, ref = nacl
    sc = ref.supercell()
    d_min = 2.3
    plain = sc.copy()
    plain.rattle(0.3, rng=np.random.default_rng(0))
    assert plain.get_all_distances(mic=True)[np.triu_indices(len(sc), 1)].min() < d_min
    mc = mc_rattle(sc, 0.3, d_min, 10, np.random.default_rng(0))
    assert mc.get_all_distances(mic=True)[np.triu_indices(len(sc), 1)].min() >= d_min
    u = mc.positions - sc.positions
    assert 0.1 < u.std() < 0.4
    a, b = (_rattle(ref, n_frames=2, mc=True, rattle_std_A=[0.05], min_distance_A=2.3) for _ in range(2))
    assert all(np.array_equal(x.positions, y.positions) for x, y in zip(a, b))


# ------------------------------------------------------------------ labels


def test_harmonic_labels_equal_minus_phi_u(nacl, tmp_path):
    folder, ref = nacl
    sc, fc2 = ref.supercell(), ref.fc2_eV_A2
    manifest = write_augment(tmp_path / "NaCl", "NaCl", folder, AugmentSettings(), LabelSettings())
    frames = read_frames(tmp_path / "NaCl" / "rattled.extxyz")
    assert len(frames) == manifest["n_frames"] == 10 and manifest["label_source"] == "harmonic_dft"
    n = len(sc)
    in_memory = make_frames("NaCl", folder, AugmentSettings(), LabelSettings())[1]
    for f, mem in zip(frames, in_memory, strict=True):
        assert np.array_equal(f.positions, mem.positions)  # positions are rounded to what extxyz keeps
        u = f.positions - sc.positions
        expected = -(fc2.transpose(0, 2, 1, 3).reshape(3 * n, 3 * n) @ u.reshape(-1)).reshape(n, 3)
        assert np.abs(mem.arrays["REF_forces"] - expected).max() < 1e-12
        assert np.abs(f.arrays["REF_forces"] - expected).max() <= 5.1e-9  # extxyz writes 8 decimals
        assert f.info["label_source"] == "harmonic_dft"
        assert "REF_energy" not in f.info and "REF_stress" not in f.info
    assert manifest["units"] == {"REF_forces": "eV/Å"}
    assert manifest["protocol_digest"] == AugmentSettings().digest()


def test_harmonic_labels_refuse_distorted_cells(nacl):
    folder, _ = nacl
    with pytest.raises(ConfigError, match="harmonic labels .* reference cell"):
        make_frames("NaCl", folder, AugmentSettings(volume_factors=(0.98, 1.02)), LabelSettings())


def _vasprun_raw(path) -> tuple[float, np.ndarray, np.ndarray]:
    """Energy (e_fr_energy, eV), forces (eV/Å), stress (kBar, VASP sign) of the last step, by ElementTree."""
    calc = ET.parse(path).getroot().findall("calculation")[-1]
    arrays = {v.get("name"): np.array([[float(x) for x in r.text.split()] for r in v.findall("v")])
              for v in calc.findall("varray")}
    energy = float(calc.find("energy").find("i[@name='e_fr_energy']").text)
    return energy, arrays["forces"], arrays["stress"]


def _si_frame():
    from phonft.atoms import to_ase
    from phonft.references.readers import read_vasprun

    raw = read_vasprun(DFT / "Si" / "phonopy_disp.yaml", [DFT / "Si" / "vasprun.xml"])
    return to_ase(raw.phonon.supercells_with_displacements[0]), to_ase(raw.phonon.supercell)


def test_vasprun_labels_round_trip_with_units(tmp_path):
    frame, _ = _si_frame()
    frame.info.update(material="Si", frame=0, config_type="rattled")
    dft_labels([frame], "vasprun", [DFT / "Si" / "vasprun.xml"])
    write_frames(tmp_path / "f.extxyz", [frame])
    (back,) = read_frames(tmp_path / "f.extxyz")
    energy, forces, stress_kbar = _vasprun_raw(DFT / "Si" / "vasprun.xml")
    assert back.info["label_source"] == "dft"
    assert back.info["REF_energy"] == pytest.approx(energy, abs=1e-8)
    assert back.arrays["REF_forces"] == pytest.approx(forces, abs=1e-8)
    expected = -0.1 * stress_kbar * EV_PER_A3_PER_GPA  # kBar -> GPa -> eV/Å³, VASP's sign -> ASE's
    # VASP's own stress is asymmetric by 2e-5 kBar (1e-8 eV/Å³); the values are ~1e-4 eV/Å³
    assert back.info["REF_stress"].reshape(3, 3) == pytest.approx(expected, abs=2e-8)


def test_vasprun_of_another_frame_is_refused():
    frame, supercell = _si_frame()
    with pytest.raises(InputFileError, match="listed for frame 0 but its atom 1 lies"):
        dft_labels([supercell], "vasprun", [DFT / "Si" / "vasprun.xml"])
    with pytest.raises(InputFileError, match="2 VASP vasprun.xml files are listed but augment makes 1 frames"):
        dft_labels([frame], "vasprun", [DFT / "Si" / "vasprun.xml"] * 2)


def _pw_raw(path) -> tuple[float, np.ndarray, np.ndarray]:
    """Energy (Ry), forces (Ry/Bohr), stress (Ry/Bohr³, pw.x sign) from a pw.x output, by regex."""
    text = path.read_text()
    energy = float(re.findall(r"^!\s+total energy\s+=\s+(\S+) Ry", text, re.MULTILINE)[-1])
    forces = np.array([[float(x) for x in m] for m in re.findall(
        r"atom\s+\d+ type\s+\d+\s+force =\s+(\S+)\s+(\S+)\s+(\S+)", text)])
    block = text.split("total   stress")[-1].splitlines()[1:4]
    stress = np.array([[float(x) for x in line.split()[:3]] for line in block])
    return energy, forces, stress


def test_pw_labels_round_trip_with_units(tmp_path):
    from phonft.atoms import to_ase
    from phonft.references.readers import read_qe

    path = DFT / "NaCl-QE"
    raw = read_qe(path / "phonopy_disp.yaml", [path / "NaCl-001.out", path / "NaCl-002.out"])
    frame = to_ase(raw.phonon.supercells_with_displacements[0])
    dft_labels([frame], "qe", [path / "NaCl-001.out"])
    write_frames(tmp_path / "f.extxyz", [frame])
    (back,) = read_frames(tmp_path / "f.extxyz")
    energy, forces, stress = _pw_raw(path / "NaCl-001.out")
    assert back.info["REF_energy"] == pytest.approx(energy * RY_EV, rel=1e-6)
    assert back.arrays["REF_forces"] == pytest.approx(forces[: len(frame)] * RY_EV / BOHR_A, abs=1e-7)
    assert back.info["REF_stress"].reshape(3, 3) == pytest.approx(-stress * RY_EV / BOHR_A**3, rel=1e-6, abs=1e-10)


def test_engine_labels_are_the_calculators(nacl):
    from ase.calculators.lj import LennardJones

    _, ref = nacl
    frames = _rattle(ref, n_frames=2)
    engine_labels(frames, "lj", {"sigma": 2.5, "rc": 5.0})
    for f in frames:
        a = f.copy()
        a.calc = LennardJones(sigma=2.5, rc=5.0)
        assert f.arrays["REF_forces"] == pytest.approx(a.get_forces(), abs=1e-12)
        assert f.info["REF_energy"] == pytest.approx(a.get_potential_energy(), abs=1e-12)
        assert f.info["REF_stress"] == pytest.approx(a.get_stress(voigt=False).reshape(9), abs=1e-12)
        assert f.info["label_source"] == "engine"


def test_user_extxyz_is_read_and_marked(nacl, tmp_path):
    folder, ref = nacl
    frames = _rattle(ref, n_frames=3)
    for f in frames:
        f.arrays["REF_forces"] = np.ones((len(f), 3))
        f.info["REF_energy"] = -1.0
        f.info.pop("rattle_std_A")
    write_frames(tmp_path / "mine.extxyz", frames)
    labels = LabelSettings.from_dict({"format": "extxyz", "path": str(tmp_path / "mine.extxyz")})
    _, got = make_frames("NaCl", folder, AugmentSettings(), labels)
    assert len(got) == 3 and {f.info["label_source"] for f in got} == {"user"}
    assert got[0].info["volume_factor"] == pytest.approx(1.0) and 0.005 < got[0].info["rattle_std_A"] < 0.015


# ------------------------------------------------------------------ command, planner


def test_cli_writes_the_stage_folder(nacl, tmp_path):
    from badinput import phonft

    folder, _ = nacl
    settings = {"protocol": {"n_frames": 3, "rattle_std_A": [0.01, 0.02]}, "labels": {"format": "harmonic"}}
    proc = phonft("augment", "--material", "NaCl", "--reference", str(folder), "--settings", json.dumps(settings),
                  "--out", "results/augment/NaCl", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "results" / "augment" / "NaCl"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["n_frames"] == 3 and manifest["protocol"]["rattle_std_A"] == [0.01, 0.02]
    assert manifest["inputs"]["vasp"] == ["POSCAR-001", "POSCAR-002", "POSCAR-003", "SPOSCAR"]
    assert manifest["inputs"]["qe"] == ["supercell-001.in", "supercell-002.in", "supercell-003.in", "supercell.in"]
    import ase.io

    poscar = ase.io.read(out / "inputs" / "vasp" / "POSCAR-002", format="vasp")
    frames = read_frames(out / "rattled.extxyz")
    diff = poscar.get_scaled_positions() - frames[1].get_scaled_positions(wrap=False)
    assert np.abs(diff - np.rint(diff)).max() < 1e-9  # the same frame, wrapped into the cell
    assert "CELL_PARAMETERS bohr" in (out / "inputs" / "qe" / "supercell-002.in").read_text()


def test_plan_augments_the_listed_materials():
    from phonft.plan import Plan, settings

    nacl = {"reference": {"format": "force_sets", "path": "data/dft-phonons/NaCl"}}
    config = {"materials": {"NaCl": nacl, "Si": {**nacl, "augment": {"labels": {
        "format": "vasprun", "path": "dft/Si", "files": ["a.xml", "b.xml"]}}}},
        "augment": {"materials": ["Si", "NaCl", "Si"], "n_frames": 2}}
    plan = Plan(config, base_dir="/w")
    assert plan.augment_materials() == ["Si", "NaCl"]
    assert plan.targets()[-2:] == ["results/augment/Si/rattled.extxyz", "results/augment/NaCl/rattled.extxyz"]
    assert plan.augment_inputs("Si")["labels"] == ["/w/dft/Si/a.xml", "/w/dft/Si/b.xml"]
    assert "labels" not in plan.augment_inputs("NaCl")
    assert settings(plan, "augment", material="NaCl") == {"protocol": {"n_frames": 2}, "labels": {}}
    with pytest.raises(ConfigError, match="augment.materials names unknown materials"):
        Plan({**config, "augment": {"materials": ["KCl"]}})
    with pytest.raises(ConfigError, match="augment.labels: unknown key 'file'"):
        Plan({"materials": {"NaCl": {**nacl, "augment": {"labels": {"format": "extxyz", "file": "x"}}}}})


def test_shipped_config_augments_the_demo_runs_training_materials():
    import yaml

    from phonft.plan import Plan

    plan = Plan(yaml.safe_load((REPO / "config" / "config.yaml").read_text()), base_dir=str(REPO))
    assert set(plan.augment_materials()) == set(plan.splits["chgnet-pft"].train)


def test_seed_stream_is_documented():
    """The generator is default_rng([seed, sha256(material)[:8] as int]), as the settings say."""
    import hashlib

    s = AugmentSettings(seed=3)
    want = np.random.default_rng([3, int(hashlib.sha256(b"NaCl").hexdigest()[:8], 16)]).normal(size=4)
    assert material_rng(s, "NaCl").normal(size=4) == pytest.approx(want, abs=0)


def test_config_route_and_frame_override(nacl, tmp_path):
    """`phonft augment --config config.yaml` takes the augment block; --n-frames overrides it."""
    from badinput import phonft

    folder, _ = nacl
    proc = phonft("augment", "--material", "NaCl", "--reference", str(folder), "--config",
                  str(REPO / "config" / "config.yaml"), "--n-frames", "2", "--out", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["n_frames"] == 2 and manifest["protocol_digest"] == AugmentSettings(n_frames=2).digest()
    assert len(read_frames(tmp_path / "out" / "rattled.extxyz")) == 2


@settings(max_examples=40, deadline=None)
@given(st.floats(0.8, 1.2), st.lists(st.floats(-5.0, 5.0), min_size=3, max_size=3))
def test_any_distortion_is_exact(factor, deltas):
    cell = np.array([[4.0, 0.0, 0.0], [0.3, 5.0, 0.0], [0.2, 0.4, 6.0]])
    atoms = Atoms("NaCl", scaled_positions=[[0.1, 0.2, 0.3], [0.6, 0.5, 0.4]], cell=cell, pbc=True)
    out = distort_cell(atoms, factor, np.array(deltas))
    assert out.get_volume() / atoms.get_volume() == pytest.approx(factor, rel=1e-12)
    assert out.cell.cellpar()[3:] == pytest.approx(atoms.cell.cellpar()[3:] + deltas, abs=1e-8)
    assert out.get_scaled_positions() == pytest.approx(atoms.get_scaled_positions(), abs=1e-12)
