"""Every figure phonft draws, from the files under ``results/``, in one shared style.

- :func:`plot_training_curve`: Hessian MAE and forgetting (drift from the base) against epoch (a run);
- :func:`plot_mdr_parity`: omega_max, S, F and C_V, DFT against each model;
- :func:`plot_bands`: DFT and model band structures along the seekpath path;
- :func:`plot_double_well`: the energy along an unstable mode, model against DFT harmonic;
- :func:`plot_kappa_parity`: log-log thermal conductivity, DFT against each model;
- :func:`plot_improvement`: the percentage improvement of each fine-tuning run over its base;
- :func:`plot_strategies`: every model side by side (``evaluate/strategies.csv``).

Which figures are drawn, and under which names, is :func:`phonft.plan.figure_list`'s, the
same list the ``figures`` rule declares; :func:`draw_all` draws it.

Colours are fixed per role (DFT black, models from one palette in a stable order), labels
carry units, and every figure is written atomically as PNG.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from phonft.errors import InputFileError  # noqa: E402
from phonft.io import atomic_write_bytes, read_json  # noqa: E402
from phonft.plan.figures import FigureSet, figure_list  # noqa: E402

DFT_COLOR = "black"
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442"]
"""Okabe-Ito colours (colour-blind safe); model i gets PALETTE[i]."""
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]
STYLE = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
         "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.grid": True, "grid.alpha": 0.3,
         "savefig.dpi": 150, "figure.dpi": 100}

MDR_PANELS = [("omega_max_K", r"$\omega_\mathrm{max}$", "K"), ("S_300K", "S at 300 K", "J/K/mol"),
              ("F_300K", "F at 300 K", "kJ/mol"), ("C_V_300K", r"$C_V$ at 300 K", "J/K/mol")]


def _result(path: Path) -> Path:
    """``path``, or an :class:`InputFileError` when that results file, which a figure is
    drawn from, does not exist."""
    if not path.is_file():
        raise InputFileError(path, "is missing.", "run the evaluate (and finetune) stages first, or point "
                                                  "--evaluate / --finetune at their results.")
    return path


def _save(fig, path: str | os.PathLike) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def plot_training_curve(metrics: Sequence[dict[str, float]], path: str | os.PathLike, title: str = "",
                        best_epoch: int | None = None) -> Path:
    """Hessian MAE (train, validation) and the drift from the base model on the held-back
    replay structures (forces meV/Å, energies meV/atom) against epoch."""
    with plt.rc_context(STYLE):
        epochs = [m["epoch"] for m in metrics]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6), constrained_layout=True)
        for key, label, style in (("train_hessian_mae", "train (sampled columns)", "o-"),
                                  ("val_hessian_mae", "validation (fixed columns, EMA)", "s-")):
            pts = [(e, m[key]) for e, m in zip(epochs, metrics) if m.get(key) not in (None, "")]
            if pts:
                ax1.plot(*zip(*pts), style, label=label, ms=4)
        if best_epoch is not None:
            ax1.axvline(best_epoch, color="0.5", ls="--", lw=1, label=f"kept EMA weights (epoch {best_epoch})")
        ax1.set_xlabel("epoch")
        ax1.set_ylabel("Hessian column MAE (eV/Å²)")
        ax1.set_title("phonon loss")
        ax1.legend()
        drawn = False
        for key, label, style, color in (("drift_force_mae", "force drift (meV/Å)", "d-", PALETTE[2]),
                                         ("drift_energy_mae", "energy drift (meV/atom)", "^-", PALETTE[3])):
            pts = [(e, 1000 * m[key]) for e, m in zip(epochs, metrics) if m.get(key) not in (None, "")]
            if pts:
                ax2.plot(*zip(*pts), style, color=color, ms=4, label=label)
                drawn = True
        if drawn:
            ax2.legend()
        else:
            ax2.text(0.5, 0.5, "no replay validation frames", ha="center", va="center", transform=ax2.transAxes)
        ax2.set_xlabel("epoch")
        ax2.set_ylabel("MAE against the base model")
        ax2.set_title("forgetting (held-back replay structures, EMA)")
        if title:
            fig.suptitle(title)
        return _save(fig, path)


def training_curve_from_run(run_dir: str | os.PathLike, path: str | os.PathLike) -> Path:
    """The training curve of ``results/finetune/<run>`` (metrics.csv, train.json)."""
    import pandas as pd

    run_dir = Path(run_dir)
    metrics = pd.read_csv(_result(run_dir / "metrics.csv")).replace({np.nan: None}).to_dict("records")
    train = read_json(run_dir / "train.json") if (run_dir / "train.json").is_file() else {}
    return plot_training_curve(metrics, path, title=f"fine-tuning run {run_dir.name}",
                               best_epoch=train.get("best_epoch"))


def plot_mdr_parity(tables: dict[str, Any], path: str | os.PathLike) -> Path:
    """2x2 parity plots of the MDR quantities; ``tables`` maps model name -> mdr.csv frame."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(2, 2, figsize=(8, 7.2), constrained_layout=True)
        for ax, (key, label, unit) in zip(axes.ravel(), MDR_PANELS):
            lo, hi = np.inf, -np.inf
            for i, (name, df) in enumerate(tables.items()):
                x, y = df[f"{key}_dft"].to_numpy(float), df[f"{key}_model"].to_numpy(float)
                mae = float(np.mean(np.abs(y - x)))
                ax.scatter(x, y, s=36, marker=MARKERS[i % len(MARKERS)], color=PALETTE[i % len(PALETTE)],
                           edgecolor="white", linewidth=0.5, label=f"{name} (MAE {mae:.3g} {unit})", zorder=3)
                lo, hi = min(lo, x.min(), y.min()), max(hi, x.max(), y.max())
            pad = 0.06 * (hi - lo if hi > lo else 1.0)
            ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color=DFT_COLOR, lw=0.8, ls="--", zorder=1)
            ax.set_xlim(lo - pad, hi + pad)
            ax.set_ylim(lo - pad, hi + pad)
            ax.set_aspect("equal")
            ax.set_xlabel(f"DFT {label} ({unit})")
            ax.set_ylabel(f"model {label} ({unit})")
            ax.legend(loc="best", framealpha=0.9)
        materials = next(iter(tables.values()))["material"].tolist() if tables else []
        fig.suptitle(f"MDR phonon metrics on {len(materials)} materials: {', '.join(materials)}")
        return _save(fig, path)


