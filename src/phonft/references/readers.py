"""Readers of DFT phonon results, one per format, into one in-memory form.

Every reader returns a :class:`RawReference`: a :class:`phonopy.Phonopy` object in
phonopy's VASP units (Å, eV/Å) whose dataset holds the displacements and forces (or, for
``force_constants``, no dataset and the force constants in eV/Å²), plus a
:class:`phono3py.Phono3py` object where third-order data exist. Readers never write files.
Any problem with an input (missing, truncated, corrupt, inconsistent) is raised as an
:class:`~phonft.errors.InputFileError` naming the file. The force outputs of any code
phonopy reads (``calc``; ``vasprun`` and ``qe`` are its VASP and QE cases) are parsed in
:mod:`phonft.references.calc`, where vasprun.xml files must hold the displaced supercells
of their displacements (:mod:`phonft.references.positions`); force-constant files in
:mod:`phonft.references.fcfile`. Whether the
forces are plausible (unit, directions) is checked by the caller,
:meth:`phonft.references.Reference.read` (:mod:`phonft.references.plausibility`). Loading phonopy/phono3py yaml files
and converting them to VASP units is :mod:`phonft.phonopy_files`.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from phonopy import Phonopy

from phonft.errors import InputFileError
from phonft.phonopy_files import (
    load_phono3py_yaml,
    load_phonopy_yaml,
    load_phonopy_yaml_data,
    normalised_phonopy,
    reading,
    require_file,
    vasp_unit_nac,
)
from phonft.references.calc import check_forces, n_displacements
from phonft.references.calc import read_calc as read_calc_outputs


@dataclass
class RawReference:
    """DFT displacements and forces for one material, normalised to eV/Å and Å."""

    phonon: Phonopy
    fmt: str
    files: list[Path]
    phono3py: Any = None  # phono3py.Phono3py with an fc3 dataset holding forces
    synthetic: bool = False
    engine: dict | None = None
    source_values: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def fc_only(self) -> bool:
        """Whether the data are force constants without displacements (DFPT)."""
        return not self.phonon.dataset and self.phonon.force_constants is not None


# --------------------------------------------------------------------------- checks


def _check_dataset_forces(phonon: Phonopy, path: Path, dataset: dict | None = None) -> None:
    ds = phonon.dataset if dataset is None else dataset
    if not ds:
        raise InputFileError(path, "holds no displacement dataset.", "use a phonopy_params.yaml written with forces.")
    if "first_atoms" in ds:
        natom = ds["natom"]
        for i, d in enumerate(ds["first_atoms"]):
            if "forces" not in d:
                raise InputFileError(path, f"displacement {i + 1} has no forces.", "use a file written with forces.")
            f = np.asarray(d["forces"], dtype=float)
            if f.shape != (natom, 3):
                raise InputFileError(path, f"displacement {i + 1} has forces of shape {f.shape}, not ({natom}, 3).")
            if not np.all(np.isfinite(f)):
                raise InputFileError(path, f"displacement {i + 1} has NaN or infinite forces.")
    else:
        if "forces" not in ds:
            raise InputFileError(path, "holds displacements but no forces.", "use a file written with forces.")
        f = np.asarray(ds["forces"], dtype=float)
        n = len(ds["displacements"])
        check_forces(f, n, len(phonon.supercell), path)


# --------------------------------------------------------------------------- loaders


def read_phonopy_params(path: str | os.PathLike) -> RawReference:
    """``phonopy_params.yaml`` or ``phonopy.yaml`` holding displacements with forces."""
    path = Path(path)
    ph = load_phonopy_yaml(path)
    _check_dataset_forces(ph, path)
    return RawReference(normalised_phonopy(ph), "phonopy_yaml", [path])


def read_force_sets(
    disp_yaml: str | os.PathLike, force_sets: str | os.PathLike, born: str | os.PathLike | None = None
) -> RawReference:
    """``phonopy_disp.yaml`` + ``FORCE_SETS`` (+ ``BORN``)."""
    from phonopy.file_IO import parse_FORCE_SETS

    disp_yaml, force_sets = Path(disp_yaml), require_file(Path(force_sets))
    ph = load_phonopy_yaml(disp_yaml)
    natom = len(ph.supercell)
    with reading(force_sets, "a phonopy FORCE_SETS file"):
        dataset = parse_FORCE_SETS(natom=natom, filename=str(force_sets))
    files = [disp_yaml, force_sets]
    if "first_atoms" in dataset:
        n_expected = n_displacements(ph)
        if len(dataset["first_atoms"]) != n_expected:
            raise InputFileError(
                force_sets,
                f"holds {len(dataset['first_atoms'])} displacements, but {disp_yaml.name} has {n_expected}.",
                "pair FORCE_SETS with the phonopy_disp.yaml it was made from.",
            )
        for i, (a, b) in enumerate(zip(dataset["first_atoms"], ph.dataset["first_atoms"], strict=True)):
            disp = np.asarray(a["displacement"], dtype=float)
            if (a["number"] != b["number"] or disp.shape != (3,)
                    or not np.allclose(disp, b["displacement"], atol=1e-6)):
                raise InputFileError(
                    force_sets,
                    f"displacement {i + 1} does not match {disp_yaml.name}.",
                    "pair FORCE_SETS with the phonopy_disp.yaml it was made from.",
                )
    _check_dataset_forces(ph, force_sets, dataset)
    files += attach_born(ph, born)
    return RawReference(normalised_phonopy(ph, dataset), "force_sets", files)


def attach_born(ph: Phonopy, born: str | os.PathLike | None) -> list[Path]:
    """Read a BORN file into ``ph.nac_params``; return it as a used input (a list, empty
    without ``born``)."""
    from phonopy.file_IO import parse_BORN

    if born is None:
        return []
    born = require_file(Path(born))
    with reading(born, "a phonopy BORN file"):
        ph.nac_params = parse_BORN(ph.primitive, filename=str(born))
    return [born]


def read_calc(disp_yaml: str | os.PathLike, outputs: Sequence[str | os.PathLike], interface: str,
              born: str | os.PathLike | None = None, fmt: str = "calc") -> RawReference:
    """``phonopy_disp.yaml`` + one force output of ``interface`` per displacement (+ ``BORN``),
    read by phonopy's reader for the code (:mod:`phonft.references.calc`), in Å and eV/Å.
    ``fmt`` labels the result: ``vasprun`` and ``qe`` are this reader for VASP and QE."""
    disp_yaml = Path(disp_yaml)
    ph, paths = read_calc_outputs(disp_yaml, outputs, interface)
    used = attach_born(ph, born)
    return RawReference(normalised_phonopy(ph), fmt, [disp_yaml, *paths, *used])


def read_vasprun(disp_yaml: str | os.PathLike, vaspruns: Sequence[str | os.PathLike],
                 born: str | os.PathLike | None = None) -> RawReference:
    """``phonopy_disp.yaml`` + one ``vasprun.xml`` per displacement (or a tar archive) (+ ``BORN``)."""
    return read_calc(disp_yaml, vaspruns, "vasp", born, fmt="vasprun")


def read_qe(disp_yaml: str | os.PathLike, outputs: Sequence[str | os.PathLike],
            born: str | os.PathLike | None = None) -> RawReference:
    """``phonopy_disp.yaml`` (made with ``--qe``) + one pw.x output per displacement."""
    return read_calc(disp_yaml, outputs, "qe", born, fmt="qe")


def read_fc_file(spec: Any) -> RawReference:
    """Force constants of a DFPT run (``force_constants`` format; a resolved
    :class:`~phonft.specs.ReferenceSpec`): FORCE_CONSTANTS, force_constants.hdf5 or a VASP
    vasprun.xml, with the unit cell and supercell matrix they belong to (+ ``BORN``)."""
    from phonft.references.fcfile import read_force_constants

    ph = read_force_constants(spec.force_constants, spec.unitcell, spec.interface, spec.supercell_matrix,
                              spec.primitive_matrix)
    used = attach_born(ph, spec.born)
    if ph.nac_params is not None:
        ph.nac_params = vasp_unit_nac(ph.nac_params)
    notes = ["force constants read from the file (no displacements), symmetrized as the protocol says"]
    return RawReference(ph, "force_constants", [spec.force_constants, spec.unitcell, *used], notes=notes)


MDR_THERMAL_KEYS = ("temperatures", "free_e", "entropy", "heat_capacity")


def _check_mdr(path: Path, raw: Any) -> None:
    """An MDR file's content has the keys :func:`read_mdr` reads."""
    if not isinstance(raw, dict):
        raise InputFileError(path, "is not a YAML mapping.", "use an MDR phonon yaml(.bz2) file.")
    missing = [k for k in ("unit_cell", "supercell_matrix", "displacements", *MDR_THERMAL_KEYS) if k not in raw]
    if missing:
        raise InputFileError(
            path,
            f"lacks the key(s) {', '.join(missing)} of an MDR phonon file; it may be truncated.",
            "download the file again.",
        )


