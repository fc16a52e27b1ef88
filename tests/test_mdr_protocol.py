"""MDR protocol drift (issue 12): the relaxation and displacements of MDR's reference scripts.

MDR (hyllios/utils ``benchmark_ph``) relaxes to fmax/2 in up to 15 FIRE runs of 500 steps,
with FixSymmetry at ASE's default tolerance 0.01 Å, and displaces along x, y, z only
(phonopy ``is_diagonal=False``). These are :class:`MDRProtocol`'s defaults; the tests check
that the new fields validate and enter the digest, that the relaxation honours the target,
the steps and the restarts, and that the non-diagonal displacement set is phonopy's and
gives the diagonal route's force constants.
"""

from __future__ import annotations

import numpy as np
import pytest
from badinput import BAD, assert_clean_failure

from phonft_testdata import HarmonicModel, reference_phonopy, small_mace_model


def test_mdr_defaults_are_the_reference_scripts():
    from phonft.evaluate.mdr import MDRProtocol

    p = MDRProtocol()
    assert (p.fmax_eV_A, p.relax_fmax_factor, p.max_steps, p.relax_runs) == (0.005, 0.5, 500, 15)
    assert (p.fix_symmetry_symprec, p.is_diagonal, p.symprec) == (0.01, False, 1e-5)


@pytest.mark.parametrize("field, value", [
    ("relax_fmax_factor", 1.0), ("max_steps", 1000), ("relax_runs", 1), ("fix_symmetry_symprec", 1e-5),
    ("is_diagonal", True)])
def test_each_new_field_changes_the_digest(field, value):
    from phonft.evaluate.mdr import MDRProtocol

    changed = MDRProtocol.from_dict({field: value})
    assert getattr(changed, field) == value
    assert changed.digest() != MDRProtocol().digest()
    assert MDRProtocol.from_dict(changed.as_dict()).digest() == changed.digest()


@pytest.mark.parametrize("fields, message", [
    ({"relax_runs": 0}, "setting 'relax_runs' must be an integer of at least 1, not 0"),
    ({"relax_runs": 2.5}, "setting 'relax_runs' must be an integer of at least 1, not 2.5"),
    ({"max_steps": -1}, "setting 'max_steps' must be an integer of at least 1, not -1"),
    ({"relax_fmax_factor": 0}, "setting 'relax_fmax_factor' must be a number in (0, 1], not 0"),
    ({"relax_fmax_factor": 1.5}, "setting 'relax_fmax_factor' must be a number in (0, 1], not 1.5"),
    ({"relax_fmax_factor": True}, "setting 'relax_fmax_factor' must be a number in (0, 1], not True"),
    ({"fix_symmetry_symprec": 0}, "setting 'fix_symmetry_symprec' must be positive and finite, not 0"),
    ({"is_diagonal": "no"}, "setting 'is_diagonal' must be true or false, not 'no'"),
])
def test_bad_protocol_values_are_one_line_config_errors(fields, message):
    from phonft.errors import ConfigError
    from phonft.evaluate.mdr import MDRProtocol

    with pytest.raises(ConfigError) as err:
        MDRProtocol.from_dict(fields)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name, message", [
    ("evaluate-relax-runs-zero.json", "mdr: setting 'relax_runs' must be an integer of at least 1, not 0. Fix:"),
    ("evaluate-fmax-factor-above-one.json", "mdr: setting 'relax_fmax_factor' must be a number in (0, 1], not 2."),
    ("evaluate-is-diagonal-string.json", "mdr: setting 'is_diagonal' must be true or false, not 'no'"),
    ("evaluate-fix-symmetry-symprec-negative.json", "mdr: setting 'fix_symmetry_symprec' must be positive"),
])
def test_bad_protocol_settings_fail_cleanly_on_the_command_line(tmp_path, name, message):
    """Checked before any model or reference is read: exit 2, one line, nothing written."""
    text = (BAD / "config" / name).read_text()
    assert_clean_failure(["evaluate", "mdr", "--model", "chgnet", "--reference", "results/references/NaCl",
                          "--material", "NaCl", "--settings", text, "--out", "results/evaluate/chgnet/NaCl"],
                         cwd=tmp_path, message=message)