def _segment_ticks(distances: list[list[float]], labels: list[str], connections: list[bool]):
    """Tick positions and labels of a band path, merging 'X|U' at disconnected joints and
    dropping a label one line lower when it would touch its left neighbour."""
    ticks, names = [distances[0][0]], [labels[0]]
    k = 1
    for seg, connected in zip(distances, connections):
        ticks.append(seg[-1])
        if connected:
            names.append(labels[k])
            k += 1
        else:
            names.append(f"{labels[k]}|{labels[k + 1]}" if k + 1 < len(labels) else labels[k])
            k += 2
    span = (ticks[-1] - ticks[0]) or 1.0
    for i in range(1, len(ticks)):
        if (ticks[i] - ticks[i - 1]) / span < 0.05 and not names[i - 1].startswith("\n"):
            names[i] = "\n" + names[i]
    return ticks, names


def plot_bands(records: dict[str, dict[str, Any]], material: str, path: str | os.PathLike) -> Path:
    """DFT and model bands of ``material``; ``records`` maps model name -> bands.json."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 4.2), constrained_layout=True)
        first = next(iter(records.values()))
        dists = first["distances_inv_A"]
        for seg_d, seg_f in zip(dists, first["frequencies_dft_THz"]):
            ax.plot(seg_d, seg_f, color=DFT_COLOR, lw=1.4)
        handles = [plt.Line2D([], [], color=DFT_COLOR, lw=1.4, label="DFT")]
        for i, (name, rec) in enumerate(records.items()):
            color = PALETTE[i % len(PALETTE)]
            for seg_d, seg_f in zip(dists, rec["frequencies_model_THz"]):
                ax.plot(seg_d, seg_f, color=color, lw=1.0, ls=(0, (4, 2)) if i % 2 == 0 else (0, (1, 1.5)))
            handles.append(plt.Line2D([], [], color=color, lw=1.0, ls="--" if i % 2 == 0 else ":",
                                      label=f"{name} (MAE {rec['band_mae_THz']:.2f} THz)"))
        ticks, names = _segment_ticks(dists, first["labels"], first["connections"])
        for t in ticks:
            ax.axvline(t, color="0.6", lw=0.6)
        ax.axhline(0.0, color="0.6", lw=0.6)
        ax.set_xticks(ticks, names)
        ax.set_xlim(ticks[0], ticks[-1])
        ax.grid(False)
        ax.set_ylabel("frequency (THz)")
        ax.set_title(f"{material}: phonon bands along the seekpath path", pad=28)
        ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(handles),
                  frameon=False, fontsize=7.5)
        return _save(fig, path)


def plot_double_well(records: dict[str, dict[str, Any]], material: str, path: str | os.PathLike) -> Path:
    """Energy (meV per primitive cell) along the most unstable DFT mode."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(5.6, 4.0), constrained_layout=True)
        first = next(iter(records.values()))
        q = np.asarray(first["amplitudes_amu_half_A"])
        e_dft = 1000 * np.asarray(first["energy_dft_harmonic_eV_per_cell"])
        ax.plot(q, e_dft, color=DFT_COLOR, lw=1.4,
                label=f"DFT harmonic ({first['dft_frequency_THz']:.2f} THz)")
        lows = [e_dft.min()]
        for i, (name, rec) in enumerate(records.items()):
            e = 1000 * np.asarray(rec["energy_model_eV_per_cell"])
            lows.append(e.min())
            ax.plot(q, e, marker=MARKERS[i % len(MARKERS)], ms=3.5, lw=1.0, color=PALETTE[i % len(PALETTE)],
                    label=f"{name} (depth {rec['model_well_depth_meV_per_cell']:.0f} meV)")
        model_low = min(lows[1:]) if len(lows) > 1 else lows[0]
        ax.set_ylim(1.6 * min(model_low, -1.0), 0.25 * abs(min(model_low, -1.0)))
        qpt = ", ".join(f"{x:g}" for x in first["qpoint"])
        ax.set_xlabel(r"mode amplitude Q (amu$^{1/2}$ Å)")
        ax.set_ylabel("E − E(0) (meV per primitive cell)")
        ax.set_title(f"{material}: energy along the unstable mode at q = ({qpt})")
        ax.legend(loc="lower center")
        return _save(fig, path)


