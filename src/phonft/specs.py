"""Reference specifications: which files hold a material's DFT data, in which format.

A spec is the ``reference`` mapping of a material in ``config/config.yaml``. This leaf
module only resolves paths (stdlib only, so the Snakefile can import it at parse time);
the structures stage reads a reference's unit cell through it and the references stage
its data, with the readers of :mod:`phonft.references.readers`.

Formats and their keys (paths relative to ``path`` when it is a folder):

================  =====================================================================
format            files
================  =====================================================================
phonopy_yaml      ``path``: phonopy_params.yaml / phonopy.yaml with forces
force_sets        ``path``/``phonopy_disp`` (phonopy_disp.yaml), ``force_sets``
                  (FORCE_SETS), ``born`` (BORN, used when present)
vasprun           ``path``/``phonopy_disp`` + ``files``: vasprun.xml per displacement,
                  or tar archives of them
qe                ``path``/``phonopy_disp`` + ``files``: pw.x outputs per displacement
calc              ``interface`` (any of :data:`INTERFACES`) + ``path``/``phonopy_disp``
                  (written for that interface) + ``files``: the code's force output per
                  displacement; ``vasprun`` and ``qe`` are ``calc`` for vasp and qe
force_constants   ``path``/``force_constants`` (FORCE_CONSTANTS, force_constants.hdf5, or a
                  VASP DFPT vasprun.xml) + ``unitcell`` (a structure file of ``interface``,
                  default vasp) + ``supercell_matrix`` (+ ``primitive_matrix``, ``born``)
mdr               ``path``: MDR phonon yaml or yaml.bz2
phono3py          ``path``: phono3py_params.yaml(.xz), or a folder with
                  ``phono3py_disp`` (phono3py_disp.yaml) and ``forces_fc3`` (FORCES_FC3)
engine            ``calculator`` (+ ``calculator_kwargs``): an ASE calculator computes the
                  forces of ``results/displacements/<m>/phonopy_disp.yaml``. Synthetic.
================  =====================================================================

A material's ``augment`` block (``{labels: {format: ..., ...}}``, the augment stage's label
source) is checked here too (:func:`check_augment`); its formats are :data:`LABEL_FORMATS`.

Every format also takes ``supercell_labels``: a supercell matrix (3 integers, 9, or 3 rows
of 3, unit-cell basis like a material's ``supercell``) whose force constants the references
stage also writes, Fourier-interpolated from the DFT ones
(:mod:`phonft.references.supercell_labels`), for fine-tuning at that size.

Every format also takes ``on_implausible``: ``error`` (the default) or ``warn``, what the
references stage does when the forces fail its plausibility checks (wrong unit, forces not
of the displacement set; :mod:`phonft.references.plausibility`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from phonft.errors import short_repr

FORMATS = ("phonopy_yaml", "force_sets", "vasprun", "qe", "calc", "force_constants", "mdr", "phono3py", "engine")

INTERFACE_NAMES = {
    "abacus": "ABACUS", "abinit": "ABINIT", "aims": "FHI-aims", "castep": "CASTEP", "cp2k": "CP2K",
    "crystal": "CRYSTAL", "dftbp": "DFTB+", "elk": "Elk", "exciting": "exciting", "fleur": "Fleur",
    "lammps": "LAMMPS", "octopus": "Octopus", "pwmat": "PWmat", "qe": "Quantum ESPRESSO",
    "qlm": "Questaal/LMTO", "siesta": "SIESTA", "turbomole": "TURBOMOLE", "vasp": "VASP", "wien2k": "WIEN2k",
}
"""phonopy's calculator interfaces (``phonopy.interface.calculator.calculator_info``) and
their codes' names: the values of a ``calc`` reference's ``interface``."""
INTERFACES = tuple(INTERFACE_NAMES)
ON_IMPLAUSIBLE = ("error", "warn")
"""Values of a reference's ``on_implausible`` key; the first is the default."""