def read_mdr(path: str | os.PathLike) -> RawReference:
    """An MDR phonon file (phonopy yaml, optionally ``.bz2``) with forces and thermal data.

    The file is read and decompressed once; its text is parsed by the safe loader (whose
    result gives the thermal data) and by phonopy. The stored force constants are ignored:
    they are rebuilt from the forces and symmetrized. The stored thermal values and energy
    (eV per *unit cell*) are kept as ``source_values`` for comparison.
    """
    path = require_file(Path(path))
    ph, raw = load_phonopy_yaml_data(path, lambda data: _check_mdr(path, data), what="an MDR phonon yaml")
    _check_dataset_forces(ph, path)
    n_unit = len(raw["unit_cell"]["points"])
    energy = raw.get("energy")
    source_values = {
        "temperatures_K": [float(t) for t in raw["temperatures"]],
        "free_energy_kJ_per_mol": [float(x) for x in raw["free_e"]],
        "entropy_J_per_K_mol": [float(x) for x in raw["entropy"]],
        "heat_capacity_J_per_K_mol": [float(x) for x in raw["heat_capacity"]],
        "energy_eV_per_unit_cell": None if energy is None else float(energy),
        "energy_eV_per_atom": None if energy is None else float(energy) / n_unit,
    }
    if "phonon_freq" in raw:
        source_values["max_stored_frequency_THz"] = float(np.max(raw["phonon_freq"]))
    notes = ["force constants rebuilt from the stored forces and symmetrized (stored ones ignored)"]
    return RawReference(normalised_phonopy(ph), "mdr", [path], source_values=source_values, notes=notes)


