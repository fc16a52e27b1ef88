"""Wrong physics in the references stage (issue 13, section 2): forces in the wrong unit,
forces that do not belong to the displacement set, and force files in the wrong order.

Each case is run through ``phonft references`` and must fail with one line naming the file
and the likely cause, exit status 2, and nothing written (:mod:`badinput`). The committed
inputs are ``tests/data/bad/references/*/FORCE_SETS`` (the vendored NaCl and MgO forces,
rescaled, negated or with their atoms reordered); larger ones are derived here from the
vendored data. The property tests at the end feed random valid and invalid inputs to the
readers and to the force checks.
"""

from __future__ import annotations

import copy
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from badinput import BAD, assert_clean_failure, phonft
from phonft.errors import InputFileError
from phonft_testdata import DFT, MDR, REPO

CORPUS = BAD / "references"
NACL = "data/dft-phonons/NaCl"


def _args(reference: dict) -> list[str]:
    """``phonft references`` for material X with ``reference``, paths relative to the repository."""
    return ["references", "--material", "X", "--settings", json.dumps({"material": {"reference": reference}}),
            "--base-dir", str(REPO), "--out", "results/references/X"]


def _nacl_with(force_sets: str, **extra) -> dict:
    """The NaCl displacements with the corpus FORCE_SETS ``force_sets`` (a sub-folder of CORPUS)."""
    return {"format": "force_sets", "path": NACL, "force_sets": str(CORPUS / force_sets / "FORCE_SETS"), **extra}


# ------------------------------------------------------------------ forces in the wrong unit


@pytest.mark.parametrize(("case", "unit"), [("nacl-forces-in-ry-bohr", "Ry/Bohr"),
                                            ("nacl-forces-in-mev-a", "meV/Å")])
def test_forces_in_the_wrong_unit_name_the_unit(case, unit, tmp_path):
    """Ry/Bohr numbers read as eV/Å gave omega_max 59 K (NaCl: 300 K), meV/Å 9473 K."""
    line = assert_clean_failure(_args(_nacl_with(case)), cwd=tmp_path, message=unit)
    assert f"{case}/FORCE_SETS" in line and "on_implausible: warn" in line


def test_phonopy_yaml_in_mev_is_caught_too(tmp_path):
    """The unit check is the same for every format: a phonopy_params.yaml with meV/Å forces."""
    from phonft.references import Reference

    ref = Reference.read({"format": "force_sets", "path": str(DFT / "NaCl")})
    ph = ref.phonon
    ph.forces = np.asarray(ph.forces) * 1000.0
    ph.save(tmp_path / "phonopy_params.yaml", settings={"force_sets": True, "displacements": True,
                                                        "force_constants": False})
    assert_clean_failure(_args({"format": "phonopy_yaml", "path": str(tmp_path / "phonopy_params.yaml")}),
                         cwd=tmp_path, message="meV/Å")


