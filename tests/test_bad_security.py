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


# --------------------------------------------------------------------------- pickled models

SCOPED_LOAD = """
import os, sys, torch
from phonft.models import load_model
before = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
model = load_model("mace-small", device="cpu", options={"elements": ["Si"], "r_max": 4.0})
model.save(sys.argv[1])
assert load_model(sys.argv[1], device="cpu").backend == "mace"  # the pickled module, from a named path
assert os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD") == before, os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
try:  # torch's own default is still the safe one: a pickled module is refused
    torch.load(sys.argv[1])
except Exception as exc:
    print("refused", type(exc).__name__)
"""


@pytest.mark.parametrize("preset", [None, "0"])
def test_mace_unsafe_load_switch_is_scoped(tmp_path: Path, preset: str | None) -> None:
    """mace sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 for the process when imported; phonft
    restores the variable's previous state once mace (and e3nn) are imported."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"}
    if preset is not None:
        env["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = preset
    proc = subprocess.run([sys.executable, "-c", SCOPED_LOAD, str(tmp_path / "m.pt")], capture_output=True,
                          text=True, env={**env, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "refused UnpicklingError" in proc.stdout


# --------------------------------------------------------------------------- module:Class engines


@pytest.mark.parametrize("target, message", [
    ("os:system", "is a builtin_function_or_method, not an ASE calculator class"),
    ("subprocess:Popen", "is a type, not an ASE calculator class"),
    ("ase.build:bulk", "is a function, not an ASE calculator class"),
    ("no_such_module_xyz:Calc", "cannot import engine calculator"),
])
def test_engine_module_class_must_be_an_ase_calculator(target: str, message: str) -> None:
    from phonft.references.engine import make_calculator

    with pytest.raises(ConfigError, match=message):
        make_calculator(target, {"args": "touch phonft-pwned"})
    assert not Path(PWNED).exists()


def test_engine_module_class_accepts_calculators() -> None:
    from ase.calculators.emt import EMT

    from phonft.references.engine import make_calculator

    assert isinstance(make_calculator("ase.calculators.emt:EMT"), EMT)
    with pytest.raises(ConfigError, match="does not take calculator_kwargs"):
        make_calculator("ase.calculators.harmonic:HarmonicCalculator", {})


def test_engine_refusal_through_the_cli(tmp_path: Path) -> None:
    disp = tmp_path / "displacements" / "X"
    disp.mkdir(parents=True)
    (disp / "phonopy_disp.yaml").write_bytes((DFT / "NaCl" / "phonopy_disp.yaml").read_bytes())
    args = _references(tmp_path, {"format": "engine", "calculator": "os:system",
                                  "calculator_kwargs": {"command": f"touch {PWNED}"}})
    assert_clean_failure([*args, "--displacements", str(disp)], cwd=tmp_path, message="not an ASE calculator")
    assert not (tmp_path / PWNED).exists()


# --------------------------------------------------------------------------- downloads


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fetch_checks_sha256_and_keys_the_cache_by_url(tmp_path: Path) -> None:
    from phonft.cache import cache_path, fetch

    a, b = tmp_path / "mirror-a" / "data.txt", tmp_path / "mirror-b" / "data.txt"
    for path, text in ((a, "release 1"), (b, "release 2")):
        path.parent.mkdir()
        path.write_text(text)
    got = fetch("m", a.as_uri(), tmp_path / "cache", "upstream", sha256=_sha(a))
    assert got == cache_path(tmp_path / "cache", "upstream", a.as_uri()) and got.read_text() == "release 1"
    a.unlink()  # cached: no second download
    assert fetch("m", a.as_uri(), tmp_path / "cache", "upstream").read_text() == "release 1"
    # another address with the same file name is not served the old file
    assert fetch("m", b.as_uri(), tmp_path / "cache", "upstream").read_text() == "release 2"
    # a wrong digest: refused, and nothing enters the cache
    b.write_text("tampered")
    with pytest.raises(NetworkError, match="SHA-256 .* not the expected"):
        fetch("m", b.as_uri(), tmp_path / "cache2", "upstream", sha256="0" * 64)
    assert not any(p.is_file() for p in (tmp_path / "cache2").rglob("*"))


def test_fetch_replaces_a_cached_file_that_lost_its_digest(tmp_path: Path) -> None:
    from phonft.cache import fetch

    src = tmp_path / "f.txt"
    src.write_text("good")
    digest = _sha(src)
    cached = fetch("m", src.as_uri(), tmp_path / "cache", "k", sha256=digest)
    cached.write_text("damaged")
    assert fetch("m", src.as_uri(), tmp_path / "cache", "k", sha256=digest).read_text() == "good"


@pytest.mark.parametrize("value", ["abc", "g" * 64, 12])
def test_bad_sha256_setting_is_a_config_error(value) -> None:
    from phonft.cache import check_sha256

    with pytest.raises(ConfigError, match="is not a SHA-256 digest"):
        check_sha256(value, "upstream.sha256")
    assert check_sha256("sha256:" + "AB" * 32, "k") == "ab" * 32


def _mdr_structures(tmp_path: Path, sha256: str) -> list[str]:
    from phonft_testdata import MDR

    settings = {"material": {"structure": {"mdr_id": "mp-149", "sha256": sha256}},
                "mdr_url": (MDR / "mp-149.yaml.bz2").as_uri().replace("mp-149", "{mdr_id}")}
    return ["structures", "--material", "mp-149", "--out", "results/structures/mp-149",
            "--cache-dir", str(tmp_path / "cache"), "--settings", json.dumps(settings)]


def test_mdr_download_with_a_wrong_sha256_is_refused(tmp_path: Path) -> None:
    line = assert_clean_failure(_mdr_structures(tmp_path, "0" * 64), cwd=tmp_path, message="not the expected")
    assert "material 'mp-149'" in line
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))


def test_mdr_download_with_the_right_sha256(tmp_path: Path) -> None:
    from badinput import phonft
    from phonft_testdata import MDR

    proc = phonft(*_mdr_structures(tmp_path, _sha(MDR / "mp-149.yaml.bz2")), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "results" / "structures" / "mp-149" / "mdr.yaml.bz2").is_file()


def test_upstream_sha256_is_checked_for_files_and_urls(tmp_path: Path) -> None:
    from phonft.finetune.run import _upstream_file

    data = tmp_path / "mptrj.extxyz"
    data.write_text("frames")
    with pytest.raises(InputFileError, match="not upstream.sha256"):
        _upstream_file({"file": str(data), "sha256": "0" * 64}, tmp_path / "cache")
    assert _upstream_file({"file": str(data), "sha256": _sha(data)}, tmp_path / "cache") == data
    got = _upstream_file({"url": data.as_uri(), "sha256": _sha(data)}, tmp_path / "cache")
    assert got.read_text() == "frames" and got.parent.parent == tmp_path / "cache" / "upstream"
    mirror = tmp_path / "mirror" / data.name
    mirror.parent.mkdir()
    mirror.write_text("other frames")
    with pytest.raises(NetworkError, match="not the expected"):
        _upstream_file({"url": mirror.as_uri(), "sha256": _sha(data)}, tmp_path / "cache")


def test_cached_kappa103_files_are_checked_on_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from phonft.evaluate import kappa as K

    monkeypatch.delenv(K.KAPPA103_ENV, raising=False)
    monkeypatch.setattr(K.kappa103, "_shared_candidates", lambda: [])
    folder = tmp_path / "kappa103"
    folder.mkdir()
    for name in K.KAPPA103_SHA256:
        (folder / name).write_text("a changed file")
    with pytest.raises(InputFileError, match="pinned SHA-256"):
        K.kappa103_dir(cache_dir=tmp_path, download=False)


@pytest.mark.parametrize("stray", ["BORN", "FORCE_SETS"])
def test_phonopy_never_reads_companion_files_from_the_working_directory(stray, tmp_path, monkeypatch):
    """phonopy.load falls back to BORN / FORCE_SETS / FORCE_CONSTANTS in the current folder
    when the yaml lacks them: MgB2 read from inside NaCl's DFT folder took NaCl's files.
    phonft loads in an empty folder, so only the files the config names count."""
    from phonft.phonopy_files import load_phonopy_yaml

    (tmp_path / stray).write_bytes((DFT / "NaCl" / stray).read_bytes())
    monkeypatch.chdir(tmp_path)
    ph = load_phonopy_yaml(DFT / "MgB2" / "phonopy_disp.yaml")
    assert ph.nac_params is None
    assert "forces" not in ph.dataset["first_atoms"][0]
