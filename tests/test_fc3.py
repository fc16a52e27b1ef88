"""Third-order data: Si-PBE-fc3 (phono3py_disp.yaml + FORCES_FC3) and ZnTe (params.xz)."""

from __future__ import annotations

import numpy as np

from phonft.references import Reference
from phonft_testdata import DFT


def test_fc3_ingestion(si_fc3):
    ref, out = si_fc3
    assert ref.fc3.shape == (2, 64, 64, 3, 3, 3)  # compact: primitive atoms x supercell^2
    assert np.isfinite(ref.fc3).all() and np.abs(ref.fc3).max() > 1.0  # eV/Å³
    # translational invariance of symmetrized fc3: sum over the last atom vanishes
    assert np.abs(ref.fc3.sum(axis=2)).max() < 1e-6 * np.abs(ref.fc3).max()
    for name in ("fc2.hdf5", "fc3.hdf5", "phonopy_params.yaml", "phono3py_params.yaml", "thermal.json"):
        assert (out / name).is_file()
    assert len(ref.raw.phono3py.dataset["first_atoms"]) == 1  # one first displacement
    assert sum(1 + len(d["second_atoms"]) for d in ref.raw.phono3py.dataset["first_atoms"]) == 111


def test_znte_params_xz():
    ref = Reference.read({"format": "phono3py",
                          "path": str(DFT / "ZnTe-PBEsol-fc3" / "phono3py_params_ZnTe.yaml.xz")})
    assert ref.fc3 is not None and ref.fc3.shape[1:] == (64, 64, 3, 3, 3)
    assert ref.phonon.nac_params is not None
    assert ref.summary["dynamically_stable"]
