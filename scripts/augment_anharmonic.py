"""How far harmonic augment labels (F = -Phi2 u) are from fc2 + fc3 forces, by rattle sigma.

On the vendored Si-PBE-fc3 data (phono3py, PBE, 64-atom 2x2x2 conventional supercell):
for each sigma, ``--frames`` rattled supercells are made exactly as the augment stage makes
them (:func:`phonft.augment.rattle.rattled_frames`, seed 0), and the third-order force
F3_i = -1/2 sum_jk Phi3_ijk u_j u_k is compared with the harmonic force F2 = -Phi2 u.
The quartic and higher terms are not in the data, so this is a lower bound of the
anharmonic error. Prints a markdown table; run from the repository root:

    python scripts/augment_anharmonic.py
"""

from __future__ import annotations

import argparse

import numpy as np


def force_constants(folder: str) -> tuple[object, np.ndarray, np.ndarray]:
    """The supercell (ase), full fc2 (N,N,3,3) and full fc3 (N,N,N,3,3,3) of a phono3py folder."""
    import phono3py

    from phonft.atoms import to_ase

    ph3 = phono3py.load(f"{folder}/phono3py_disp.yaml", forces_fc3_filename=f"{folder}/FORCES_FC3",
                        produce_fc=False, log_level=0)
    ph3.produce_fc3(is_compact_fc=False)
    ph3.produce_fc2(is_compact_fc=False)
    ph3.symmetrize_fc3()
    ph3.symmetrize_fc2()
    return to_ase(ph3.supercell), np.asarray(ph3.fc2), np.asarray(ph3.fc3)


def main() -> None:
    from phonft.augment.rattle import rattled_frames
    from phonft.augment.settings import AugmentSettings

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", default="data/dft-phonons/Si-PBE-fc3")
    p.add_argument("--sigmas", type=float, nargs="+", default=[0.01, 0.03, 0.05, 0.1])
    p.add_argument("--frames", type=int, default=10)
    args = p.parse_args()
    supercell, fc2, fc3 = force_constants(args.folder)
    print("| sigma (Å) | RMS F2 (eV/Å) | RMS F3 (eV/Å) | RMS F3 / RMS F2 | max abs F3 (eV/Å) |")
    print("|---|---|---|---|---|")
    for sigma in args.sigmas:
        frames = rattled_frames(supercell, AugmentSettings(n_frames=args.frames, rattle_std_A=(sigma,)), "Si-PBE-fc3")
        f2, f3 = [], []
        for a in frames:
            u = a.positions - supercell.positions
            f2.append(-np.einsum("ijab,jb->ia", fc2, u))
            f3.append(-0.5 * np.einsum("ijkabc,jb,kc->ia", fc3, u, u))
        f2, f3 = np.array(f2), np.array(f3)
        rms2, rms3 = np.sqrt((f2**2).mean()), np.sqrt((f3**2).mean())
        print(f"| {sigma:g} | {rms2:.4f} | {rms3:.5f} | {rms3 / rms2:.3f} | {np.abs(f3).max():.4f} |")


if __name__ == "__main__":
    main()
