"""The evaluate stage's kappa SRME (Matbench Discovery phonondb-v1): metrics, kappa103 data,
DFT and model sides.

The golden values (GOLDEN_*) were produced by Matbench Discovery's own code
(``matbench_discovery.metrics.phonons.calc_kappa_metrics_from_dfs``,
``phonons.thermal_conductivity.calc_mode_kappa_tot``, ``phonons.check_imaginary_freqs``)
at janosh/matbench-discovery commit 023dca9ae462376355f5a48534366286be3bbdfc, installed
by ``scripts/matbench_env.sh`` (phono3py 3.30.1, pymatviz 0.18.0) and run by
``scripts/kappa_vs_matbench.py upstream`` on the inputs built below. The live tests
(``test_*_live_matbench``) run the same functions again, in-process when
``matbench_discovery`` imports, else through the venv of ``scripts/matbench_env.sh``
(``$PHONFT_MBD_VENV`` or its default folder); they skip when neither exists.

The edge-case rules phonft adopted from upstream's later ``metrics/phonons.py``
(commit 0519808e02b91732edaf97cd2b0330ac77627e39: SRD 0 when both κ are 0, negative κ
invalid, censoring, failure and imaginary-mode rates, ``spectrum_w1``) are tested here
on analytic cases: that version needs Python 3.14, so it is not run live.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from phonft.errors import ConfigError, InputFileError, NetworkError
from phonft.evaluate import kappa as K
from phonft.evaluate import srme as S
from phonft_testdata import SHARED

KAPPA103 = SHARED / "kappa103"
needs_kappa103 = pytest.mark.skipif(not (KAPPA103 / K.KAPPA103_FILES["kappas"]).is_file(),
                                    reason="../shared/data/kappa103 (GPL-3 data) is absent")

# ----------------------------------------------------------------------------- inputs
# Each case: (pred, true) in Matbench Discovery's column names. pred: kappa_tot_rta (T, 6)
# or NaN, mode_kappa_tot_rta (T, q, s, 6), mode_weights (q,), has_imag_ph_modes,
# init_spg_num, final_spg_num. true: kappa_tot_avg (T,), mode_kappa_tot_avg (T, q, s),
# spg_num.


def _synthetic_true(nq: int = 5, ns: int = 6, seed: float = 0.0) -> dict:
    q = np.arange(nq)[:, None]
    s = np.arange(ns)[None, :]
    weights = (1.0 + (q[:, 0] % 3)).astype(float)
    mode = (np.abs(np.sin(0.7 * q + 1.3 * s + seed)) * 10.0 + 0.1) * weights[:, None]
    mode = mode[None]  # (1, q, s)
    kappa = mode.sum(axis=(1, 2)) / weights.sum()
    return {"kappa_tot_avg": kappa, "mode_kappa_tot_avg": mode, "spg_num": 225, "_weights": weights}


def _perturbed_pred(true: dict, amplitude: float, shift: float, **flags) -> dict:
    mode_true = np.asarray(true["mode_kappa_tot_avg"], dtype=float)
    weights = np.asarray(true["_weights"], dtype=float)
    idx = np.arange(mode_true.size).reshape(mode_true.shape)
    mode_avg = mode_true * (1.0 + amplitude * np.sin(0.37 * idx + shift))
    # Voigt per-mode tensor whose xx, yy, zz average to mode_avg
    aniso = np.array([1.0 + 0.2 * math.sin(shift), 1.0 - 0.1 * math.cos(shift), 0.0])
    aniso[2] = 3.0 - aniso[0] - aniso[1]
    off = np.array([0.01, -0.02, 0.03])
    mode_rta = np.concatenate([mode_avg[..., None] * aniso, mode_avg[..., None] * off], axis=-1)
    kappa_rta = mode_rta.sum(axis=(1, 2)) / weights.sum()
    pred = {"kappa_tot_rta": kappa_rta, "mode_kappa_tot_rta": mode_rta, "mode_weights": weights,
            "has_imag_ph_modes": False, "init_spg_num": 225, "final_spg_num": 225}
    pred.update(flags)
    return pred


def synthetic_cases() -> dict[str, tuple[dict, dict]]:
    cases = {}
    t = _synthetic_true(seed=0.0)
    cases["good"] = (_perturbed_pred(t, 0.3, 0.5), t)
    t = _synthetic_true(seed=1.0)
    cases["over"] = (_perturbed_pred(t, 0.8, 2.0), t)
    t = _synthetic_true(seed=2.0)
    cases["imaginary"] = (_perturbed_pred(t, 0.2, 1.0, has_imag_ph_modes=True), t)
    t = _synthetic_true(seed=3.0)
    cases["broken"] = (_perturbed_pred(t, 0.2, 1.5, init_spg_num=225, final_spg_num=166), t)
    t = _synthetic_true(seed=4.0)
    cases["broken_vs_true"] = (_perturbed_pred(t, 0.2, 1.7, init_spg_num=None, final_spg_num=221), t)
    t = _synthetic_true(seed=5.0)
    failed = _perturbed_pred(t, 0.2, 0.3)
    failed.update(kappa_tot_rta=np.nan, mode_kappa_tot_rta=np.nan, mode_weights=np.nan)
    cases["failed"] = (failed, t)
    return cases


def real_cases(data_dir: Path = KAPPA103, ids=("mp-2472", "mp-2542", "mp-8884")) -> dict[str, tuple[dict, dict]]:
    """DFT per-mode data of three kappa103 materials, and perturbed copies as the 'model'."""
    refs = K.kappa103_references(ids, data_dir=data_dir)
    cases = {}
    for i, mid in enumerate(ids):
        r = refs[mid]
        true = {"kappa_tot_avg": np.asarray(r["kappa_tot_avg_W_mK"]),
                "mode_kappa_tot_avg": np.asarray(r["mode_kappa_tot_avg_W_mK"]), "spg_num": r["spacegroup_initial"],
                "_weights": np.asarray(r["mode_weights"])}
        cases[mid] = (_perturbed_pred(true, 0.25 + 0.2 * i, 0.3 * i), true)
    return cases


def to_records(pred: dict, true: dict) -> tuple[dict, dict]:
    """The same material as phonft kappa records."""
    failed = np.isscalar(pred["kappa_tot_rta"]) and np.isnan(pred["kappa_tot_rta"])
    rec = {"failed": bool(failed), "has_imaginary_modes": pred["has_imag_ph_modes"],
           "spacegroup_initial": pred["init_spg_num"], "spacegroup_final": pred["final_spg_num"],
           "broken_symmetry": None}
    if not failed:
        rec.update(kappa_tot_avg_W_mK=S.kappa_average(pred["kappa_tot_rta"]).tolist(),
                   mode_kappa_tot_avg_W_mK=S.kappa_average(pred["mode_kappa_tot_rta"]).tolist(),
                   mode_weights=np.asarray(pred["mode_weights"]).tolist())
    ref = {"kappa_tot_avg_W_mK": np.asarray(true["kappa_tot_avg"]).tolist(),
           "mode_kappa_tot_avg_W_mK": np.asarray(true["mode_kappa_tot_avg"]).tolist(),
           "spacegroup_initial": true["spg_num"], "spacegroup_final": true["spg_num"]}
    return rec, ref


def matbench_metrics(cases: dict[str, tuple[dict, dict]]) -> dict[str, dict[str, float]]:
    """Run Matbench Discovery's own metric functions (needs matbench_discovery.metrics.phonons)."""
    import pandas as pd
    from matbench_discovery.metrics.phonons import calc_kappa_metrics_from_dfs

    pred_rows = {k: {c: v for c, v in p.items() if not c.startswith("_")} for k, (p, _) in cases.items()}
    true_rows = {k: {c: v for c, v in t.items() if not c.startswith("_")} for k, (_, t) in cases.items()}
    df_pred = pd.DataFrame.from_dict(pred_rows, orient="index").astype(object)
    df_true = pd.DataFrame.from_dict(true_rows, orient="index").astype(object)
    out = calc_kappa_metrics_from_dfs(df_pred, df_true)
    return {k: {"srd": float(out.loc[k, "srd"]), "sre": float(out.loc[k, "sre"]),
                "srme": float(out.loc[k, "srme"])} for k in cases}


