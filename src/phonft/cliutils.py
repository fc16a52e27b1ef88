"""Command-line plumbing shared by the stage commands: log options, logging setup, and the
one way settings arrive: ``--settings`` JSON (or, by hand, ``--config`` YAML).

A leaf module: :mod:`phonft.cli` and each stage's ``cli`` module import it, so that no
stage command needs the entry point.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from phonft.errors import ConfigError, PhonftError


def add_log_args(p: argparse.ArgumentParser) -> None:
    """``--log FILE``, ``-v`` and ``--threads N``, which every subcommand takes (read by
    :func:`phonft.cli.main`)."""
    p.add_argument("--log", help="also write the log to this file")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--threads", type=int, metavar="N",
                   help="pin torch (and OpenMP/BLAS) to N threads, split over the local torchrun ranks; "
                        "the workflow passes each rule's threads (default: leave torch alone)")


def pin_threads(n: int | None) -> None:
    """``--threads N``: torch's intra-op threads (and ``OMP/MKL/OPENBLAS_NUM_THREADS`` for
    what starts later) set to ``N`` divided over the ``LOCAL_WORLD_SIZE`` torchrun ranks
    (at least 1), inter-op threads to 1, so that jobs side by side never oversubscribe
    the cores. None leaves everything alone."""
    if n is None:
        return
    if n < 1:
        raise ConfigError(f"--threads must be a positive integer, not {n}. Fix: pass the job's cores, e.g. --threads 2.")
    per_rank = max(1, n // max(1, int(os.environ.get("LOCAL_WORLD_SIZE") or 1)))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(per_rank)
    import torch

    torch.set_num_threads(per_rank)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # set once per process, and only before inter-op work started: keep what is there
        pass


#: glibc ``mallopt`` parameters (malloc.h) and the values :func:`tune_malloc` sets.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4
MALLOC_TUNING = {_M_MMAP_MAX: 0, _M_TRIM_THRESHOLD: -1, _M_TOP_PAD: 2**30}
MALLOC_MODES = ("tuned", "system")


def tune_malloc(mode: str | None = None) -> bool:
    """Keep freed tensor memory in the process (glibc ``mallopt``): the allocator tuning of
    ``PHONFT_MALLOC`` (``tuned``, the default, or ``system``). Returns whether it was applied.

    A PFT step allocates and frees thousands of 10–60 MB tensors. glibc serves blocks above
    its mmap threshold (at most 32 MB) with fresh ``mmap`` pages and returns them on free,
    and trims the heap top, so every such tensor is zero-filled page by page again.
    ``tuned`` serves every block from the heap (``M_MMAP_MAX`` 0), never trims it
    (``M_TRIM_THRESHOLD`` -1, read by glibc as the largest size) and grows it 1 GiB at a
    time (``M_TOP_PAD``). The peak resident memory is unchanged, and a real-size epoch runs
    1.5x faster (benchmarks/README.md, ``malloc.py``). No number changes, only where
    memory comes from. Not glibc (macOS, musl) or ``system``: nothing is changed.
    """
    mode = mode or os.environ.get("PHONFT_MALLOC") or "tuned"
    if mode not in MALLOC_MODES:
        raise ConfigError(f"PHONFT_MALLOC must be one of {MALLOC_MODES}, not {mode!r}. "
                          "Fix: unset it (tuned) or set PHONFT_MALLOC=system.")
    libc = glibc() if mode == "tuned" else None
    if libc is None:
        return False
    return all(libc.mallopt(param, value) == 1 for param, value in MALLOC_TUNING.items())


def glibc():
    """This process's C library as a ``ctypes.CDLL`` when it is glibc on Linux, else None
    (musl has ``mallopt`` but ignores :data:`MALLOC_TUNING`'s parameters)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "gnu_get_libc_version") else None


def setup_logging(logfile: str | None, verbose: bool) -> None:
    """Log to stderr (and ``logfile`` when given), at DEBUG when ``verbose`` else INFO."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if logfile:
        Path(logfile).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(logfile))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)


NAME_OPTIONS = ("material", "run", "name", "id")
"""Options whose values name folders or files under results/ (material ids, run and model
names, kappa103 ids); each must be a :data:`phonft.plan.layout.SAFE_NAME`."""


def check_names(args: argparse.Namespace) -> None:
    """A :class:`ConfigError` when ``--material``, ``--run``, ``--name`` or ``--id`` is not a
    safe folder name (no ``/``, no ``..``, no spaces or shell characters)."""
    from phonft.plan.layout import check_name

    for option in NAME_OPTIONS:
        value = getattr(args, option, None)
        if value is not None:
            check_name(f"--{option}", value)


def add_settings_args(p: argparse.ArgumentParser, keys: Sequence[str], config: bool = False) -> None:
    """``--settings JSON`` (the action's config slice, what the rule passes; keys ``keys``)
    and, with ``config``, ``--config YAML`` to take the same slice from a config file."""
    text = f"the action's settings as a JSON object with keys {', '.join(keys)} (what the workflow passes: " \
           "phonft.plan.settings); omitted keys take the protocols' defaults"
    if not config:
        p.add_argument("--settings", help=text)
        return
    g = p.add_mutually_exclusive_group()
    g.add_argument("--settings", help=text)
    g.add_argument("--config", help="a phonft config YAML; the settings the workflow would pass are taken from it")


def read_settings(args: argparse.Namespace, action: str, keys: Sequence[str], **ids: str) -> dict[str, Any]:
    """The action's settings: ``--settings`` decoded, or planned from ``--config``, or ``{}``.

    ``ids`` name what the slice is of (``material=...`` or ``run=...``). Keys outside
    ``keys`` raise :class:`ConfigError` naming them.
    """
    if getattr(args, "config", None):
        value = _planned(args.config, action, ids)
    elif args.settings:
        try:
            value = json.loads(args.settings)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--settings is not valid JSON ({exc})") from exc
    else:
        value = {}
    if not isinstance(value, dict):
        raise ConfigError("--settings must be a JSON object")
    unknown = sorted(map(str, set(value) - set(keys)))
    if unknown:
        raise ConfigError(f"--settings: unknown key {', '.join(map(repr, unknown))}; known: {', '.join(keys)}")
    return value


def _planned(path: str, action: str, ids: dict[str, str]) -> dict[str, Any]:
    import yaml

    from phonft.plan import Plan, settings

    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file {file} does not exist")
    config = yaml.safe_load(file.read_text()) or {}
    plan = Plan(config)
    for kind, name in ids.items():
        known = plan.materials if kind == "material" else plan.runs
        if name not in known:
            where = "materials" if kind == "material" else "finetune.runs"
            raise ConfigError(f"{file}: no {kind} '{name}' under {where}; known: {', '.join(known) or 'none'}")
    return settings(plan, action, **ids)


def check_output_path(path: str | os.PathLike | None, option: str, kind: str = "folder") -> None:
    """Fail before any work when ``path`` (the value of ``option``) cannot be written.

    ``kind`` is what the command writes there, a ``folder`` or a ``file``. Refused: an
    empty path, a path under an existing file, an existing path of the other kind, and a
    nearest existing folder this user cannot write into. Nothing is created.
    """
    if path is None:
        return
    if not str(path).strip():
        raise ConfigError(f"{option} is empty. Fix: give the output {kind}'s path.")
    target = Path(path)
    if target.exists():
        if kind == "folder" and not target.is_dir():
            raise ConfigError(f"{option} {target}: exists and is not a folder; this command writes a folder there. "
                              "Fix: remove or rename it, or choose another path.")
        if kind == "file" and target.is_dir():
            raise ConfigError(f"{option} {target}: is a folder; this command writes a file there. "
                              "Fix: give a file path, e.g. inside that folder.")
    parent = target.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{option} {target}: {parent} is a file, not a folder, so nothing can be written under it. "
                          "Fix: choose an output path under a folder.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {target}: the folder {parent} is not writable by this user. "
                          "Fix: choose a writable location, or fix the folder's permissions.")


def one_line(exc: BaseException) -> str:
    """An error's message on one line (some libraries' messages span several)."""
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def os_error_message(exc: OSError) -> PhonftError:
    """An :class:`OSError` that escaped the stage (disk full, permissions, a vanished
    folder) as a user error naming the path."""
    where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None) or "a file"
    return PhonftError(f"{where}: {exc.strerror or exc}. Fix: check that the path exists, that its folders are "
                       "folders, and that it is readable/writable (free disk space, permissions).")
