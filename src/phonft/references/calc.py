"""Force outputs of any calculator phonopy parses (``format: calc``), read by phonopy.

``phonopy_disp.yaml`` (written by ``phonopy-init --<interface> -d`` or by ``phonft
displacements``) holds the displacement set in the code's units; one force output per
displaced supercell is parsed with phonopy's own reader for the interface
(:func:`phonopy.interface.calculator.get_calc_dataset`; Wien2k's ``case.scf`` with
:func:`~phonopy.interface.calculator.get_calc_dataset_wien2k`). The result is converted to
Å and eV/Å with phonopy's unit factors for the code
(:func:`phonopy.interface.calculator.get_calculator_physical_units`, in
:func:`phonft.phonopy_files.normalised_phonopy`): e.g. Bohr and Ry/Bohr for Quantum
ESPRESSO, Å and Hartree/Bohr for CP2K, Bohr and mRy/Bohr for Wien2k.

Compressed outputs: phonopy reads VASP's vasprun.xml compressed (``.xz``, ``.lzma``,
``.gz``, ``.bz2``) and as file objects, so vasprun.xml files and the members of tar archives
of them go to phonopy as they are, without copies. Every other interface's reader opens
plain files only, so their compressed outputs (and tar members) are decompressed into a
temporary folder first.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from phonopy import Phonopy

from phonft.errors import InputFileError
from phonft.io import COMPRESSED_SUFFIXES, read_text
from phonft.phonons import remove_drift
from phonft.phonopy_files import load_phonopy_yaml, reading, require_file
from phonft.references.positions import ForceFile, check_positions
from phonft.specs import INTERFACE_NAMES


def interface_label(interface: str) -> str:
    """The code's name, e.g. ``Quantum ESPRESSO`` for ``qe``."""
    return INTERFACE_NAMES.get(interface, interface)


def check_forces(forces: np.ndarray, n_disp: int, natom: int, path: Path) -> np.ndarray:
    """Validate a (n_disp, natom, 3) force array read from ``path``."""
    forces = np.asarray(forces, dtype=np.float64)
    if forces.shape != (n_disp, natom, 3):
        raise InputFileError(
            path,
            f"holds forces of shape {forces.shape}, but the displacement set needs "
            f"({n_disp}, {natom}, 3).",
            "give one complete force file per displaced supercell, in the displacement order.",
        )
    if not np.all(np.isfinite(forces)):
        raise InputFileError(path, "contains NaN or infinite forces.", "rerun or repair the DFT calculation.")
    return forces


def n_displacements(phonon: Phonopy) -> int:
    """The number of displaced supercells of ``phonon``'s dataset."""
    ds = phonon.dataset
    return len(ds["first_atoms"]) if "first_atoms" in ds else len(ds["displacements"])


