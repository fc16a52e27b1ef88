"""Print the figures quoted in the README and in the issue notes, from a finished demo.

Run after `make demo`:  .venv/bin/python scripts/reference_figures.py
It reads results/references/ and re-reads a few vendored data sets through other routes;
it writes nothing.
"""
import json, numpy as np, warnings
warnings.filterwarnings("ignore")
from phonft.references import Reference
for m in ["mp-149", "mp-1000"]:
    d = json.load(open(f"results/references/{m}/thermal.json")); sv = d["source"]["stored_values"]
    print(m, {k.split("_")[0]: f"{abs(d[k][3]-sv[k][3])/abs(sv[k][3]):.1e}" for k in
              ["entropy_J_per_K_mol", "free_energy_kJ_per_mol", "heat_capacity_J_per_K_mol"]})
for m in ["CaTiO3", "MgO"]:
    d = json.load(open(f"results/references/{m}/thermal.json"))
    print(m, "stable", d["dynamically_stable"], "n_imag", d["n_imaginary"], "min THz", round(d["min_frequency_THz"], 3), "wmax K", round(d["omega_max_K"], 1))
R = lambda s: Reference.read(s, base_dir=".")
fs = R({"format": "force_sets", "path": "data/dft-phonons/NaCl"})
print("NaCl FS vs vasprun max|dfc| eV/A2", np.abs(fs.fc2 - R({"format": "vasprun", "path": "data/dft-phonons/NaCl", "files": ["vasprun.xml-001", "vasprun.xml-002"]}).fc2).max())
print("MgO FS vs tar max|dfc|", np.abs(R({"format": "force_sets", "path": "data/dft-phonons/MgO"}).fc2 - R({"format": "vasprun", "path": "data/dft-phonons/MgO", "files": ["vaspruns.tar.lzma"]}).fc2).max())
print("Cr FS vs vasprun.xml.xz max|dfc|", np.abs(R({"format": "force_sets", "path": "data/dft-phonons/Cr"}).fc2 - R({"format": "vasprun", "path": "data/dft-phonons/Cr", "files": ["vasprun.xml.xz"]}).fc2).max())
qe = R({"format": "qe", "path": "data/dft-phonons/NaCl-QE", "files": ["NaCl-001.out", "NaCl-002.out"]})
print("omega_max K: QE", round(qe.summary["omega_max_K"], 1), "VASP", round(fs.summary["omega_max_K"], 1))
import phono3py
from phono3py.file_IO import read_fc2_from_hdf5, read_fc3_from_hdf5
out = "results/references/Si-PBE-fc3"
ph3 = phono3py.load(f"{out}/phono3py_params.yaml", produce_fc=False, log_level=0)
ph3.fc3 = read_fc3_from_hdf5(f"{out}/fc3.hdf5"); ph3.fc2 = read_fc2_from_hdf5(f"{out}/fc2.hdf5")[ph3.phonon_primitive.p2s_map]
ph3.mesh_numbers = [11, 11, 11]; ph3.init_phph_interaction()
ph3.run_thermal_conductivity(temperatures=[300], is_isotope=False, boundary_mfp=1e6)
print("Si kappa(300K, RTA, 11^3) W/m-K", round(float(ph3.thermal_conductivity.kappa[0, 0, :3].mean()), 2))
