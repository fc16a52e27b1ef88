"""The figures stage: every figure kind drawn from a results tree in the real record formats."""

from __future__ import annotations

import json

import pandas as pd

from phonft_testdata import reference_phonopy, write_thermal_case


def _png(path):
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_figures_from_results(tmp_path, references):
    """Every figure kind is drawn from a results/ tree made of the real record formats."""
    from phonft.evaluate.bands import band_record
    from phonft.evaluate.run import summarize
    from phonft.figures import draw_all
    from phonft.plan import FigureSet

    ev = tmp_path / "evaluate"
    for m, (dft, base, ft) in {"A": (500.0, 400.0, 450.0), "B": (800.0, 900.0, 820.0)}.items():
        write_thermal_case(ev, "refs", m, dft, True)
        write_thermal_case(ev, "base", m, base, m != "B")
        write_thermal_case(ev, "ft", m, ft, True)
    ph = reference_phonopy(references("MgO"))
    for model in ("base", "ft"):
        (ev / model / "A" / "bands.json").write_text(json.dumps({**band_record(ph, ph, npoints=5)}))
        well = {"qpoint": [0.5, 0.5, 0.5], "dft_frequency_THz": -6.0, "amplitudes_amu_half_A": [-1, 0, 1],
                "energy_dft_harmonic_eV_per_cell": [-0.07, 0, -0.07], "energy_model_eV_per_cell": [-0.05, 0, -0.05],
                "model_well_depth_meV_per_cell": 50.0}
        (ev / model / "double_well").mkdir()
        (ev / model / "double_well" / "A.json").write_text(json.dumps(well))
    summarize("base", "chgnet", ["A", "B"], ev / "base", ev / "refs")
    summarize("ft", "x/model.pt", ["A", "B"], ev / "ft", ev / "refs", base_dir=ev / "base", base_name="base")
    run = tmp_path / "finetune" / "r"
    run.mkdir(parents=True)
    pd.DataFrame([{"epoch": e, "train_hessian_mae": 1 / (e + 1), "val_hessian_mae": 1 / (e + 2),
                   "replay_force_mae": 0.01 * e} for e in range(4)]).to_csv(run / "metrics.csv", index=False)
    (run / "train.json").write_text(json.dumps({"best_epoch": 2}))
    figures = FigureSet(models=("base", "ft"), finetuned=("ft",), materials=("A",), double_well=("A",), runs=("r",))
    written = draw_all(ev, figures, tmp_path / "figures", finetune_dir=tmp_path / "finetune")
    names = sorted(p.relative_to(tmp_path / "figures").as_posix() for p in written)
    assert names == ["bands/A.png", "double_well/A.png", "improvement.png", "mdr_parity.png",
                     "training_curve/r.png"]
    assert all(_png(p) for p in written)


def test_kappa_parity_figure(tmp_path):
    from phonft.figures import plot_kappa_parity

    out = plot_kappa_parity({"base": [("Si", 120.0, 60.0)], "ft": [("Si", 120.0, 100.0), ("X", 2.0, 3.0)]},
                            tmp_path / "k.png")
    assert _png(out)
