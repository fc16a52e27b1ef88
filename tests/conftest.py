"""Fixtures shared by the test files (helpers live in phonft_testdata.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from phonft_testdata import REFERENCE_SPECS, REPO


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
