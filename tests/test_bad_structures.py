"""Bad structures (issue 13, sections 2 and 3): NaN/inf lattices and positions (a segfault in
spglib before), singular cells, overlapping atoms (accepted silently before), elements
phonopy cannot give a mass to (a traceback inside phonopy before), at every place a
structure enters: structure files, displacements --structure, references' unit cells.

Each corpus file in ``tests/data/bad/structures/`` fails through the CLI with one line,
exit status 2 and nothing written into ``results/``; property tests feed the readers
random lattices (NaN, inf, singular, tiny, huge) and ask for a clean error or a valid
structure, never a crash.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from ase import Atoms
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from badinput import BAD, assert_clean_failure, phonft
from phonft.atoms import MAX_LENGTH_A, MIN_DISTANCE_A, check_structure
from phonft.errors import InputFileError
from phonft.structures import read_structure_file
from phonft_testdata import DFT, REPO

STRUCTURES = BAD / "structures"

#: corpus file -> what its one-line error says
CASES = {
    "nan-lattice.vasp": "has a lattice with NaN or infinite values (lattice vector 1: [nan, 2.7, 2.7])",
    "inf-lattice.vasp": "has a lattice with NaN or infinite values (lattice vector 2: [2.7, 0.0, inf])",
    "nan-position.vasp": "has NaN or infinite coordinates: atom 2 (Si)",
    "singular-cell.vasp": "does not describe a 3D periodic crystal",
    "overlapping-atoms.vasp": "atoms 1 (Si) and 3 (Si) are 0.0382 Å apart, closer than the minimum of 0.5 Å",
    "overlapping-image.vasp": "lattice planes 0.3 Å apart along lattice vector 1",
    "huge-lattice.vasp": "has lattice vectors of 2e+06, 2e+06, 2e+06 Å",
    "Og.vasp": "holds element(s) Og, which phonopy's element table does not list",
    "Am.vasp": "holds element(s) Am, for which phonopy has no standard atomic mass",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_structures_stage_refuses(name, tmp_path):
    line = assert_clean_failure(["structures", "--material", "X", "--file", str(STRUCTURES / name),
                                 "--out", "results/structures/X"], cwd=tmp_path, message=CASES[name])
    assert name in line and "Fix:" in line


@pytest.mark.parametrize("name", ["nan-lattice.vasp", "inf-lattice.vasp", "nan-position.vasp",
                                  "overlapping-atoms.vasp", "Og.vasp", "Am.vasp"])
def test_displacements_stage_refuses(name, tmp_path):
    assert_clean_failure(["displacements", "--material", "X", "--structure", str(STRUCTURES / name),
                          "--out", "results/displacements/X"], cwd=tmp_path, message=CASES[name])


def test_min_distance_can_be_lowered_and_reaches_displacements(tmp_path):
    """``structure.min_distance_A`` admits a close pair; structure.json records it, so the
    displacements stage reading that POSCAR accepts it too."""
    entry = {"structure": {"file": str(STRUCTURES / "overlapping-atoms.vasp"), "min_distance_A": 0.01}}
    proc = phonft("structures", "--material", "X", "--settings", json.dumps({"material": entry}),
                  "--out", "results/structures/X", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / "results/structures/X/structure.json").read_text())
    assert record["source"]["min_distance_A"] == 0.01 and record["n_atoms"] == 3
    proc = phonft("displacements", "--material", "X", "--structure", "results/structures/X/POSCAR",
                  "--out", "results/displacements/X", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_min_distance_setting_is_checked(tmp_path):
    entry = {"structure": {"file": str(DFT / "Si" / "POSCAR-unitcell"), "min_distance_A": -1}}
    assert_clean_failure(["structures", "--material", "Si", "--settings", json.dumps({"material": entry}),
                          "--out", "results/structures/Si"], cwd=tmp_path,
                         message="materials.Si.structure.min_distance_A must be a distance ≥ 0 in Å, not -1")


def _si_reference(tmp_path, old: str, new: str):
    """The vendored Si vasprun reference with ``old`` replaced by ``new`` in its phonopy_disp.yaml."""
    folder = tmp_path / "Si-bad"
    folder.mkdir()
    text = (DFT / "Si" / "phonopy_disp.yaml").read_text()
    assert old in text
    (folder / "phonopy_disp.yaml").write_text(text.replace(old, new))
    (folder / "vasprun.xml").symlink_to(DFT / "Si" / "vasprun.xml")
    return {"material": {"reference": {"format": "vasprun", "path": str(folder), "files": ["vasprun.xml"]}}}


@pytest.mark.parametrize("stage", ["structures", "references"])
def test_reference_with_a_nan_lattice_fails_on_one_line(stage, tmp_path):
    """phonopy's own error spans many lines; the CLI prints it on one, naming the file."""
    settings = _si_reference(tmp_path, "2.733099421887393", ".nan")
    assert_clean_failure([stage, "--material", "Si", "--settings", json.dumps(settings),
                          "--out", f"results/{stage}/Si"], cwd=tmp_path, message="Si-bad/phonopy_disp.yaml")


