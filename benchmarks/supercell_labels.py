#!/usr/bin/env python
"""Expand vendored DFT force constants to real-size supercells and time it.

For each case, the vendored phonopy example (``data/dft-phonons/<material>``, a
``force_sets`` reference) is read as the references stage reads it, and its DFT fc2 is
expanded to the given supercell (:mod:`phonft.references.supercell_labels`, phonopy's
``ph2ph`` without NAC). Printed per case: atoms, wall time of the expansion (one run, no
repeats), the acoustic-sum-rule residual of the new fc2 and the largest difference after
folding it back to the DFT supercell (both eV/Å²).

    python benchmarks/supercell_labels.py                         # MgO 4x4x4, ZnO 5x5x4
    python benchmarks/supercell_labels.py --case NaCl 3 3 3
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from phonft.references import Reference
from phonft.references.supercell_labels import expand_force_constants, supercell_labels

REPO = Path(__file__).resolve().parents[1]

DEFAULT_CASES = [("MgO", [4, 4, 4]), ("ZnO", [5, 5, 4])]


def run_case(material: str, matrix: list[int]) -> dict[str, float]:
    """Expand ``material``'s DFT fc2 to ``matrix``: atoms, seconds, ASR and fold-back residuals."""
    ref = Reference.read({"format": "force_sets", "path": str(REPO / "data" / "dft-phonons" / material)})
    t0 = time.perf_counter()
    labels = supercell_labels(ref.phonon, ref.fc2, matrix)
    seconds = time.perf_counter() - t0
    fc = labels.fc2_eV_A2
    _, folded = expand_force_constants(labels.phonon, ref.phonon.supercell_matrix, fc)
    return {"n_atoms": len(fc), "seconds": seconds, "asr_eV_A2": float(np.max(np.abs(fc.sum(axis=1)))),
            "fold_back_eV_A2": float(np.max(np.abs(folded - ref.fc2)))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", nargs=4, action="append", metavar=("MATERIAL", "N1", "N2", "N3"),
                        help="a vendored material and a diagonal supercell; repeatable")
    args = parser.parse_args()
    cases = [(c[0], [int(n) for n in c[1:]]) for c in args.case] if args.case else DEFAULT_CASES
    print(f"{'material':10s} {'supercell':10s} {'atoms':>6s} {'seconds':>8s} {'ASR':>9s} {'fold-back':>9s}")
    for material, matrix in cases:
        r = run_case(material, matrix)
        print(f"{material:10s} {'x'.join(map(str, matrix)):10s} {r['n_atoms']:6d} {r['seconds']:8.2f} "
              f"{r['asr_eV_A2']:9.1e} {r['fold_back_eV_A2']:9.1e}")


if __name__ == "__main__":
    main()
