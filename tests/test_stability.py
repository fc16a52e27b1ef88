"""MDR stability rule on real DFT data."""

from __future__ import annotations

import numpy as np
import pytest

from phonft.phonons import assess_stability
from phonft.protocols import THZ_TO_K, ReferenceProtocol
from phonft.references import Reference
from phonft_testdata import DFT


def test_catio3_is_unstable():
    s = Reference.read({"format": "force_sets", "path": str(DFT / "CaTiO3")}).summary
    assert s["dynamically_stable"] is False
    assert s["n_imaginary"] > 0
    assert s["min_frequency_THz"] < -5.0  # the cubic perovskite's modes near -6 THz


def test_mgo_is_stable():
    s = Reference.read({"format": "force_sets", "path": str(DFT / "MgO")}).summary
    assert s["dynamically_stable"] is True and s["n_imaginary"] == 0
    assert s["omega_max_K"] == pytest.approx(860.7, abs=1.0)


def test_rule_tolerates_only_gamma_acoustic_dips():
    p = ReferenceProtocol()
    freqs = np.full((2, 6), 5.0)
    freqs[0, :3] = -30.0 / THZ_TO_K  # Gamma acoustic at -30 K: tolerated
    assert assess_stability(freqs, p).dynamically_stable
    freqs[0, 0] = -40.0 / THZ_TO_K  # below -35 K: unstable
    assert not assess_stability(freqs, p).dynamically_stable
    freqs[0, 0] = 0.0
    freqs[1, 2] = -1e-3  # any negative mode away from Gamma: unstable
    st = assess_stability(freqs, p)
    assert not st.dynamically_stable and st.n_imaginary == 1
