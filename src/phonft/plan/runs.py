"""A fine-tuning run's config entry: its seeded split and its settings slices (stdlib only).

The planner calls :func:`run_split` while Snakemake parses the workflow, so this module
imports no numpy or torch. The split is a pure function of the config: the same pool,
seed and sizes always give the same split, on any machine.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from phonft.errors import ConfigError

RUN_KEYS = ("description", "materials", "split", "upstream", "replay")
"""Keys of a run entry that are not :class:`~phonft.finetune.settings.TrainSettings` fields."""

SPLIT_KEYS = ("seed", "n_val", "n_test", "test", "val")


class SplitError(ConfigError):
    """The split settings cannot be satisfied."""


@dataclass(frozen=True)
class Split:
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def as_dict(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in asdict(self).items()}

    @property
    def all(self) -> tuple[str, ...]:
        return self.train + self.val + self.test

    def roles(self) -> dict[str, str]:
        """material -> ``train``, ``val`` or ``test``."""
        return {m: part for part in ("train", "val", "test") for m in getattr(self, part)}


def make_split(materials: list[str], *, seed: int = 0, n_val: int = 1, n_test: int = 3,
               test: list[str] | None = None, val: list[str] | None = None) -> Split:
    """Split ``materials`` into train, validation and test.

    Materials named in ``test`` / ``val`` go there; the rest of each set is drawn from the
    remaining pool with ``random.Random(seed)``. At least one material must remain for
    training. The keyword defaults are the schema's ``split`` defaults.
    """
    pool = list(dict.fromkeys(materials))
    test = list(test or [])
    val = list(val or [])
    for name in test + val:
        if name not in pool:
            raise SplitError(f"split names '{name}', which is not in the run's materials {pool}")
    if set(test) & set(val):
        raise SplitError(f"materials {sorted(set(test) & set(val))} are in both test and val")
    rest = sorted(set(pool) - set(test) - set(val))
    rng = random.Random(seed)
    rng.shuffle(rest)
    need_test, need_val = max(0, n_test - len(test)), max(0, n_val - len(val))
    if need_test + need_val >= len(rest):
        raise SplitError(f"{len(pool)} materials cannot give {n_test} test and {n_val} validation "
                         "materials and still leave one to train on")
    test += rest[:need_test]
    val += rest[need_test:need_test + need_val]
    train = rest[need_test + need_val:]
    return Split(train=tuple(sorted(train)), val=tuple(sorted(val)), test=tuple(sorted(test)))


def run_split(run: Mapping[str, Any]) -> Split:
    """The split of one ``finetune.runs.<name>`` entry (omitted ``split`` keys: the defaults)."""
    settings = dict(run.get("split") or {})
    unknown = sorted(map(str, set(settings) - set(SPLIT_KEYS)))
    if unknown:
        raise SplitError(f"unknown split setting {', '.join(map(repr, unknown))}; known: {', '.join(SPLIT_KEYS)}")
    if "materials" not in run:
        raise SplitError("a run needs a 'materials' list")
    return make_split(list(run["materials"]), **settings)


#: ``gnep_data`` entries that name a source instead of a file, and the prefixes of URL entries.
GNEP_NAMED_SOURCES = ("augment", "replay")
GNEP_URL_PREFIXES = ("https://", "http://")


def local_gnep_sources(sources: Sequence[str]) -> list[str]:
    """The ``gnep_data`` entries that are local file paths (neither named sources nor URLs)."""
    return [s for s in sources if s not in GNEP_NAMED_SOURCES and not str(s).startswith(GNEP_URL_PREFIXES)]


def train_fields(run: Mapping[str, Any]) -> dict[str, Any]:
    """The run entry's :class:`~phonft.finetune.settings.TrainSettings` fields."""
    return {k: v for k, v in run.items() if k not in RUN_KEYS}


def replay_fields(run: Mapping[str, Any]) -> dict[str, Any]:
    """The run's :class:`~phonft.finetune.settings.ReplaySettings` fields: ``replay`` and the base model."""
    base = {"base_model": run["base_model"]} if "base_model" in run else {}
    return {**base, **(run.get("replay") or {})}
