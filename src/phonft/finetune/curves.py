"""The training-curve figure of a fine-tuning run (matplotlib, Agg)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence


def plot_training_curve(metrics: Sequence[dict[str, float]], path: str | os.PathLike, title: str = "",
                        best_epoch: int | None = None) -> Path:
    """Hessian MAE (train, validation) and replay force MAE against epoch; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from phonft.io import atomic_write_bytes

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
    ax1.legend(fontsize=8)
    pts = [(e, 1000 * m["replay_force_mae"]) for e, m in zip(epochs, metrics) if m.get("replay_force_mae") not in (None, "")]
    if pts:
        ax2.plot(*zip(*pts), "d-", color="C2", ms=4, label="replay validation frames (EMA)")
        ax2.legend(fontsize=8)
    else:
        ax2.text(0.5, 0.5, "no replay set", ha="center", va="center", transform=ax2.transAxes)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("force MAE (meV/Å)")
    ax2.set_title("replay (forgetting)")
    if title:
        fig.suptitle(title)
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=130)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