def plot_kappa_parity(points: dict[str, list[tuple[str, float, float]]], path: str | os.PathLike,
                      srme: dict[str, float | None] | None = None) -> Path:
    """Log-log parity of kappa (W/m/K); ``points`` maps model -> [(material, dft, model)],
    ``srme`` model -> mean SRME (legend)."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(4.8, 4.6), constrained_layout=True)
        values = [v for pts in points.values() for _, a, b in pts for v in (a, b) if v and v > 0]
        lo, hi = (min(values) / 2, max(values) * 2) if values else (0.1, 1000.0)
        ax.plot([lo, hi], [lo, hi], color=DFT_COLOR, lw=0.8, ls="--")
        for f in (0.5, 2.0):
            ax.plot([lo, hi], [lo * f, hi * f], color="0.7", lw=0.6, ls=":")
        for i, (name, pts) in enumerate(points.items()):
            good = [(m, a, b) for m, a, b in pts if a and b and a > 0 and b > 0]
            if good:
                _, x, y = zip(*good)
                ax.scatter(x, y, s=40, marker=MARKERS[i % len(MARKERS)], color=PALETTE[i % len(PALETTE)],
                           edgecolor="white", linewidth=0.5, zorder=3,
                           label=f"{name} ({len(good)} material{'s' if len(good) > 1 else ''}"
                                 + (f", SRME {srme[name]:.3f})" if (srme or {}).get(name) is not None else ")"))
        tops: dict[str, tuple[float, float]] = {}
        for pts in points.values():
            for m, a, b in pts:
                if a and b and a > 0 and b > 0 and b >= tops.get(m, (a, 0.0))[1]:
                    tops[m] = (a, b)
        if len(tops) <= 12:  # name each material once, above its highest point
            for m, (a, b) in tops.items():
                ax.annotate(m, (a, b), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=7)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel(r"DFT $\kappa$ at 300 K (W/m/K)")
        ax.set_ylabel(r"model $\kappa$ at 300 K (W/m/K)")
        ax.set_title(r"thermal conductivity ($\kappa$ trace/3, dotted: ×2, ×½)")
        ax.legend(loc="upper left")
        return _save(fig, path)


IMPROVEMENT_LABELS = {"omega_max_K_mae": r"$\omega_\mathrm{max}$", "S_300K_mae": "S", "F_300K_mae": "F",
                      "C_V_300K_mae": r"$C_V$", "band_mae_THz": "bands", "kappa_srme": r"$\kappa$ SRME"}


def plot_improvement(summaries: dict[str, dict[str, Any]], path: str | os.PathLike) -> Path:
    """Grouped bars: percentage improvement of each fine-tuned model over its base."""
    with plt.rc_context(STYLE):
        keys = [k for k in IMPROVEMENT_LABELS
                if any((s.get("improvement_percent") or {}).get(k) is not None for s in summaries.values())]
        fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(keys) + 2), 3.8), constrained_layout=True)
        width = 0.8 / max(len(summaries), 1)
        x = np.arange(len(keys))
        for i, (name, s) in enumerate(summaries.items()):
            vals = [(s["improvement_percent"] or {}).get(k) for k in keys]
            heights = [v if v is not None else 0.0 for v in vals]
            bars = ax.bar(x + (i - (len(summaries) - 1) / 2) * width, heights, width,
                          color=PALETTE[(i + 1) % len(PALETTE)], label=f"{name} vs {s['base']['model']}")
            for b, v in zip(bars, vals):
                ax.annotate("n/a" if v is None else f"{v:+.0f}%", (b.get_x() + b.get_width() / 2, b.get_height()),
                            ha="center", va="bottom" if b.get_height() >= 0 else "top", fontsize=7,
                            xytext=(0, 2 if b.get_height() >= 0 else -2), textcoords="offset points")
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(x, [IMPROVEMENT_LABELS[k] for k in keys])
        ax.set_ylabel("error reduction over the base model (%)")
        ax.set_title("fine-tuning improvement per method (positive is better)")
        lo, hi = ax.get_ylim()
        ax.set_ylim(min(lo, -10) * 1.15, max(hi, 10) * 1.15)
        ax.legend(loc="best")
        return _save(fig, path)


STRATEGY_PANELS = [("omega_max_K_mae", r"$\omega_\mathrm{max}$ MAE (K)"), ("S_300K_mae", "S MAE (J/K/mol)"),
                   ("F_300K_mae", "F MAE (kJ/mol)"), ("C_V_300K_mae", r"$C_V$ MAE (J/K/mol)"),
                   ("band_mae_THz", "band MAE (THz)"), ("instability_f1", "instability F1"),
                   ("train_seconds", "training wall time (s)"), ("relax_steps_per_material", "relaxation steps"),
                   ("phonon_seconds_per_material", "phonon wall time (s)")]
"""Panels of :func:`plot_strategies`: strategies.csv column and axis label (units in brackets)."""


def plot_strategies(table, path: str | os.PathLike) -> Path:
    """One horizontal bar per model (rows of ``strategies.csv``) in each panel: held-out MAEs,
    band MAE, instability F1, training wall time and the cost of one phonon calculation per
    held-out material (relaxation steps, wall time; with the fine-tuned / base ratio)."""
    with plt.rc_context(STYLE):
        n = len(table)
        fig, axes = plt.subplots(1, len(STRATEGY_PANELS), figsize=(1.9 * len(STRATEGY_PANELS), 0.9 + 0.32 * n),
                                 sharey=True, constrained_layout=True)
        y = np.arange(n)[::-1]
        colors = [PALETTE[0] if k == "base" else PALETTE[1] if k == "finetuned" else PALETTE[2] for k in table["kind"]]
        ratios = {"relax_steps_per_material": "relax_steps_ratio", "phonon_seconds_per_material": "phonon_seconds_ratio"}
        for ax, (key, label) in zip(axes, STRATEGY_PANELS):
            vals = [float(v) if v == v and v is not None else np.nan for v in table[key]]
            ax.barh(y, np.nan_to_num(vals), color=colors)
            for yi, v, r in zip(y, vals, table[ratios[key]] if key in ratios else [None] * n):
                text = "n/a" if not np.isfinite(v) else f"{v:.3g}" + (f" (×{r:.2f})" if r == r and r is not None else "")
                ax.annotate(text, (0 if not np.isfinite(v) else v, yi), xytext=(2, 0), textcoords="offset points",
                            va="center", fontsize=6)
            ax.set_xlabel(label)
            ax.set_xlim(0, max([v for v in vals if np.isfinite(v)] or [1.0]) * 1.6)
        axes[0].set_yticks(y, list(table["model"]))
        fig.suptitle("models side by side (held-out materials; blue: base, orange: fine-tuned)")
        return _save(fig, path)


def draw_all(evaluate_dir: str | os.PathLike, figures: FigureSet, out_dir: str | os.PathLike, *,
             finetune_dir: str | os.PathLike = "results/finetune") -> list[Path]:
    """Draw every figure of :func:`phonft.plan.figure_list` into ``out_dir``; returns the paths.

    ``figures`` names the models (folders of ``evaluate_dir``), the fine-tuned ones (the
    improvement chart), the materials, double wells and runs; the list of figures, and so
    the ``figures`` rule's outputs, comes from the planner alone. A results file a figure
    needs that does not exist raises :class:`~phonft.errors.InputFileError` naming it.
    """
    import pandas as pd

    evaluate_dir, out_dir = Path(evaluate_dir), Path(out_dir)
    summaries = {m: read_json(_result(evaluate_dir / m / "summary.json")) for m in figures.models}
    written = []
    for fig in figure_list(figures):
        path = out_dir / fig.relpath
        if fig.kind == "mdr_parity":
            tables = {m: pd.read_csv(_result(evaluate_dir / m / "mdr.csv")) for m in figures.models}
            written.append(plot_mdr_parity(tables, path))
        elif fig.kind == "improvement":
            written.append(plot_improvement({m: summaries[m] for m in figures.finetuned}, path))
        elif fig.kind in ("bands", "double_well"):
            rel = f"{fig.subject}/bands.json" if fig.kind == "bands" else f"double_well/{fig.subject}.json"
            records = {m: read_json(_result(evaluate_dir / m / rel)) for m in figures.models}
            draw = plot_bands if fig.kind == "bands" else plot_double_well
            written.append(draw(records, fig.subject, path))
        elif fig.kind == "training_curve":
            written.append(training_curve_from_run(Path(finetune_dir) / fig.subject, path))
        elif fig.kind == "kappa_parity":
            from phonft.evaluate.kappa import kappa_parity_points

            srme = {m: (s.get("kappa") or {}).get("srme_mean") for m, s in summaries.items()}
            written.append(plot_kappa_parity(kappa_parity_points(evaluate_dir, figures.models), path, srme))
        elif fig.kind == "strategies":
            written.append(plot_strategies(pd.read_csv(_result(evaluate_dir / "strategies.csv")), path))
    return written
