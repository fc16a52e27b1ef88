#!/usr/bin/env python
"""Check phonft's conductivity and kappa metrics against Matbench Discovery's own code.

Two steps, on identical force constants:

1. ``phonft`` (run in phonft's environment, phono3py 4.x): phonft computes the
   conductivity records of Si-PBE-fc3 (the vendored DFT forces, 11x11x11), CHGNet on
   Si-PBE-fc3 (the same mesh: a model-vs-DFT pair for the metrics) and CHGNet on
   kappa103 structures (``--kappa103-ids``, ``--kappa103-mesh``); it saves each
   material's fc2/fc3 (``fc2.npy``, ``fc3.npy``, eV/Å² and eV/Å³), its set-up
   (``setup.json``), its record, and all records in Matbench Discovery's columns
   (``phonft_mbd.json.gz``).
2. ``upstream`` (run in the venv of ``scripts/matbench_env.sh``, phono3py 3.30, with
   ``PYTHONPATH=src`` for phonft's pure-numpy metrics): Matbench Discovery's
   ``calculate_conductivity`` on the same fc2/fc3, then the comparison: κ (total,
   particle, coherence), per-mode κ, frequencies, and SRD/SRE/SRME from
   ``calc_kappa_metrics_from_dfs`` fed with ``phonft_mbd.json.gz`` against phonft's own
   scores; plus the metric cases of ``tests/test_evaluate_kappa.py`` (golden values).
   Writes ``comparison.json`` and prints the maximum relative differences.

    python scripts/kappa_vs_matbench.py phonft --work /tmp/kvm
    $VENV/bin/python scripts/kappa_vs_matbench.py upstream --work /tmp/kvm
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KAPPA103_IDS = ("mp-1265", "mp-1138", "mp-2472")  # MgO, LiF, SrO: 8-atom cells, 64-atom fc3 supercells


def _save_phono3py(ph3, folder: Path, protocol) -> None:
    """fc2, fc3 and the set-up that rebuilds the same Phono3py object in another version."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "fc2.npy", np.asarray(ph3.fc2, dtype=np.float64))
    np.save(folder / "fc3.npy", np.asarray(ph3.fc3, dtype=np.float64))
    uc = ph3.unitcell
    setup = {"symbols": list(uc.symbols), "cell_A": np.asarray(uc.cell).tolist(),
             "positions_A": np.asarray(uc.positions).tolist(),
             "supercell_matrix": np.asarray(ph3.supercell_matrix).tolist(),
             "phonon_supercell_matrix": None if ph3.phonon_supercell_matrix is None
             else np.asarray(ph3.phonon_supercell_matrix).tolist(),
             "primitive_matrix": np.asarray(ph3.primitive_matrix).tolist(),
             "mesh": [int(m) for m in ph3.mesh_numbers], "symprec": protocol.symprec,
             "temperature_K": protocol.temperature_K, "boundary_mfp_um": protocol.boundary_mfp_um}
    (folder / "setup.json").write_text(json.dumps(setup, indent=1))


def run_phonft(work: Path, ids: list[str], mesh: tuple[int, int, int]) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from phonft.evaluate import kappa as K
    from phonft.models import load_model
    from phonft.references import Reference

    protocol = K.KappaProtocol()
    records = {}
    t0 = time.perf_counter()
    ref = Reference.read({"format": "phono3py", "path": str(ROOT / "data/dft-phonons/Si-PBE-fc3")})
    params = ref.write(work / "_references" / "Si-PBE-fc3", "Si-PBE-fc3") / "phono3py_params.yaml"
    task = K.task_from_phono3py_params(params, "Si-PBE-fc3", q_mesh=(11, 11, 11))
    records["Si-PBE-fc3"] = K.dft_kappa(params, task, protocol,
                                        on_phono3py=lambda p: _save_phono3py(p, work / "Si-PBE-fc3", protocol))
    chgnet = load_model("chgnet", dtype="float64", device="cpu")
    records["Si-PBE-fc3:chgnet"] = K.model_kappa(
        chgnet, task, protocol, progress=False,
        on_phono3py=lambda p: _save_phono3py(p, work / "Si-PBE-fc3:chgnet", protocol))
    tasks = K.load_kappa103(ids=ids)
    for t in tasks:
        t = K.KappaTask(id=t.id, atoms=t.atoms, fc2_supercell=t.fc2_supercell, fc3_supercell=t.fc3_supercell,
                        primitive_matrix=t.primitive_matrix, q_mesh=mesh, name=t.name, spacegroup=t.spacegroup)
        records[t.id] = K.model_kappa(chgnet, t, protocol, progress=False,
                                      on_phono3py=lambda p, i=t.id: _save_phono3py(p, work / i, protocol))
    for mid, rec in records.items():
        K.write_kappa_record(work / mid / "phonft.json.gz", rec)
        print(f"{mid}: {rec['status']} kappa {rec['kappa_tot_avg_W_mK']} W/m/K", flush=True)
    K.write_kappa_mbd(records, work / "phonft_mbd.json.gz")
    (work / "phonft_timing.json").write_text(json.dumps({"phonft_s": time.perf_counter() - t0}))


