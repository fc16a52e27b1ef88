"""The figure list: which figures the workflow draws, where, and with which caption (stdlib only).

The ``figures`` rule's outputs and :func:`phonft.figures.draw_all` both come from
:func:`figure_list`, so the two cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from phonft.protocols import Protocol

CAPTIONS = {
    "mdr_parity": ("mdr_parity.rst", "Evaluation"),
    "improvement": ("improvement.rst", "Evaluation"),
    "bands": ("bands.rst", "Band structures"),
    "double_well": ("double_well.rst", "Unstable modes"),
    "training_curve": ("training_curve.rst", "Fine-tuning"),
    "kappa_parity": ("kappa_parity.rst", "Evaluation"),
    "strategies": ("strategies.rst", "Evaluation"),
}
"""Figure kind -> (caption file under workflow/report/, report category)."""


@dataclass(frozen=True)
class FigureSet(Protocol):
    """What the figures are drawn from (the ``figures`` action's settings).

    Attributes
    ----------
    models
        Scored model names (folders of ``results/evaluate``), in palette order.
    finetuned
        Those of ``models`` that have a base model (the improvement chart).
    materials, double_well
        Materials with a band overlay, and with a double-well scan.
    runs
        Fine-tuning runs with a training curve.
    kappa
        Draw the kappa parity plot (the summaries carry kappa scores).
    strategies
        Draw the side-by-side comparison of every model (``evaluate/strategies.csv``).
    """

    name: ClassVar[str] = "figures"
    models: tuple[str, ...] = ()
    finetuned: tuple[str, ...] = ()
    materials: tuple[str, ...] = ()
    double_well: tuple[str, ...] = ()
    runs: tuple[str, ...] = ()
    kappa: bool = False
    strategies: bool = False


@dataclass(frozen=True)
class Figure:
    """One figure: its kind and, for per-material or per-run kinds, its subject."""

    kind: str
    subject: str | None = None

    @property
    def caption(self) -> tuple[str, str]:
        """(caption file, report category), from :data:`CAPTIONS`."""
        return CAPTIONS[self.kind]

    @property
    def relpath(self) -> str:
        """Path under the figures folder: ``<kind>.png`` or ``<kind>/<subject>.png``."""
        return f"{self.kind}.png" if self.subject is None else f"{self.kind}/{self.subject}.png"


def figure_list(figures: FigureSet) -> list[Figure]:
    """Every figure drawn for ``figures``, in drawing order (none without models)."""
    if not figures.models:
        return []
    out = [Figure("mdr_parity")]
    if figures.finetuned:
        out.append(Figure("improvement"))
    out += [Figure("bands", m) for m in figures.materials]
    out += [Figure("double_well", m) for m in figures.double_well]
    out += [Figure("training_curve", r) for r in figures.runs]
    if figures.kappa:
        out.append(Figure("kappa_parity"))
    if figures.strategies:
        out.append(Figure("strategies"))
    return out
