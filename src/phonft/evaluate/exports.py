"""A model's phonons in phonopy's own file formats, beside its ``thermal.json`` and ``bands.json``.

:func:`write_exports` writes, with phonopy's own writers and from the very
:class:`phonopy.Phonopy` object the metrics were computed on (the relaxed cell, the
drift-free model forces on the 0.01 Å displaced supercells and the symmetrized full force
constants, in phonopy's VASP units: Å, eV/Å, eV/Å², THz):

- ``phonopy_params.yaml``: cell, supercell and primitive matrices, displacements, forces
  and force constants (phonopy's yaml writer, as ``Phonopy.save``); ``phonopy-load`` and
  ``phonopy.load`` open it and use the force constants as written;
- ``fc2.hdf5``: the force constants (``write_force_constants_to_hdf5``, with ``p2s_map``);
- ``band.yaml``: the band structure on the q-points of ``bands.json`` (the reference's
  seekpath path, :func:`phonft.evaluate.bands.seekpath_path`), with a phonft header
  naming the material, the model and the protocol digest;
- ``total_dos.dat``: phonopy's total DOS (tetrahedron method, states/THz per primitive
  cell) on the protocol's thermal mesh.

Both force-constant files hold them *compact*: the rows of the primitive cell's atoms, the
only rows phonopy's dynamical matrix reads, so every frequency is the one the metrics used,
in a file n_supercell/n_primitive times smaller (32 times for Si's 64-atom supercell). No
NAC is written, as none is used in the metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

EXPORT_FILES = ("phonopy_params.yaml", "fc2.hdf5", "band.yaml", "total_dos.dat")
"""The phonopy-format files :func:`write_exports` writes into a material's folder."""

PARAMS_SETTINGS = {"force_sets": True, "displacements": True, "force_constants": True,
                   "born_effective_charge": True, "dielectric_constant": True}
"""What ``phonopy_params.yaml`` holds (``Phonopy.save`` settings): forces and force constants."""


def compact_force_constants(phonon) -> np.ndarray:
    """The rows of the primitive cell's atoms (phonopy's ``p2s_map``) of ``phonon``'s force
    constants (eV/Å²), shape (n_primitive, n_supercell, 3, 3): the only rows phonopy's
    dynamical matrix reads, copied exactly. Compact force constants are returned as they are."""
    fc = np.asarray(phonon.force_constants, dtype=np.float64)
    if fc.shape[0] != fc.shape[1]:
        return fc
    return np.ascontiguousarray(fc[phonon.primitive.p2s_map])


def write_params(phonon, path: Path) -> None:
    """``phonopy_params.yaml`` (phonopy's yaml writer): the cell, displacements, the forces (eV/Å)
    and the compact force constants (eV/Å², :func:`compact_force_constants`)."""
    params = phonon.to_phonopy_yaml(settings=PARAMS_SETTINGS)
    params.force_constants = compact_force_constants(phonon)
    Path(path).write_text(str(params), encoding="utf-8")


def write_fc2(phonon, path: Path) -> None:
    """``fc2.hdf5``: the compact force constants in eV/Å² with phonopy's ``p2s_map``
    (``write_force_constants_to_hdf5``; phono3py's file name and layout)."""
    from phonopy.file_IO import write_force_constants_to_hdf5

    write_force_constants_to_hdf5(compact_force_constants(phonon), str(path), p2s_map=phonon.primitive.p2s_map,
                                  physical_unit="eV/angstrom^2")


def write_band_yaml(phonon, reference, npoints: int, path: Path, header: dict[str, Any]) -> None:
    """``band.yaml`` on the reference's seekpath path with ``npoints`` per segment (the q-points of
    ``bands.json``); frequencies in THz, distances along the model's own reciprocal lattice."""
    from phonft.evaluate.bands import seekpath_path

    band_path = seekpath_path(reference, npoints)
    phonon.run_band_structure(band_path.segments, path_connections=band_path.connections, labels=band_path.labels)
    phonon.write_yaml_band_structure(comment=header, filename=path)


def write_total_dos(phonon, mesh: float | tuple[int, int, int], path: Path) -> None:
    """``total_dos.dat``: phonopy's total DOS (tetrahedron method, THz and states/THz per
    primitive cell) on ``mesh`` (a length in Å or three integers, the protocol's thermal mesh)."""
    phonon.run_mesh(mesh if isinstance(mesh, (int, float)) else list(mesh))
    phonon.run_total_dos()
    phonon.write_total_dos(filename=path)


def write_exports(result, folder: Path, header: dict[str, Any]) -> tuple[str, ...]:
    """Write :data:`EXPORT_FILES` of ``result`` (a :class:`~phonft.evaluate.mdr.ModelPhonons`) into
    ``folder``; ``header`` (material, model, protocol digest) heads ``band.yaml``.

    Call it after the records are made: it runs phonopy's band structure and mesh on
    ``result.phonon`` again, which leaves its force constants, and so the records, unchanged.
    """
    folder = Path(folder)
    ph, protocol = result.phonon, result.protocol
    write_params(ph, folder / "phonopy_params.yaml")
    write_fc2(ph, folder / "fc2.hdf5")
    write_band_yaml(ph, result.reference, protocol.band_npoints, folder / "band.yaml", header)
    write_total_dos(ph, protocol.mesh, folder / "total_dos.dat")
    return EXPORT_FILES
