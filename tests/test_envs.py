"""The conda environments of envs/ (``snakemake --sdm conda``), checked without conda.

Proven here: every env file parses, names no path (Snakemake builds it from a copy under
.snakemake/conda/, where a relative path points nowhere), pins the versions of constraints.txt,
and every package it names imports in this (the tested) environment under the name phonft uses;
every rule's ``conda:`` names one of these files. Not proven: that conda solves and builds them.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ENV_FILES = sorted((REPO / "envs").glob("*.yaml"))
RULES = sorted((REPO / "workflow" / "rules").glob("*.smk"))

# distribution (conda-forge or PyPI name) -> the module phonft imports; None: not a Python package
IMPORT_NAME = {
    "python": None,
    "pip": None,
    "pytorch": "torch",
    "pyyaml": "yaml",
    "mace-torch": "mace",
    "pymatgen": "pymatgen.core",
}
# conda-forge name -> PyPI name, where they differ (constraints.txt holds PyPI names)
PYPI_NAME = {"pytorch": "torch"}


def packages(env: dict) -> list[tuple[str, str | None]]:
    """(name, pinned version or None) of every conda and pip entry of an env file."""
    out = []
    for dep in env["dependencies"]:
        for spec in dep["pip"] if isinstance(dep, dict) else [dep]:
            match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(?:==?([^=\s]+))?(?:=\S+)?", spec.strip())
            assert match, f"not a package spec: {spec!r}"
            out.append((match[1].lower(), match[2]))
    return out


def constraints() -> dict[str, str]:
    lines = (REPO / "constraints.txt").read_text().splitlines()
    return dict(line.split("==") for line in lines if line and not line.startswith("#"))


@pytest.fixture(params=ENV_FILES, ids=lambda p: p.name)
def env(request) -> dict:
    return yaml.safe_load(request.param.read_text())


def test_env_files_exist():
    assert {p.name for p in ENV_FILES} == {"phonons.yaml", "train.yaml", "plot.yaml"}


def test_env_names_no_path(env):
    assert env["channels"] == ["conda-forge", "nodefaults"]
    specs = [s for dep in env["dependencies"] for s in (dep["pip"] if isinstance(dep, dict) else [dep])]
    for spec in specs:
        assert not spec.lstrip().startswith("-"), f"pip option in an env file: {spec!r}"
        assert not re.search(r"file:|\.\.|/|\\|@", spec), f"a path or URL in an env file: {spec!r}"


def test_env_packages_import_here(env):
    for name, _ in packages(env):
        module = IMPORT_NAME.get(name, name.replace("-", "_"))
        if module is not None:
            assert importlib.util.find_spec(module) is not None, f"{name}: module {module} does not import"


def test_env_versions_are_the_tested_ones(env):
    pins = constraints()
    for name, version in packages(env):
        pypi = PYPI_NAME.get(name, name)
        if name in ("python", "pip") or pypi == "torch":
            continue
        assert version is not None, f"{name} is not pinned"
        assert pins.get(pypi) == version, f"{name}={version}, constraints.txt has {pins.get(pypi)}"


def test_env_python_matches_requires_python():
    import tomllib

    floor = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert floor == ">=3.11"
    for path in ENV_FILES:
        assert "python=3.11" in yaml.safe_load(path.read_text())["dependencies"], path.name


def test_every_rule_names_an_existing_env():
    for smk in RULES:
        text = smk.read_text()
        n_rules = len(re.findall(r"^(?:rule|checkpoint) \w+:", text, flags=re.M))
        targets = re.findall(r"^\s+conda:\s*\n\s+\"([^\"]+)\"", text, flags=re.M)
        assert len(targets) == n_rules, f"{smk.name}: {n_rules} rules, {len(targets)} conda: directives"
        for target in targets:
            assert (smk.parent / target).resolve() in ENV_FILES, f"{smk.name}: conda: {target}"
