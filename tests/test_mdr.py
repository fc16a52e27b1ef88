"""MDR files: ingested S, F, C_V match the values stored in the file (MDR protocol)."""

from __future__ import annotations

import numpy as np
import pytest

from phonft.protocols import THZ_TO_K
from phonft.references import Reference
from phonft_testdata import MDR


@pytest.mark.parametrize("mdr_id", ["mp-149", "mp-1000"])
def test_thermal_matches_stored_values(mdr_id):
    ref = Reference.read({"format": "mdr", "path": str(MDR / f"{mdr_id}.yaml.bz2")})
    s, stored = ref.summary, ref.raw.source_values
    assert s["temperatures_K"] == stored["temperatures_K"] == [0.0, 75.0, 150.0, 300.0, 600.0]
    i300 = s["temperatures_K"].index(300.0)
    for key in ("entropy_J_per_K_mol", "free_energy_kJ_per_mol", "heat_capacity_J_per_K_mol"):
        ours, theirs = s[key][i300], stored[key][i300]
        assert ours == pytest.approx(theirs, rel=1e-3), key
    # the whole temperature series agrees too (T=0 entropy/C_V are exactly 0)
    np.testing.assert_allclose(s["free_energy_kJ_per_mol"], stored["free_energy_kJ_per_mol"], rtol=1e-3)
    assert s["dynamically_stable"] and s["n_imaginary"] == 0


def test_si_values_and_omega_max():
    ref = Reference.read({"format": "mdr", "path": str(MDR / "mp-149.yaml.bz2")})
    s = ref.summary
    # published Si values stored in the file: S(300 K) = 39.327 J/K/mol, C_V = 40.067 J/K/mol
    assert s["entropy_J_per_K_mol"][3] == pytest.approx(39.32713, rel=1e-3)
    assert s["heat_capacity_J_per_K_mol"][3] == pytest.approx(40.06703, rel=1e-3)
    # omega_max over the 32 commensurate q-points equals the file's stored maximum (15.107 THz)
    assert s["n_commensurate_qpoints"] == 32
    assert s["omega_max_K"] == pytest.approx(ref.raw.source_values["max_stored_frequency_THz"] * THZ_TO_K, rel=1e-6)
    assert ref.raw.source_values["energy_eV_per_atom"] == pytest.approx(-43.36303155 / 8)


def test_stored_force_constants_are_rebuilt_not_copied():
    """The file's own force constants are ignored; ours come from the forces and agree."""
    import yaml

    from phonft.io import read_text

    raw = yaml.safe_load(read_text(MDR / "mp-149.yaml.bz2"))
    stored = np.array(raw["force_constants"]["elements"])  # full (N*N, 3, 3), eV/Å²
    ref = Reference.read({"format": "mdr", "path": str(MDR / "mp-149.yaml.bz2")})
    ours = ref.fc2.reshape(-1, 3, 3)
    assert ours.shape == stored.shape
    np.testing.assert_allclose(ours, stored, atol=2e-3)  # symmetrization differs only slightly
