"""The planner (phonft.plan): registry, splits, targets, figure list, settings, layout and
names, on the repository's configs; no Snakemake process is started."""

from __future__ import annotations

import copy
import inspect
import json
import re
import subprocess
import sys

import pytest
import yaml
from snakemake.utils import update_config, validate

from phonft.errors import ConfigError
from phonft.plan import (
    DEVICE_RULES, JOB_GROUPS, JOBS, SETTINGS, FigureSet, Plan, figure_list, job_device, replay_fields, rule_gpus,
    settings, train_fields, train_launcher,
)
from phonft_testdata import REPO

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def load_config(*files: str, extra: dict | None = None) -> dict:
    """The config as Snakemake builds it: config.yaml, then each --configfile, schema defaults filled."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for f in files:
        update_config(config, yaml.safe_load((REPO / "config" / f).read_text()))
    if extra:
        update_config(config, extra)
    validate(config, str(SCHEMA))
    return config


@pytest.fixture(scope="module")
def demo() -> Plan:
    return Plan(load_config(), base_dir=str(REPO))


def test_planner_imports_only_the_standard_library():
    code = ("import sys, phonft.plan; heavy = {'numpy', 'ase', 'torch', 'phonopy', 'yaml', 'pandas'}; "
            "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_demo_plan(demo):
    assert demo.splits["chgnet-pft"].as_dict() == {"train": ["NaCl", "ZnO", "mp-149"], "val": ["CaTiO3"],
                                                   "test": ["MgB2", "MgO", "TiO2-anatase"]}
    assert demo.eval_materials == ["MgB2", "MgO", "TiO2-anatase", "CaTiO3", "SiO2-HP"]
    assert list(demo.models) == ["chgnet", "chgnet-pft"]
    assert demo.models["chgnet-pft"].spec == "results/finetune/chgnet-pft/model.pt"
    assert demo.models["chgnet-pft"].base == "chgnet" and demo.models["chgnet"].base is None
    # the base model takes the roles of the run it is the base of
    assert demo.roles("chgnet") == demo.roles("chgnet-pft") == {
        "MgB2": "test", "MgO": "test", "TiO2-anatase": "test", "CaTiO3": "val", "SiO2-HP": "unseen"}
    assert demo.kappa103_ids == [] and demo.kappa_enabled
    # the disjoint replay pool: neither trained on nor scored
    assert demo.replay_materials("chgnet-pft") == ["mp-1000", "NaCl-QE", "Al2O3", "SnO2", "Cr", "Si",
                                                   "ZnTe-PBEsol-fc3"]


def test_demo_targets(demo):
    targets = demo.targets()
    assert len(targets) == len(set(targets)) == 16 * 3 + 3 + 2 + 6 + 4 + 10
    assert [t for t in targets if t.startswith("results/augment/")] == [
        f"results/augment/{m}/rattled.extxyz" for m in demo.splits["chgnet-pft"].train]
    assert "results/finetune/chgnet-pft/heldout/finetuned/MgO/thermal.json" in targets
    assert "results/references/Si-PBE-fc3/thermal.json" in targets
    assert not [t for t in targets if "/thermal/" in t or "kappa-reference" in t]
    inputs = demo.summary_inputs("chgnet-pft")
    assert inputs["kappa_reference"] == ["results/references/Si-PBE-fc3/kappa.json"]
    assert inputs["base"][0] == "results/evaluate/chgnet/MgB2/thermal.json"
    assert demo.heldout_inputs("r", "finetuned", "MgO") == {"reference": "results/references/MgO/thermal.json",
                                                            "model": "results/finetune/r/model.pt"}
    assert demo.model_inputs("chgnet") == {} and demo.model_inputs("chgnet-pft")["model"].endswith("model.pt")


def test_figure_list_is_the_drawn_list(demo):
    relpaths = [f.relpath for f in demo.figures()]
    assert relpaths == ["mdr_parity.png", "improvement.png"] + [f"bands/{m}.png" for m in demo.eval_materials] + [
        "double_well/CaTiO3.png", "training_curve/chgnet-pft.png", "kappa_parity.png"]
    assert demo.figure_paths()[0] == "results/figures/mdr_parity.png"
    assert figure_list(FigureSet()) == []
    assert [f.kind for f in figure_list(FigureSet(models=("m",)))] == ["mdr_parity"]
    # the figures action reads the same set back from its JSON settings
    assert FigureSet.from_dict(json.loads(json.dumps(settings(demo, "figures")))) == demo.figure_set()


def _decoders():
    from phonft.evaluate.mdr import MDRProtocol
    from phonft.finetune.settings import ReplaySettings, TrainSettings
    from phonft.protocols import DisplacementProtocol, ReferenceProtocol, SupercellLimits

    def train(s):
        TrainSettings.from_dict(train_fields(s["run"]))
        ReplaySettings.from_dict(replay_fields(s["run"]))

    return {"displacements": lambda s: (DisplacementProtocol.from_dict(s["protocol"]),
                                        SupercellLimits.from_dict(s["limits"])),
            "references": lambda s: ReferenceProtocol.from_dict(s["protocol"]),
            "finetune_heldout": lambda s: ReferenceProtocol.from_dict(s["protocol"]),
            "finetune_train": train, "finetune_replay": train,
            "evaluate_mdr": lambda s: MDRProtocol.from_dict(s["protocol"]),
            "evaluate_double_well": lambda s: MDRProtocol.from_dict(s["protocol"]),
            "evaluate_summary": lambda s: MDRProtocol.from_dict(s["protocol"]),
            "figures": FigureSet.from_dict}


@pytest.mark.parametrize("files", [(), ("replay-ablation.yaml",), ("replay-splits.yaml",), ("kappa103-quick.yaml",)])
def test_every_rule_settings_decode(files):
    """Each rule's --settings, for every wildcard value, survive JSON and decode in their action."""
    plan = Plan(load_config(*files), base_dir=str(REPO))
    decoders = _decoders()
    ids = {"material": plan.materials, "run": plan.runs, "model": plan.models}
    for action, build in SETTINGS.items():
        params = [p for p in inspect.signature(build).parameters if p != "plan"]
        values = [{}] if not params else [{params[0]: v} for v in ids[params[0]]]
        for wildcards in values:
            value = json.loads(json.dumps(settings(plan, action, **wildcards)))
            decoders.get(action, lambda s: None)(value)


