"""Bad configuration (issue 13): unknown keys anywhere, bad supercells and distances, oversized
supercells, names that are not folder names, the shell quoting of every rule, and a
--configfile that replaces the demo config instead of extending it.

The corpus is ``tests/data/bad/config/``: config files (``*.yaml``, fed to ``phonft <stage>
--config`` and to ``snakemake -n --configfile``) and settings objects (``*.json``, fed to
``--settings``). Every one must fail with one line naming the key, exit status 2 (Snakemake:
a non-zero exit naming the key), and nothing written into ``results/``.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from badinput import BAD, assert_clean_failure
from phonft.errors import ConfigError
from phonft_testdata import DFT, REPO

CFG = BAD / "config"
NACL = str(DFT / "NaCl" / "POSCAR-unitcell")
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
NACL_ENTRY = {"reference": {"format": "force_sets", "path": "data/dft-phonons/NaCl"}, "supercell": [2, 2, 2]}


def _displacements(*extra: str, material: str = "NaCl") -> list[str]:
    return ["displacements", "--material", material, "--structure", NACL, *extra,
            "--out", f"results/displacements/{material}"]


# --------------------------------------------------------------------------- config files, through the package


@pytest.mark.parametrize("name, stage, message", [
    ("reference-unknown-key.yaml", "references", "unknown key 'forceset'; known: format, path, phonopy_disp, force_sets"),
    ("reference-key-of-another-format.yaml", "references", "reference (format force_sets): unknown key 'files'"),
    ("unknown-top-key.yaml", "displacements", "unknown key 'displacement'; known: cache_dir"),
    ("unknown-evaluate-key.yaml", "displacements", "evaluate: unknown key 'double_wells'"),
    ("supercell-zero.yaml", "displacements", "material 'NaCl': supercell [0, 0, 0] has determinant 0"),
    ("supercell-singular.yaml", "displacements", "has determinant 0: singular"),
    ("distance-zero.yaml", "displacements", "'distance_A' must be positive"),
    ("material-id-traversal.yaml", "displacements", "material id '../../x' is not a safe folder name"),
    ("run-name-traversal.yaml", "displacements", "finetune run name '../run' is not a safe folder name"),
])
def test_bad_config_file(tmp_path, name, stage, message):
    """`phonft <stage> --config FILE` checks the whole file as the schema does."""
    if stage == "references":
        args = ["references", "--config", str(CFG / name), "--material", "NaCl", "--base-dir", str(REPO),
                "--out", "results/references/NaCl"]
    else:
        args = _displacements("--config", str(CFG / name))
    assert_clean_failure(args, cwd=tmp_path, message=message)


# --------------------------------------------------------------------------- --settings JSON and options


@pytest.mark.parametrize("name, message", [
    ("protocol-supercell-zero.json", "supercell_matrix [0, 0, 0] has determinant 0"),
    ("protocol-supercell-singular.json", "supercell_matrix [[1, 0, 0], [1, 0, 0], [0, 0, 1]] has determinant 0"),
    ("protocol-supercell-negative.json", "has determinant -1: left-handed"),
    ("protocol-supercell-fraction.json", "supercell_matrix must hold integers only"),
    ("protocol-supercell-length.json", "supercell_matrix must be 3 integers, 9, or a 3x3 matrix"),
    ("protocol-distance-zero.json", "'distance_A' must be positive and finite, not 0"),
    ("protocol-fc3-distance-negative.json", "'fc3_distance_A' must be positive and finite, not -0.03"),
    ("protocol-huge-supercell.json", "holds 8000000 atoms (8 per unit cell x 1000000 cells), more than "
                                     "displacements.max_supercell_atoms_fc2 = 2000"),
    ("protocol-huge-fc3-supercell.json", "holds 1000 atoms (8 per unit cell x 125 cells), more than "
                                         "displacements.max_supercell_atoms_fc3 = 500"),
])
def test_bad_displacement_settings(tmp_path, name, message):
    assert_clean_failure(_displacements("--settings", (CFG / name).read_text()), cwd=tmp_path, message=message)


def test_supercell_limit_is_a_setting(tmp_path):
    """The limit is configurable: a lower one refuses the demo's own NaCl supercell (64 atoms)."""
    text = json.dumps({"protocol": {"supercell_matrix": [2, 2, 2]}, "limits": {"max_supercell_atoms_fc2": 63}})
    assert_clean_failure(_displacements("--settings", text), cwd=tmp_path, message="holds 64 atoms")


