"""GPUMD's ``nep.txt`` (read and write) and the architecture keywords of ``nep.in``.

Written from GPUMD's user documentation. A ``nep.txt`` is a header, then one parameter
per line::

    nep4 2 Te Pb          # version (nep3/nep4, optionally _zbl), number of types, types
    zbl 2 4               # only for *_zbl: inner and outer ZBL cutoffs (Å)
    cutoff 8 4 73 8       # radial and angular cutoffs (Å), max neighbours radial, angular
    n_max 6 6             # radial and angular n_max
    basis_size 6 6        # radial and angular Chebyshev basis sizes
    l_max 4 2 0           # three-body l_max, four-body (0 or 2), five-body (0 or 1)
    ANN 30 0              # hidden neurons

followed by the network (NEP4: per type ``w0`` (neurons x descriptors, neuron-major),
``b0``, ``w1``; then one shared ``b1``; NEP3: one network), the radial then the angular
expansion coefficients ``c[n][k][t_i][t_j]`` (last index fastest), and the
``q_scaler`` of every descriptor component.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers

from phonft.errors import InputFileError
from phonft.models.nep.descriptor import descriptor_size

_VERSIONS = {"nep3": 3, "nep4": 4, "nep3_zbl": 3, "nep4_zbl": 4}


@dataclass(frozen=True)
class NEPSpec:
    """A NEP architecture: everything a ``nep.txt`` header says.

    Cutoffs in Å; ``n_max``, ``basis_size`` are (radial, angular); ``l_max`` is
    (three-body, four-body, five-body); ``zbl`` the (inner, outer) ZBL cutoffs or None.
    """

    types: tuple[str, ...]
    version: int = 4
    cutoff: tuple[float, float] = (5.0, 5.0)
    max_neighbors: tuple[int, int] = (100, 100)
    n_max: tuple[int, int] = (4, 4)
    basis_size: tuple[int, int] = (8, 8)
    l_max: tuple[int, int, int] = (4, 2, 0)
    n_neurons: int = 30
    zbl: tuple[float, float] | None = None

    @property
    def n_types(self) -> int:
        return len(self.types)

    @property
    def dim(self) -> int:
        """Descriptor components per atom."""
        return descriptor_size(self.n_max, self.l_max)

    @property
    def n_networks(self) -> int:
        """NEP4 has one network per type, NEP3 one shared network."""
        return self.n_types if self.version == 4 else 1

    def sizes(self) -> dict[str, int]:
        """Parameter counts of each block, in file order."""
        t2 = self.n_types ** 2
        return {"ann": (self.dim + 2) * self.n_neurons * self.n_networks + 1,
                "c_radial": t2 * (self.n_max[0] + 1) * (self.basis_size[0] + 1),
                "c_angular": t2 * (self.n_max[1] + 1) * (self.basis_size[1] + 1),
                "q_scaler": self.dim}

    def header(self) -> list[str]:
        name = f"nep{self.version}" + ("_zbl" if self.zbl else "")
        lines = [f"{name} {self.n_types} {' '.join(self.types)}"]
        if self.zbl:
            lines.append(f"zbl {_num(self.zbl[0])} {_num(self.zbl[1])}")
        lines += [f"cutoff {_num(self.cutoff[0])} {_num(self.cutoff[1])} {self.max_neighbors[0]} "
                  f"{self.max_neighbors[1]}",
                  f"n_max {self.n_max[0]} {self.n_max[1]}",
                  f"basis_size {self.basis_size[0]} {self.basis_size[1]}",
                  f"l_max {self.l_max[0]} {self.l_max[1]} {self.l_max[2]}",
                  f"ANN {self.n_neurons} 0"]
        return lines


@dataclass
class NEPParameters:
    """A NEP's numbers (float64 arrays) in the shapes the model uses.

    ``w0`` (networks, neurons, dim), ``b0``/``w1`` (networks, neurons), ``b1`` (), the
    coefficients ``c_radial``/``c_angular`` (n_max + 1, basis + 1, T, T) and ``q_scaler`` (dim).
    """

    w0: np.ndarray
    b0: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    c_radial: np.ndarray
    c_angular: np.ndarray
    q_scaler: np.ndarray = field(default_factory=lambda: np.ones(0))

    def flat(self) -> np.ndarray:
        """All parameters in ``nep.txt`` order."""
        ann = [np.concatenate([self.w0[t].ravel(), self.b0[t], self.w1[t]]) for t in range(self.w0.shape[0])]
        return np.concatenate(ann + [np.atleast_1d(self.b1), self.c_radial.ravel(), self.c_angular.ravel(),
                                     self.q_scaler])

    @classmethod
    def from_flat(cls, spec: NEPSpec, values: np.ndarray) -> "NEPParameters":
        sizes, dim, neurons = spec.sizes(), spec.dim, spec.n_neurons
        per_net = (dim + 2) * neurons
        nets = values[:per_net * spec.n_networks].reshape(spec.n_networks, per_net)
        at = sizes["ann"]
        t = spec.n_types
        radial = values[at:at + sizes["c_radial"]]
        angular = values[at + sizes["c_radial"]:at + sizes["c_radial"] + sizes["c_angular"]]
        return cls(w0=nets[:, :dim * neurons].reshape(-1, neurons, dim).copy(),
                   b0=nets[:, dim * neurons:(dim + 1) * neurons].copy(), w1=nets[:, (dim + 1) * neurons:].copy(),
                   b1=np.array(values[at - 1]),
                   c_radial=radial.reshape(spec.n_max[0] + 1, spec.basis_size[0] + 1, t, t).copy(),
                   c_angular=angular.reshape(spec.n_max[1] + 1, spec.basis_size[1] + 1, t, t).copy(),
                   q_scaler=values[-dim:].copy())


def _num(value: float) -> str:
    return f"{value:g}" if float(f"{value:g}") == value else repr(float(value))


def _fail(path: Path, line: int, what: str, fix: str) -> InputFileError:
    return InputFileError(path, f"line {line}: {what}", fix)


def _ints(path: Path, number: int, tokens: list[str], count: int, key: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in tokens[1:])
    except ValueError:
        values = ()
    if len(values) != count:
        raise _fail(path, number, f"'{key}' needs {count} integers, found {' '.join(tokens[1:]) or 'none'}.",
                    f"write '{key}' followed by {count} integers (GPUMD's nep.txt format).")
    return values


def _parse_header(path: Path, lines: list[str]) -> tuple[NEPSpec, int]:
    """The spec from the header lines, and the index of the first parameter line."""
    if not lines:
        raise _fail(path, 1, "the file is empty.", "give a nep.txt written by GPUMD or phonft.")
    first = lines[0].split()
    if not first or first[0] not in _VERSIONS:
        word = first[0] if first else "(blank)"
        raise _fail(path, 1, f"unknown NEP version '{word}'; phonft reads nep3, nep4, nep3_zbl and nep4_zbl "
                             "potentials (not dipole, polarizability, charge or temperature models).",
                    "give a nep3/nep4 energy model.")
    try:
        n_types = int(first[1])
    except (IndexError, ValueError):
        n_types = -1
    types = tuple(first[2:])
    if n_types < 1 or len(types) != n_types:
        raise _fail(path, 1, f"says {first[1] if len(first) > 1 else 'no'} types but names {len(types)}.",
                    "write 'nep4 <number of types> <element> ...'.")
    unknown = [t for t in types if t not in atomic_numbers or t == "X"]
    if unknown or len(set(types)) != len(types):
        raise _fail(path, 1, f"types {' '.join(types)} are not distinct element symbols.",
                    "name each element once by its chemical symbol (e.g. 'nep4 2 Pb Te').")
    number, keys = 1, {}
    wanted = ["zbl"] if first[0].endswith("_zbl") else []
    wanted += ["cutoff", "n_max", "basis_size", "l_max", "ANN"]
    for key in wanted:
        if number >= len(lines):
            raise _fail(path, number + 1, f"the file ends before the '{key}' line.", "the file is truncated; "
                        "copy it again.")
        tokens = lines[number].split()
        if not tokens or tokens[0] != key:
            raise _fail(path, number + 1, f"expected the '{key}' line, found '{lines[number].strip()[:60]}'.",
                        f"write the header lines in GPUMD's order: {', '.join(wanted)}.")
        keys[key] = (number + 1, tokens)
        number += 1
    return _spec_from_keys(path, first[0], types, keys), number


def _spec_from_keys(path: Path, name: str, types: tuple[str, ...], keys: dict) -> NEPSpec:
    zbl = None
    if "zbl" in keys:
        line, tokens = keys["zbl"]
        try:
            zbl = (float(tokens[1]), float(tokens[2]))
        except (IndexError, ValueError):
            raise _fail(path, line, "'zbl' needs the inner and outer cutoffs (Å).", "write 'zbl 1 2'.") from None
        if not 0 < zbl[0] < zbl[1]:
            raise _fail(path, line, f"ZBL cutoffs {zbl} are not 0 < inner < outer (flexible or type-wise ZBL "
                                    "is not supported).", "give fixed ZBL cutoffs.")
    line, tokens = keys["cutoff"]
    if len(tokens) != 5:
        raise _fail(path, line, "'cutoff' needs 4 numbers: radial and angular cutoffs (Å), then the maximum "
                                "radial and angular neighbours (type-wise cutoffs are not supported).",
                    "write e.g. 'cutoff 8 4 100 40'.")
    try:
        cutoff = (float(tokens[1]), float(tokens[2]))
        neighbours = (int(float(tokens[3])), int(float(tokens[4])))
    except ValueError:
        raise _fail(path, line, f"'cutoff' values {' '.join(tokens[1:])} are not numbers.",
                    "write e.g. 'cutoff 8 4 100 40'.") from None
    n_max = _ints(path, keys["n_max"][0], keys["n_max"][1], 2, "n_max")
    basis = _ints(path, keys["basis_size"][0], keys["basis_size"][1], 2, "basis_size")
    l_max = _ints(path, keys["l_max"][0], keys["l_max"][1], 3, "l_max")
    neurons = _ints(path, keys["ANN"][0], keys["ANN"][1], 2, "ANN")[0]
    _check_sizes(path, keys, cutoff, n_max, basis, neurons)
    if not (1 <= l_max[0] <= 4 and l_max[1] in (0, 2) and l_max[2] in (0, 1)) or (l_max[2] and not l_max[1]):
        raise _fail(path, keys["l_max"][0], f"l_max {l_max} is not (1..4, 0 or 2, 0 or 1), with five-body only "
                                            "beside four-body.", "write e.g. 'l_max 4 2 0'.")
    return NEPSpec(types=types, version=_VERSIONS[name], cutoff=cutoff, max_neighbors=neighbours, n_max=n_max,
                   basis_size=basis, l_max=l_max, n_neurons=neurons, zbl=zbl)


def _check_sizes(path: Path, keys: dict, cutoff: tuple[float, float], n_max: tuple[int, ...],
                 basis: tuple[int, ...], neurons: int) -> None:
    """Positive cutoffs (Å), non-negative n_max and basis sizes, at least one neuron."""
    checks = [("cutoff", min(cutoff) > 0, f"cutoffs {cutoff[0]:g} {cutoff[1]:g} Å are not both positive"),
              ("n_max", min(n_max) >= 0, f"n_max {n_max[0]} {n_max[1]} is negative"),
              ("basis_size", min(basis) >= 0, f"basis_size {basis[0]} {basis[1]} is negative"),
              ("ANN", neurons >= 1, f"{neurons} hidden neurons; a NEP needs at least 1")]
    for key, ok, what in checks:
        if not ok:
            raise _fail(path, keys[key][0], f"{what}.", f"fix the '{key}' line (GPUMD's nep.txt format).")


def read_lines(path: Path, what: str) -> list[str]:
    """The lines of the text file ``path`` (a ``nep.txt`` or ``nep.in``: ``what``); an
    unreadable file is one :class:`~phonft.errors.InputFileError`."""
    try:
        return path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"cannot be read ({type(exc).__name__}).", f"give a readable {what}.") from exc


def read_nep_txt(path: str | os.PathLike) -> tuple[NEPSpec, NEPParameters]:
    """The spec and parameters of a ``nep.txt``; a malformed file raises one
    :class:`~phonft.errors.InputFileError` naming the line."""
    path = Path(path)
    lines = read_lines(path, "nep.txt")
    spec, start = _parse_header(path, lines)
    expected = sum(spec.sizes().values())
    values = np.empty(expected)
    body = [(i + 1, ln) for i, ln in enumerate(lines[start:], start) if ln.strip()]
    for index, (number, text) in enumerate(body[:expected]):
        try:
            values[index] = float(text.split()[0])
        except ValueError:
            values[index] = np.nan
        if not np.isfinite(values[index]):
            raise _fail(path, number, f"'{text.strip()[:40]}' is not a finite number.",
                        "the file is corrupt; copy it again.")
    if len(body) != expected:
        where = body[expected][0] if len(body) > expected else len(lines)
        raise _fail(path, where, f"the header asks for {expected} parameters "
                                 f"({', '.join(f'{k} {v}' for k, v in spec.sizes().items())}) but the file has "
                                 f"{len(body)}.", "the file is truncated or its header does not match its "
                                                 "parameters; copy it again.")
    return spec, NEPParameters.from_flat(spec, values)


def write_nep_txt(path: str | os.PathLike, spec: NEPSpec, params: NEPParameters, precision: str = "exact") -> None:
    """Write a ``nep.txt`` atomically. ``precision="exact"`` writes every float64 so that
    it reads back bitwise (``repr``); ``"gpumd"`` writes GPUMD's own ``%15.7e``."""
    from phonft.io import atomic_write_text

    flat = params.flat()
    if precision == "exact":
        body = [repr(float(v)) for v in flat]
    elif precision == "gpumd":
        body = [f"{v:15.7e}" for v in flat]
    else:
        raise ValueError(f"precision must be 'exact' or 'gpumd', not {precision!r}")
    atomic_write_text(path, "\n".join(spec.header() + body) + "\n")
