"""Security (issue 13, section 4): no code runs from data files, downloads are checked,
pickled model loading is scoped, and ``module:Class`` engines must be ASE calculators.

The crafted yaml files of ``tests/data/bad/security/`` carry a
``!!python/object/apply:os.system ["touch phonft-pwned"]`` tag: phonopy and phono3py parse
yaml with the unsafe ``yaml.CLoader``, which would run the command. Every stage that reads
them must fail with one line naming the file, and ``phonft-pwned`` must never appear.
"""

from __future__ import annotations

import hashlib
import json
import lzma
from pathlib import Path

import pytest

from badinput import BAD, assert_clean_failure
from phonft.errors import ConfigError, InputFileError, NetworkError
from phonft_testdata import DFT

SEC = BAD / "security"
PWNED = "phonft-pwned"


def _references(tmp_path: Path, reference: dict) -> list[str]:
    settings = json.dumps({"material": {"reference": reference}})
    return ["references", "--material", "X", "--out", "results/references/X", "--settings", settings]


def _crafted_phono3py_xz(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "phono3py_params.yaml.xz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(lzma.compress((SEC / "phono3py_params_os_system.yaml").read_bytes()))
    return path


CRAFTED = {
    "force_sets": lambda tmp: {"format": "force_sets", "path": str(SEC),
                               "phonopy_disp": "phonopy_disp_os_system.yaml",
                               "force_sets": str(DFT / "NaCl" / "FORCE_SETS")},
    "vasprun": lambda tmp: {"format": "vasprun", "path": str(SEC), "phonopy_disp": "phonopy_disp_os_system.yaml",
                            "files": [str(DFT / "NaCl" / "vasprun.xml-001")]},
    "phonopy_yaml": lambda tmp: {"format": "phonopy_yaml", "path": str(SEC / "phonopy_params_os_system.yaml")},
    "phono3py-xz": lambda tmp: {"format": "phono3py", "path": str(_crafted_phono3py_xz(tmp))},
    "mdr": lambda tmp: {"format": "mdr", "path": str(SEC / "mdr_os_system.yaml")},
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_references_refuse_code_in_yaml(tmp_path: Path, case: str) -> None:
    reference = CRAFTED[case](tmp_path)
    line = assert_clean_failure(_references(tmp_path, reference), cwd=tmp_path, message="could run code")
    assert "python/object/apply:os.system" in line
    assert not (tmp_path / PWNED).exists(), "the crafted yaml ran a shell command"


def test_structures_refuse_code_in_reference_yaml(tmp_path: Path) -> None:
    """The structures stage reads the unit cell of a reference through the same loader."""
    reference = {"format": "force_sets", "path": str(SEC), "phonopy_disp": "phonopy_disp_os_system.yaml",
                 "force_sets": str(DFT / "NaCl" / "FORCE_SETS")}
    settings = json.dumps({"material": {"reference": reference}})
    line = assert_clean_failure(["structures", "--material", "X", "--out", "results/structures/X",
                                 "--settings", settings], cwd=tmp_path, message="could run code")
    assert "phonopy_disp_os_system.yaml" in line
    assert not (tmp_path / PWNED).exists()


def test_loaders_refuse_code_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from phonft.phonopy_files import load_phono3py_yaml, load_phonopy_yaml

    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputFileError, match="could run code") as exc:
        load_phonopy_yaml(SEC / "phonopy_disp_os_system.yaml")
    assert exc.value.path == str(SEC / "phonopy_disp_os_system.yaml")
    with pytest.raises(InputFileError, match="could run code") as exc:
        load_phono3py_yaml(_crafted_phono3py_xz(tmp_path))
    assert exc.value.path.endswith("phono3py_params.yaml.xz")  # the user's file, not the decompressed copy
    assert not (tmp_path / PWNED).exists()


def test_safe_yaml_keeps_plain_data(tmp_path: Path) -> None:
    """The safe pre-parse accepts the vendored phonopy files, so valid inputs still load."""
    from phonft.phonopy_files import load_phonopy_yaml

    ph = load_phonopy_yaml(DFT / "NaCl" / "phonopy_disp.yaml")
    assert len(ph.supercell) == 64