@pytest.mark.parametrize("option, message", [
    (["--supercell", "0", "0", "0"], "--supercell [0, 0, 0] has determinant 0"),
    (["--supercell", "1", "0", "0", "1", "0", "0", "0", "0", "1"], "has determinant 0: singular"),
    (["--supercell", "-1", "1", "1"], "has determinant -1"),
    (["--supercell", "1.5", "1", "1"], "--supercell 1.5 1 1: give 3 integers"),
    (["--supercell", "2", "2"], "--supercell must be 3 integers, 9, or a 3x3 matrix"),
    (["--supercell", "100", "100", "100"], "holds 8000000 atoms"),
    (["--distance", "0"], "'distance_A' must be positive"),
    (["--distance", "nan"], "'distance_A' must be positive and finite, not nan"),
    (["--distance", "-0.01"], "'distance_A' must be positive"),
    (["--distance", "abc"], "--distance 'abc': give a length in Å"),
])
def test_bad_displacement_options(tmp_path, option, message):
    assert_clean_failure(_displacements(*option), cwd=tmp_path, message=message)


def test_unknown_key_in_a_material_entry(tmp_path):
    text = (CFG / "material-entry-unknown-key.json").read_text()
    assert_clean_failure(["structures", "--material", "NaCl", "--settings", text, "--base-dir", str(REPO),
                          "--out", "results/structures/NaCl"], cwd=tmp_path,
                         message="material 'NaCl': entry: unknown key 'supercel'; known: structure, reference")


def test_zero_distance_in_the_mdr_protocol(tmp_path):
    """The evaluate protocol's distance is checked before any model or reference is read."""
    text = (CFG / "evaluate-distance-zero.json").read_text()
    assert_clean_failure(["evaluate", "mdr", "--model", "chgnet", "--reference", "results/references/NaCl",
                          "--material", "NaCl", "--settings", text, "--out", "results/evaluate/chgnet/NaCl"],
                         cwd=tmp_path, message="mdr: setting 'distance_A' must be positive")


@pytest.mark.parametrize("args, message", [
    (["structures", "--material", "../../x", "--file", NACL, "--out", "results/structures/x"],
     "--material '../../x' is not a safe folder name"),
    (["structures", "--material", "x; touch pwned", "--file", NACL, "--out", "results/structures/x"],
     "--material 'x; touch pwned'"),
    (["finetune", "split", "--run", "../r", "--settings", json.dumps({"run": {"materials": ["a", "b", "c"]}}),
      "--out", "results/finetune/r/split.json"], "--run '../r' is not a safe folder name"),
    (["evaluate", "mdr", "--model", "chgnet", "--name", "../m", "--reference", "results/references/NaCl",
      "--material", "NaCl", "--out", "results/evaluate/m/NaCl"], "--name '../m' is not a safe folder name"),
])
def test_unsafe_names_on_the_command_line(tmp_path, args, message):
    assert_clean_failure(args, cwd=tmp_path, message=message)
    assert not (tmp_path / "x").exists() and not (tmp_path.parent / "x").exists()


# --------------------------------------------------------------------------- the known keys, in agreement


def _schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