def test_override_turns_the_unit_error_into_a_warning(tmp_path):
    """``on_implausible: warn`` is the explicit override: the folder is written, the run logs a
    warning, and thermal.json's source notes record what was overridden."""
    proc = phonft(*_args(_nacl_with("nacl-forces-in-ry-bohr", on_implausible="warn")), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" in proc.stderr and "Ry/Bohr" in proc.stderr
    record = json.loads((tmp_path / "results/references/X/thermal.json").read_text())
    assert any("on_implausible: warn" in note and "Ry/Bohr" in note for note in record["source"]["notes"])
    assert record["omega_max_K"] == pytest.approx(59.08, abs=0.05)


def test_unknown_on_implausible_value_is_a_config_error(tmp_path):
    assert_clean_failure(_args(_nacl_with("nacl-forces-in-ry-bohr", on_implausible="ignore")), cwd=tmp_path,
                         message="on_implausible")


# ------------------------------------------------------------------ forces that are not of this displacement set


def test_gradients_instead_of_forces(tmp_path):
    """Energy gradients (forces with the wrong sign) gave 190 imaginary modes, reported as data."""
    line = assert_clean_failure(_args(_nacl_with("nacl-gradients-not-forces")), cwd=tmp_path,
                                message="not a restoring force")
    assert "displacement 1 (atom 1)" in line


def test_forces_of_another_atom_order(tmp_path):
    """MgO forces written for an O-first supercell, read with the Mg-first displacements."""
    line = assert_clean_failure(_args(_nacl_with("mgo-forces-other-atom-order")), cwd=tmp_path,
                                message="largest force")
    assert "mgo-forces-other-atom-order/FORCE_SETS" in line


def test_vasprun_of_another_structure(tmp_path):
    """MgO vasprun.xml files with the NaCl displacements: other atoms; or, with the atoms
    renamed, another lattice."""
    line = assert_clean_failure(_args({"format": "vasprun", "path": NACL,
                                       "files": [str(DFT / "MgO" / "vaspruns.tar.lzma")]}),
                                cwd=tmp_path, message="computed for another structure")
    assert "vaspruns.tar.lzma" in line and "vasprun.xml-001" in line and "Mg32O32" in line
    with tarfile.open(DFT / "MgO" / "vaspruns.tar.lzma") as tar:
        tar.extractall(tmp_path / "mgo", filter="data")
    renamed = []
    for n in ("001", "002"):
        text = (tmp_path / "mgo" / "vaspruns" / f"vasprun.xml-{n}").read_text()
        renamed.append(tmp_path / f"vasprun.xml-{n}")
        renamed[-1].write_text(text.replace("<c>Mg</c>", "<c>Na</c>").replace("<c>O </c>", "<c>Cl</c>"))
    assert_clean_failure(_args({"format": "vasprun", "path": NACL, "files": [str(p) for p in renamed]}),
                         cwd=tmp_path, message="has a lattice that differs")


# ------------------------------------------------------------------ force files in the wrong order


def test_vasprun_files_in_the_wrong_order(tmp_path):
    """Swapped vasprun.xml files gave 96 imaginary modes; the error names both files."""
    line = assert_clean_failure(_args({"format": "vasprun", "path": NACL,
                                       "files": ["vasprun.xml-002", "vasprun.xml-001"]}),
                                cwd=tmp_path, message="out of order")
    assert "vasprun.xml-002" in line and "vasprun.xml-001" in line and "displacement 2" in line


def test_vasprun_archive_members_in_the_wrong_order(tmp_path):
    """A tar archive whose member names sort the displacements the wrong way round."""
    src = tmp_path / "src"
    with tarfile.open(DFT / "MgO" / "vaspruns.tar.lzma") as tar:
        tar.extractall(src, filter="data")
    archive = tmp_path / "swapped.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "vaspruns" / "vasprun.xml-002", arcname="vaspruns/vasprun.xml-001")
        tar.add(src / "vaspruns" / "vasprun.xml-001", arcname="vaspruns/vasprun.xml-002")
    line = assert_clean_failure(_args({"format": "vasprun", "path": str(DFT / "MgO"), "files": [str(archive)]}),
                                cwd=tmp_path, message="out of order")
    assert "swapped.tar.gz" in line and "vaspruns/vasprun.xml-001" in line


def test_perfect_supercell_run_among_the_files(tmp_path):
    """The undisplaced-supercell run listed as a displacement (SiO2-HP ships one)."""
    src = tmp_path / "src"
    with tarfile.open(DFT / "SiO2-HP" / "vaspruns.tar.lzma") as tar:
        tar.extractall(src, filter="data")
    files = [str(src / "vaspruns" / f"vasprun.xml-{n}") for n in ("001", "002", "sposcar")]
    assert_clean_failure(_args({"format": "vasprun", "path": str(DFT / "SiO2-HP"), "files": files}),
                         cwd=tmp_path, message="undisplaced supercell")


# ------------------------------------------------------------------ every vendored data set passes the checks


def _vendored_specs(tmp: Path) -> dict[str, dict]:
    """Every vendored force set, in every format it ships in (tar archives with extra runs unpacked)."""
    specs: dict[str, dict] = {}
    for d in sorted(p for p in DFT.iterdir() if (p / "FORCE_SETS").is_file()):
        specs[f"{d.name}/FORCE_SETS"] = {"format": "force_sets", "path": str(d)}
        if (d / "vaspruns.tar.lzma").is_file():
            with tarfile.open(d / "vaspruns.tar.lzma") as tar:
                tar.extractall(tmp / d.name, filter="data")
            runs = sorted(p for p in (tmp / d.name).rglob("*") if p.is_file()
                          and not any(k in p.name for k in ("born", "sposcar", "-000")))
            specs[f"{d.name}/vasprun"] = {"format": "vasprun", "path": str(d), "files": [str(p) for p in runs]}
    specs["NaCl/vasprun.xml"] = {"format": "vasprun", "path": str(DFT / "NaCl"),
                                 "files": ["vasprun.xml-001", "vasprun.xml-002"]}
    specs["Cr/vasprun.xml.xz"] = {"format": "vasprun", "path": str(DFT / "Cr"), "files": ["vasprun.xml.xz"]}
    specs["Si/vasprun.xml"] = {"format": "vasprun", "path": str(DFT / "Si"), "files": ["vasprun.xml"]}
    specs["NaCl-QE"] = {"format": "qe", "path": str(DFT / "NaCl-QE"), "files": ["NaCl-001.out", "NaCl-002.out"]}
    specs.update({f.name: {"format": "mdr", "path": str(f)} for f in sorted(MDR.glob("*.yaml.bz2"))})
    specs["Si-PBE-fc3"] = {"format": "phono3py", "path": str(DFT / "Si-PBE-fc3")}
    specs["ZnTe-PBEsol-fc3"] = {"format": "phono3py",
                                "path": str(DFT / "ZnTe-PBEsol-fc3" / "phono3py_params_ZnTe.yaml.xz")}
    return specs


def test_every_vendored_force_set_passes_the_checks(tmp_path):
    """The force-direction, position and unit checks hold on all vendored data: every material,
    every format (the vasprun position check runs inside the reader)."""
    from phonft.phonons import produce_force_constants
    from phonft.protocols import ReferenceProtocol
    from phonft.references.plausibility import (ImplausibleForces, check_force_directions, check_force_units,
                                                onsite_stiffness_eV)
    from phonft.references.reference import read_reference
    from phonft.specs import resolve

    specs = _vendored_specs(tmp_path)
    assert len(specs) >= 25
    for name, spec in specs.items():
        raw = read_reference(resolve(spec))
        check_force_directions(raw.phonon.dataset, Path(name))
        fc2 = produce_force_constants(raw.phonon, ReferenceProtocol())
        assert 15.0 < onsite_stiffness_eV(raw.phonon, fc2).value_eV < 150.0, name  # eV
        check_force_units(raw.phonon, fc2, 300.0, Path(name))
        with pytest.raises(ImplausibleForces, match="meV/Å"):  # forces, hence fc2, 1000 times too large
            check_force_units(raw.phonon, fc2 * 1e3, 300.0, Path(name))


# ------------------------------------------------------------------ property tests: readers and force checks

NACL_FORCE_SETS = (DFT / "NaCl" / "FORCE_SETS").read_text()
FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(st.data())
def test_force_sets_reader_on_damaged_text(tmp_path, data):
    """A FORCE_SETS cut short or with one token replaced is read correctly or raises InputFileError."""
    from phonft.references.readers import read_force_sets

    tokens = NACL_FORCE_SETS.split(" ")
    if data.draw(st.booleans(), label="truncate"):
        text = NACL_FORCE_SETS[: data.draw(st.integers(0, len(NACL_FORCE_SETS) - 1), label="cut")]
    else:
        i = data.draw(st.integers(0, len(tokens) - 1), label="token")
        tokens[i] = data.draw(st.sampled_from(["nan", "x", "1e999", "-", "", "3", "0.0\n0.0"]), label="by")
        text = " ".join(tokens)
    path = tmp_path / "FORCE_SETS"
    path.write_text(text)
    try:
        raw = read_force_sets(DFT / "NaCl" / "phonopy_disp.yaml", path)
    except InputFileError as err:
        assert "FORCE_SETS" in str(err)
    else:
        forces = np.asarray(raw.phonon.forces)
        assert forces.shape == (2, 64, 3) and np.isfinite(forces).all()


@settings(FAST, max_examples=6)
@given(scale=st.floats(1e-3, 1e3), seed=st.integers(0, 2**16))
def test_force_sets_round_trip(tmp_path, scale, seed):
    """Any finite forces written by phonopy's write_FORCE_SETS are read back unchanged (to the
    file's 10 decimals)."""
    from phonopy.file_IO import parse_FORCE_SETS, write_FORCE_SETS

    from phonft.references.readers import read_force_sets

    ds = parse_FORCE_SETS(natom=64, filename=str(DFT / "NaCl" / "FORCE_SETS"))
    forces = np.random.default_rng(seed).normal(scale=scale, size=(2, 64, 3))
    for d, f in zip(ds["first_atoms"], forces, strict=True):
        d["forces"] = f
    write_FORCE_SETS(ds, filename=str(tmp_path / "FORCE_SETS"))
    raw = read_force_sets(DFT / "NaCl" / "phonopy_disp.yaml", tmp_path / "FORCE_SETS")
    np.testing.assert_allclose(raw.phonon.forces, forces, rtol=0, atol=1e-9)


@settings(FAST, max_examples=6)
@given(order=st.permutations(range(6)))
def test_vasprun_reader_on_any_file_order(tmp_path, order):
    """ZnO's six vasprun.xml files in any order: read when in order, else an error naming the
    first misplaced file and the displacement it holds."""
    from phonft.references.readers import read_vasprun

    if not (tmp_path / "vaspruns").is_dir():
        with tarfile.open(DFT / "ZnO" / "vaspruns.tar.lzma") as tar:
            tar.extractall(tmp_path, filter="data")
    files = [tmp_path / "vaspruns" / f"vasprun.xml-{i + 1:03d}" for i in order]
    if list(order) == sorted(order):
        assert np.asarray(read_vasprun(DFT / "ZnO" / "phonopy_disp.yaml", files).phonon.forces).shape == (6, 32, 3)
        return
    k = next(i for i, j in enumerate(order) if i != j)
    with pytest.raises(InputFileError, match=f"displacement {k + 1} but holds the supercell of displacement "
                                             f"{order[k] + 1}") as err:
        read_vasprun(DFT / "ZnO" / "phonopy_disp.yaml", files)
    assert err.value.path == str(files[k])


def _harmonic_set(seed: int, natom: int) -> dict:
    """A type-1 dataset of harmonic forces: a random positive-definite on-site block for the
    displaced atom, neighbour forces that balance it (acoustic sum rule), each smaller."""
    rng = np.random.default_rng(seed)
    first = []
    for _ in range(rng.integers(1, 4)):
        a = int(rng.integers(natom))
        u = rng.normal(size=3)
        u *= 0.01 / np.linalg.norm(u)
        m = rng.normal(size=(3, 3))
        onsite = m @ m.T + 3.0 * np.eye(3)  # eV/Å², positive definite
        forces = np.zeros((natom, 3))
        forces[a] = -onsite @ u
        others = [j for j in range(natom) if j != a]
        weights = rng.dirichlet(np.ones(len(others)))
        forces[others] = -np.outer(weights, forces[a])
        forces += rng.normal(scale=1e-6, size=forces.shape)  # DFT noise
        first.append({"number": a, "displacement": u, "forces": forces})
    return {"natom": natom, "first_atoms": first}


@FAST
@given(seed=st.integers(0, 2**16), natom=st.integers(2, 40))
def test_force_direction_check_on_random_sets(seed, natom):
    """Harmonic forces pass; the same forces negated, or with another atom's force largest, fail."""
    from phonft.references.plausibility import check_force_directions

    ds = _harmonic_set(seed, natom)
    check_force_directions(ds, Path("FORCE_SETS"))
    negated = copy.deepcopy(ds)
    for d in negated["first_atoms"]:
        d["forces"] = -d["forces"]
    with pytest.raises(InputFileError, match="not a restoring force"):
        check_force_directions(negated, Path("FORCE_SETS"))
    moved = copy.deepcopy(ds)
    d = moved["first_atoms"][0]
    d["forces"] = np.roll(d["forces"], 1, axis=0)
    d["forces"][d["number"]] = 0.0
    with pytest.raises(InputFileError, match="largest force|not a restoring force"):
        check_force_directions(moved, Path("FORCE_SETS"))


def test_on_implausible_values():
    from phonft.specs import SpecError, resolve

    assert resolve({"format": "force_sets", "path": NACL}).on_implausible == "error"
    assert resolve({"format": "force_sets", "path": NACL, "on_implausible": "warn"}).on_implausible == "warn"
    with pytest.raises(SpecError, match="on_implausible"):
        resolve({"format": "force_sets", "path": NACL, "on_implausible": True})


def test_on_implausible_schema_agrees_with_the_spec():
    """The schema's enum and stated default are the spec's (no schema default: an omitted key
    leaves the reference block, and so the rule's settings, as they were)."""
    import yaml

    from phonft.specs import ON_IMPLAUSIBLE, ReferenceSpec

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    key = schema["properties"]["materials"]["additionalProperties"]["properties"]["reference"]["properties"][
        "on_implausible"]
    assert key["enum"] == list(ON_IMPLAUSIBLE) and "default" not in key
    assert f"Default {ReferenceSpec('mdr').on_implausible}:" in " ".join(key["description"].split())