def mode_total_inputs():
    t, q, s = 1, 2, 3
    idx = np.arange(t * q * s * 6).reshape(t, q, s, 6)
    p = 1.0 + np.cos(0.3 * idx)
    c = np.sin(0.11 * np.arange(t * q * s * s * 6)).reshape(t, q, s, s, 6) ** 2
    c = c + c.transpose(0, 1, 3, 2, 4)  # a pair's coherence term is symmetric
    c[:, :, np.arange(s), np.arange(s)] = 0.0
    cv = 1e-4 * (1.0 + np.arange(t * q * s).reshape(t, q, s) % 4)
    cv[0, 0, 0] = 0.0  # an acoustic mode at Gamma
    return p, c, cv


IMAGINARY_CASES = {
    "stable": [[-1e-7, 0.0, 1e-7, 5.0], [0.5, 0.6, 0.7, 5.1]],
    "gamma_acoustic_soft": [[-0.02, 0.0, 0.0, 5.0], [0.5, 0.6, 0.7, 5.1]],
    "gamma_acoustic_ok": [[-0.009, 0.0, 0.0, 5.0], [0.5, 0.6, 0.7, 5.1]],
    "gamma_optical": [[0.0, 0.0, 0.0, -1e-6], [0.5, 0.6, 0.7, 5.1]],
    "elsewhere": [[0.0, 0.0, 0.0, 5.0], [-1e-9, 0.6, 0.7, 5.1]],
    "nan": [[np.nan] * 4, [np.nan] * 4],
}

# ----------------------------------------------------------------------------- golden values
# Produced by matbench_discovery.metrics.phonons / phonons.thermal_conductivity at upstream
# commit 023dca9ae462376355f5a48534366286be3bbdfc on the inputs above, by
# `scripts/kappa_vs_matbench.py upstream` (its comparison.json, "golden"), printed with repr().
GOLDEN_SYNTHETIC = {'good': {'srd': -0.0498603205456922, 'sre': 0.0498603205456922, 'srme': 0.19402628598771324},
 'over': {'srd': -0.04994423284013824, 'sre': 0.04994423284013824, 'srme': 0.5197845048964108},
 'imaginary': {'srd': -0.02946089848651205, 'sre': 0.02946089848651205, 'srme': 2.0},
 'broken': {'srd': -0.021573280497827644, 'sre': 0.021573280497827644, 'srme': 2.0},
 'broken_vs_true': {'srd': -0.01819531732635472, 'sre': 0.01819531732635472, 'srme': 2.0},
 'failed': {'srd': -2.0, 'sre': 2.0, 'srme': 2.0}}
GOLDEN_KAPPA103 = {'mp-2472': {'srd': -0.006520542814719703, 'sre': 0.006520542814719703, 'srme': 0.1437938943833384},
 'mp-2542': {'srd': 0.004857774288530911, 'sre': 0.004857774288530911, 'srme': 0.2866327925906928},
 'mp-8884': {'srd': 0.012859606401805997, 'sre': 0.012859606401805997, 'srme': 0.3998715658535237}}
GOLDEN_MODE_TOTAL = [[  # (T=1, q=2, s=3, 6)
    [
        [2.0, 1.955336489125606, 1.8253356149096782, 1.6216099682706644, 1.3623577544766736, 1.0707372016677028],
        [1.992444591979755, 1.7791765512032898, 1.606954588754462, 1.4936434861345496, 1.4515595535157584, 1.486264661117487],
        [0.9163393747810807, 1.1300827996686245, 1.4059713815231056, 1.7210146193369606, 2.0485336835169154, 2.3604740300638816],
    ],
    [
        [2.6691846215627066, 3.0167420586555878, 3.2841760224947874, 3.453435778347687, 3.514730081371892, 3.467144951727732],
        [4.49765438994835, 4.376138741242438, 4.219023303023596, 4.045917400354296, 3.87739937463136, 3.7329317977603353],
        [1.8541752873775237, 2.061448729708066, 2.354767341996726, 2.7196817155861908, 3.1346741082904708, 3.572546497251159],
    ],
]]
GOLDEN_IMAGINARY = {'stable': False,
 'gamma_acoustic_soft': True,
 'gamma_acoustic_ok': False,
 'gamma_optical': True,
 'elsewhere': True,
 'nan': True}


# ----------------------------------------------------------------------------- metric tests


def _our_metrics(cases):
    out = {}
    for k, (p, t) in cases.items():
        rec, ref = to_records(p, t)
        m = S.material_metrics(rec, ref)
        out[k] = {"srd": m["srd"], "sre": m["sre"], "srme": m["srme"]}
    return out


def _assert_close(ours, theirs):
    assert set(ours) == set(theirs)
    for k in theirs:
        for metric in ("srd", "sre", "srme"):
            assert ours[k][metric] == pytest.approx(theirs[k][metric], rel=1e-10, abs=1e-10), (k, metric)


