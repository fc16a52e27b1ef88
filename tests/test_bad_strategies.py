"""Bad fine-tuning strategy settings (issue 9): each case of ``tests/data/bad/strategies/``
(a ``--settings`` run entry) makes ``phonft finetune train`` exit with status 2 and one
line naming the key and the fix, before anything is written under ``results/``.

``scratch-without-architecture.json`` names ``mace:plain-mace.model``: a plain
``mace.modules.MACE`` (not a ``ScaleShiftMACE``), whose config mace cannot extract; the
test writes that file (a pickle of this mace version) into the working folder. Every
backend phonft has (CHGNet, MACE) can do multi-head training, so ``multihead`` on a
backend without a readout is tested on a model-interface toy.
"""

from __future__ import annotations

import json

import pytest

from badinput import BAD, assert_clean_failure
from phonft.errors import ConfigError

STRATEGIES = BAD / "strategies"

CASES = {
    "lora-rank-above-layer.json": "finetune.runs.<run>.lora.rank is 99, above the size of layer "
                                  "'interactions.0.conv_tp_weights.layer0' of model 'mace-small' (at most 8)",
    "lora-radial-only-on-chgnet.json": "lora.targets: radial_only names MACE's radial MLPs; a CHGNet model has none",
    "lora-without-lora.json": "lora settings are given but strategy is 'full'",
    "frozen-without-freeze.json": "frozen / freeze_blocks are set but strategy is 'full'",
    "freeze-blocks-above-model.json": "freeze_blocks is 5, but model 'mace-small' has 2 interaction blocks",
    "multihead-without-replay.json": "strategy 'multihead' trains the original head on the replay set, but "
                                     "replay_steps is 0",
    "scratch-with-drift-budget.json": "strategy 'scratch' starts from random weights",
    "scratch-without-architecture.json": "strategy 'scratch': the architecture of model 'mace:plain-mace.model' "
                                         "cannot be read (MACE: Model is not a ScaleShiftMACE",
}


@pytest.fixture(scope="module")
def split_and_refs(references, tmp_path_factory):
    refs = references("Si").parent
    root = tmp_path_factory.mktemp("strategies")
    (root / "split.json").write_text(json.dumps({"train": ["Si"], "val": [], "test": []}))
    return root / "split.json", refs


def _plain_mace(path) -> None:
    import numpy as np
    import torch

    from phonft.models.mace import _import_mace

    _import_mace()
    from e3nn import o3
    from mace import modules

    blocks = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    net = modules.MACE(r_max=4.0, num_bessel=4, num_polynomial_cutoff=5, max_ell=1, interaction_cls=blocks,
                       interaction_cls_first=blocks, num_interactions=1, num_elements=1,
                       hidden_irreps=o3.Irreps("2x0e"), MLP_irreps=o3.Irreps("2x0e"),
                       atomic_energies=np.array([-3.0]), avg_num_neighbors=4.0, atomic_numbers=[14], correlation=1,
                       gate=torch.nn.functional.silu)
    torch.save(net, path)


@pytest.mark.parametrize("name", sorted(CASES))
def test_finetune_train_refuses(name, split_and_refs, tmp_path):
    split, refs = split_and_refs
    if name == "scratch-without-architecture.json":
        _plain_mace(tmp_path / "plain-mace.model")
    settings = (STRATEGIES / name).read_text()
    line = assert_clean_failure(["finetune", "train", "--run", "r", "--settings", settings, "--split", str(split),
                                 "--references", str(refs), "--out", "results/finetune/r", "--device", "cpu"],
                                cwd=tmp_path, message=CASES[name])
    assert "Fix:" in line
    assert not (tmp_path / "results").exists()


def test_multihead_on_a_backend_without_a_readout_is_one_clear_error():
    from phonft.finetune.settings import TrainSettings
    from phonft.finetune.strategies import apply_strategy
    from phonft_testdata import pair_springs

    model = pair_springs({"Si-Si": 10.0}, {"Si-Si": 2.35})
    with pytest.raises(ConfigError, match=r"strategy 'multihead': a springs model \('springs'\) has no readout "
                                          r"phonft can duplicate.*Fix: use a CHGNet or MACE base_model"):
        apply_strategy(model, TrainSettings(strategy="multihead"))
    with pytest.raises(ConfigError, match=r"strategy 'scratch': the architecture of model 'springs' \(springs\) "
                                          r"is not known"):
        apply_strategy(model, TrainSettings.from_dict({"strategy": "scratch", "max_drift": {
            "energy_eV_atom": None, "force_eV_A": None, "error_ratio": None}}))


@pytest.mark.parametrize("backend", ["chgnet", "mace"])
def test_the_rank_the_lora_error_gives_is_enough(backend):
    """The error names the smallest targeted layer, so the rank its fix gives is accepted."""
    import re

    from phonft.finetune.settings import TrainSettings
    from phonft.finetune.strategies import check_strategy
    from phonft.models import load_model
    from phonft_testdata import small_mace_model

    model = small_mace_model(("Si",)) if backend == "mace" else load_model("chgnet", dtype="float64", device="cpu")
    with pytest.raises(ConfigError, match=r"lora\.rank is 999, above the size of layer") as err:
        check_strategy(model, TrainSettings.from_dict({"strategy": "lora", "lora": {"rank": 999}}))
    size = int(re.search(r"Fix: set lora\.rank <= (\d+)", str(err.value)).group(1))
    check_strategy(model, TrainSettings.from_dict({"strategy": "lora", "lora": {"rank": size}}))
    with pytest.raises(ConfigError, match=f"at most {size}"):
        check_strategy(model, TrainSettings.from_dict({"strategy": "lora", "lora": {"rank": size + 1}}))
