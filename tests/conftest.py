"""Fixtures shared by the test files (helpers live in phonft_testdata.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from phonft_testdata import DFT, REFERENCE_SPECS, REPO


def pytest_configure(config):
    os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture
def chdir_tmp(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def references(tmp_path_factory):
    """Factory: the normalised references folder of a vendored material (built once)."""
    root = tmp_path_factory.mktemp("references")

    def build(material: str) -> Path:
        out = root / material
        if not (out / "thermal.json").is_file():
            from phonft.references import Reference

            Reference.read(REFERENCE_SPECS[material], base_dir=REPO).write(out, material)
        return out

    return build


@pytest.fixture(scope="session")
def chgnet64():
    """The shipped CHGNet in float64 on the CPU."""
    from phonft.models import load_model

    return load_model("chgnet", dtype="float64", device="cpu")


@pytest.fixture(scope="session")
def si_fc3(tmp_path_factory):
    """The vendored Si-PBE-fc3 data (phono3py_disp.yaml + FORCES_FC3), read once:
    ``(Reference, the references folder it wrote)``."""
    from phonft.references import Reference

    ref = Reference.read({"format": "phono3py", "path": str(DFT / "Si-PBE-fc3")})
    return ref, ref.write(tmp_path_factory.mktemp("ref") / "Si-PBE-fc3", "Si-PBE-fc3")


@pytest.fixture(scope="session")
def si_kappa_11(si_fc3) -> dict:
    """The one 11x11x11 conductivity run of the suite: Si-PBE-fc3's DFT kappa record at
    300 K, RTA, particle-like (Peierls-Boltzmann) and without isotope scattering, the
    settings of phono3py's README example (`phono3py-load --br`: 119.5 W/m-K)."""
    from phonft.evaluate import kappa as K

    params = si_fc3[1] / "phono3py_params.yaml"
    task = K.task_from_phono3py_params(params, "Si-PBE-fc3", q_mesh=(11, 11, 11))
    return K.dft_kappa(params, task, K.KappaProtocol(conductivity_type="particle", is_isotope=False))