def test_known_keys_agree_with_the_schema():
    from phonft.plan.keys import CONFIG_KEYS
    from phonft.plan.layout import SAFE_NAME
    from phonft.protocols import SupercellLimits
    from phonft.specs import COMMON_REFERENCE_KEYS, FORMATS, MATERIAL_KEYS, REFERENCE_KEYS, STRUCTURE_KEYS

    schema = _schema()
    for dotted, known in CONFIG_KEYS.items():
        node = schema
        for part in filter(None, dotted.split(".")):
            node = node["properties"][part]
        assert node["additionalProperties"] is False, dotted
        assert set(node["properties"]) == set(known), dotted
    material = schema["properties"]["materials"]["additionalProperties"]
    assert set(material["properties"]) == set(MATERIAL_KEYS)
    assert set(material["properties"]["structure"]["properties"]) == set(STRUCTURE_KEYS)
    reference = material["properties"]["reference"]
    assert reference["additionalProperties"] is False
    assert set(reference["properties"]) == {"format", *COMMON_REFERENCE_KEYS}.union(*REFERENCE_KEYS.values())
    assert reference["properties"]["format"]["enum"] == list(FORMATS) == list(REFERENCE_KEYS)
    assert schema["$defs"]["safe_name"]["pattern"] == f"^{SAFE_NAME}$"
    limits = schema["properties"]["displacements"]["properties"]
    assert {k: limits[k]["default"] for k in SupercellLimits().as_dict()} == SupercellLimits().as_dict()


def test_shipped_configs_are_valid():
    from snakemake.utils import update_config, validate

    from phonft.plan import Plan

    for overlay in sorted((REPO / "config").glob("*.yaml")):
        config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
        update_config(config, yaml.safe_load(overlay.read_text()))
        validate(config, str(SCHEMA))
        Plan(config, base_dir=str(REPO))


# --------------------------------------------------------------------------- shell quoting


def _shell_strings(path: Path) -> list[str]:
    """The string literals of every ``shell:`` directive of a .smk file (its tokens are Python's)."""
    tokens = list(tokenize.generate_tokens(io.StringIO(path.read_text()).readline))
    out = []
    for i, tok in enumerate(tokens):
        if tok.type == tokenize.NAME and tok.string == "shell" and tokens[i + 1].string == ":":
            j = i + 2
            while tokens[j].type in (tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.COMMENT,
                                     tokenize.STRING):
                if tokens[j].type == tokenize.STRING:
                    out.append(eval(tokens[j].string))  # a plain literal
                j += 1
    return out


def test_every_shell_field_is_quoted():
    """Every {field} of every rule's shell line is shell-quoted ({x:q}): material ids, paths and
    config strings reach phonft as single arguments, whatever they hold."""
    import string

    rules = sorted((REPO / "workflow" / "rules").glob("*.smk"))
    fields = []
    for path in rules:
        for text in _shell_strings(path):
            fields += [(path.name, name, spec) for _, name, spec, _ in string.Formatter().parse(text) if name]
    assert len(fields) > 60  # the parser found the rules' shell lines
    unquoted = [f for f in fields if f[2] != "q"]
    assert not unquoted, unquoted


# --------------------------------------------------------------------------- Snakemake


@pytest.fixture(scope="module")
def wf_copy(tmp_path_factory) -> Path:
    """A copy of the workflow without results/, in a folder whose name needs shell quoting."""
    dst = tmp_path_factory.mktemp("wf") / "work flow's copy"
    shutil.copytree(REPO, dst, ignore=shutil.ignore_patterns(".venv", "results", "logs", ".snakemake", ".git",
                                                             "__pycache__", "*.egg-info", ".hypothesis"))
    return dst