def test_displacement_settings_fold_in_the_material(demo):
    from phonft.protocols import DisplacementProtocol

    p = DisplacementProtocol.from_dict(settings(demo, "displacements", material="MgB2")["protocol"])
    assert p.supercell_matrix == ((3, 0, 0), (0, 3, 0), (0, 0, 2)) and p.fc3 is False
    assert DisplacementProtocol.from_dict(settings(demo, "displacements", material="Si-PBE-fc3")["protocol"]).fc3
    raw = {"materials": {"X": {"supercell": [1, 2, 3, 4, 5, 6, 7, 8, 8], "primitive_matrix": [0, 0.5, 0.5] * 3}}}
    p = DisplacementProtocol.from_dict(settings(Plan(raw), "displacements", material="X")["protocol"])
    assert p.supercell_matrix == ((1, 2, 3), (4, 5, 6), (7, 8, 8))
    assert p.primitive_matrix == ((0.0, 0.5, 0.5),) * 3 and isinstance(p.primitive_matrix[0][0], float)


def test_kappa103_quick_plan():
    plan = Plan(load_config("kappa103-quick.yaml"))
    assert plan.kappa103_ids is None  # first_n of the data's order: the evaluate_kappa103_ids checkpoint decides
    assert settings(plan, "evaluate_kappa103_ids") == {"data_dir": None, "ids": [], "first_n": 2}
    assert settings(plan, "evaluate_summary", model="chgnet")["kappa"] == {
        "materials": ["Si-PBE-fc3"], "kappa103": True, "data_dir": None}
    assert plan.summary_inputs("chgnet", ["mp-1"])["kappa"][-1] == "results/evaluate/chgnet/kappa103/mp-1.json"
    listed = Plan(load_config("kappa103-quick.yaml", extra={"evaluate": {"kappa": {"kappa103": {
        "ids": ["mp-19717", "mp-1132", "mp-2"]}}}}))
    assert listed.kappa103_ids == ["mp-19717", "mp-1132"]


