"""The shared phonon layer (phonft.phonons): the MDR stability rule, the one drift removal and
the one thermal.json builder, whose records stay the literals the former copies built."""

from __future__ import annotations

import numpy as np

from phonft.phonons import assess_stability, remove_drift, thermal_json_record
from phonft.protocols import THZ_TO_K, ReferenceProtocol


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


def test_remove_drift_is_what_every_former_copy_computed():
    rng = np.random.default_rng(3)
    forces = rng.normal(size=(4, 10, 3)) + rng.normal(size=(4, 1, 3))  # a drift per supercell
    before = forces.copy()
    out = remove_drift(forces)
    np.testing.assert_array_equal(forces, before)  # a new array; the input is kept
    np.testing.assert_array_equal(out, before - before.mean(axis=1, keepdims=True))  # readers, engine, forces
    in_place = before.copy()
    in_place -= in_place.mean(axis=1, keepdims=True)  # finetune/heldout's former spelling
    np.testing.assert_array_equal(out, in_place)
    np.testing.assert_allclose(out.sum(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(out[:, 1:] - out[:, :1], before[:, 1:] - before[:, :1], atol=1e-12)  # a shift only


def test_model_thermal_record_is_the_former_literal():
    protocol = ReferenceProtocol(temperatures_K=(0.0, 300.0))
    summary = {"omega_max_K": 512.5, "dynamically_stable": True, "entropy_J_per_K_mol": [0.0, 31.2]}
    details = {"hessian_mae_eV_A2": 0.05, "reference": {"thermal.json": "ab", "fc2.hdf5": "cd",
                                                        "protocol_digest": "ef"}}
    rec = thermal_json_record("Si", "model", summary, protocol, identity={"model": "chgnet"}, details=details)
    old = {"material": "Si", "kind": "model", "synthetic": False, "model": "chgnet", **summary, **details,
           "has_fc3": False, **protocol.record()}
    assert list(rec.items()) == list(old.items())