def read_phono3py(
    path: str | os.PathLike, forces_fc3: str | os.PathLike | None = None
) -> RawReference:
    """phono3py data: ``phono3py_disp.yaml`` + ``FORCES_FC3``, or ``phono3py_params.yaml(.xz)``.

    fc2 is built from the fc2 dataset when the file has one (separate phonon supercell),
    otherwise from the first-level displacements of the fc3 set, as phono3py does.
    """
    from phono3py.file_IO import parse_FORCES_FC3

    path = Path(path)
    ph3 = load_phono3py_yaml(path)
    files = [path]
    if forces_fc3 is not None:
        forces_fc3 = require_file(Path(forces_fc3))
        dataset = copy.deepcopy(ph3.dataset)
        with reading(forces_fc3, "a phono3py FORCES_FC3 file"):
            parse_FORCES_FC3(dataset, str(forces_fc3))
        ph3.dataset = dataset
        files.append(forces_fc3)
    _check_fc3_forces(ph3, forces_fc3 or path)

    if ph3.phonon_dataset is not None and ph3.phonon_supercell_matrix is not None:
        fc2_dataset = copy.deepcopy(ph3.phonon_dataset)
        smat = ph3.phonon_supercell_matrix
    else:
        ds = ph3.dataset
        fc2_dataset = {
            "natom": ds["natom"],
            "first_atoms": [
                {"number": d["number"], "displacement": d["displacement"], "forces": d["forces"]}
                for d in ds["first_atoms"]
            ],
        }
        smat = ph3.supercell_matrix
    ph = Phonopy(ph3.unitcell, supercell_matrix=smat, primitive_matrix=ph3.primitive_matrix, log_level=0)
    ph.dataset = fc2_dataset
    if ph3.nac_params is not None:
        ph.nac_params = vasp_unit_nac(ph3.nac_params)
    _check_dataset_forces(ph, forces_fc3 or path)
    return RawReference(ph, "phono3py", files, phono3py=ph3)


def _check_fc3_forces(ph3: Any, path: Path) -> None:
    ds = ph3.dataset
    if not ds:
        raise InputFileError(path, "holds no fc3 displacement dataset.")
    natom = len(ph3.supercell)
    if "first_atoms" not in ds:
        f = np.asarray(ds.get("forces", []), dtype=float)
        check_forces(f, len(ds["displacements"]), natom, path)
        return
    for d1 in ds["first_atoms"]:
        entries = [d1, *d1.get("second_atoms", [])]
        for d in entries:
            if d.get("included", True) is False:
                continue
            if "forces" not in d:
                raise InputFileError(path, "lacks forces for some displacements; it may be truncated.",
                                     "regenerate FORCES_FC3 with `phono3py --cf3`.")
            f = np.asarray(d["forces"], dtype=float)
            if f.shape != (natom, 3) or not np.all(np.isfinite(f)):
                raise InputFileError(path, "holds forces of the wrong shape, or NaN.",
                                     "regenerate FORCES_FC3 with `phono3py --cf3`.")