@pytest.mark.parametrize("stage", ["structures", "references"])
def test_reference_with_overlapping_atoms_is_refused(stage, tmp_path):
    """Both Si atoms of the unit cell at nearly the same place: refused by name."""
    settings = _si_reference(tmp_path, "coordinates: [  0.875000000000000,  0.875000000000000,  0.875000000000000 ]",
                             "coordinates: [  0.130000000000000,  0.125000000000000,  0.125000000000000 ]")
    assert_clean_failure([stage, "--material", "Si", "--settings", json.dumps(settings),
                          "--out", f"results/{stage}/Si"], cwd=tmp_path, message="has overlapping atoms")


def test_material_with_masses_in_its_reference_is_the_documented_way_for_am(tmp_path):
    """The fix the Am error names works: a phonopy yaml that lists the mass."""
    import phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    unit = PhonopyAtoms(symbols=["Am"], cell=np.eye(3) * 3.5, scaled_positions=[[0, 0, 0]], masses=[243.06])
    ph = phonopy.Phonopy(unit, supercell_matrix=np.eye(3, dtype=int), primitive_matrix="P")
    ph.save(tmp_path / "phonopy_disp.yaml")
    entry = {"reference": {"format": "phonopy_yaml", "path": str(tmp_path / "phonopy_disp.yaml")}}
    proc = phonft("structures", "--material", "Am", "--settings", json.dumps({"material": entry}),
                  "--out", "results/structures/Am", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------- properties

_FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                    st.floats(-20.0, 20.0), st.sampled_from([0.0, 1e-9, 1e300, -1e300]))
_LATTICES = st.one_of(
    st.lists(_FLOATS, min_size=9, max_size=9).map(lambda v: np.array(v).reshape(3, 3)),
    st.floats(0.1, 20.0).map(lambda a: np.eye(3) * a),
    st.tuples(st.floats(0.1, 10.0), st.floats(0.1, 10.0)).map(  # singular: c = a + b
        lambda ab: np.array([[ab[0], 0, 0], [0, ab[1], 0], [ab[0], ab[1], 0]])),
)
_FRACTIONAL = st.lists(st.lists(st.one_of(st.floats(0, 1), st.just(float("nan"))), min_size=3, max_size=3),
                       min_size=1, max_size=4)


def _poscar(lattice: np.ndarray, fractional: list[list[float]]) -> str:
    rows = "\n".join(" ".join(repr(float(x)) for x in row) for row in lattice)
    sites = "\n".join(" ".join(repr(float(x)) for x in f) for f in fractional)
    return f"random\n1.0\n{rows}\nSi\n{len(fractional)}\nDirect\n{sites}\n"


def _valid(atoms: Atoms) -> None:
    """What a structure that passed the gate must be (and survive: spglib, phonopy)."""
    from phonft.atoms import from_ase
    from phonft.structures import symmetry_info

    assert np.all(np.isfinite(atoms.cell.array)) and np.all(np.isfinite(atoms.positions))
    assert abs(atoms.cell.volume) >= 1e-6 and atoms.cell.lengths().max() <= MAX_LENGTH_A
    if len(atoms) > 1:
        assert atoms.get_all_distances(mic=True)[np.triu_indices(len(atoms), 1)].min() >= MIN_DISTANCE_A - 1e-9
    symmetry_info(atoms)
    from_ase(atoms)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lattice=_LATTICES, fractional=_FRACTIONAL)
def test_structure_reader_gives_a_clean_error_or_a_valid_structure(tmp_path, lattice, fractional):
    path = tmp_path / "POSCAR"
    path.write_text(_poscar(lattice, fractional))
    try:
        atoms = read_structure_file(path)
    except InputFileError as exc:
        assert str(path) in str(exc)
        return
    _valid(atoms)


@settings(max_examples=100, deadline=None)
@given(lattice=_LATTICES, fractional=_FRACTIONAL, pbc=st.booleans())
def test_check_structure_gives_a_clean_error_or_passes(lattice, fractional, pbc):
    with np.errstate(all="ignore"):
        positions = np.asarray(fractional, dtype=float) @ lattice
    atoms = Atoms(["Si"] * len(fractional), positions=positions, cell=lattice, pbc=pbc)
    try:
        check_structure(atoms, "random", periodic=pbc)
    except InputFileError as exc:
        assert str(exc).startswith("random: ")
        return
    assert np.all(np.isfinite(atoms.cell.array)) and np.all(np.isfinite(atoms.positions))


@settings(max_examples=1, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lattices=st.lists(_LATTICES, min_size=40, max_size=40), fractional=_FRACTIONAL)
def test_reader_never_crashes_the_process(tmp_path, lattices, fractional):
    """The segfault case: random lattices (NaN, inf, singular among them) read, symmetry-
    analysed and handed to phonopy in a child process, which must exit normally."""
    for i, lattice in enumerate(lattices + [np.array([[np.nan, 2.7, 2.7], [2.7, 0, 2.7], [2.7, 2.7, 0]])]):
        (tmp_path / f"{i}.vasp").write_text(_poscar(lattice, fractional))
    script = textwrap.dedent("""
        import sys
        from pathlib import Path
        from phonft.atoms import from_ase
        from phonft.errors import InputFileError
        from phonft.structures import read_structure_file, symmetry_info
        for path in sorted(Path(sys.argv[1]).glob("*.vasp")):
            try:
                atoms = read_structure_file(path)
            except InputFileError:
                continue
            symmetry_info(atoms)
            from_ase(atoms)
        print("done")
    """)
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert proc.returncode == 0 and "done" in proc.stdout, f"exit {proc.returncode}\n{proc.stderr[-2000:]}"