def _dry_run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``snakemake -n -p`` in ``cwd``, offline (as tests/test_workflow.py runs it)."""
    env = {k: v for k, v in os.environ.items() if k != "MP_API_KEY"}
    env.update(http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9", no_proxy="",
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return subprocess.run([str(Path(sys.executable).parent / "snakemake"), "-n", "-p", "--cores", "1", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


def _materials(proc: subprocess.CompletedProcess) -> set[str]:
    return set(re.findall(r"wildcards: material=([^,\s]+)", proc.stdout))


@pytest.mark.parametrize("files", [
    (), ("config/config.yaml", "config/kappa103.yaml"), ("config/config.yaml", "config/kappa103-quick.yaml"),
    ("config/config.yaml", "config/replay-ablation.yaml"),
    ("config/config.yaml", "config/replay-ablation.yaml", "config/replay-ablation-upstream.yaml"),
    ("config/config.yaml", "config/replay-splits.yaml"),
])
def test_shipped_configs_plan(wf_copy, files):
    """The demo (no --configfile) and each documented overlay command plan offline."""
    proc = _dry_run(wf_copy, *(["--configfile", *files] if files else []))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {"mp-149", "NaCl", "Si-PBE-fc3"} <= _materials(proc)


def test_configfile_replaces_the_demo(wf_copy, tmp_path):
    """A user's config is planned alone: none of the demo's materials or runs are added to it."""
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump({"materials": {"NaCl": NACL_ENTRY}}))
    proc = _dry_run(wf_copy, "--configfile", str(mine))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _materials(proc) == {"NaCl"}
    assert "finetune" not in proc.stdout and "chgnet" not in proc.stdout


def test_overlay_alone_is_refused_with_the_fix(wf_copy):
    proc = _dry_run(wf_copy, "--configfile", "config/kappa103.yaml")
    assert proc.returncode != 0
    assert "give both: --configfile config/config.yaml config/kappa103.yaml" in proc.stdout + proc.stderr


def test_config_overrides_keep_the_demo_and_are_quoted(wf_copy):
    """--config KEY=VALUE still lays over the demo; strings with spaces and quotes stay one argument."""
    cache = "/tmp/phonft cache's"
    proc = _dry_run(wf_copy, "--config", f"cache_dir={cache}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mp-149" in _materials(proc)
    line = next(ln for ln in proc.stdout.splitlines() if "phonft structures --material mp-149 " in ln)
    words = shlex.split(line[line.index("phonft structures"):])
    assert words[words.index("--cache-dir") + 1] == cache
    assert Path(words[words.index("--base-dir") + 1]).resolve() == wf_copy.resolve()


@pytest.mark.parametrize("name, message", [
    ("reference-unknown-key.yaml", "'forceset' was unexpected"),
    ("reference-key-of-another-format.yaml", "reference (format force_sets): unknown key 'files'"),
    ("unknown-top-key.yaml", "'displacement' was unexpected"),
    ("unknown-evaluate-key.yaml", "'double_wells' was unexpected"),
    ("supercell-zero.yaml", "['supercell']"),
    ("supercell-singular.yaml", "material 'NaCl': supercell [1, 0, 0, 1, 0, 0, 0, 0, 1] has determinant 0"),
    ("distance-zero.yaml", "['distance_A']"),
    ("material-id-traversal.yaml", "'../../x' does not match"),
    ("run-name-traversal.yaml", "'../run' does not match"),
])
def test_snakemake_rejects_bad_configs(wf_copy, name, message):
    proc = _dry_run(wf_copy, "--configfile", str(CFG / name))
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and message in text, text
    assert not (wf_copy / "results").exists()


# --------------------------------------------------------------------------- properties

SLOW = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=5))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                    max_leaves=12)


def _one_line(exc: Exception) -> str:
    text = str(exc)
    assert text and "\n" not in text and len(text) < 600, text
    return text


@SLOW
@given(st.one_of(JSON, st.lists(st.integers(-3, 3), max_size=10),
                 st.lists(st.lists(st.integers(-3, 3), min_size=3, max_size=3), min_size=3, max_size=3)))
def test_any_supercell_is_accepted_or_refused_in_one_line(value):
    from phonft.protocols import DisplacementProtocol, _det3, supercell_rows

    try:
        p = DisplacementProtocol.from_dict({"supercell_matrix": value})
    except ConfigError as exc:
        _one_line(exc)
        return
    if value is not None:
        rows = supercell_rows(list(p.supercell_matrix))
        assert _det3(rows) > 0 and all(type(v) is int for row in rows for v in row)


@SLOW
@given(st.sampled_from(["distance_A", "fc3_distance_A", "min_length_A", "symprec"]), SCALARS)
def test_any_length_is_positive_or_refused(key, value):
    import math

    from phonft.protocols import DisplacementProtocol

    try:
        p = DisplacementProtocol.from_dict({key: value})
    except ConfigError as exc:
        assert key in _one_line(exc)
        return
    got = getattr(p, key)
    assert isinstance(got, float) and math.isfinite(got) and got > 0


def _minimal() -> dict:
    return {"materials": {"NaCl": json.loads(json.dumps(NACL_ENTRY))},
            "displacements": {}, "references": {}, "evaluate": {"protocol": {}, "kappa": {"kappa103": {}}},
            "finetune": {}, "sources": {}, "augment": {}}


SECTIONS = [(), ("displacements",), ("references",), ("sources",), ("augment",), ("finetune",), ("evaluate",),
            ("evaluate", "protocol"), ("evaluate", "kappa"), ("evaluate", "kappa", "kappa103"),
            ("materials", "NaCl"), ("materials", "NaCl", "reference")]


@SLOW
@given(st.sampled_from(SECTIONS), st.one_of(st.text(min_size=1, max_size=12), st.integers()), JSON)
def test_an_unknown_key_anywhere_is_named(section, key, value):
    """A key the schema does not know, at any level, fails both the schema and the planner,
    and the planner's one-line error names it."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    from phonft.plan import Plan

    config = _minimal()
    node = config
    for part in section:
        node = node[part]
    schema_node = _schema()
    for part in section:
        schema_node = schema_node["properties"][part] if part != "NaCl" else schema_node["additionalProperties"]
    if key in schema_node["properties"]:
        return
    node[key] = value  # an integer key: what YAML makes of `1: ...`
    with pytest.raises(ConfigError) as info:
        Plan(config)
    assert repr(str(key)) in _one_line(info.value)
    with pytest.raises(WorkflowError):
        validate(config, str(SCHEMA))


