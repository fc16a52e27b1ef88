"""The :class:`Reference` facade: read a spec, compute fc2/fc3 and thermal data, write.

Reading a written folder back is :class:`phonft.references.folder.ReferenceFolder`.
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from phonopy.file_IO import write_force_constants_to_hdf5

from phonft.errors import ConfigError
from phonft.io import atomic_directory, atomic_write_json, sha256_file
from phonft.phonons import phonon_summary, produce_force_constants, thermal_json_record
from phonft.protocols import ReferenceProtocol
from phonft.references.plausibility import (
    check_force_directions,
    check_force_units,
    common_path,
    enforce,
)
from phonft.references.readers import (
    RawReference,
    read_calc,
    read_fc_file,
    read_force_sets,
    read_mdr,
    read_phono3py,
    read_phonopy_params,
)
from phonft.references.supercell_labels import (
    SupercellLabels,
    supercell_labels,
    write_labels,
)
from phonft.specs import ReferenceSpec, SpecError, resolve

log = logging.getLogger(__name__)


def given_force_constants(phonon, protocol: ReferenceProtocol) -> np.ndarray:
    """``phonon``'s own force constants (read from a file, eV/Å²), symmetrized when the
    protocol says so, as :func:`produce_force_constants` does for those built from forces."""
    if protocol.symmetrize_fc:
        phonon.symmetrize_force_constants()
    return np.asarray(phonon.force_constants, dtype=np.float64)


def read_reference(spec: ReferenceSpec, displacements_dir: str | os.PathLike | None = None) -> RawReference:
    """Dispatch a resolved spec to its reader."""
    fmt = spec.format
    if fmt == "phonopy_yaml":
        return read_phonopy_params(spec.main)
    if fmt == "force_sets":
        return read_force_sets(spec.main, spec.force_sets, spec.born)
    if fmt in ("vasprun", "qe", "calc"):
        return read_calc(spec.main, spec.files, spec.interface, spec.born, fmt=fmt)
    if fmt == "force_constants":
        return read_fc_file(spec)
    if fmt == "mdr":
        return read_mdr(spec.main)
    if fmt == "phono3py":
        return read_phono3py(spec.main, spec.forces_fc3)
    if fmt == "engine":
        from phonft.references.engine import run_engine

        if displacements_dir is None:
            raise ConfigError("an 'engine' reference needs the displacements folder (--displacements)")
        return run_engine(Path(displacements_dir) / "phonopy_disp.yaml", spec.calculator, spec.calculator_kwargs)
    raise SpecError(f"unknown format {fmt}")


def force_files(spec: ReferenceSpec) -> list[Path]:
    """The files that hold ``spec``'s forces: one per displacement for calc outputs
    (or the archives holding them), else the one file (the force constants' for DFPT)."""
    if spec.files:
        return list(spec.files)
    return [spec.force_sets or spec.forces_fc3 or spec.force_constants or spec.main]


def _portable(path: Path) -> str:
    """A path relative to the working directory when it lies inside it, else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


@dataclass
class Reference:
    """A material's reference phonons: normalised data, force constants and summary.

    Build with :meth:`read`, then :meth:`write`. Force constants and thermal properties
    are computed on construction (float64), so that a failing input never leaves files.
    """

    raw: RawReference
    protocol: ReferenceProtocol
    fc2: np.ndarray
    summary: dict[str, Any]
    fc3: np.ndarray | None = None
    labels: SupercellLabels | None = None

    @classmethod
    def read(
        cls,
        spec: dict | ReferenceSpec,
        *,
        base_dir: str | os.PathLike = ".",
        displacements_dir: str | os.PathLike | None = None,
        protocol: ReferenceProtocol | None = None,
        max_label_atoms: int | None = None,
    ) -> Reference:
        """Read, validate and compute everything in memory.

        Force constants read as such (``force_constants``) are symmetrized as the protocol
        says, like those built from forces, and pass the same unit check. DFT forces (not an engine's) must pass :func:`check_force_directions` and
        :func:`check_force_units`; with the spec's ``on_implausible: warn`` a failure is
        logged and noted in thermal.json instead of raised as
        :class:`~phonft.references.plausibility.ImplausibleForces`. With the spec's
        ``supercell_labels`` the force constants of that supercell are interpolated too
        (:mod:`phonft.references.supercell_labels`; at most ``max_label_atoms`` atoms).
        """
        protocol = protocol or ReferenceProtocol()
        if isinstance(spec, dict):
            try:
                spec = resolve(spec, base_dir)
            except SpecError as exc:
                raise ConfigError(str(exc)) from exc
        raw = read_reference(spec, displacements_dir)
        checked = not raw.synthetic  # an engine computes eV/Å forces of the very supercells
        if checked and not raw.fc_only:
            enforce(lambda: check_force_directions(raw.phonon.dataset, force_files(spec)), spec.on_implausible,
                    raw.notes)
        fc2 = given_force_constants(raw.phonon, protocol) if raw.fc_only else produce_force_constants(raw.phonon,
                                                                                                      protocol)
        summary = phonon_summary(raw.phonon, protocol)
        if checked:
            where = common_path(force_files(spec))
            enforce(lambda: check_force_units(raw.phonon, fc2, summary["omega_max_K"], where), spec.on_implausible,
                    raw.notes)
        fc3 = None
        if raw.phono3py is not None:
            raw.phono3py.produce_fc3(symmetrize_fc3r=protocol.symmetrize_fc)
            fc3 = np.asarray(raw.phono3py.fc3, dtype=np.float64)
        labels = None
        if spec.supercell_labels is not None:
            labels = supercell_labels(raw.phonon, fc2, spec.supercell_labels, max_label_atoms)
        return cls(raw=raw, protocol=protocol, fc2=fc2, summary=summary, fc3=fc3, labels=labels)

    @property
    def phonon(self):
        """The :class:`phonopy.Phonopy` object, holding ``fc2``."""
        return self.raw.phonon

    def thermal_record(self, material: str) -> dict[str, Any]:
        """The content of ``thermal.json``."""
        raw = self.raw
        source = {
            "format": raw.fmt,
            "files": [_portable(p) for p in raw.files],
            "sha256": {p.name: sha256_file(p) for p in raw.files if p.is_file()},
            "notes": raw.notes,
            **({"stored_values": raw.source_values} if raw.source_values else {}),
        }
        return thermal_json_record(material, "engine" if raw.synthetic else "dft", self.summary, self.protocol,
                                   synthetic=raw.synthetic, identity={"engine": raw.engine} if raw.engine else None,
                                   details={"source": source}, has_fc3=self.fc3 is not None)

    def write(self, out_dir: str | os.PathLike, material: str) -> Path:
        """Write the normalised folder atomically (all files or none)."""
        ph = self.raw.phonon
        fc_only = self.raw.fc_only  # no displacements: the yaml holds the force constants instead
        if fc_only:  # compact (n_primitive, N, 3, 3): 1/32 of the full yaml; phonopy-load expands it
            ph = copy.deepcopy(ph)
            ph.force_constants = self.fc2[ph.primitive.p2s_map]
        with atomic_directory(out_dir) as tmp:
            ph.save(
                tmp / "phonopy_params.yaml",
                settings={"force_sets": not fc_only, "displacements": not fc_only, "force_constants": fc_only,
                          "born_effective_charge": True, "dielectric_constant": True},
            )
            write_force_constants_to_hdf5(self.fc2, str(tmp / "fc2.hdf5"), physical_unit="eV/angstrom^2")
            if self.fc3 is not None:
                from phono3py.file_IO import write_fc3_to_hdf5

                ph3 = self.raw.phono3py
                write_fc3_to_hdf5(self.fc3, filename=str(tmp / "fc3.hdf5"), p2s_map=ph3.primitive.p2s_map)
                ph3.save(str(tmp / "phono3py_params.yaml"))
            atomic_write_json(tmp / "thermal.json", self.thermal_record(material))
            if self.labels is not None:
                write_labels(self.labels, tmp, {"material": material, **self.protocol.record()})
        log.info("wrote %s", out_dir)
        return Path(out_dir)
