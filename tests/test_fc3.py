"""Third-order data: Si-PBE-fc3 (phono3py_disp.yaml + FORCES_FC3) and ZnTe (params.xz)."""

from __future__ import annotations

import numpy as np
import pytest

from phonft.references import Reference
from phonft_testdata import DFT


@pytest.fixture(scope="module")
def si_fc3(tmp_path_factory):
    ref = Reference.read({"format": "phono3py", "path": str(DFT / "Si-PBE-fc3")})
    out = ref.write(tmp_path_factory.mktemp("ref") / "Si-PBE-fc3", "Si-PBE-fc3")
    return ref, out


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


def test_si_kappa_matches_phono3py_readme(si_fc3):
    """kappa(300 K), RTA, 11x11x11 mesh: phono3py's README states 119.5 W/m-K."""
    import phono3py
    from phono3py.file_IO import read_fc2_from_hdf5, read_fc3_from_hdf5

    _, out = si_fc3
    ph3 = phono3py.load(out / "phono3py_params.yaml", produce_fc=False, log_level=0)
    ph3.fc3 = read_fc3_from_hdf5(out / "fc3.hdf5")
    fc2_full = read_fc2_from_hdf5(out / "fc2.hdf5")  # our full-format fc2, eV/Å²
    ph3.fc2 = fc2_full[ph3.phonon_primitive.p2s_map]  # compact view for phono3py
    ph3.mesh_numbers = [11, 11, 11]
    ph3.init_phph_interaction()
    ph3.run_thermal_conductivity(temperatures=[300], is_isotope=False, boundary_mfp=1e6)
    kappa = ph3.thermal_conductivity.kappa[0, 0, :3].mean()
    assert kappa == pytest.approx(119.5, rel=0.01)


def test_znte_params_xz():
    ref = Reference.read({"format": "phono3py",
                          "path": str(DFT / "ZnTe-PBEsol-fc3" / "phono3py_params_ZnTe.yaml.xz")})
    assert ref.fc3 is not None and ref.fc3.shape[1:] == (64, 64, 3, 3, 3)
    assert ref.phonon.nac_params is not None
    assert ref.summary["dynamically_stable"]