def test_metrics_match_matbench_synthetic():
    _assert_close(_our_metrics(synthetic_cases()), GOLDEN_SYNTHETIC)
    # the penalty cases score 2, the good ones less
    assert GOLDEN_SYNTHETIC["imaginary"]["srme"] == 2 and GOLDEN_SYNTHETIC["broken"]["srme"] == 2
    assert GOLDEN_SYNTHETIC["failed"]["srme"] == 2 and GOLDEN_SYNTHETIC["failed"]["sre"] == 2
    assert 0 < GOLDEN_SYNTHETIC["good"]["srme"] < 2


@needs_kappa103
def test_metrics_match_matbench_kappa103():
    _assert_close(_our_metrics(real_cases()), GOLDEN_KAPPA103)


def test_mode_kappa_total_matches_matbench():
    p, c, cv = mode_total_inputs()
    ours = S.mode_kappa_total(p, c, cv)
    np.testing.assert_allclose(ours, np.asarray(GOLDEN_MODE_TOTAL), rtol=1e-12, atol=1e-12)
    # with non-zero heat capacities the coherence terms are redistributed, not created
    positive = S.mode_kappa_total(p, c, cv + 1e-5)
    assert positive.sum() == pytest.approx(p.sum() + c.sum(), rel=1e-12)
    # as upstream, a mode with C = 0 (acoustic at Gamma) receives no coherence at all
    np.testing.assert_allclose(ours[0, 0, 0], p[0, 0, 0])


def test_imaginary_rule_matches_matbench():
    for name, freqs in IMAGINARY_CASES.items():
        assert K.imaginary_modes(np.array(freqs)) is GOLDEN_IMAGINARY[name], name


def _in_process_matbench() -> bool:
    return (importlib.util.find_spec("matbench_discovery") is not None
            and importlib.util.find_spec("matbench_discovery.metrics.phonons") is not None)


def _mbd_python() -> str | None:
    """The Python with matbench-discovery's kappa code: this one, or scripts/matbench_env.sh's venv."""
    if _in_process_matbench():
        return sys.executable
    from phonft.cache import default_cache_dir

    venv = Path(os.environ.get("PHONFT_MBD_VENV") or default_cache_dir() / "matbench-venv")
    return str(venv / "bin" / "python") if (venv / "bin" / "python").is_file() else None


needs_matbench = pytest.mark.skipif(_mbd_python() is None, reason="matbench-discovery's kappa code is not installed "
                                    "(scripts/matbench_env.sh makes its venv)")

_UPSTREAM_METRICS = """
import json, sys
import numpy as np, pandas as pd
from matbench_discovery.metrics.phonons import calc_kappa_metrics_from_dfs
arr = lambda v: np.asarray(v, dtype=float) if isinstance(v, list) else v
pred, true = (pd.read_json(f).astype(object).map(arr) for f in sys.argv[1:3])
out = calc_kappa_metrics_from_dfs(pred, true)
print(json.dumps({str(k): {m: float(out.loc[k, m]) for m in ("srd", "sre", "srme")} for k in out.index}))
"""


def upstream_metrics_from_files(pred_json: Path, true_json: Path) -> dict[str, dict[str, float]]:
    """calc_kappa_metrics_from_dfs on two DataFrame.to_json files, in matbench-discovery's Python."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([_mbd_python(), "-c", _UPSTREAM_METRICS, str(pred_json), str(true_json)],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def live_metrics(cases: dict[str, tuple[dict, dict]], tmp_path: Path) -> dict[str, dict[str, float]]:
    if _in_process_matbench():
        return matbench_metrics(cases)
    import pandas as pd

    frames = []
    for side in (0, 1):
        rows = {k: {c: v for c, v in case[side].items() if not c.startswith("_")} for k, case in cases.items()}
        path = tmp_path / f"side{side}.json"
        pd.DataFrame.from_dict(rows, orient="index").astype(object).to_json(path, double_precision=15)
        frames.append(path)
    return upstream_metrics_from_files(*frames)


@needs_matbench
def test_metrics_match_live_matbench(tmp_path):
    cases = synthetic_cases()
    if (KAPPA103 / K.KAPPA103_FILES["kappas"]).is_file():
        cases.update(real_cases())
    _assert_close(_our_metrics(cases), live_metrics(cases, tmp_path))


@needs_matbench
def test_mbd_output_round_trips_into_live_matbench(si_dft_coarse, tmp_path):
    """kappa_mbd.json.gz, as phonft writes it, is what calc_kappa_metrics_from_dfs reads:
    a model record (the DFT one scaled by 1.3) scores the same upstream as in phonft."""
    import pandas as pd

    task, dft = si_dft_coarse
    pred = dict(dft, kind="model")
    for key in ("kappa_tot_W_mK", "kappa_p_W_mK", "kappa_c_W_mK", "kappa_tot_avg_W_mK", "mode_kappa_tot_W_mK",
                "mode_kappa_tot_avg_W_mK"):
        pred[key] = (1.3 * np.asarray(dft[key])).tolist()
    pred["mode_kappa_tot_avg_W_mK"] = (np.asarray(pred["mode_kappa_tot_avg_W_mK"])
                                       * (1 + 0.2 * np.sin(np.arange(np.size(dft["mode_weights"]))))[None, :, None]
                                       ).tolist()
    pred_file = K.write_kappa_mbd({task.id: pred}, tmp_path / "kappa_mbd.json.gz")
    true = {task.id: {"kappa_tot_avg": dft["kappa_tot_avg_W_mK"], "mode_kappa_tot_avg": dft["mode_kappa_tot_avg_W_mK"],
                      "spg_num": 227}}
    pd.DataFrame.from_dict(true, orient="index").astype(object).to_json(tmp_path / "true.json", double_precision=15)
    if _in_process_matbench():
        from matbench_discovery.metrics.phonons import calc_kappa_metrics_from_dfs

        def arr(v):
            return np.asarray(v, dtype=float) if isinstance(v, list) else v

        frames = [pd.read_json(f).astype(object).map(arr) for f in (pred_file, tmp_path / "true.json")]
        out = calc_kappa_metrics_from_dfs(*frames)
        theirs = {m: float(out.loc[task.id, m]) for m in ("srd", "sre", "srme")}
    else:
        theirs = upstream_metrics_from_files(pred_file, tmp_path / "true.json")[task.id]
    table, _ = K.score_kappa({task.id: pred}, {task.id: dft})
    assert 0 < theirs["srme"] < 2 and theirs["srd"] == pytest.approx(2 * 0.3 / 2.3, rel=1e-12)
    for m in ("srd", "sre", "srme"):
        assert table.loc[task.id, m] == pytest.approx(theirs[m], rel=1e-10, abs=1e-12), m


@needs_matbench
def test_spectrum_w1_matches_live_matbench():
    """Against upstream's phonon_spectrum_w1 where the installed commit has it (added after
    023dca9; see the analytic test otherwise)."""
    if not _in_process_matbench():
        pytest.skip("phonon_spectrum_w1 is checked in-process only")
    phonons = importlib.import_module("matbench_discovery.metrics.phonons")
    if not hasattr(phonons, "phonon_spectrum_w1"):
        pytest.skip("the installed matbench-discovery predates phonon_spectrum_w1")
    import pandas as pd

    f1, w1 = np.array([[0.0, 1.0, 4.0], [2.0, 3.0, 5.0]]), np.array([6.0, 2.0])
    f2 = np.array([[0.1, 1.2, 3.9], [2.2, 2.8, 5.5], [1.0, 1.0, 1.0]])
    theirs = phonons.phonon_spectrum_w1(pd.Series({"ph_freqs": f1, "mode_weights": w1}),
                                        pd.Series({"ph_freqs": f2, "mode_weights": np.ones(3)}))
    assert K.spectrum_w1(f1, w1, f2, np.ones(3)) == pytest.approx(theirs, rel=1e-12)


def test_later_upstream_edge_rules():
    """Rules of upstream's later metrics/phonons.py (0519808), each on an analytic case."""
    mode = [[[1.0], [3.0]]]
    ref = {"kappa_tot_avg_W_mK": [2.0], "mode_kappa_tot_avg_W_mK": mode}
    good = {"kappa_tot_avg_W_mK": [2.0], "mode_kappa_tot_avg_W_mK": mode, "mode_weights": [1.0, 1.0]}
    assert S.material_metrics(good, ref) == {"srd": 0.0, "sre": 0.0, "srme": 0.0, "penalty": None}
    # both kappa 0: SRD 0; SRME 0 when the modes agree, 2 when they do not
    zero = {"kappa_tot_avg_W_mK": [0.0], "mode_kappa_tot_avg_W_mK": [[[0.0], [0.0]]]}
    assert S.material_metrics({**zero, "mode_weights": [1.0, 1.0]}, zero)["srme"] == 0.0
    assert S.material_metrics({**zero, "mode_weights": [1.0, 1.0]}, zero)["srd"] == 0.0
    assert S.srme([[[1.0], [-1.0]]], [[[0.0], [0.0]]], [1.0, 1.0], [0.0], [0.0])[0] == 2.0
    # a negative model kappa is invalid: SRD -2, SRME censored to 2
    neg = S.material_metrics({**good, "kappa_tot_avg_W_mK": [-0.5]}, ref)
    assert neg == {"srd": -2.0, "sre": 2.0, "srme": 2.0, "penalty": "failed"}
    # invalid weights (zero sum, negative) are failures too
    for w in ([0.0, 0.0], [1.0, -1.0], [np.nan, 1.0]):
        assert S.material_metrics({**good, "mode_weights": w}, ref)["penalty"] == "failed", w
    # a bad reference is an error, not a score
    for bad in ([np.nan], [-1.0]):
        with pytest.raises(ValueError, match="reference"):
            S.material_metrics(good, {**ref, "kappa_tot_avg_W_mK": bad})
    # imaginary-mode flags: NaN or None (a gap in a table) is not a flag, 1.0 is
    assert S.penalty_reason({**good, "has_imaginary_modes": float("nan")}) is None
    assert S.penalty_reason({**good, "has_imaginary_modes": None}) is None
    assert S.penalty_reason({**good, "has_imaginary_modes": 1.0}) == "imaginary_modes"