def test_replay_ablation_plan():
    plan = Plan(load_config("replay-ablation.yaml"))
    runs = {"chgnet-pft-noreplay", "chgnet-pft-noreplay-unbounded", "chgnet-pft-training", "chgnet-pft-fd", "chgnet-pft"}
    assert set(plan.runs) == runs and set(plan.models) == {"chgnet"} | runs
    assert {m.base for m in plan.models.values()} == {None, "chgnet"} and plan.models["chgnet"].run in runs
    assert set(plan.figure_set().finetuned) == runs and not plan.kappa_enabled
    # 16 materials x 3 files; 5 runs x (model, train.json, 3 held-out x 2 variants); 6 models x 2 files;
    # parity, improvement, 5 band overlays and 5 training curves; strategies.csv and its figure (several runs);
    # 3 augmented materials x 1 file
    assert len(plan.targets()) == 16 * 3 + 3 + 5 * (2 + 6) + 6 * 2 + 2 + 5 + 5 + 2
    # kappa is off here, so Si-PBE-fc3 joins the replay pool; the scored SiO2-HP never does
    pool = plan.replay_materials("chgnet-pft")
    assert "Si-PBE-fc3" in pool and "SiO2-HP" not in pool


def test_replay_splits_plan():
    """The split study: 7 variants per split seed, and every material held out at least once."""
    plan = Plan(load_config("replay-splits.yaml"))
    variants = ("pft-vc8", "pft-r2", "pft-el1", "pft-el5", "noreplay", "noreplay-unbounded")
    study = {r for r in plan.runs if r != "chgnet-pft"}
    assert study == {f"{v}-s{k}" for v in variants for k in (0, 1, 3)} | {"pft-s1", "pft-s3"}
    tests = {k: set(plan.splits[f"noreplay-s{k}"].test) for k in (0, 1, 3)}
    assert tests[0] == set(plan.splits["chgnet-pft"].test) and tests[1] == set(plan.splits["pft-s1"].test)
    assert set().union(*tests.values()) == set(plan.splits["chgnet-pft"].all)
    assert plan.splits["pft-vc8-s3"].test == plan.splits["noreplay-unbounded-s3"].test


def test_extra_models_and_config_errors():
    config = load_config(extra={"evaluate": {"models": {"mace-mp-medium": "mace-mp:medium-0b3"}},
                                "finetune": {"runs": {"chgnet-pft": {"model_options": {"seed": 1}}}}})
    plan = Plan(config)
    assert list(plan.models) == ["chgnet", "chgnet-pft", "mace-mp-medium"]
    assert set(plan.roles("mace-mp-medium").values()) == {"unseen"} and plan.model_inputs("mace-mp-medium") == {}
    assert settings(plan, "evaluate_mdr", model="chgnet-pft")["model_options"] == {"seed": 1}
    assert settings(plan, "evaluate_mdr", model="mace-mp-medium")["model_options"] is None
    bad = [({"evaluate": {"models": {"chgnet-pft": "chgnet"}}}, "clash"),
           ({"finetune": {"runs": {"chgnet": copy.deepcopy(config["finetune"]["runs"]["chgnet-pft"])}}}, "clash"),
           ({"evaluate": {"double_well": ["nope"]}}, "unknown materials"),
           ({"finetune": {"runs": {"x": {"materials": ["NaCl", "nope"]}}}}, "unknown materials"),
           ({"finetune": {"runs": {"x": {"materials": ["NaCl", "MgO"], "split": {"n_test": 2}}}}}, "finetune run 'x'"),
           ({"materials": {"kappa": {"reference": {"format": "mdr", "path": "x"}}}}, "may not be named")]
    for extra, message in bad:
        with pytest.raises(ConfigError, match=message):
            Plan(load_config(extra=extra)).models


