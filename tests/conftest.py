from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from phonft_testdata import REPO

warnings.filterwarnings("ignore", message=".*primitive_matrix defaulted.*")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture
def chdir_tmp(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def pytest_configure(config):
    os.environ.setdefault("OMP_NUM_THREADS", "2")


_REFERENCE_SPECS = {
    "mp-149": {"format": "mdr", "path": "data/mdr/mp-149.yaml.bz2"},
    "MgO": {"format": "force_sets", "path": "data/dft-phonons/MgO"},
    "NaCl": {"format": "force_sets", "path": "data/dft-phonons/NaCl"},
    "CaTiO3": {"format": "force_sets", "path": "data/dft-phonons/CaTiO3"},
    "Si": {"format": "vasprun", "path": "data/dft-phonons/Si", "files": ["vasprun.xml"]},
}


@pytest.fixture(scope="session")
def references(tmp_path_factory):
    """Factory: the normalised references folder of a vendored material (built once)."""
    root = tmp_path_factory.mktemp("references")

    def build(material: str) -> Path:
        out = root / material
        if not (out / "thermal.json").is_file():
            from phonft.references import Reference

            Reference.read(_REFERENCE_SPECS[material], base_dir=REPO).write(out, material)
        return out

    return build


@pytest.fixture(scope="session")
def chgnet64():
    from phonft.models import load_model

    return load_model("chgnet", dtype="float64", device="cpu")


def small_mace_model(elements=("Si",), dtype="float64", seed=0):
    from phonft.models import load_model

    return load_model("mace-small", dtype=dtype, device="cpu",
                      options={"elements": list(elements), "seed": seed, "r_max": 4.0})
