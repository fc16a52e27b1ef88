"""displacements stage: finite-displacement supercells for fc2 (phonopy) and fc3 (phono3py).

``results/displacements/<m>/`` receives:

- ``phonopy_disp.yaml`` (Å), and ``phono3py_disp.yaml`` when fc3 is asked for;
- ``vasp/``: ``phonopy_disp.yaml``, ``SPOSCAR`` and ``POSCAR-001``...;
- ``qe/``: ``phonopy_disp.yaml`` in Bohr (as ``phonopy --qe`` writes it), ``supercell.in``
  and ``supercell-001.in``... (pw.x ``ATOMIC_POSITIONS``/``CELL_PARAMETERS`` blocks; add
  your own ``&control``/pseudopotential header);
- ``<interface>/`` for every other code of ``interfaces`` (the ``displacements.interfaces``
  setting, plus the interface of a material's ``calc`` reference): ``phonopy_disp.yaml`` in
  the code's units and the code's supercell files, written by phonopy's writer
  (:func:`phonopy.interface.calculator.write_supercells_with_displacements`), as
  ``phonopy-init --<interface> -d`` writes them;
- ``vasp-fc3/``, ``qe-fc3/`` (``<interface>-fc3/``): the same for the phono3py set;
- ``manifest.json``: counts, supercell matrix, the interfaces written and the protocol record.

Run DFT on those supercells anywhere, then point the material's ``reference`` at the
outputs (formats ``calc``, ``vasprun``, ``qe``, ``phono3py``) to bring the results back.
WIEN2k, CP2K, CRYSTAL, Fleur and Questaal need settings from the code's own input file to
write a supercell (:data:`NEEDS_CODE_INPUT`); for them, run ``phonopy-init`` on that file
with the manifest's supercell matrix and displacement distance.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from phonopy import Phonopy
from phonopy.interface.calculator import get_calculator_physical_units, write_supercells_with_displacements
from phonopy.structure.atoms import PhonopyAtoms

from phonft.errors import ConfigError
from phonft.io import atomic_directory, atomic_write_json
from phonft.protocols import DisplacementProtocol, SupercellLimits

CALCULATORS = ("vasp", "qe")
"""The interfaces written by default (the ``displacements.interfaces`` setting's default)."""

NEEDS_CODE_INPUT = ("wien2k", "cp2k", "crystal", "fleur", "qlm")
"""Interfaces whose supercell writers need information from the code's own input file
(phonopy raises without it), which a POSCAR or CIF does not hold."""

# 'auto' is passed explicitly; phonopy still warns that v3 defaulted to the identity.
warnings.filterwarnings("ignore", message="primitive_matrix defaulted", category=Warning)
# QE inputs carry phonopy's placeholder pseudopotential names, documented in the README.
warnings.filterwarnings("ignore", message="Optional structure information", category=UserWarning)


def read_unitcell(path: str | os.PathLike) -> PhonopyAtoms:
    """Read a POSCAR (or any ase-readable file) as a PhonopyAtoms in Å.

    The structure is checked as the structures stage checks it, with the minimum
    interatomic distance that a ``structure.json`` beside it records (the material's
    ``structure.min_distance_A``), else the default.
    """
    from phonft.atoms import from_ase
    from phonft.structures import read_structure_file, recorded_min_distance

    return from_ase(read_structure_file(path, min_distance_A=recorded_min_distance(path)), origin=path)


def supercell_matrix(unitcell: PhonopyAtoms, protocol: DisplacementProtocol) -> np.ndarray:
    """The protocol's matrix, or the smallest diagonal one with every vector ≥ min_length_A."""
    if protocol.supercell_matrix is not None:
        m = np.array(protocol.supercell_matrix, dtype=int)
        return np.diag(m) if m.shape == (3,) else m
    lengths = np.linalg.norm(np.asarray(unitcell.cell), axis=1)
    with np.errstate(divide="ignore"):
        repeats = np.maximum(1, np.ceil(protocol.min_length_A / lengths))
    if not np.all(repeats <= 1e6):  # an integer matrix could not hold it; check_size refuses far less
        raise ConfigError(f"min_length_A = {protocol.min_length_A} Å asks for {repeats.tolist()} unit cells along "
                          f"the cell vectors ({lengths.round(3).tolist()} Å long). Fix: give a smaller min_length_A")
    return np.diag(repeats.astype(int))


def check_size(material: str, unitcell: PhonopyAtoms, protocol: DisplacementProtocol,
               limits: SupercellLimits) -> int:
    """The supercell's atom count, or a :class:`ConfigError` when it exceeds ``limits``
    (checked before phonopy builds anything, so a typo fails at once)."""
    matrix = supercell_matrix(unitcell, protocol)
    cells = int(round(abs(np.linalg.det(matrix))))
    n_atoms = len(unitcell) * cells
    checks = [("max_supercell_atoms_fc2", "fc2", limits.max_supercell_atoms_fc2)]
    if protocol.fc3:
        checks.append(("max_supercell_atoms_fc3", "fc3", limits.max_supercell_atoms_fc3))
    for key, kind, most in checks:
        if n_atoms > most:
            raise ConfigError(
                f"material '{material}': the {kind} supercell {matrix.tolist()} holds {n_atoms} atoms "
                f"({len(unitcell)} per unit cell x {cells} cells), more than displacements.{key} = {most}. "
                f"Fix: give a smaller supercell (or min_length_A), or raise {key} if you mean it")
    return n_atoms


def _primitive(protocol: DisplacementProtocol):
    return protocol.primitive_matrix if isinstance(protocol.primitive_matrix, str) else np.array(protocol.primitive_matrix)


def _scaled(cell: PhonopyAtoms, factor: float) -> PhonopyAtoms:
    return PhonopyAtoms(symbols=cell.symbols, cell=np.asarray(cell.cell) * factor,
                        scaled_positions=cell.scaled_positions, masses=cell.masses,
                        magnetic_moments=cell.magnetic_moments)


def _construction(unitcell: PhonopyAtoms, protocol: DisplacementProtocol, calculator: str) -> tuple[PhonopyAtoms, dict, float]:
    """Unit cell and constructor arguments in ``calculator``'s length unit (Å for VASP, Bohr for QE)."""
    to_A = get_calculator_physical_units(calculator).distance_to_A
    kwargs = dict(supercell_matrix=supercell_matrix(unitcell, protocol), primitive_matrix=_primitive(protocol),
                  symprec=protocol.symprec / to_A, calculator=None if calculator == "vasp" else calculator,
                  log_level=0)
    return _scaled(unitcell, 1.0 / to_A), kwargs, to_A


def generate_fc2(unitcell: PhonopyAtoms, protocol: DisplacementProtocol, calculator: str = "vasp") -> Phonopy:
    """A phonopy object with the fc2 displacement set, in ``calculator``'s length unit."""
    cell, kwargs, to_A = _construction(unitcell, protocol, calculator)
    ph = Phonopy(cell, **kwargs)
    ph.generate_displacements(distance=protocol.distance_A / to_A)
    return ph


def generate_fc3(unitcell: PhonopyAtoms, protocol: DisplacementProtocol, calculator: str = "vasp"):
    """A phono3py object with the fc3 displacement set, in ``calculator``'s length unit."""
    from phono3py import Phono3py

    cell, kwargs, to_A = _construction(unitcell, protocol, calculator)
    ph3 = Phono3py(cell, **kwargs)
    ph3.generate_displacements(distance=protocol.fc3_distance_A / to_A)
    return ph3


def _write_inputs(folder: Path, calculator: str, supercell, cells, ids) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.chdir(folder):
        write_supercells_with_displacements(calculator, supercell, cells, displacement_ids=ids,
                                            zfill_width=3 if len(cells) < 1000 else 5)


def check_interfaces(interfaces: Sequence[str]) -> list[str]:
    """``interfaces`` without repeats, each one phonopy writes from a unit cell alone; else a
    :class:`ConfigError` naming the interface and what to do instead."""
    from phonft.specs import INTERFACES

    for name in interfaces:
        if name not in INTERFACES:
            raise ConfigError(f"displacements: unknown interface {name!r}; phonopy writes: {', '.join(INTERFACES)}")
        if name in NEEDS_CODE_INPUT:
            raise ConfigError(f"displacements: phonopy writes {name} supercells only from {name}'s own input file, "
                              f"which phonft does not have. Fix: run `phonopy-init --{name} -c <your input> -d` with "
                              "the supercell matrix and distance of manifest.json, and drop it from interfaces")
    return list(dict.fromkeys(interfaces))


def write_displacements(out_dir: str | os.PathLike, material: str, unitcell: PhonopyAtoms,
                        protocol: DisplacementProtocol, limits: SupercellLimits | None = None,
                        interfaces: Sequence[str] = CALCULATORS) -> dict:
    """Generate and write every displacement set atomically, with the DFT inputs of each of
    ``interfaces`` (VASP's also at the top level); return the manifest.

    A supercell above ``limits`` (default :class:`SupercellLimits`) is refused before
    anything is generated or written, as is an interface phonopy cannot write."""
    check_size(material, unitcell, protocol, limits or SupercellLimits())
    calculators = check_interfaces(["vasp", *interfaces])
    manifest: dict = {"material": material, "calculators": calculators, **protocol.record()}
    with atomic_directory(out_dir) as tmp:
        for calc in calculators:
            ph = generate_fc2(unitcell, protocol, calc)
            sub = tmp / calc
            _write_inputs(sub, calc, ph.supercell, ph.supercells_with_displacements,
                          np.arange(len(ph.supercells_with_displacements)) + 1)
            ph.save(sub / "phonopy_disp.yaml", settings={"force_sets": False, "displacements": True,
                                                         "force_constants": False})
            if calc == "vasp":
                ph.save(tmp / "phonopy_disp.yaml", settings={"force_sets": False, "displacements": True,
                                                            "force_constants": False})
                manifest["supercell_matrix"] = np.asarray(ph.supercell_matrix).tolist()
                manifest["n_atoms_supercell"] = len(ph.supercell)
                manifest["n_displacements_fc2"] = len(ph.supercells_with_displacements)
            if protocol.fc3:
                ph3 = generate_fc3(unitcell, protocol, calc)
                cells = [c for c in ph3.supercells_with_displacements if c is not None]
                ids = [i + 1 for i, c in enumerate(ph3.supercells_with_displacements) if c is not None]
                sub3 = tmp / f"{calc}-fc3"
                _write_inputs(sub3, calc, ph3.supercell, cells, ids)
                ph3.save(str(sub3 / "phono3py_disp.yaml"))
                if calc == "vasp":
                    ph3.save(str(tmp / "phono3py_disp.yaml"))
                    manifest["n_displacements_fc3"] = len(cells)
        atomic_write_json(tmp / "manifest.json", manifest)
    return manifest