def test_spectrum_w1_analytic():
    f = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 6.0]])
    # a rigid shift by c moves every mode by c: W1 = c
    assert K.spectrum_w1(f + 0.25, [1, 1], f, [1, 1]) == pytest.approx(0.25, rel=1e-12)
    # q-point weights are repetitions: an irreducible mesh equals its full mesh
    full = np.array([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0], [0.0, 1.0, 2.0], [3.0, 4.0, 6.0]])
    assert K.spectrum_w1(f, [3, 1], full, None) == pytest.approx(0.0, abs=1e-15)
    # two single modes a and b: |a - b|
    assert K.spectrum_w1([[1.0]], [1], [[3.5]], [1]) == pytest.approx(2.5)
    # moving one of four equally weighted modes by d: d/4
    assert K.spectrum_w1([[0.0, 1.0, 2.0, 3.0 + 0.8]], None, [[0.0, 1.0, 2.0, 3.0]], None) == pytest.approx(0.2)
    assert K.spectrum_w1(None, None, f, [1, 1]) is None
    assert K.spectrum_w1([[np.nan, 1.0]], None, [[1.0, 1.0]], None) is None


def test_summary_rates_and_spectrum_w1():
    mode = [[[1.0, 2.0], [3.0, 2.0]]]
    freqs = [[0.0, 1.0], [2.0, 3.0]]
    ref = {"kappa_tot_avg_W_mK": [4.0], "mode_kappa_tot_avg_W_mK": mode, "mode_weights": [1.0, 1.0],
           "frequencies_THz": freqs}
    ok = dict(ref, has_imaginary_modes=False, frequencies_THz=(np.asarray(freqs) + 0.5).tolist())
    preds = {"ok": ok, "imag": dict(ref, has_imaginary_modes=True),
             "neg": dict(ref, kappa_tot_avg_W_mK=[-1.0], frequencies_THz=None)}
    table, summary = K.score_kappa(preds, {m: ref for m in ("ok", "imag", "neg", "missing")})
    assert summary["failure_rate"] == pytest.approx(3 / 4)  # imag, neg and missing are censored
    assert summary["imaginary_mode_rate"] == pytest.approx(1 / 4)
    assert table.loc["ok", "spectrum_w1_THz"] == pytest.approx(0.5)
    assert table.loc["imag", "spectrum_w1_THz"] == pytest.approx(0.0)
    assert summary["spectrum_w1_THz"] == pytest.approx(0.25) and summary["n_spectrum_w1"] == 2
    assert summary["srd"] == pytest.approx((0 + 0 - 2 - 2) / 4)


def test_mbd_columns_and_round_trip(si_dft_coarse, tmp_path):
    """kappa_mbd.json.gz holds Matbench Discovery's columns; pandas reads it back whole."""
    import pandas as pd

    task, dft = si_dft_coarse
    failed = {"id": "x", "failed": True, "status": "failed", "error": "fc2: boom", "has_imaginary_modes": None,
              "spacegroup_initial": 225, "spacegroup_final": None, "kappa_tot_W_mK": None, "temperatures_K": [300.0]}
    path = K.write_kappa_mbd({task.id: dft, "x": failed}, tmp_path / "kappa_mbd.json.gz")
    back = pd.read_json(path)
    assert list(back.columns) == list(K.MBD_COLUMNS)
    row = back.loc[task.id]
    np.testing.assert_allclose(row["kappa_tot_rta"], dft["kappa_tot_W_mK"], rtol=1e-14, atol=1e-12)
    mode = np.asarray(row["mode_kappa_tot_rta"])
    assert mode.shape == (1, len(dft["mode_weights"]), 6, 6)
    np.testing.assert_allclose(mode[..., :3].mean(-1), dft["mode_kappa_tot_avg_W_mK"], rtol=1e-12)
    assert not row["has_imag_ph_modes"] and row["init_spg_num"] == row["final_spg_num"] == 227
    assert pd.isna(back.loc["x", "kappa_tot_rta"]) and back.loc["x", "error"] == "fc2: boom"  # JSON null


