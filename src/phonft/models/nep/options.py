"""A NEP architecture from ``model_options`` and/or GPUMD's ``nep.in``.

``base_model: nep`` builds a NEP from scratch. Its architecture is GPUMD's documented
``nep.in`` defaults (NEP4, cutoffs 8/4 Å, n_max 4/4, basis_size 8/8, l_max 4/2/0,
30 neurons, no ZBL), overridden first by the keywords of a ``nep.in`` named by
``model_options.nep_in`` and then by the other ``model_options`` keys::

    model_options: {elements: [Pb, Te], cutoff: [8, 4], n_max: [6, 6], basis_size: [6, 6],
                    l_max: [4, 2, 0], neurons: 30, zbl: [1.0, 2.0], version: 4, seed: 0}

``nep.in``'s training keywords (``lambda_e``, ``lambda_f``, ``lambda_v``, ``batch``,
``population``, ``generation``, ``lambda_1``, ``lambda_2``) are returned too, for the
SNES baseline and for GNEP's loss weights.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from phonft.errors import ConfigError, InputFileError
from phonft.models.nep.nepfile import NEPSpec, read_lines

#: model_options keys of ``base_model: nep``.
NEP_OPTION_KEYS = ("elements", "version", "cutoff", "n_max", "basis_size", "l_max", "neurons", "zbl", "nep_in",
                   "seed")
_ARCHITECTURE = {"version": 1, "cutoff": 2, "n_max": 2, "basis_size": 2, "l_max": 3, "neuron": 1}
_TRAINING = {"lambda_e": 1, "lambda_f": 1, "lambda_v": 1, "batch": 1, "population": 1, "generation": 1,
             "lambda_1": 1, "lambda_2": 1}


def _numbers(path: Path, number: int, key: str, tokens: list[str], count: int) -> list[float]:
    try:
        values = [float(t) for t in tokens]
    except ValueError:
        values = []
    if not values or len(values) > count:
        raise InputFileError(path, f"line {number}: '{key}' needs up to {count} numbers, found "
                                   f"'{' '.join(tokens)}'.", "write it as GPUMD's nep.in documentation shows.")
    return values


def read_nep_in(path: str | os.PathLike) -> dict[str, Any]:
    """The keywords of a ``nep.in`` that phonft uses: ``type`` (element list), the
    architecture (version, cutoff, n_max, basis_size, l_max, neuron, zbl) and the training
    keywords. Other GPUMD keywords are ignored; a malformed known line raises an
    :class:`~phonft.errors.InputFileError` naming the line."""
    path = Path(path)
    lines = read_lines(path, "nep.in")
    found: dict[str, Any] = {}
    for number, line in enumerate(lines, 1):
        tokens = line.split("#")[0].split()
        if not tokens:
            continue
        key, rest = tokens[0], tokens[1:]
        if key == "type":
            if not rest or not rest[0].isdigit() or int(rest[0]) != len(rest) - 1:
                raise InputFileError(path, f"line {number}: 'type' needs the number of types and then that many "
                                           "elements.", "write e.g. 'type 2 Te Pb'.")
            found["type"] = rest[1:]
        elif key == "zbl":
            found["zbl"] = _numbers(path, number, key, rest, 1)[0]
        elif key in _ARCHITECTURE or key in _TRAINING:
            found[key] = _numbers(path, number, key, rest, {**_ARCHITECTURE, **_TRAINING}[key])
    return found


def _pair(options: Mapping[str, Any], key: str, size: int, kind: type) -> tuple:
    value = options[key]
    values = value if isinstance(value, (list, tuple)) else [value] * size
    ok = len(values) == size and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
                                     for v in values)
    if ok and kind is int:
        ok = all(float(v).is_integer() for v in values)
    if not ok:
        raise ConfigError(f"model 'nep': model_options.{key} must be {size} non-negative "
                          f"{'integers' if kind is int else 'numbers'}, not {value!r}.")
    return tuple(kind(v) for v in values)


def _from_nep_in(path: str) -> dict[str, Any]:
    """``model_options`` equivalents of a ``nep.in``'s architecture keywords."""
    found = read_nep_in(path)
    out: dict[str, Any] = {}
    if "type" in found:
        out["elements"] = found["type"]
    for key in ("version", "cutoff", "n_max", "basis_size", "l_max"):
        if key in found:
            out[key] = found[key][0] if key == "version" else found[key]
    if "neuron" in found:
        out["neurons"] = found["neuron"][0]
    if "zbl" in found:
        out["zbl"] = [found["zbl"] / 2, found["zbl"]]  # GPUMD: the inner cutoff is half the outer one
    if "l_max" in out:
        out["l_max"] = (list(out["l_max"]) + [0, 0])[:3]
    return out


