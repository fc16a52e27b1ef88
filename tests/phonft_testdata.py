"""Paths to the vendored test data (and the optional GPL-3 shared data)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
DFT = DATA / "dft-phonons"
MDR = DATA / "mdr"
SHARED = REPO.parent / "shared" / "data"
