"""Fine-tuning strategies (issue 9): full, freeze, lora, multihead, scratch on CHGNet and a
tiny random MACE, in float64 with a few training steps.

LoRA starts at the base model (1e-12) and its merged model equals the unmerged one
(1e-10); only adapters train. MACE stays equivariant under LoRA and multi-head training
(1e-10). Frozen parameters stay bitwise fixed. Multi-head keeps the original head's
replay predictions closer to the base model than full fine-tuning with the same steps.
Adapters and heads survive a resume; the saved model is an ordinary model file.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from ase.build import bulk

from phonft.finetune.data import ReplaySample, load_phonon_sample
from phonft.finetune.settings import TrainSettings
from phonft.finetune.strategies import apply_strategy, parameter_counts
from phonft.finetune.strategies.freeze import frozen_names
from phonft.finetune.trainer import Trainer
from phonft.models import load_model
from phonft_testdata import small_mace_model

warnings.filterwarnings("ignore", message="The TorchScript type system")

NO_BUDGET = {"energy_eV_atom": None, "force_eV_A": None, "error_ratio": None}
ELEMENTS = ("Si", "Ge", "C")


def _settings(strategy: str, **kw) -> TrainSettings:
    base = {"strategy": strategy, "dtype": "float64", "epochs": 1, "lr": 3e-3, "ema_decay": 0.0,
            "replay_steps": 1, "batch_atoms": 64, "replay_batch_atoms": 16, "max_drift": NO_BUDGET}
    return TrainSettings.from_dict({**base, **kw})


def _model(backend: str):
    if backend == "mace":
        return small_mace_model(ELEMENTS)
    return load_model("chgnet", dtype="float64", device="cpu")


def _structures() -> list:
    out = []
    for i, (sym, a) in enumerate((("Si", 5.43), ("Ge", 5.66), ("C", 3.57))):
        atoms = bulk(sym, "diamond", a=a)
        atoms.rattle(0.05, seed=i)
        out.append(atoms)
    return out


def _replay(base, split: str = "train") -> list[ReplaySample]:
    """Frames pseudo-labelled by ``base`` (the offline default): replay pulls toward the base model."""
    structures = _structures()
    return [ReplaySample(a, float(r["energy"]), r["forces"], None, tag=a.get_chemical_formula(), split=split)
            for a, r in zip(structures, base.predict(structures))]


@pytest.fixture(scope="module")
def si_sample(references):
    return load_phonon_sample(references("Si"), "Si")


def _trainer(model, settings, si_sample, checkpoint=None) -> Trainer:
    """A Trainer on the Si phonon sample with replay frames (it applies the strategy)."""
    replay = _replay(model)
    return Trainer(model, settings, [si_sample], [], replay, replay, checkpoint=checkpoint)


def _train(model, settings, si_sample, checkpoint=None, resume=False, stop_after=None):
    trainer = _trainer(model, settings, si_sample, checkpoint)
    return trainer, trainer.fit(resume=resume, stop_after=stop_after)


def _predict(model, structures):
    res = model.predict(structures, batch_size=len(structures))
    return np.array([r["energy"] for r in res]), np.concatenate([r["forces"] for r in res])


def _as_model(template, module):
    return type(template)(module, spec=template.spec, dtype="float64", device="cpu")


# ------------------------------------------------------------------ LoRA


@pytest.mark.parametrize("backend", ["chgnet", "mace"])
def test_lora_starts_at_the_base_model_and_merges_exactly(backend):
    model = _model(backend)
    structures = _structures()
    e0, f0 = _predict(model, structures)
    apply_strategy(model, _settings("lora"))
    e1, f1 = _predict(model, structures)
    assert np.abs(e1 - e0).max() < 1e-12 and np.abs(f1 - f0).max() < 1e-12
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # give the adapters a non-zero update, as training would
        for name, p in model.module.named_parameters():
            if "lora_B" in name:
                p.copy_(1e-2 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    e2, f2 = _predict(model, structures)
    assert np.abs(e2 - e0).max() > 1e-6
    merged = model.exported_module()
    assert not any("lora" in n for n, _ in merged.named_parameters())
    e3, f3 = _predict(_as_model(model, merged), structures)
    assert np.abs(e3 - e2).max() < 1e-10 and np.abs(f3 - f2).max() < 1e-10


@pytest.mark.parametrize("backend", ["chgnet", "mace"])
def test_only_adapters_train_under_lora(backend, si_sample):
    model = _model(backend)
    trainer = _trainer(model, _settings("lora", lora={"rank": 2}), si_sample)
    before = {n: p.detach().clone() for n, p in model.module.named_parameters()}
    trainer.fit()
    changed = {n for n, p in model.module.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(".lora_A" in f".{n}" or ".lora_B" in f".{n}" for n in changed)
    assert any("lora_A" in n for n in changed)


def test_lora_radial_only_adapts_the_radial_mlps_of_mace():
    model = _model("mace")
    params = apply_strategy(model, _settings("lora", lora={"targets": "radial_only"}))
    names = [n for n, p in model.module.named_parameters() if p.requires_grad]
    assert len(params) == len(names) > 0 and all(".conv_tp_weights." in n for n in names)


def test_lora_model_file_is_an_ordinary_mace_model(tmp_path):
    from phonft.models.mace import unsafe_torch_load_default

    model = _model("mace")
    apply_strategy(model, _settings("lora"))
    with torch.no_grad():
        for name, p in model.module.named_parameters():
            if "lora_B" in name:
                p.fill_(1e-3)
    atoms = _structures()[0]
    energy = float(model.predict([atoms])[0]["energy"])
    model.save(tmp_path / "model.pt")
    with unsafe_torch_load_default():  # mace.calculators sets it process-wide: keep that to this block
        from mace.calculators import MACECalculator

        calc = MACECalculator(model_paths=str(tmp_path / "model.pt"), device="cpu", default_dtype="float64")
    assert abs(calc.get_potential_energy(atoms) - energy) < 1e-8


def test_lora_chgnet_file_loads_with_chgnet(tmp_path):
    from chgnet.model import CHGNet

    model = _model("chgnet")
    apply_strategy(model, _settings("lora"))
    model.save(tmp_path / "model.pt")
    net = CHGNet.from_file(str(tmp_path / "model.pt"))
    assert not any("lora" in k for k in net.state_dict())
    assert load_model(str(tmp_path / "model.pt"), dtype="float64", device="cpu").backend == "chgnet"


# ------------------------------------------------------------------ equivariance


def _rotation() -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler("zyx", [0.3, -0.7, 1.1]).as_matrix()


@pytest.mark.parametrize("strategy", ["lora", "multihead"])
def test_mace_stays_equivariant_after_training(strategy, si_sample):
    model = _model("mace")
    _train(model, _settings(strategy), si_sample)
    atoms = _structures()[0]
    turned = atoms.copy()
    rot = _rotation()
    turned.set_cell(atoms.cell.array @ rot.T, scale_atoms=True)
    for head in (False, True):
        with model.replay_head() if head else torch.no_grad():
            (_, f), (_, g) = _predict(model, [atoms]), _predict(model, [turned])
        assert np.abs(g - f @ rot.T).max() < 1e-10


# ------------------------------------------------------------------ freeze


@pytest.mark.parametrize(("backend", "kw"), [("chgnet", {"freeze_blocks": 1}),
                                             ("mace", {"frozen": ["interactions.0"], "freeze_blocks": 1})])
def test_frozen_parameters_are_bitwise_unchanged(backend, kw, si_sample):
    model = _model(backend)
    trainer = _trainer(model, _settings("freeze", **kw), si_sample)
    frozen = set(frozen_names(model))
    first = "atom_conv_layers.0." if backend == "chgnet" else "products.0."
    assert any(n.startswith(first) for n in frozen) and not any(n.startswith(first.replace("0", "1")) for n in frozen)
    before = {n: p.detach().clone() for n, p in model.module.named_parameters()}
    trainer.fit()
    after = dict(model.module.named_parameters())
    assert all(torch.equal(after[n], before[n]) for n in frozen)
    assert any(not torch.equal(after[n], before[n]) for n in after if n not in frozen)


# ------------------------------------------------------------------ multihead


@pytest.mark.parametrize("backend", ["chgnet", "mace"])
def test_multihead_original_head_drifts_less_than_full(backend, si_sample):
    drift = {}
    for strategy in ("full", "multihead"):
        model = _model(backend)
        _, result = _train(model, _settings(strategy, epochs=3, replay_steps=8, lr=1e-3), si_sample)
        drift[strategy] = result.metrics[-1]["drift_force_mae"]
    assert 0 < drift["multihead"] < drift["full"]


def test_multihead_saves_the_new_head(tmp_path, si_sample):
    model = _model("chgnet")
    _train(model, _settings("multihead"), si_sample)
    atoms = _structures()
    new = _predict(model, atoms)[0]
    with model.replay_head():
        old = _predict(model, atoms)[0]
    assert np.abs(new - old).max() > 1e-6
    model.save(tmp_path / "model.pt")
    saved = load_model(str(tmp_path / "model.pt"), dtype="float64", device="cpu")
    assert not any("phonft_replay_head" in k for k in saved.state_dict())
    assert np.abs(_predict(saved, atoms)[0] - new).max() < 1e-4  # saved in float32


# ------------------------------------------------------------------ scratch


@pytest.mark.parametrize("backend", ["chgnet", "mace"])
def test_scratch_is_the_same_architecture_with_seeded_random_weights(backend):
    base = _model(backend)
    models = [_model(backend) for _ in range(2)]
    for m in models:
        apply_strategy(m, _settings("scratch", seed=7))
    sa, sb, s0 = (m.module.state_dict() for m in (*models, base))
    assert sa.keys() == s0.keys() and all(sa[k].shape == s0[k].shape for k in s0)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    kept = "composition_model." if backend == "chgnet" else "atomic_energies_fn."
    assert all(torch.equal(sa[k], s0[k]) for k in s0 if k.startswith(kept))
    assert any(not torch.equal(sa[k], s0[k]) for k in s0 if k.startswith(("atom_conv", "interactions")))


# ------------------------------------------------------------------ resume and counts


@pytest.mark.parametrize("strategy", ["lora", "multihead"])
def test_resume_with_adapters_and_heads_is_exact(strategy, si_sample, tmp_path):
    settings = _settings(strategy, epochs=2)
    whole = _model("mace")
    _train(whole, settings, si_sample, checkpoint=tmp_path / "a.pt")
    part = _model("mace")
    _train(part, settings, si_sample, checkpoint=tmp_path / "b.pt", stop_after=1)
    resumed = _model("mace")
    _, result = _train(resumed, settings, si_sample, checkpoint=tmp_path / "b.pt", resume=True)
    assert result.resumed_from == 1
    a, b = whole.module.state_dict(), resumed.module.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_parameter_counts_and_log(caplog):
    model = _model("mace")
    with caplog.at_level("INFO", logger="phonft.finetune.strategies"):
        params = apply_strategy(model, _settings("lora", lora={"rank": 2}))
    counts = parameter_counts(model, params)
    assert counts["n_trainable"] == sum(p.numel() for n, p in model.module.named_parameters() if "lora" in n)
    assert 0 < counts["trainable_fraction"] < 1
    assert f"strategy lora: {counts['n_trainable']} of {counts['n_parameters']} parameters train" in caplog.text


def test_train_json_records_parameter_counts(references, tmp_path):
    from phonft.cli import main

    refs = references("Si").parent
    (tmp_path / "split.json").write_text(json.dumps({"train": ["Si"], "val": [], "test": []}))
    run = {"materials": ["Si"], "base_model": "mace-small", "model_options": {"elements": list(ELEMENTS)},
           "strategy": "lora", "lora": {"rank": 2}, "epochs": 1, "replay_steps": 0, "dtype": "float64"}
    assert main(["finetune", "train", "--run", "r", "--settings", json.dumps({"run": run}), "--split",
                 str(tmp_path / "split.json"), "--references", str(refs), "--out", str(tmp_path / "r"),
                 "--device", "cpu"]) == 0
    record = json.loads((tmp_path / "r" / "train.json").read_text())
    assert 0 < record["n_trainable"] < record["n_parameters"]
    assert record["trainable_fraction"] == pytest.approx(record["n_trainable"] / record["n_parameters"])
    assert record["protocol"]["strategy"] == "lora" and record["protocol"]["lora"]["rank"] == 2
    module = torch.load(tmp_path / "r" / "model.pt", weights_only=False)
    assert not any("lora" in n for n, _ in module.named_parameters())