def upstream_conductivity(folder: Path) -> dict:
    """Matbench Discovery's calculate_conductivity on the saved fc2/fc3."""
    from matbench_discovery.phonons.thermal_conductivity import calculate_conductivity
    from phono3py import Phono3py
    from phonopy.structure.atoms import PhonopyAtoms

    s = json.loads((folder / "setup.json").read_text())
    uc = PhonopyAtoms(symbols=s["symbols"], cell=s["cell_A"], positions=s["positions_A"])
    ph3 = Phono3py(uc, supercell_matrix=s["supercell_matrix"], phonon_supercell_matrix=s["phonon_supercell_matrix"],
                   primitive_matrix=s["primitive_matrix"], symprec=s["symprec"])
    ph3.mesh_numbers = s["mesh"]
    ph3.fc2 = np.load(folder / "fc2.npy")
    ph3.fc3 = np.load(folder / "fc3.npy")
    _, kd, _ = calculate_conductivity(ph3, temperatures=[s["temperature_K"]], boundary_mfp=s["boundary_mfp_um"])
    return {str(k): np.asarray(v, dtype=np.float64) for k, v in kd.items()}


def _rel(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-300))


def compare_material(rec: dict, up: dict) -> dict:
    """Max relative differences, phonft vs upstream, of one material."""
    from phonft.evaluate import srme as S

    idx = S.align_qpoints(rec["qpoints"], up["q_points"])
    k_up = S.kappa_average(up["kappa_tot_rta"])[0]
    mode_up = S.kappa_average(up["mode_kappa_tot_rta"])
    mode_ours = np.asarray(rec["mode_kappa_tot_avg_W_mK"])[:, idx]
    return {
        "kappa_tot_avg_W_mK": [float(rec["kappa_tot_avg_W_mK"][0]), float(k_up)],
        "kappa_tot": _rel(np.asarray(rec["kappa_tot_W_mK"])[:, :3], up["kappa_tot_rta"][..., :3]),
        "kappa_p": _rel(np.asarray(rec["kappa_p_W_mK"])[:, :3], up["kappa_p_rta"][..., :3]),
        "kappa_c": _rel(np.asarray(rec["kappa_c_W_mK"])[:, :3], up["kappa_c"][..., :3]),
        "mode_kappa_avg_over_total": float(np.max(np.abs(mode_ours - mode_up)) / np.sum(up["mode_weights"]) / k_up),
        "mode_kappa_avg_max": _rel(mode_ours, mode_up),
        "frequencies_THz_max_abs": float(np.max(np.abs(np.asarray(rec["frequencies_THz"])[idx] - up["ph_freqs"]))),
        "n_qpoints": len(idx),
    }


def _mbd_df(rows: dict):
    import pandas as pd

    return pd.DataFrame.from_dict(rows, orient="index").astype(object)