@SLOW
@given(st.text(min_size=0, max_size=30))
def test_any_material_id_is_a_folder_under_results_or_refused(name):
    import os

    from phonft.plan import Plan

    try:
        plan = Plan({"materials": {name: NACL_ENTRY}})
    except ConfigError as exc:
        _one_line(exc)
        return
    target = os.path.normpath(plan.layout.path("structure", material=name))
    assert target.startswith("results/structures/") and target.count("/") == 3
    assert shlex.quote(name) == name  # nothing for a shell to interpret


@SLOW
@given(st.dictionaries(st.sampled_from(["protocol", "limits", "material", "other"]), JSON, max_size=3))
def test_any_displacement_settings_give_a_protocol_or_one_line(value):
    """What `phonft displacements --settings` decodes: a protocol and limits, or one ConfigError."""
    import argparse

    from phonft.cli import DISPLACEMENTS_SETTINGS
    from phonft.cliutils import read_settings
    from phonft.protocols import DisplacementProtocol, SupercellLimits

    args = argparse.Namespace(settings=json.dumps(value), config=None)
    try:
        s = read_settings(args, "displacements", DISPLACEMENTS_SETTINGS, material="NaCl")
        DisplacementProtocol.from_dict(s.get("protocol"))
        SupercellLimits.from_dict(s.get("limits"))
    except ConfigError as exc:
        _one_line(exc)


@SLOW
@given(st.dictionaries(st.sampled_from(["format", "path", "files", "born", "file", "calculator", "forceset"]),
                       JSON, max_size=4))
def test_any_reference_block_is_resolved_or_refused(block):
    from phonft.specs import SpecError, check_material

    try:
        check_material({"reference": block})
    except SpecError as exc:
        _one_line(exc)
