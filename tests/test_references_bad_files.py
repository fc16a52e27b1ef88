"""The references stage on bad files: every reader, given a truncated or corrupt file,
raises InputFileError naming the file, and the CLI exits with status 2 without writing
anything under results/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from phonft.cli import main
from phonft.errors import InputFileError
from phonft.references import Reference
from phonft_testdata import DFT, MDR


def truncate(path: Path, fraction: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def garble(path: Path) -> None:
    path.write_bytes(b"\x00\xff garbage \x13\x37" * 50)


def nan_force_sets(path: Path) -> None:
    lines = path.read_text().splitlines()
    lines[7] = "   nan   0.0   0.0"
    path.write_text("\n".join(lines) + "\n")


def _copy(src: Path, dst: Path) -> Path:
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
    return dst


def _nacl_params(tmp: Path) -> Path:
    ref = Reference.read({"format": "force_sets", "path": str(DFT / "NaCl")})
    ref.write(tmp / "good", "NaCl")
    return tmp / "good" / "phonopy_params.yaml"


# (case id, source to copy, spec builder, file to damage, damage)
CASES = [
    ("phonopy_yaml-truncated", None, lambda d: {"format": "phonopy_yaml", "path": str(d / "phonopy_params.yaml")},
     "phonopy_params.yaml", truncate),
    ("force_sets-truncated", DFT / "NaCl", lambda d: {"format": "force_sets", "path": str(d)}, "FORCE_SETS", truncate),
    ("force_sets-nan", DFT / "NaCl", lambda d: {"format": "force_sets", "path": str(d)}, "FORCE_SETS", nan_force_sets),
    ("disp_yaml-corrupt", DFT / "NaCl", lambda d: {"format": "force_sets", "path": str(d)}, "phonopy_disp.yaml", garble),
    ("born-corrupt", DFT / "NaCl", lambda d: {"format": "force_sets", "path": str(d)}, "BORN", garble),
    ("vasprun-truncated", DFT / "NaCl",
     lambda d: {"format": "vasprun", "path": str(d), "files": ["vasprun.xml-001", "vasprun.xml-002"]},
     "vasprun.xml-001", truncate),
    ("vasprun-archive-corrupt", DFT / "MgO",
     lambda d: {"format": "vasprun", "path": str(d), "files": ["vaspruns.tar.lzma"]}, "vaspruns.tar.lzma", truncate),
    ("qe-truncated", DFT / "NaCl-QE",
     lambda d: {"format": "qe", "path": str(d), "files": ["NaCl-001.out", "NaCl-002.out"]},
     "NaCl-002.out", lambda p: truncate(p, 0.6)),
    ("mdr-truncated", MDR / "mp-149.yaml.bz2", lambda d: {"format": "mdr", "path": str(d / "mp-149.yaml.bz2")},
     "mp-149.yaml.bz2", truncate),
    ("mdr-corrupt", MDR / "mp-149.yaml.bz2", lambda d: {"format": "mdr", "path": str(d / "mp-149.yaml.bz2")},
     "mp-149.yaml.bz2", garble),
    ("fc3-forces-truncated", DFT / "Si-PBE-fc3", lambda d: {"format": "phono3py", "path": str(d)},
     "FORCES_FC3", truncate),
    ("fc3-disp-corrupt", DFT / "Si-PBE-fc3", lambda d: {"format": "phono3py", "path": str(d)},
     "phono3py_disp.yaml", garble),
    ("fc3-params-xz-truncated", DFT / "ZnTe-PBEsol-fc3",
     lambda d: {"format": "phono3py", "path": str(d / "phono3py_params_ZnTe.yaml.xz")},
     "phono3py_params_ZnTe.yaml.xz", truncate),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_file_raises_and_writes_nothing(case, tmp_path, monkeypatch):
    _, src, make_spec, damaged, damage = case
    data = tmp_path / "data"
    if src is None:
        _copy(_nacl_params(tmp_path), data / "phonopy_params.yaml")
    elif src.is_dir():
        _copy(src, data)
    else:
        _copy(src, data / src.name)
    damage(data / damaged)
    spec = make_spec(data)

    with pytest.raises(InputFileError) as err:
        Reference.read(spec)
    assert damaged in str(err.value)

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    rc = main(["references", "--material", "X", "--settings", json.dumps({"material": {"reference": spec}}),
               "--out", "results/references/X"])
    assert rc == 2
    assert not (work / "results").exists()


def test_wrong_number_of_force_files(tmp_path):
    with pytest.raises(InputFileError, match="2 displacements"):
        Reference.read({"format": "vasprun", "path": str(DFT / "NaCl"), "files": ["vasprun.xml-001"]})


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InputFileError, match="FORCE_SETS"):
        Reference.read({"format": "force_sets", "path": str(DFT / "Si")})


def test_force_sets_from_another_structure(tmp_path):
    d = _copy(DFT / "NaCl", tmp_path / "mix")
    shutil.copy(DFT / "MgO" / "FORCE_SETS", d / "FORCE_SETS")
    shutil.copy(DFT / "CaTiO3" / "FORCE_SETS", d / "FORCE_SETS")  # 40-atom forces for a 64-atom cell
    with pytest.raises(InputFileError, match="FORCE_SETS"):
        Reference.read({"format": "force_sets", "path": str(d)})