def test_split_of_wigner_matrix():
    """A band-pair matrix M = diag(P) + C splits back into P and C, with the phono3py 2-3
    conventions: degenerate pairs count as populations, modes at the cutoff drop out."""
    rng = np.random.default_rng(1)
    nq, ns = 3, 4
    f = np.array([[0.0, 0.0, 0.0, 5.0], [1.0, 1.0, 2.0, 6.0], [1.5, 2.5, 3.5, 7.0]])
    p = rng.random((1, nq, ns, 6))
    c = rng.random((1, nq, ns, ns, 6))
    c = c + c.transpose(0, 1, 3, 2, 4)
    m = c.copy()
    m[:, :, np.arange(ns), np.arange(ns)] = p
    cv = rng.random((1, nq, ns)) + 0.1
    parts = S.split_mode_kappa_matrix(m, cv, f, cutoff_frequency_THz=1e-4)
    # q=0: the three acoustic modes at 0 THz take part in nothing
    assert np.all(parts["mode_kappa_p"][0, 0, :3] == 0) and np.all(parts["mode_kappa_c"][0, 0, :3] == 0)
    # q=1: modes 0 and 1 are degenerate: their pair goes half to each particle term
    np.testing.assert_allclose(parts["mode_kappa_p"][0, 1, 0], p[0, 1, 0] + m[0, 1, 0, 1])
    assert np.all(parts["mode_kappa_c"][0, 1, 0, 1] == 0)
    # q=2: nothing degenerate, P is the diagonal and C the rest
    np.testing.assert_allclose(parts["mode_kappa_p"][0, 2], p[0, 2])
    np.testing.assert_allclose(parts["mode_kappa_c"][0, 2], c[0, 2] * (1 - np.eye(ns))[..., None])
    # per-mode totals add up to P + C
    total = parts["mode_kappa_p"].sum() + parts["mode_kappa_c"].sum()
    assert parts["mode_kappa_tot"].sum() == pytest.approx(total, rel=1e-12)


def test_align_qpoints():
    q = np.array([[0, 0, 0], [0.25, 0, 0], [0.25, 0.25, 0], [0.5, 0.5, 0.5]])
    perm = np.array([2, 0, 3, 1])
    shifted = q[perm] + np.array([[0, 0, 0], [1, 0, 0], [0, -1, 0], [1, 1, 1]])
    idx = S.align_qpoints(shifted, q)
    np.testing.assert_allclose((shifted[idx] - q) % 1.0, 0.0, atol=1e-12)
    with pytest.raises(ValueError, match="not those of the reference"):
        S.align_qpoints(q + 0.1, q)
    # material_metrics reorders the model's modes before comparing
    true = {"kappa_tot_avg_W_mK": [2.0], "mode_kappa_tot_avg_W_mK": [[[1.0], [2.0], [3.0], [2.0]]],
            "qpoints": q.tolist()}
    pred = {"kappa_tot_avg_W_mK": [2.0], "mode_kappa_tot_avg_W_mK": [[[3.0], [1.0], [2.0], [2.0]]],
            "mode_weights": [1, 1, 1, 1], "qpoints": q[[2, 0, 3, 1]].tolist()}
    assert S.material_metrics(pred, true)["srme"] == pytest.approx(0.0, abs=1e-15)


def _record(kappa, mode, **kw):
    rec = {"kappa_tot_avg_W_mK": [kappa], "mode_kappa_tot_avg_W_mK": [mode], "mode_weights": [1.0] * len(mode),
           "has_imaginary_modes": False, "spacegroup_initial": 216, "spacegroup_final": 216, "failed": False}
    rec.update(kw)
    return rec


def test_score_kappa_penalties_and_means():
    mode = [[1.0, 2.0], [3.0, 2.0]]
    ref = _record(4.0, mode)
    refs = {m: ref for m in ("ok", "imag", "broken", "failed", "missing")}
    preds = {
        "ok": _record(4.0, [[1.0, 2.0], [3.0, 2.0]]),
        "imag": _record(4.0, mode, has_imaginary_modes=True),
        "broken": _record(4.0, mode, spacegroup_final=186),
        "failed": {"failed": True, "error": "relaxation: RuntimeError: boom", "kappa_tot_avg_W_mK": None},
    }
    table, summary = K.score_kappa(preds, refs)
    assert table.loc["ok", "srme"] == 0.0 and table.loc["ok", "sre"] == 0.0
    for m, reason in (("imag", "imaginary_modes"), ("broken", "broken_symmetry"), ("failed", "failed"),
                      ("missing", "failed")):
        assert table.loc[m, "srme"] == 2.0 and table.loc[m, "penalty"] == reason, m
    assert table.loc["failed", "sre"] == 2.0 and table.loc["missing", "sre"] == 2.0
    assert table.loc["imag", "sre"] == 0.0  # a conductivity that exists is still compared (as matbench)
    assert table.loc["failed", "error"].startswith("relaxation")
    assert summary["srme"] == pytest.approx(8.0 / 5) and summary["sre"] == pytest.approx(4.0 / 5)
    assert (summary["n_materials"], summary["n_penalised"], summary["n_failed"], summary["n_missing"]) == (5, 4, 2, 1)
    with pytest.raises(ConfigError, match="no reference for extra"):
        K.score_kappa({**preds, "extra": preds["ok"]}, refs)


def test_protocol_fields_and_validation():
    p = K.KappaProtocol()
    d = p.record()["protocol"]
    assert d["name"] == "kappa" and d["temperature_K"] == 300.0 and d["displacement_distance_A"] == 0.03
    assert (d["relax_fmax_eV_A"], d["relax_max_steps"], d["symprec"]) == (1e-4, 300, 1e-5)
    assert d["conductivity_type"] == "wigner" and d["method"] == "rta" and d["is_isotope"] is True
    assert K.KappaProtocol(is_isotope=False).digest() != p.digest()
    with pytest.raises(ConfigError, match="conductivity_type"):
        K.KappaProtocol(conductivity_type="lbte")
    with pytest.raises(ConfigError, match="not implemented"):
        K.KappaProtocol(method="lbte")