def test_layout_keeps_wildcards(demo):
    assert demo.layout.path("heldout", run="r") == "results/finetune/r/heldout/{variant}/{material}/thermal.json"
    assert demo.layout.log("evaluate_mdr", model="m") == "logs/evaluate/m/{material}/mdr.log"
    assert demo.layout.benchmark("figures") == "results/benchmarks/figures.tsv"


def _rules() -> dict[str, str]:
    """rule name -> its text, from workflow/rules/*.smk (parsed as text: no Snakemake process)."""
    files = sorted(p for p in (REPO / "workflow" / "rules").glob("*.smk") if p.name != "common.smk")  # no rules
    text = "\n".join(p.read_text() for p in files)
    parts = re.split(r"^(?:rule|checkpoint) (\w+):", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_rule_cli_and_settings_names_agree():
    rules = _rules()
    assert set(rules) == set(SETTINGS) == set(JOBS)
    for name, body in rules.items():
        stage, _, action = name.partition("_")
        command = f"python -m phonft {stage} {action.replace('_', '-')}".strip() if stage in ("finetune", "evaluate") \
            else f"python -m phonft {name}"
        if name == "finetune_train":  # one process, or torchrun ranks (train_launcher)
            command = command.replace("python -m phonft", "{params.launch:q}")
        assert f'"{command} ' in body, (name, command)
        for keyword in ("log:", "benchmark:", "conda:", "--settings {params.settings:q}", f'"{name}"'):
            assert keyword in body, (name, keyword)
    bodies = [re.sub(r'"\w+"', "", b) for b in rules.values()]
    assert len(set(bodies)) == len(bodies)  # no two rules share a body


def test_common_smk_is_thin():
    assert len((REPO / "workflow" / "rules" / "common.smk").read_text().splitlines()) <= 150


def test_schema_defaults_are_the_dataclass_defaults():
    """Defaults live in the schema and the dataclasses only; they must agree."""
    from phonft.evaluate.kappa import task_from_phono3py_params
    from phonft.evaluate.mdr import MDRProtocol
    from phonft.finetune.settings import ReplaySettings, TrainSettings
    from phonft.plan import make_split
    from phonft.plan.settings import LIMIT_KEYS
    from phonft.protocols import DisplacementProtocol, ReferenceProtocol, SupercellLimits
    from phonft.structures import MDR_URL_TEMPLATE

    config = {"materials": {"NaCl": {"reference": {"format": "force_sets", "path": "data/dft-phonons/NaCl"}}},
              "finetune": {"runs": {"r": {"materials": ["NaCl", "MgO"]}}}}
    validate(config, str(SCHEMA))  # a minimal config: every default comes from the schema
    run = config["finetune"]["runs"]["r"]
    limits = {k: config["displacements"].pop(k) for k in LIMIT_KEYS}
    assert DisplacementProtocol.from_dict(config["displacements"]) == DisplacementProtocol()
    assert SupercellLimits.from_dict(limits) == SupercellLimits()
    assert ReferenceProtocol.from_dict(config["references"]) == ReferenceProtocol()
    assert MDRProtocol.from_dict(config["evaluate"]["protocol"]) == MDRProtocol()
    assert TrainSettings.from_dict(train_fields(run)) == TrainSettings()
    assert ReplaySettings.from_dict(replay_fields(run)) == ReplaySettings()
    split = {k: v for k, v in inspect.signature(make_split).parameters.items() if v.kind is v.KEYWORD_ONLY}
    assert {k: [] if p.default is None else p.default for k, p in split.items()} == run["split"]
    kappa = config["evaluate"]["kappa"]["mesh"]
    assert list(inspect.signature(task_from_phono3py_params).parameters["q_mesh"].default) == kappa
    assert config["sources"]["mdr_url"] == MDR_URL_TEMPLATE
    from phonft.augment.settings import AugmentSettings

    augment = settings(Plan({**config, "finetune": {}}), "augment", material="NaCl")
    assert AugmentSettings.from_dict(augment["protocol"]) == AugmentSettings() and augment["labels"] == {}
    assert config["augment"]["materials"] == []


def test_config_file_route_gives_the_workflows_settings(tmp_path):
    """`--config config.yaml` (raw YAML, no schema defaults) decodes to the same protocols."""
    import argparse

    from phonft.cliutils import read_settings
    from phonft.protocols import DisplacementProtocol, ReferenceProtocol

    plan = Plan(load_config())
    args = argparse.Namespace(config=str(REPO / "config" / "config.yaml"), settings=None)
    for action, cls in (("displacements", DisplacementProtocol), ("references", ReferenceProtocol)):
        raw = read_settings(args, action, ("material", "protocol"), material="MgB2")
        assert cls.from_dict(raw["protocol"]).digest() == cls.from_dict(
            settings(plan, action, material="MgB2")["protocol"]).digest()
    with pytest.raises(ConfigError, match="no material 'nope'"):
        read_settings(args, "references", ("material", "protocol"), material="nope")


@pytest.mark.parametrize(("device", "gpus"), [("auto", 0), ("cpu", 0), ("cuda", 1)])
def test_rule_gpus_follow_the_device(device, gpus):
    """A model-running rule asks for a GPU only under device cuda; a GPU profile raises auto's 0."""
    assert rule_gpus(device) == gpus
    assert job_device(device, gpus, "finetune_train") == device


def test_job_device_accepts_a_gpu_profile_under_auto():
    assert job_device("auto", 1, "finetune_train") == "auto"
    assert job_device("cuda", 2, "finetune_train") == "cuda"


@pytest.mark.parametrize(("device", "gpus", "message"), [
    ("cpu", 1, r"finetune.device is 'cpu' but rule evaluate_mdr asks for 1 GPU"),
    ("cuda", 0, r"finetune.device is 'cuda' but rule evaluate_mdr asks for no GPU"),
])
def test_job_device_refuses_a_device_the_gpus_contradict(device, gpus, message):
    with pytest.raises(ConfigError, match=message):
        job_device(device, gpus, "evaluate_mdr")


def test_device_rules_and_job_groups_name_the_workflows_rules():
    """DEVICE_RULES are the rules that pass --device; JOB_GROUPS name rules that exist."""
    rules = _rules()
    assert {r for r, block in rules.items() if "--device" in block} == set(DEVICE_RULES)
    assert all("gpu=GPUS" in rules[r] and f'device_arg("{r}")' in rules[r] for r in DEVICE_RULES)
    assert {r for r, block in rules.items() if "group:" in block} == set(JOB_GROUPS)
    assert all(f'JOB_GROUPS["{r}"]' in rules[r] for r in JOB_GROUPS)


@pytest.mark.parametrize(("gpus", "words"), [
    (0, ["python", "-m", "phonft"]),
    (1, ["python", "-m", "phonft"]),
    (2, ["torchrun", "--standalone", "--nproc_per_node", "2", "-m", "--", "phonft"]),
    ("4", ["torchrun", "--standalone", "--nproc_per_node", "4", "-m", "--", "phonft"]),
])
def test_training_launches_one_torchrun_rank_per_gpu_beyond_one(gpus, words):
    assert train_launcher(gpus) == words


def test_training_rule_starts_phonft_through_the_launcher():
    """finetune_train's shell line begins with the launcher's words, driven by the job's GPUs."""
    block = _rules()["finetune_train"]
    assert "launch=lambda wildcards, resources: train_launcher(resources.gpu)" in block
    assert '"{params.launch:q} finetune train ' in block and "python -m phonft" not in block


#: The rules whose job runs torch (a model's forces, Hessians or training).
TORCH_RULES = ("augment", "references", "finetune_replay", "finetune_train", "finetune_heldout", "evaluate_mdr",
               "evaluate_double_well", "evaluate_kappa", "evaluate_kappa103", "evaluate_summary")


def test_torch_rules_pin_torch_to_their_threads():
    """Every rule that runs torch passes its own `threads` to phonft (`--threads`), so jobs side
    by side never oversubscribe the cores; the rest leave torch alone."""
    rules = _rules()
    for name, body in rules.items():
        threads = re.search(r"^    threads: (\d+)$", body, flags=re.M)
        assert threads, name
        assert ("--threads {threads:q}" in body) == (name in TORCH_RULES), name
