"""Rattled supercells: seeded Gaussian or Monte-Carlo rattles, volume and angle distortions.

Frame k of a material is made from its reference supercell (the phonopy supercell of
``results/references/<m>/``, same atom order) in three steps, with one random generator
per material (:func:`material_rng`):

1. the cell angles change by Gaussian amounts (``angle_std_deg``; lengths kept), then the
   cell is scaled isotropically to exactly ``volume_factor`` times the reference volume;
   atoms follow the cell (fractional positions kept);
2. every Cartesian position component moves by a Gaussian of standard deviation
   ``rattle_std_A`` (ASE's :meth:`ase.Atoms.rattle` with the generator), or by the
   Monte-Carlo rattle (:func:`mc_rattle`);
3. positions are rounded to :data:`POSITION_DECIMALS` decimals in Å, what extxyz stores, so
   that labels computed from the frame in memory hold for the frame read back.

Which sigma and volume factor frame k takes is :func:`frame_parameters`.
"""

from __future__ import annotations

import hashlib

import numpy as np
from ase import Atoms
from ase.geometry import cellpar_to_cell, get_distances

from phonft.augment.settings import AugmentSettings

POSITION_DECIMALS = 8
"""Decimals (Å) of the positions of a frame: ASE's extxyz writer keeps 8."""


def material_key(material: str) -> int:
    """A material id as a stable 32-bit integer (first 8 hex digits of its SHA-256)."""
    return int(hashlib.sha256(material.encode()).hexdigest()[:8], 16)


def material_rng(settings: AugmentSettings, material: str) -> np.random.Generator:
    """The material's generator: ``numpy.random.default_rng([seed, material_key(material)])``."""
    return np.random.default_rng([settings.seed, material_key(material)])


def frame_parameters(settings: AugmentSettings) -> list[tuple[float, float]]:
    """``(rattle_std_A, volume_factor)`` of each frame: sigma cycles fastest, then the volume
    factor (1.0 when none are given), so ``n_frames >= n_sigma * n_volume`` covers every pair."""
    sigmas, volumes = settings.rattle_std_A, settings.volume_factors or (1.0,)
    return [(sigmas[k % len(sigmas)], volumes[(k // len(sigmas)) % len(volumes)]) for k in range(settings.n_frames)]


def distort_cell(atoms: Atoms, volume_factor: float, angle_deltas_deg: np.ndarray | None = None) -> Atoms:
    """A copy of ``atoms`` whose cell angles changed by ``angle_deltas_deg`` (alpha, beta,
    gamma; lengths kept, the a axis and the ab plane kept in place) and whose volume is then
    exactly ``volume_factor`` times the original; atoms follow the cell."""
    out = atoms.copy()
    cell = np.asarray(atoms.cell, dtype=np.float64)
    if angle_deltas_deg is not None and np.any(angle_deltas_deg):
        par = atoms.cell.cellpar()
        par[3:] += angle_deltas_deg
        normal = np.cross(cell[0], cell[1])
        cell = cellpar_to_cell(par, ab_normal=normal / np.linalg.norm(normal), a_direction=cell[0])
    volume = abs(np.linalg.det(cell))
    cell = cell * (volume_factor * atoms.get_volume() / volume) ** (1.0 / 3.0)
    out.set_cell(cell, scale_atoms=True)
    return out


def mc_rattle(atoms: Atoms, std_A: float, min_distance_A: float, sweeps: int, rng: np.random.Generator) -> Atoms:
    """Monte-Carlo rattle: ``sweeps`` passes over the atoms in random order; each proposes a
    Gaussian step of ``std_A / sqrt(sweeps)`` per component (so unhindered atoms end about
    ``std_A`` from where they started) and rejects it when it brings the atom within
    ``min_distance_A`` of another atom (periodic images included) and closer than it was."""
    out = atoms.copy()
    pos = np.asarray(out.positions, dtype=np.float64).copy()
    step = std_A / np.sqrt(sweeps)
    n = len(pos)
    for _ in range(sweeps):
        for i in rng.permutation(n):
            trial = pos[i] + rng.normal(0.0, step, size=3)
            others = np.delete(pos, i, axis=0)
            if not len(others):
                pos[i] = trial
                continue
            new = get_distances(trial[None], others, cell=out.cell, pbc=out.pbc)[1].min()
            old = get_distances(pos[i][None], others, cell=out.cell, pbc=out.pbc)[1].min()
            if new >= min_distance_A or new >= old:
                pos[i] = trial
    out.positions = pos
    return out


def rattled_frames(supercell: Atoms, settings: AugmentSettings, material: str) -> list[Atoms]:
    """The material's ``settings.n_frames`` rattled frames (see the module docstring), each
    with the info keys ``material``, ``frame``, ``rattle_std_A``, ``volume_factor`` and
    ``config_type`` = ``rattled``; no labels yet."""
    rng = material_rng(settings, material)
    frames = []
    for k, (std_A, volume_factor) in enumerate(frame_parameters(settings)):
        angles = rng.normal(0.0, settings.angle_std_deg, size=3) if settings.angle_std_deg > 0 else None
        a = distort_cell(supercell, volume_factor, angles)
        if settings.mc:
            a = mc_rattle(a, std_A, settings.min_distance_A, settings.mc_sweeps, rng)
        else:
            a.rattle(stdev=std_A, rng=rng)
        a.positions = np.round(a.positions, POSITION_DECIMALS)
        frame = Atoms(a.numbers, positions=a.positions, cell=a.cell, pbc=True)
        frame.info.update({"material": material, "frame": k, "rattle_std_A": float(std_A),
                           "volume_factor": float(volume_factor), "config_type": "rattled"})
        frames.append(frame)
    return frames