# ----------------------------------------------------------------------------- kappa103 data


def _structure(**info) -> Atoms:
    a = Atoms("NaCl", scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5]], cell=np.eye(3) * 3.0, pbc=True)
    a.info.update(info)
    return a


def test_task_from_atoms_errors_name_structure_and_key():
    good = {"mp_id": "mp-1", "fc2_supercell": np.eye(3, dtype=int) * 4, "fc3_supercell": [2, 2, 2],
            "q_mesh": np.array([9, 9, 9]), "primitive_matrix": np.eye(3)}
    task = K.task_from_atoms(_structure(**good), where="x.extxyz", index=0)
    assert task.fc3_supercell == ((2, 0, 0), (0, 2, 0), (0, 0, 2)) and task.q_mesh == (9, 9, 9)
    for key in ("fc2_supercell", "fc3_supercell", "q_mesh"):
        info = {k: v for k, v in good.items() if k != key}
        with pytest.raises(ValueError, match=rf"x\.extxyz: structure mp-1 \(#3\).*'{key}'"):
            K.task_from_atoms(_structure(**info), where="x.extxyz", index=3)
    with pytest.raises(ValueError, match="mp-1.*'q_mesh' must be three positive integers"):
        K.task_from_atoms(_structure(**{**good, "q_mesh": [9, 9]}), where="x.extxyz")
    with pytest.raises(ValueError, match="'fc2_supercell' must be a 3x3 integer matrix"):
        K.task_from_atoms(_structure(**{**good, "fc2_supercell": [[1.5, 0, 0], [0, 1, 0], [0, 0, 1]]}))


def test_load_kappa103_bad_header_names_file_and_structure(tmp_path):
    import ase.io

    ok = _structure(mp_id="mp-1", fc2_supercell=[2, 2, 2], fc3_supercell=[2, 2, 2], q_mesh=[3, 3, 3])
    bad = _structure(mp_id="mp-2", fc2_supercell=[2, 2, 2], q_mesh=[3, 3, 3])
    ase.io.write(tmp_path / K.KAPPA103_FILES["structures"], [ok, bad], format="extxyz")
    (tmp_path / K.KAPPA103_FILES["kappas"]).write_bytes(b"")
    with pytest.raises(InputFileError, match=r"phononDB-PBE-structures\.extxyz.*mp-2.*'fc3_supercell'"):
        K.load_kappa103(data_dir=tmp_path)