REFERENCE_KEYS = {
    "phonopy_yaml": ("path", "file", "on_implausible"),
    "force_sets": ("path", "phonopy_disp", "force_sets", "born", "on_implausible"),
    "vasprun": ("path", "phonopy_disp", "files", "born", "on_implausible"),
    "qe": ("path", "phonopy_disp", "files", "born", "on_implausible"),
    "calc": ("interface", "path", "phonopy_disp", "files", "born", "on_implausible"),
    "force_constants": ("path", "force_constants", "unitcell", "interface", "supercell_matrix", "primitive_matrix",
                        "born", "on_implausible"),
    "mdr": ("path", "file", "on_implausible"),
    "phono3py": ("path", "phono3py_disp", "forces_fc3", "on_implausible"),
    "engine": ("calculator", "calculator_kwargs"),
}
"""The keys each reference format reads, besides ``format``; any other key is an error (it
would be ignored, and a default file read in its place)."""
COMMON_REFERENCE_KEYS = ("supercell_labels",)
"""Keys every reference format takes, besides its own :data:`REFERENCE_KEYS`."""

MATERIAL_KEYS = ("structure", "reference", "supercell", "primitive_matrix", "fc3", "augment")
"""Keys of a ``materials.<id>`` entry."""

AUGMENT_KEYS = ("labels",)
"""Keys of a material's ``augment`` block (the augment stage's per-material settings)."""

LABEL_FORMATS = ("harmonic", "vasprun", "qe", "extxyz", "engine")
"""Sources of the augment stage's frame labels; the first is the default."""

LABEL_KEYS = ("format", "path", "files", "calculator", "calculator_kwargs")
"""Keys of a material's ``augment.labels`` block."""

STRUCTURE_KEYS = ("file", "index", "mp_id", "mdr_id", "sha256", "min_distance_A")
"""Keys of a material's ``structure`` block."""


class SpecError(ValueError):
    """A reference spec is incomplete or names an unknown format."""


@dataclass(frozen=True)
class ReferenceSpec:
    """A resolved reference spec: the format and absolute input paths."""

    format: str
    main: Path | None = None  # phonopy/phono3py yaml, MDR file, or phonopy_disp.yaml
    force_sets: Path | None = None
    born: Path | None = None
    files: tuple[Path, ...] = ()
    forces_fc3: Path | None = None
    interface: str | None = None  # phonopy's calculator interface (calc, vasprun, qe, force_constants)
    force_constants: Path | None = None
    unitcell: Path | None = None
    supercell_matrix: Any = None
    primitive_matrix: Any = "auto"
    calculator: str | None = None
    calculator_kwargs: dict[str, Any] = field(default_factory=dict)
    on_implausible: str = ON_IMPLAUSIBLE[0]  # error, or warn: implausible forces are logged, not refused
    supercell_labels: tuple[tuple[int, int, int], ...] | None = None  # also write labels of this supercell

    @property
    def inputs(self) -> list[Path]:
        """Every file the reference is read from (for Snakemake's ``input:``)."""
        out = [p for p in (self.main, self.force_sets, self.born, self.forces_fc3, self.force_constants,
                           self.unitcell) if p is not None]
        return out + list(self.files)

    @property
    def synthetic(self) -> bool:
        return self.format == "engine"


def _unknown(where: str, mapping: dict[str, Any], known: tuple[str, ...]) -> None:
    unknown = sorted(map(str, set(mapping) - set(known)))
    if unknown:
        raise SpecError(f"{where}: unknown key {', '.join(map(repr, unknown))}; known: {', '.join(known)}. "
                        "Fix: correct the spelling (config/README.md lists every key)")


def check_reference(spec: Any) -> None:
    """A ``reference`` mapping has a known ``format`` and only that format's keys."""
    if not isinstance(spec, dict) or "format" not in spec:
        raise SpecError("a reference needs a 'format' key, one of: " + ", ".join(FORMATS))
    fmt = spec["format"]
    if fmt not in FORMATS:
        raise SpecError(f"unknown reference format {short_repr(fmt)}; use one of: {', '.join(FORMATS)}")
    _unknown(f"reference (format {fmt})", spec, ("format", *REFERENCE_KEYS[fmt], *COMMON_REFERENCE_KEYS))


