"""Kappa records in Matbench Discovery's column names, for its own metric code or a submission.

One row per material, indexed by material id, with the columns that
``matbench_discovery.metrics.phonons.calc_kappa_metrics_from_dfs`` reads from its
predictions (the names of ``pymatviz.enums.Key`` and ``matbench_discovery.enums.MbdKey``):

- ``kappa_tot_rta`` (T, 6), ``kappa_p_rta`` (T, 6), ``kappa_c`` (T, 6): Voigt conductivity
  tensors (xx, yy, zz, yz, xz, xy) in W/m/K; NaN for a material without a conductivity
  (JSON null in the file, which pandas reads back as a missing value);
- ``mode_kappa_tot_rta`` (T, q, s, 6) and ``mode_kappa_tot_avg`` (T, q, s): per-mode
  conductivities in W/m/K, weighted as phono3py's ``mode_kappa`` (their sum over q and s
  divided by the sum of ``mode_weights`` is the total);
- ``mode_weights`` (q,): irreducible q-point weights; ``q_points`` (q, 3) reduced
  coordinates; ``ph_freqs`` (q, s) THz; ``temperatures`` (K);
- ``has_imag_ph_modes``, ``init_spg_num``, ``final_spg_num``, ``spg_num``, and
  phonft's ``status`` and ``error``.

:func:`write_kappa_mbd` writes them as ``pandas.DataFrame.to_json`` (gzip-compressed when
the path ends in ``.gz``); ``pandas.read_json(path)`` reads them back.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from phonft.io import atomic_write_bytes

NAN = float("nan")

MBD_COLUMNS = ("kappa_tot_rta", "kappa_p_rta", "kappa_c", "kappa_tot_avg", "mode_kappa_tot_rta",
               "mode_kappa_tot_avg", "mode_weights", "q_points", "ph_freqs", "temperatures", "has_imag_ph_modes",
               "init_spg_num", "final_spg_num", "spg_num", "status", "error")
"""The columns of :func:`mbd_row`, in order."""


def _value(record: Mapping[str, Any], key: str, ok: bool) -> Any:
    """A record's array, or NaN (as Matbench Discovery stores a missing prediction)."""
    value = record.get(key)
    return value if ok and value is not None else NAN


def mbd_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """One kappa record (:mod:`phonft.evaluate.kappa`) as a row in Matbench Discovery's names.

    A failed or flagged material keeps its flags and space groups, with NaN conductivities,
    which Matbench Discovery scores SRME 2 and SRD −2 as phonft does.
    """
    ok = not record.get("failed") and record.get("kappa_tot_W_mK") is not None
    return {
        "kappa_tot_rta": _value(record, "kappa_tot_W_mK", ok),
        "kappa_p_rta": _value(record, "kappa_p_W_mK", ok),
        "kappa_c": _value(record, "kappa_c_W_mK", ok),
        "kappa_tot_avg": _value(record, "kappa_tot_avg_W_mK", ok),
        "mode_kappa_tot_rta": _value(record, "mode_kappa_tot_W_mK", ok),
        "mode_kappa_tot_avg": _value(record, "mode_kappa_tot_avg_W_mK", ok),
        "mode_weights": _value(record, "mode_weights", ok),
        "q_points": _value(record, "qpoints", ok),
        "ph_freqs": _value(record, "frequencies_THz", ok),
        "temperatures": record.get("temperatures_K"),
        "has_imag_ph_modes": record.get("has_imaginary_modes"),
        "init_spg_num": record.get("spacegroup_initial"),
        "final_spg_num": record.get("spacegroup_final"),
        "spg_num": record.get("spacegroup_initial"),
        "status": record.get("status"),
        "error": record.get("error"),
    }


def mbd_table(records: Mapping[str, Mapping[str, Any]]):
    """Records keyed by material id as a ``pandas.DataFrame`` of :func:`mbd_row` rows
    (object columns, so that arrays stay whole), indexed by ``material_id``."""
    import pandas as pd

    rows = {mid: mbd_row(rec) for mid, rec in records.items()}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(MBD_COLUMNS)).astype(object)
    return table.rename_axis("material_id")


def write_kappa_mbd(records: Mapping[str, Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Write :func:`mbd_table` as JSON (``DataFrame.to_json``), atomically; gzip when
    ``path`` ends in ``.gz``. Returns the path."""
    path = Path(path)
    data = mbd_table(records).to_json(double_precision=15).encode("utf-8")
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    return atomic_write_bytes(path, data)