def _strained_copper():
    """fcc Cu (EMT) with its cell 4 % too large and sheared a little: cell forces to relax."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    atoms = bulk("Cu", "fcc", a=3.61 * 1.04, cubic=True)
    atoms.set_cell(atoms.cell.array @ np.array([[1.0, 0.01, 0.0], [0.01, 1.0, 0.0], [0.0, 0.0, 1.0]]),
                   scale_atoms=True)
    return atoms, EMT()


def test_relaxation_stops_after_runs_times_max_steps():
    from phonft.evaluate.relax import relax

    atoms, calc = _strained_copper()
    result = relax(atoms, calc, fmax_eV_A=1e-6, max_steps=3, runs=4, fmax_factor=0.5)
    assert result.steps_per_run == (3, 3, 3, 3) and result.n_steps == 12
    assert not result.converged and result.target_fmax_eV_A == pytest.approx(5e-7)
    record = result.as_dict()
    assert record["steps_per_run"] == [3, 3, 3, 3] and record["n_steps"] == 12


def test_relaxation_reaches_fmax_times_factor_and_restarts_until_then():
    from phonft.evaluate.relax import relax

    atoms, calc = _strained_copper()
    once = relax(atoms, calc, fmax_eV_A=0.005, max_steps=500)  # the kappa protocol's call: one run, factor 1
    assert once.converged and len(once.steps_per_run) == 1 and once.max_force_eV_A < 0.005
    mdr = relax(atoms, calc, fmax_eV_A=0.005, fmax_factor=0.5, max_steps=500, runs=15, fix_symmetry_symprec=0.01)
    assert mdr.converged and mdr.max_force_eV_A < 0.0025 and mdr.n_steps >= once.n_steps
    short = relax(atoms, calc, fmax_eV_A=0.005, fmax_factor=0.5, max_steps=5, runs=200)
    assert len(short.steps_per_run) > 1 and all(n == 5 for n in short.steps_per_run[:-1])
    assert short.steps_per_run[-1] <= 5 and short.max_force_eV_A < 0.0025 and short.converged
    assert short.spacegroup_after == short.spacegroup_before


def test_each_run_detects_symmetry_again_with_fix_symmetry_symprec(monkeypatch):
    import ase.constraints

    from phonft.evaluate.relax import relax

    seen = []
    real = ase.constraints.FixSymmetry

    def recording(atoms, symprec=0.01, **kw):
        seen.append(symprec)
        return real(atoms, symprec=symprec, **kw)

    monkeypatch.setattr(ase.constraints, "FixSymmetry", recording)
    atoms, calc = _strained_copper()
    result = relax(atoms, calc, fmax_eV_A=1e-6, max_steps=2, runs=3, symprec=1e-5, fix_symmetry_symprec=0.02)
    assert seen == [0.02, 0.02, 0.02] and len(result.steps_per_run) == 3
    seen.clear()
    relax(atoms, calc, fmax_eV_A=1e-6, max_steps=2, runs=1, symprec=1e-3)
    assert seen == [1e-3]  # without fix_symmetry_symprec: symprec, as before


def _model_phonons(model, ref_dir, is_diagonal: bool, **fields):
    from phonft.evaluate.mdr import MDRProtocol, ModelPhonons

    protocol = MDRProtocol.from_dict({"is_diagonal": is_diagonal, "batch_atoms": 128, **fields})
    return ModelPhonons.compute(model, ref_dir, "CaTiO3", protocol)


def test_non_diagonal_displacements_are_phonopys_and_exact_for_the_harmonic_model(references):
    """CaTiO3 (Pm-3m, 5 atoms): phonopy needs 3 displacements with diagonal directions and 4
    along x, y, z. The harmonic DFT model's forces are exactly -Φu, so both sets give back
    the DFT force constants."""
    from phonopy import Phonopy

    ref_dir = references("CaTiO3")
    model = HarmonicModel(ref_dir)
    diag = _model_phonons(model, ref_dir, True)
    nondiag = _model_phonons(model, ref_dir, False)
    ph = nondiag.phonon
    own = Phonopy(ph.unitcell, supercell_matrix=ph.supercell_matrix, primitive_matrix=ph.primitive_matrix)
    own.generate_displacements(distance=0.01, is_diagonal=False)
    assert len(diag.phonon.displacements) == 3 and len(ph.displacements) == 4
    np.testing.assert_allclose(np.array(ph.displacements, dtype=float), np.array(own.displacements, dtype=float),
                               atol=1e-12)
    assert all(np.count_nonzero(np.abs(np.asarray(d[1:], dtype=float)) > 1e-12) == 1 for d in ph.displacements)
    ref_fc = reference_phonopy(ref_dir).force_constants
    np.testing.assert_allclose(nondiag.phonon.force_constants, ref_fc, atol=1e-10)
    np.testing.assert_allclose(diag.phonon.force_constants, ref_fc, atol=1e-10)
    assert nondiag.thermal_record()["n_displacements"] == 4


def test_non_diagonal_force_constants_match_the_diagonal_route_for_a_smooth_model(references):
    """A small random MACE (smooth, anharmonic): the two displacement sets differ by terms of
    order (0.01 Å)², here below 1e-4 of the largest force constant."""
    ref_dir = references("CaTiO3")
    model = small_mace_model(elements=("Ca", "Ti", "O"))
    fields = {"max_steps": 1, "relax_runs": 1}  # same (barely relaxed) cell for both routes
    diag = _model_phonons(model, ref_dir, True, **fields)
    nondiag = _model_phonons(model, ref_dir, False, **fields)
    np.testing.assert_array_equal(diag.phonon.unitcell.cell, nondiag.phonon.unitcell.cell)
    fc_d, fc_n = diag.phonon.force_constants, nondiag.phonon.force_constants
    scale = np.abs(fc_d).max()
    assert scale > 0.1
    assert np.abs(fc_n - fc_d).max() < 1e-4 * scale
