"""Labels of the rattled frames, from one of four sources (``label_source`` in brackets):

- **harmonic** (``harmonic_dft``): F = -Phi u, with Phi the material's DFT fc2 (eV/Å²,
  ``results/references/<m>/fc2.hdf5``) and u the displacement of each atom from the
  reference supercell (Å). Forces only: the harmonic model has no stress and its energy,
  1/2 u.Phi.u, is not the DFT energy of the frame, so both keys are left out;
- **vasprun** / **qe** (``dft``): one VASP ``vasprun.xml`` or pw.x output per frame, in
  frame order, read by ASE (energy: the force-consistent free energy in eV; forces eV/Å;
  stress converted by ASE from kBar or Ry/Bohr³ to eV/Å³ with ASE's sign). Each file must
  hold its frame's geometry (:func:`check_geometry`);
- **extxyz** (``user``): a user's own labelled frames, checked (:mod:`phonft.augment.frames`);
- **engine** (``engine``): an ASE calculator (energy, forces, stress where it has one);
  synthetic, for tests.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from phonft.augment.frames import check_frame
from phonft.errors import InputFileError
from phonft.references.positions import position_offsets_A

POSITION_TOLERANCE_A = 1.0e-3
"""Largest difference (Å) between a DFT output's positions or lattice and its frame's."""

ASE_FORMATS = {"vasprun": ("vasp-xml", "VASP vasprun.xml"), "qe": ("espresso-out", "Quantum ESPRESSO pw.x output")}
"""Label format -> (ASE reader, what the file is)."""


def harmonic_forces_eV_A(frame: Atoms, supercell: Atoms, fc2_eV_A2: np.ndarray) -> np.ndarray:
    """F_i = -sum_j Phi_ij u_j (eV/Å), u = frame positions - supercell positions (Å)."""
    u = np.asarray(frame.positions, dtype=np.float64) - np.asarray(supercell.positions, dtype=np.float64)
    return -np.einsum("ijab,jb->ia", fc2_eV_A2, u)


def harmonic_labels(frames: Sequence[Atoms], supercell: Atoms, fc2_eV_A2: np.ndarray) -> None:
    """Label ``frames`` (rattled copies of ``supercell`` in its cell) with harmonic forces."""
    for a in frames:
        a.arrays["REF_forces"] = harmonic_forces_eV_A(a, supercell, fc2_eV_A2)
        a.info["label_source"] = "harmonic_dft"


def _set_labels(a: Atoms, energy_eV: float | None, forces_eV_A: np.ndarray, stress_eV_A3: np.ndarray | None,
                source: str) -> None:
    a.arrays["REF_forces"] = np.asarray(forces_eV_A, dtype=np.float64)
    if energy_eV is not None:
        a.info["REF_energy"] = float(energy_eV)
    if stress_eV_A3 is not None:
        a.info["REF_stress"] = np.asarray(stress_eV_A3, dtype=np.float64).reshape(9)
    a.info["label_source"] = source


def _results(atoms: Atoms) -> tuple[float | None, np.ndarray, np.ndarray | None]:
    """Energy (force-consistent where known, eV), forces (eV/Å), stress (3x3 eV/Å³ or None)."""
    from ase.calculators.calculator import PropertyNotImplementedError

    try:
        energy = atoms.get_potential_energy(force_consistent=True)
    except PropertyNotImplementedError:
        energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    try:
        stress = atoms.get_stress(voigt=False)
    except PropertyNotImplementedError:
        stress = None
    return energy, forces, stress


def engine_labels(frames: Sequence[Atoms], calculator: str, kwargs: dict[str, Any] | None = None) -> None:
    """Label ``frames`` with an ASE calculator (``emt``, ``lj``, ``morse`` or ``module:Class``)."""
    from phonft.ase_calculators import make_calculator

    calc = make_calculator(calculator, kwargs)
    for a in frames:
        work = a.copy()
        work.calc = calc
        _set_labels(a, *_results(work), source="engine")


def check_geometry(found: Atoms, frame: Atoms, blamed: Path, k: int) -> None:
    """``found`` (read from a DFT output listed for frame ``k``) holds frame ``k``'s atoms in
    its order, its lattice and its positions (modulo lattice translations) within
    :data:`POSITION_TOLERANCE_A`."""
    fix = ("list one output per frame, in the order of the inputs under results/augment/<material>/inputs/ "
           "(POSCAR-001 / supercell-001.in first), computed from those inputs with the same augment settings.")
    if not np.array_equal(found.numbers, frame.numbers):
        raise InputFileError(blamed, f"is listed for frame {k} but holds {found.get_chemical_formula()} "
                             f"({len(found)} atoms), not that frame's {frame.get_chemical_formula()} in its order.", fix)
    lattice = float(np.abs(np.asarray(found.cell) - np.asarray(frame.cell)).max())
    if lattice > POSITION_TOLERANCE_A:
        raise InputFileError(blamed, f"is listed for frame {k} but its lattice differs from that frame's by up to "
                             f"{lattice:.3g} Å.", fix)
    offsets = position_offsets_A(found.get_scaled_positions(wrap=False), frame.cell.scaled_positions(frame.positions),
                                 frame.cell)
    if offsets.max() > POSITION_TOLERANCE_A:
        atom = int(np.argmax(offsets))
        raise InputFileError(blamed, f"is listed for frame {k} but its atom {atom + 1} lies {offsets[atom]:.3g} Å "
                             "from that frame's position: it was computed for another frame or settings.", fix)


def read_dft_output(path: Path, fmt: str) -> Atoms:
    """The last structure of a ``vasprun.xml`` or pw.x output, with its results, via ASE."""
    import ase.io

    reader, what = ASE_FORMATS[fmt]
    if not path.is_file():
        raise InputFileError(path, "does not exist.", "check the material's augment.labels path and files.")
    try:
        atoms = ase.io.read(path, format=reader, index=-1)
        atoms.get_forces()
    except Exception as exc:  # ase raises many kinds on a truncated or foreign file
        raise InputFileError(path, f"is not a readable {what} with forces ({type(exc).__name__}: {exc}).",
                             "give the complete output of a finished calculation.") from exc
    return atoms


def dft_labels(frames: Sequence[Atoms], fmt: str, files: Sequence[str | os.PathLike]) -> None:
    """Label ``frames`` from one DFT output per frame (``fmt``: ``vasprun`` or ``qe``)."""
    paths = [Path(f) for f in files]
    if len(paths) != len(frames):
        raise InputFileError(paths[0].parent if paths else ".", f"{len(paths)} {ASE_FORMATS[fmt][1]} files are listed "
                             f"but augment makes {len(frames)} frames.",
                             "list one output per frame (augment.n_frames), in frame order.")
    for k, (a, path) in enumerate(zip(frames, paths, strict=True)):
        found = read_dft_output(path, fmt)
        check_geometry(found, a, path, k)
        _set_labels(a, *_results(found), source="dft")
        check_frame(a, f"the labels read for frame {k}", path, "rerun or repair that calculation.")