def compare_metrics(work: Path, records: dict, ups: dict) -> dict:
    """SRD/SRE/SRME: upstream calc_kappa_metrics_from_dfs on phonft_mbd.json.gz vs phonft."""
    import pandas as pd
    from matbench_discovery.metrics.phonons import calc_kappa_metrics_from_dfs

    from phonft.evaluate import srme as S

    with gzip.open(work / "phonft_mbd.json.gz") as f:
        table = pd.read_json(f)
    to_np = {c: (lambda v: np.asarray(v, dtype=np.float64) if isinstance(v, list) else v)
             for c in ("kappa_tot_rta", "mode_kappa_tot_rta", "mode_kappa_tot_avg", "mode_weights", "kappa_tot_avg")}
    pred_rows, true_rows, ours = {}, {}, {}
    pairs = {mid: mid for mid in ups if ":" not in mid} | {"Si-PBE-fc3:chgnet": "Si-PBE-fc3"}
    for pred_id, true_id in pairs.items():
        row = {c: to_np.get(c, lambda v: v)(table.loc[pred_id, c]) for c in
               ("kappa_tot_rta", "mode_kappa_tot_avg", "mode_weights", "has_imag_ph_modes", "init_spg_num",
                "final_spg_num")}
        up = ups[true_id]
        idx = S.align_qpoints(records[pred_id]["qpoints"], up["q_points"])
        row["mode_kappa_tot_avg"] = np.asarray(row["mode_kappa_tot_avg"])[:, idx]
        pred_rows[pred_id] = row
        true_rows[pred_id] = {"kappa_tot_avg": S.kappa_average(up["kappa_tot_rta"]),
                              "mode_kappa_tot_avg": S.kappa_average(up["mode_kappa_tot_rta"]),
                              "spg_num": records[true_id]["spacegroup_initial"]}
        ref = {"kappa_tot_avg_W_mK": true_rows[pred_id]["kappa_tot_avg"].tolist(),
               "mode_kappa_tot_avg_W_mK": true_rows[pred_id]["mode_kappa_tot_avg"].tolist(),
               "qpoints": up["q_points"].tolist(), "spacegroup_initial": true_rows[pred_id]["spg_num"]}
        ours[pred_id] = S.material_metrics(records[pred_id], ref)
    out = calc_kappa_metrics_from_dfs(_mbd_df(pred_rows), _mbd_df(true_rows))
    return {k: {m: [float(ours[k][m]), float(out.loc[k, m])] for m in ("srd", "sre", "srme")} for k in pairs}


def golden_cases() -> dict:
    """The metric cases of tests/test_evaluate_kappa.py through upstream's functions."""
    sys.path.insert(0, str(ROOT / "tests"))
    import test_evaluate_kappa as T
    from matbench_discovery.phonons import check_imaginary_freqs
    from matbench_discovery.phonons.thermal_conductivity import calc_mode_kappa_tot

    real = T.real_cases() if (T.KAPPA103 / "kappas_phononDB_PBE_noNAC.json.gz").is_file() else {}
    return {"synthetic": T.matbench_metrics(T.synthetic_cases()), "kappa103": T.matbench_metrics(real),
            "mode_total": calc_mode_kappa_tot(*T.mode_total_inputs()).tolist(),
            "imaginary": {k: bool(check_imaginary_freqs(np.array(v))) for k, v in T.IMAGINARY_CASES.items()}}


def run_upstream(work: Path) -> None:
    from phonft.evaluate.kappa import read_kappa_record

    t0 = time.perf_counter()
    records = {d.name: read_kappa_record(d / "phonft.json.gz") for d in sorted(work.iterdir())
               if (d / "phonft.json.gz").is_file()}
    ups = {mid: upstream_conductivity(work / mid) for mid in records}
    report = {"materials": {mid: compare_material(records[mid], ups[mid]) for mid in records},
              "metrics": compare_metrics(work, records, ups), "golden": golden_cases(),
              "upstream_s": time.perf_counter() - t0}
    import importlib.metadata as md

    report["versions"] = {p: md.version(p) for p in ("matbench-discovery", "phono3py", "phonopy", "pymatviz")}
    (work / "comparison.json").write_text(json.dumps(report, indent=1))
    keys = ("kappa_tot", "kappa_p", "kappa_c", "mode_kappa_avg_over_total", "frequencies_THz_max_abs")
    for mid, c in report["materials"].items():
        print(mid, c["kappa_tot_avg_W_mK"], {k: f"{c[k]:.2e}" for k in keys})
    for mid, m in report["metrics"].items():
        print(mid, {k: f"ours {v[0]:.10g} upstream {v[1]:.10g}" for k, v in m.items()})
    print("max over materials:", {k: f"{max(c[k] for c in report['materials'].values()):.2e}" for k in keys})
    print("max |metric difference|:", max(abs(v[0] - v[1]) for m in report["metrics"].values() for v in m.values()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("step", choices=("phonft", "upstream"))
    ap.add_argument("--work", type=Path, required=True, help="folder for fc2/fc3, records and comparison.json")
    ap.add_argument("--kappa103-ids", nargs="+", default=list(KAPPA103_IDS))
    ap.add_argument("--kappa103-mesh", type=int, nargs=3, default=(9, 9, 9),
                    help="q-mesh of the kappa103 materials (both sides; the data set's is 19x19x19)")
    args = ap.parse_args()
    if args.step == "phonft":
        run_phonft(args.work, args.kappa103_ids, tuple(args.kappa103_mesh))
    else:
        run_upstream(args.work)


if __name__ == "__main__":
    main()