#: GPUMD's documented ``nep.in`` defaults (the types come from the options).
GPUMD_DEFAULTS = NEPSpec(types=(), cutoff=(8.0, 4.0), n_max=(4, 4), basis_size=(8, 8), l_max=(4, 2, 0), n_neurons=30)


def nep_spec_from_options(options: Mapping[str, Any], defaults: NEPSpec = GPUMD_DEFAULTS) -> NEPSpec:
    """The NEP architecture that ``base_model: nep`` with these ``model_options`` builds:
    ``defaults`` (GPUMD's documented ones, or e.g. a ``nep.txt`` header's) overridden by
    the ``nep_in`` file's keywords, then by the other options."""
    unknown = sorted(set(options) - set(NEP_OPTION_KEYS))
    if unknown:
        raise ConfigError(f"model 'nep': unknown model_options key(s) {', '.join(map(repr, unknown))}; known: "
                          f"{', '.join(NEP_OPTION_KEYS)}. Fix: remove or correct them.")
    merged = {**(_from_nep_in(options["nep_in"]) if options.get("nep_in") else {}), **options}
    elements = merged.get("elements")
    from ase.data import atomic_numbers

    if (not isinstance(elements, (list, tuple)) or not elements or len(set(elements)) != len(elements)
            or not all(isinstance(e, str) and atomic_numbers.get(e, 0) > 0 for e in elements)):
        raise ConfigError(f"model 'nep' needs model_options.elements (or a nep.in 'type' line): a list of distinct "
                          f"element symbols such as ['Pb', 'Te'], not {elements!r}.")
    spec = replace(defaults, types=tuple(elements))
    fields: dict[str, Any] = {}
    for key, size, kind in (("cutoff", 2, float), ("n_max", 2, int), ("basis_size", 2, int), ("l_max", 3, int)):
        if key in merged:
            fields[key] = _pair(merged, key, size, kind)
    if "neurons" in merged:
        fields["n_neurons"] = _pair(merged, "neurons", 1, int)[0]
    if "version" in merged:
        fields["version"] = _pair(merged, "version", 1, int)[0]
    if merged.get("zbl") is not None:
        fields["zbl"] = _pair(merged, "zbl", 2, float)
    return _checked(replace(spec, **fields))


def _checked(spec: NEPSpec) -> NEPSpec:
    problems = []
    if spec.version not in (3, 4):
        problems.append(f"version {spec.version} (3 or 4)")
    if not 0 < spec.cutoff[1] <= spec.cutoff[0]:
        problems.append(f"cutoff {list(spec.cutoff)} (0 < angular <= radial, Å)")
    if not (1 <= spec.l_max[0] <= 4 and spec.l_max[1] in (0, 2) and spec.l_max[2] in (0, 1)):
        problems.append(f"l_max {list(spec.l_max)} (1..4, 0 or 2, 0 or 1)")
    if spec.n_neurons < 1:
        problems.append(f"neurons {spec.n_neurons} (at least 1)")
    if spec.zbl is not None and not 0 < spec.zbl[0] < spec.zbl[1]:
        problems.append(f"zbl {list(spec.zbl)} (0 < inner < outer, Å)")
    if problems:
        raise ConfigError(f"model 'nep': bad model_options {'; '.join(problems)}.")
    return spec