def _mapping(where: str, value: Any, known: tuple[str, ...], not_a_mapping: str) -> dict:
    """``value`` when it is a mapping with only ``known`` keys; else :class:`SpecError`
    (``not_a_mapping``, or the unknown key named under ``where``)."""
    if not isinstance(value, dict):
        raise SpecError(not_a_mapping)
    _unknown(where, value, known)
    return value


def check_material(entry: Any) -> None:
    """A ``materials.<id>`` entry has only known keys, one structure source, and a valid reference."""
    _mapping("entry", entry, MATERIAL_KEYS, "a material entry must be a mapping (structure, reference, supercell, ...)")
    structure = _mapping("structure", entry.get("structure") or {}, STRUCTURE_KEYS,
                         "'structure' must be a mapping: {file: ...}, {mp_id: ...} or {mdr_id: ...}")
    sources = [k for k in ("file", "mp_id", "mdr_id") if k in structure]
    if len(sources) > 1:
        raise SpecError(f"structure gives {' and '.join(sources)}; give one source")
    if entry.get("reference") is not None:
        check_reference(entry["reference"])
    check_augment(entry.get("augment"))


def check_augment(augment: Any) -> None:
    """A material's ``augment`` block: a mapping with a ``labels`` mapping of known keys and format."""
    if augment is None:
        return
    _mapping("augment", augment, AUGMENT_KEYS, "'augment' must be a mapping: {labels: {format: ..., ...}}")
    labels = _mapping("augment.labels", augment.get("labels") or {}, LABEL_KEYS,
                      "augment.labels must be a mapping: {format: harmonic|vasprun|qe|extxyz|engine, ...}")
    if labels.get("format", LABEL_FORMATS[0]) not in LABEL_FORMATS:
        raise SpecError(f"augment.labels: format {short_repr(labels['format'])} is not one of "
                        f"{', '.join(LABEL_FORMATS)}")


def _abs(base: Path, p: str | os.PathLike) -> Path:
    p = Path(os.path.expanduser(os.fspath(p)))
    return p if p.is_absolute() else base / p


def resolve(spec: dict[str, Any], base_dir: str | os.PathLike = ".") -> ReferenceSpec:
    """Resolve a config ``reference`` mapping against ``base_dir`` (the workflow root)."""
    check_reference(spec)
    resolved = _resolve_files(spec, base_dir)
    on_implausible = spec.get("on_implausible", ON_IMPLAUSIBLE[0])
    if on_implausible not in ON_IMPLAUSIBLE:
        raise SpecError(f"reference key 'on_implausible' must be one of {', '.join(ON_IMPLAUSIBLE)}, "
                        f"not {short_repr(on_implausible)}")
    return replace(resolved, on_implausible=on_implausible, supercell_labels=_supercell_labels(spec))


def _supercell_labels(spec: dict[str, Any]) -> tuple[tuple[int, int, int], ...] | None:
    """The spec's ``supercell_labels`` as 3 integer rows (None when absent), else :class:`SpecError`."""
    from phonft.errors import ConfigError
    from phonft.protocols import supercell_rows

    if spec.get("supercell_labels") is None:
        return None
    try:
        return supercell_rows(spec["supercell_labels"], "reference: supercell_labels")
    except ConfigError as exc:
        raise SpecError(str(exc)) from None


CODE_FORMATS = {"vasprun": "vasp", "qe": "qe"}
"""The formats that are ``calc`` for one interface (aliases kept for existing configs)."""


def _interface(spec: dict[str, Any], default: str | None = None) -> str:
    """The spec's ``interface``: one of :data:`INTERFACES`."""
    interface = spec.get("interface", default)
    if interface is None:
        raise SpecError(f"a '{spec['format']}' reference needs 'interface', one of: {', '.join(INTERFACES)}")
    if interface not in INTERFACES:
        raise SpecError(f"unknown interface {short_repr(interface)}; phonopy reads: {', '.join(INTERFACES)}")
    return interface


