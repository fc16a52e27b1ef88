"""Seeded train / validation / test split of a run's materials (stdlib only).

The Snakefile imports this module at parse time, so it must not import numpy or torch.
The split is a pure function of the config: the same pool, seed and sizes always give
the same split, on any machine.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any


class SplitError(ValueError):
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


def make_split(materials: list[str], *, seed: int = 0, n_val: int = 1, n_test: int = 3,
               test: list[str] | None = None, val: list[str] | None = None) -> Split:
    """Split ``materials`` into train, validation and test.

    Materials named in ``test`` / ``val`` go there; the rest of each set is drawn from the
    remaining pool with ``random.Random(seed)``. At least one material must remain for
    training.
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


def run_split(run: dict[str, Any]) -> Split:
    """The split of one ``finetune.runs.<name>`` config entry."""
    s = dict(run.get("split") or {})
    return make_split(list(run["materials"]), seed=int(s.get("seed", 0)), n_val=int(s.get("n_val", 1)),
                      n_test=int(s.get("n_test", 3)), test=s.get("test"), val=s.get("val"))
