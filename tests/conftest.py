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
