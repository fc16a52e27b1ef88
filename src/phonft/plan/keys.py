"""The config's known keys, section by section (stdlib only).

The workflow's schema (``workflow/schemas/config.schema.yaml``, ``additionalProperties:
false``) rejects unknown keys when Snakemake starts; :func:`check_keys` does the same for
configs the package reads itself (``phonft <stage> --config FILE``), so that a typo is an
error naming the key, never a setting silently left at its default. Material entries are
checked by :func:`phonft.specs.check_material`, run entries by the finetune settings'
decoders; ``tests/test_bad_config.py`` checks that this table and the schema agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from phonft.errors import ConfigError

CONFIG_KEYS: dict[str, tuple[str, ...]] = {
    "": ("cache_dir", "sources", "displacements", "references", "augment", "finetune", "evaluate", "materials"),
    "sources": ("mdr_url",),
    "displacements": ("min_length_A", "distance_A", "fc3_distance_A", "symprec", "primitive_matrix",
                      "max_supercell_atoms_fc2", "max_supercell_atoms_fc3", "interfaces"),
    "references": ("temperatures_K", "mesh", "fc_calculator", "use_nac", "symprec"),
    "augment": ("n_frames", "rattle_std_A", "volume_factors", "angle_std_deg", "mc", "min_distance_A", "mc_sweeps",
                "seed", "materials"),
    "finetune": ("device", "runs"),
    "evaluate": ("materials", "extra_materials", "models", "double_well", "protocol", "kappa", "compare"),
    "evaluate.compare": ("enabled", "dft_well_depth_meV"),
    "evaluate.protocol": ("fmax_eV_A", "relax_fmax_factor", "max_steps", "relax_runs", "relax_cell",
                          "fix_symmetry_symprec", "distance_A", "is_diagonal", "band_npoints", "batch_atoms"),
    "evaluate.kappa": ("materials", "mesh", "kappa103"),
    "evaluate.kappa.kappa103": ("enabled", "data_dir", "ids", "first_n"),
}
"""Section (dotted path, ``""`` the top level) -> its keys."""


def _section(config: Mapping[str, Any], dotted: str) -> Any:
    value: Any = config
    for part in filter(None, dotted.split(".")):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def check_keys(config: Mapping[str, Any]) -> None:
    """A :class:`ConfigError` for the first section that is not a mapping or has an unknown key."""
    for dotted, known in CONFIG_KEYS.items():
        section = _section(config, dotted)
        if section is None:
            continue
        where = dotted or "the config"
        if not isinstance(section, Mapping):
            raise ConfigError(f"{where} must be a mapping of keys, not {type(section).__name__}")
        unknown = sorted(set(map(str, section)) - set(known))
        if unknown:
            raise ConfigError(f"{where}: unknown key {', '.join(map(repr, unknown))}; known: {', '.join(known)}. "
                              "Fix: correct the spelling (config/README.md lists every key)")