def _matrix(spec: dict[str, Any], key: str) -> list:
    """A 3-vector or 3x3 integer matrix under ``key`` (a list), else :class:`SpecError`."""
    m = spec.get(key)
    flat = m if isinstance(m, list) and len(m) == 3 and all(isinstance(x, int) for x in m) else None
    rows = m if isinstance(m, list) and len(m) == 3 and all(
        isinstance(r, list) and len(r) == 3 and all(isinstance(x, int) for x in r) for r in m) else None
    if flat is None and rows is None:
        raise SpecError(f"a 'force_constants' reference needs '{key}': 3 integers (the diagonal) or a 3x3 integer "
                        f"matrix, not {short_repr(m)}")
    return m


def _resolve_files(spec: dict[str, Any], base_dir: str | os.PathLike) -> ReferenceSpec:
    fmt = spec["format"]
    base = Path(base_dir)
    if fmt == "engine":
        if not spec.get("calculator"):
            raise SpecError("an 'engine' reference needs 'calculator' (e.g. emt)")
        return ReferenceSpec(fmt, calculator=spec["calculator"],
                             calculator_kwargs=dict(spec.get("calculator_kwargs") or {}))
    if "path" not in spec:
        raise SpecError(f"a '{fmt}' reference needs 'path'")
    path = _abs(base, spec["path"])
    is_dir = path.is_dir() or (not path.suffix and fmt in ("force_sets", "vasprun", "qe", "calc"))
    folder = path if is_dir else path.parent

    def in_folder(key: str, default: str | None) -> Path | None:
        name = spec.get(key, default)
        return None if name in (None, False) else _abs(folder, name)

    if fmt in ("phonopy_yaml", "mdr"):
        main = in_folder("file", "phonopy_params.yaml") if is_dir else path
        return ReferenceSpec(fmt, main=main)
    born = None
    if fmt in ("force_sets", "vasprun", "qe", "calc", "force_constants"):
        born = in_folder("born", "BORN")
        if born is not None and spec.get("born", "BORN") == "BORN" and not born.exists():
            born = None  # the default BORN is optional; a name given explicitly is required
    if fmt == "force_sets":
        return ReferenceSpec(fmt, main=in_folder("phonopy_disp", "phonopy_disp.yaml"),
                             force_sets=in_folder("force_sets", "FORCE_SETS"), born=born)
    if fmt in ("vasprun", "qe", "calc"):
        interface = CODE_FORMATS.get(fmt) or _interface(spec)
        files = spec.get("files")
        if not files:
            raise SpecError(f"a '{fmt}' reference needs 'files', one force output per displacement")
        return ReferenceSpec(fmt, main=in_folder("phonopy_disp", "phonopy_disp.yaml"), born=born,
                             files=tuple(_abs(folder, f) for f in files), interface=interface)
    if fmt == "force_constants":
        if "unitcell" not in spec:
            raise SpecError("a 'force_constants' reference needs 'unitcell', the unit-cell structure file")
        return ReferenceSpec(fmt, force_constants=in_folder("force_constants", "FORCE_CONSTANTS") if is_dir else path,
                             unitcell=in_folder("unitcell", None), interface=_interface(spec, "vasp"), born=born,
                             supercell_matrix=_matrix(spec, "supercell_matrix"),
                             primitive_matrix=spec.get("primitive_matrix", "auto"))
    # phono3py
    if is_dir:
        return ReferenceSpec(fmt, main=in_folder("phono3py_disp", "phono3py_disp.yaml"),
                             forces_fc3=in_folder("forces_fc3", "FORCES_FC3"))
    fc3 = spec.get("forces_fc3")
    return ReferenceSpec(fmt, main=path, forces_fc3=None if fc3 is None else _abs(folder, fc3))


def material_reference(material: str, entry: dict[str, Any], results_dir: str = "results") -> dict[str, Any]:
    """A material's effective reference mapping.

    A material given only by ``structure: {mdr_id: ...}`` uses the MDR file that the
    structures stage downloaded next to its structure.
    """
    if entry.get("reference"):
        return dict(entry["reference"])
    if "mdr_id" in (entry.get("structure") or {}):
        return {"format": "mdr", "path": f"{results_dir}/structures/{material}/mdr.yaml.bz2"}
    raise SpecError(f"material '{material}' has no 'reference' (and no structure.mdr_id to take one from)")
