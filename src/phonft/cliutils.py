"""Command-line plumbing shared by the stage commands: log options and logging setup.

A leaf module: :mod:`phonft.cli` and each stage's ``cli`` module import it, so that no
stage command needs the entry point.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def add_log_args(p: argparse.ArgumentParser) -> None:
    """``--log FILE`` and ``-v``, which every subcommand takes (read by :func:`phonft.cli.main`)."""
    p.add_argument("--log", help="also write the log to this file")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def setup_logging(logfile: str | None, verbose: bool) -> None:
    """Log to stderr (and ``logfile`` when given), at DEBUG when ``verbose`` else INFO."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if logfile:
        Path(logfile).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(logfile))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