@contextlib.contextmanager
def force_outputs(files: Sequence[Path], interface: str) -> Iterator[list[ForceFile]]:
    """The force outputs to parse, in order; tar archives are opened (members sorted by name).

    For VASP the files themselves (phonopy decompresses them) and tar members as in-memory
    file objects; for other codes plain files, decompressed into a temporary folder where
    needed (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="phonft-") as tmp:
        out: list[ForceFile] = []
        for f in files:
            require_file(f)
            if ".tar" in f.suffixes:
                out.extend(_tar_members(f, Path(tmp), plain_files=interface != "vasp"))
            elif f.suffix in COMPRESSED_SUFFIXES and interface != "vasp":
                plain = Path(tmp) / f.with_suffix("").name
                with reading(f, "a compressed force file"):
                    plain.write_text(read_text(f), encoding="utf-8")
                out.append(ForceFile(f, plain, f.name))
            else:
                out.append(ForceFile(f, f, f.name))
        yield out


def _tar_members(archive: Path, workdir: Path, plain_files: bool) -> list[ForceFile]:
    """The file members of a tar archive, sorted by name: bytes in memory, or files under
    ``workdir`` when ``plain_files``."""
    with reading(archive, "a tar archive of force files"), tarfile.open(archive) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.name)
        if plain_files:
            dest = workdir / archive.name
            tar.extractall(dest, members=members, filter="data")
            return [ForceFile(archive, dest / m.name, m.name) for m in members]
        return [ForceFile(archive, tar.extractfile(m).read(), m.name) for m in members]


def _parse_one(out: ForceFile, ph: Phonopy, interface: str, what: str) -> np.ndarray:
    """Forces (the code's unit) of one output, by phonopy's reader for ``interface``."""
    from phonopy.interface.calculator import get_calc_dataset, get_calc_dataset_wien2k

    natom = len(ph.supercell)
    source = io.BytesIO(out.readable) if isinstance(out.readable, bytes) else out.readable
    with reading(out.blamed, f"{what} (member {out.label})" if out.label != out.blamed.name else what,
                 f"give {what}s, one per displaced supercell, in order."):
        if interface == "wien2k":  # case.scf holds the inequivalent atoms; phonopy expands them by symmetry
            ds = get_calc_dataset_wien2k([source], ph.supercell, _one_displacement(ph, out.index), verbose=False)
        else:
            ds = get_calc_dataset(interface, natom, [source], verbose=False)
        forces = np.asarray(ds["forces"], dtype=float)
    if forces.size == 0:
        label = interface_label(interface)
        raise InputFileError(out.blamed, f"{'member ' + out.label + ' ' if out.label != out.blamed.name else ''}"
                             f"holds no forces that phonopy's {label} reader finds: it is not a {label} force "
                             "output (another code's file, or a run that stopped early).",
                             f"list the {label} outputs, or set interface to the code that wrote the files.")
    return check_forces(forces, 1, natom, out.blamed)[0]


def _one_displacement(ph: Phonopy, k: int) -> dict:
    """The dataset of ``ph`` (type 1 or 2) reduced to its displacement ``k`` (for Wien2k's reader)."""
    ds = copy.deepcopy(ph.dataset)
    if "first_atoms" in ds:
        ds["first_atoms"] = [ds["first_atoms"][k]]
    else:
        ds["displacements"] = ds["displacements"][k:k + 1]
    return ds


def read_calc_forces(disp_yaml: Path, files: Sequence[str | os.PathLike], interface: str,
                     what: str) -> tuple[Phonopy, np.ndarray, list[Path]]:
    """``phonopy_disp.yaml`` (the code's units) and the forces (the code's unit) of one output
    per displacement; the positions of vasprun.xml files are checked against the set."""
    ph = load_phonopy_yaml(disp_yaml)
    check_calculator(ph, disp_yaml, interface)
    paths = [Path(f) for f in files]
    with force_outputs(paths, interface) as outputs:
        n_expected = n_displacements(ph)
        if len(outputs) != n_expected:
            raise InputFileError(
                paths[0] if len(paths) == 1 else disp_yaml,
                f"{len(outputs)} {what} files were given, but {disp_yaml.name} has {n_expected} displacements.",
                "list one output per displaced supercell, in order (disp-001, disp-002, ...).",
            )
        outputs = [ForceFile(o.blamed, o.readable, o.label, k) for k, o in enumerate(outputs)]
        forces = np.asarray([_parse_one(out, ph, interface, what) for out in outputs])
        if interface == "vasp":
            check_positions(ph, outputs, disp_yaml)
    return ph, forces, paths


def check_calculator(ph: Phonopy, disp_yaml: Path, interface: str) -> None:
    """``phonopy_disp.yaml`` must be written for ``interface`` (its units are the code's)."""
    found = ph.calculator or "vasp"
    if found != interface:
        raise InputFileError(
            disp_yaml,
            f"was written for calculator '{found}', not {interface_label(interface)} ('{interface}').",
            f"create it with `phonopy-init --{interface} -c <unit cell> -d ...`, or use the "
            f"{interface}/phonopy_disp.yaml that `phonft displacements` writes.",
        )


def with_forces(ph: Phonopy, forces: np.ndarray) -> dict:
    """A copy of ``ph``'s dataset holding ``forces`` (drift removed), one set per displacement."""
    ds = copy.deepcopy(ph.dataset)
    forces = remove_drift(forces)
    if "first_atoms" in ds:
        for d, f in zip(ds["first_atoms"], forces, strict=True):
            d["forces"] = f
    else:
        ds["forces"] = forces
    return ds


def read_calc(disp_yaml: Path, outputs: Sequence[str | os.PathLike], interface: str) -> tuple[Phonopy, list[Path]]:
    """``phonopy_disp.yaml`` + one force output of ``interface`` per displacement: the phonopy
    object in the code's units with the forces in its dataset (drift removed), and the files
    read. :func:`phonft.phonopy_files.normalised_phonopy` converts it to Å and eV/Å."""
    what = f"{interface_label(interface)} force output"
    ph, forces, paths = read_calc_forces(disp_yaml, outputs, interface, what)
    ph.dataset = with_forces(ph, forces)
    return ph, paths