def test_kappa103_dir_errors_and_offline_download(tmp_path, monkeypatch):
    monkeypatch.delenv(K.KAPPA103_ENV, raising=False)
    with pytest.raises(InputFileError, match="lacks phononDB-PBE-structures.extxyz"):
        K.kappa103_dir(data_dir=tmp_path)
    monkeypatch.setenv(K.KAPPA103_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(InputFileError, match="PHONFT_KAPPA103_DIR"):
        K.kappa103_dir()
    monkeypatch.delenv(K.KAPPA103_ENV)
    monkeypatch.setattr(K.kappa103, "_shared_candidates", lambda: [])

    def offline(material, url, dest, timeout_s=60.0):
        raise NetworkError(material, f"could not download {url} (no network).", "connect")

    monkeypatch.setattr("phonft.cache.download", offline)
    with pytest.raises(NetworkError, match=r"raw\.githubusercontent\.com/MPA2suite/k_SRME.*PHONFT_KAPPA103_DIR"):
        K.kappa103_dir(cache_dir=tmp_path / "cache")
    with pytest.raises(InputFileError, match="allow the download"):
        K.kappa103_dir(cache_dir=tmp_path / "cache", download=False)


def test_kappa103_download_checks_sha256(tmp_path, monkeypatch):
    monkeypatch.delenv(K.KAPPA103_ENV, raising=False)
    monkeypatch.setattr(K.kappa103, "_shared_candidates", lambda: [])

    def wrong(material, url, dest, timeout_s=60.0):
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        Path(dest).write_bytes(b"not the file")
        return dest

    monkeypatch.setattr("phonft.cache.download", wrong)
    with pytest.raises(NetworkError, match="SHA-256"):
        K.kappa103_dir(cache_dir=tmp_path)
    assert not any((tmp_path / "kappa103").iterdir())  # the bad file was removed


@needs_kappa103
def test_kappa103_download_from_public_copy(tmp_path, monkeypatch):
    """The download path, served from the shared copy: files land in the cache, checked."""
    import shutil

    monkeypatch.delenv(K.KAPPA103_ENV, raising=False)
    monkeypatch.setattr(K.kappa103, "_shared_candidates", lambda: [])
    urls = []

    def serve(material, url, dest, timeout_s=60.0):
        urls.append(url)
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(KAPPA103 / url.rsplit("/", 1)[1], dest)
        return dest

    monkeypatch.setattr("phonft.cache.download", serve)
    folder = K.kappa103_dir(cache_dir=tmp_path)
    assert folder == tmp_path / "kappa103" and len(urls) == 3
    assert K.load_kappa103(cache_dir=tmp_path, first_n=1)[0].id == "mp-19717"


@needs_kappa103
def test_load_kappa103_and_subsets():
    tasks = K.load_kappa103(data_dir=KAPPA103)
    assert len(tasks) == 103 and len({t.id for t in tasks}) == 103
    first = tasks[0]
    assert (first.id, first.name, first.spacegroup) == ("mp-19717", "PbTe", 225)
    assert first.fc2_supercell == ((4, 0, 0), (0, 4, 0), (0, 0, 4)) and first.q_mesh == (19, 19, 19)
    assert first.primitive_matrix == ((0.0, 0.5, 0.5), (0.5, 0.0, 0.5), (0.5, 0.5, 0.0))
    wurtzite = [t for t in tasks if t.spacegroup == 186]
    assert len(wurtzite) == 33 and wurtzite[0].q_mesh == (19, 19, 15)
    assert [t.id for t in K.load_kappa103(data_dir=KAPPA103, first_n=2)] == ["mp-19717", "mp-1132"]
    sub = K.load_kappa103(data_dir=KAPPA103, ids=["mp-2542", "mp-1265"])
    assert [t.id for t in sub] == ["mp-2542", "mp-1265"]
    with pytest.raises(InputFileError, match="has no material mp-149"):
        K.load_kappa103(data_dir=KAPPA103, ids=["mp-149"])
    refs = K.kappa103_references(["mp-2542"], data_dir=KAPPA103)
    r = refs["mp-2542"]
    mode = np.asarray(r["mode_kappa_tot_avg_W_mK"])
    assert r["name"] == "BeO" and r["spacegroup_initial"] == 186 and mode.shape[0] == 1
    assert mode.sum() / np.sum(r["mode_weights"]) == pytest.approx(r["kappa_tot_avg_W_mK"][0], rel=1e-6)
    assert np.sum(r["mode_weights"]) == 19 * 19 * 15


@needs_kappa103
def test_kappa103_ids_action_writes_the_planned_subset(tmp_path):
    """`phonft evaluate kappa103-ids` (the evaluate_kappa103_ids checkpoint) lists what the config
    alone cannot: the first N structures in the data's order."""
    import json

    from phonft.cli import main

    out = tmp_path / "kappa103-ids.json"
    settings = json.dumps({"data_dir": str(KAPPA103), "ids": [], "first_n": 2})
    assert main(["evaluate", "kappa103-ids", "--settings", settings, "--out", str(out)]) == 0
    assert json.loads(out.read_text())["ids"] == ["mp-19717", "mp-1132"]


# ----------------------------------------------------------------------------- DFT and model sides


@pytest.fixture(scope="module")
def si_params(si_fc3) -> Path:
    """phono3py_params.yaml of the vendored Si-PBE-fc3 data, written by phonft's reader."""
    return si_fc3[1] / "phono3py_params.yaml"


@pytest.fixture(scope="module")
def si_dft_coarse(si_params):
    task = K.task_from_phono3py_params(si_params, "Si-PBE-fc3", q_mesh=(5, 5, 5))
    return task, K.dft_kappa(si_params, task)


def test_task_from_phono3py_params(si_params):
    task = K.task_from_phono3py_params(si_params, "Si-PBE-fc3")
    assert task.q_mesh == (11, 11, 11) and len(task.atoms) == 8
    assert task.fc3_supercell == task.fc2_supercell == ((2, 0, 0), (0, 2, 0), (0, 0, 2))
    assert task.primitive_matrix == ((0.0, 0.5, 0.5), (0.5, 0.0, 0.5), (0.5, 0.5, 0.0))


def test_dft_si_kappa_matches_phono3py_readme(si_kappa_11):
    """phono3py's README: 119.5 W/m-K at 300 K on 11x11x11 with `phono3py-load --br`, i.e.
    the particle-like (Peierls-Boltzmann) RTA conductivity without isotope scattering."""
    rec = si_kappa_11
    assert rec["status"] == "ok", rec["error"]
    assert np.sum(rec["mode_weights"]) == 11**3
    assert rec["kappa_tot_avg_W_mK"][0] == pytest.approx(119.5, abs=0.3)
    assert rec["kappa_c_W_mK"][0][:3] == [0.0, 0.0, 0.0]


def test_written_force_constants_are_the_ones_kappa_uses(si_fc3):
    """The references folder's fc3.hdf5 and fc2.hdf5 (full format) are the force constants
    the DFT kappa run builds from the folder's phono3py_params.yaml, so they give the same
    119.5 W/m-K without a second 11x11x11 run."""
    from phono3py.file_IO import read_fc2_from_hdf5, read_fc3_from_hdf5

    from phonft.evaluate.kappa.phono3py_steps import produce_fc3
    from phonft.phonopy_files import load_phono3py_yaml

    _, out = si_fc3
    ph3 = load_phono3py_yaml(out / "phono3py_params.yaml")
    produce_fc3(ph3, K.KappaProtocol())
    np.testing.assert_allclose(read_fc3_from_hdf5(out / "fc3.hdf5"), ph3.fc3, rtol=0, atol=1e-10)  # eV/Å³
    fc2 = read_fc2_from_hdf5(out / "fc2.hdf5")  # eV/Å², (64, 64, 3, 3)
    np.testing.assert_allclose(fc2[ph3.phonon_primitive.p2s_map], ph3.fc2, rtol=0, atol=1e-10)


def test_dft_record_format(si_dft_coarse, tmp_path):
    task, rec = si_dft_coarse
    assert rec["status"] == "ok" and not rec["failed"] and rec["kind"] == "dft"
    assert rec["has_imaginary_modes"] is False and rec["broken_symmetry"] is False
    assert rec["spacegroup_initial"] == rec["spacegroup_final"] == 227
    assert rec["protocol"]["name"] == "kappa" and rec["protocol_digest"] == K.KappaProtocol().digest()
    assert "phono3py" in rec["versions"]
    tot, p, c = (np.asarray(rec[k]) for k in ("kappa_tot_W_mK", "kappa_p_W_mK", "kappa_c_W_mK"))
    np.testing.assert_allclose(tot, p + c)
    assert 0 < c[0, 0] < 0.05 * p[0, 0]  # Si: coherences are a small correction
    mode = np.asarray(rec["mode_kappa_tot_avg_W_mK"])
    w = np.asarray(rec["mode_weights"])
    assert mode.shape == (1, len(w), 6) and w.sum() == 125
    assert mode.sum() / w.sum() == pytest.approx(rec["kappa_tot_avg_W_mK"][0], rel=1e-10)
    assert np.asarray(rec["qpoints"]).shape == (len(w), 3)
    assert np.asarray(rec["frequencies_THz"]).shape == (len(w), 6)
    # a record compares with itself at SRME 0, and survives a (gzip) round trip
    path = K.write_kappa_record(tmp_path / "k.json.gz", rec)
    back = K.read_kappa_record(path)
    table, summary = K.score_kappa({task.id: back}, {task.id: rec})
    assert summary["srme"] == pytest.approx(0.0, abs=1e-12) and table.loc[task.id, "penalty"] is None
    with pytest.raises(InputFileError, match="does not exist"):
        K.read_kappa_record(tmp_path / "missing.json")
    # a model's summary reads the DFT record beside its reference: <references>/<m>/kappa.json
    K.write_kappa_record(tmp_path / "references" / task.id / "kappa.json", rec)
    K.write_kappa_record(tmp_path / "evaluate" / "m" / "kappa" / f"{task.id}.json", rec)
    block = K.kappa_summary(tmp_path / "evaluate" / "m", tmp_path / "references", [task.id],
                            mbd_out=tmp_path / "evaluate" / "m" / "kappa_mbd.json.gz")
    assert block["srme_mean"] == pytest.approx(0.0, abs=1e-12) and block["n_materials"] == 1
    assert block["failure_rate"] == 0.0 and block["imaginary_mode_rate"] == 0.0
    assert block["spectrum_w1_THz"] == 0.0 and block["per_material"][0]["spectrum_w1_THz"] == 0.0
    import pandas as pd

    assert list(pd.read_json(tmp_path / "evaluate" / "m" / "kappa_mbd.json.gz").index) == [task.id]


def test_dft_task_mismatch_is_an_error(si_params):
    task = K.task_from_phono3py_params(si_params, "Si-PBE-fc3", q_mesh=(3, 3, 3))
    other = K.KappaTask(id="x", atoms=task.atoms, fc2_supercell=task.fc2_supercell,
                        fc3_supercell=((3, 0, 0), (0, 3, 0), (0, 0, 3)), primitive_matrix="auto", q_mesh=(3, 3, 3))
    with pytest.raises(InputFileError, match="fc3 supercell"):
        K.dft_kappa(si_params, other)


def _small_si_model():
    from phonft_testdata import small_mace_model

    return small_mace_model(("Si",), dtype="float64", seed=0)


class _NegatedForces:
    """A model whose forces have the wrong sign: every phonon mode becomes imaginary."""

    def __init__(self, model):
        self._model = model
        self.spec = f"{model.spec}:negated"

    def __getattr__(self, name):
        return getattr(self._model, name)

    def predict(self, structures, batch_size=8, stress=False):
        out = self._model.predict(structures, batch_size=batch_size, stress=stress)
        for r in out:
            r["forces"] = -r["forces"]
        return out


def test_model_pipeline_small_mace(si_dft_coarse):
    """End to end with a small random MACE (seed 0 happens to be dynamically stable on Si),
    then the same model with negated forces: imaginary modes, flagged, SRME 2."""
    task, dft = si_dft_coarse
    model = _small_si_model()
    rec = K.model_kappa(model, task, K.KappaProtocol(relax_max_steps=20), progress=False)
    assert rec["status"] == "ok", rec["error"]
    assert rec["kind"] == "model" and rec["model"] == model.spec and rec["id"] == "Si-PBE-fc3"
    for key in ("relaxation", "n_supercells", "timings_s", "min_frequency_THz", "spacegroup_initial",
                "spacegroup_final", "kappa_tot_W_mK", "mode_kappa_tot_avg_W_mK", "mode_weights", "qpoints",
                "frequencies_THz", "protocol", "protocol_digest", "versions", "task"):
        assert rec[key] is not None, key
    assert rec["n_supercells"] == {"fc2": 1, "fc3": 111, "fc2_atoms": 64, "fc3_atoms": 64}
    assert rec["relaxation"]["n_steps"] <= 20 and rec["spacegroup_initial"] == rec["spacegroup_final"] == 227
    assert rec["has_imaginary_modes"] is False and rec["broken_symmetry"] is False
    assert {"relaxation", "fc2_forces", "fc3_forces", "conductivity", "total"} <= set(rec["timings_s"])
    assert np.isfinite(rec["kappa_tot_avg_W_mK"][0]) and rec["kappa_tot_avg_W_mK"][0] > 0
    np.testing.assert_allclose(np.asarray(rec["qpoints"]), np.asarray(dft["qpoints"]), atol=1e-12)
    table, summary = K.score_kappa({task.id: rec}, {task.id: dft})
    assert 0 < table.loc[task.id, "srme"] < 2 and table.loc[task.id, "penalty"] is None

    bad = K.model_kappa(_NegatedForces(model), task, K.KappaProtocol(relax_max_steps=0), progress=False)
    assert bad["has_imaginary_modes"] is True and bad["status"] == "flagged" and not bad["failed"]
    assert bad["min_frequency_THz"] < -1.0
    assert bad["kappa_tot_avg_W_mK"] is None and "fc3_forces" not in bad["timings_s"]  # skipped
    table, summary = K.score_kappa({task.id: bad}, {task.id: dft})
    assert table.loc[task.id, "srme"] == 2.0 and table.loc[task.id, "sre"] == 2.0
    assert table.loc[task.id, "penalty"] == "imaginary_modes" and summary["n_imaginary"] == 1


def test_failing_model_gives_failed_record(si_dft_coarse):
    task, dft = si_dft_coarse
    model = _small_si_model()

    def broken(*args, **kwargs):
        raise RuntimeError("model exploded")

    model.predict = broken  # every force call fails
    rec = K.model_kappa(model, task, K.KappaProtocol(relax_max_steps=0), progress=False)
    assert rec["failed"] and rec["status"] == "failed"
    assert rec["error"] == "fc2: RuntimeError: model exploded" and "Traceback" in rec["error_traceback"]
    table, summary = K.score_kappa({task.id: rec}, {task.id: dft})
    assert table.loc[task.id, "srme"] == 2.0 and summary["n_failed"] == 1


def test_unknown_element_fails_the_material_not_the_run(si_dft_coarse):
    task, _ = si_dft_coarse
    from phonft_testdata import small_mace_model

    model = small_mace_model(("C",), dtype="float64")
    rec = K.model_kappa(model, task, progress=False)
    assert rec["failed"] and "does not know element(s) Si" in rec["error"]


def test_model_pipeline_chgnet_si(si_dft_coarse, chgnet64):
    """CHGNet on Si at a coarse mesh: relaxed with symmetry kept, no imaginary modes, a
    finite Wigner conductivity and an SRME strictly between 0 and 2."""
    task, dft = si_dft_coarse
    rec = K.model_kappa(chgnet64, task, progress=False)
    assert rec["status"] == "ok", rec["error"]
    assert rec["relaxation"]["converged"] and rec["broken_symmetry"] is False
    assert rec["has_imaginary_modes"] is False
    assert 0.5 < rec["kappa_tot_avg_W_mK"][0] < 50  # CHGNet underestimates Si badly (DFT ~110)
    table, summary = K.score_kappa({task.id: rec}, {task.id: dft})
    assert 0 < summary["srme"] < 2 and table.loc[task.id, "penalty"] is None


def test_model_kappa_many_writes_and_resumes(tmp_path, monkeypatch):
    task = K.task_from_atoms(_structure(mp_id="mp-1", fc2_supercell=[2, 2, 2], fc3_supercell=[2, 2, 2],
                                        q_mesh=[3, 3, 3]))
    calls = []

    class Model:
        spec = "fake"

    def fake(model, t, protocol, batch_atoms=1024, progress=True):
        calls.append(t.id)
        return {"id": t.id, "model": model.spec, "failed": False, "status": "ok", "kappa_tot_avg_W_mK": [1.0],
                "timings_s": {"total": 0.0}, **protocol.record()}

    monkeypatch.setattr(K.compute, "model_kappa", fake)  # model_kappa_many calls it there
    recs = K.model_kappa_many(Model(), [task], out_dir=tmp_path, progress=False)
    assert calls == ["mp-1"] and (tmp_path / "mp-1.json.gz").is_file()
    again = K.model_kappa_many(Model(), [task], out_dir=tmp_path, progress=False)
    assert calls == ["mp-1"] and again == recs  # reused
    K.model_kappa_many(Model(), [task], K.KappaProtocol(is_isotope=False), out_dir=tmp_path, progress=False)
    assert calls == ["mp-1", "mp-1"]  # another protocol: recomputed
