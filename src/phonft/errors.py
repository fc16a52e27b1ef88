"""The package's own errors.

Every error a user can cause (a bad file, a missing key, no network) is raised as a
:class:`PhonftError` whose message says *what* went wrong, *where* (the file or the
material) and *how to fix it*. The CLI prints that message without a traceback and exits
with status 2.
"""

from __future__ import annotations

import os


class PhonftError(Exception):
    """Base class of every user-facing error in phonft."""


class ConfigError(PhonftError):
    """A configuration value is missing, of the wrong type, or inconsistent."""


class InputFileError(PhonftError):
    """An input file is missing, truncated, corrupt or inconsistent with its companions.

    Parameters
    ----------
    path
        The offending file (or folder).
    problem
        What is wrong with it, in one sentence.
    fix
        What the user should do about it.
    """

    def __init__(self, path: str | os.PathLike, problem: str, fix: str | None = None):
        self.path = os.fspath(path)
        self.problem = problem
        self.fix = fix
        msg = f"{self.path}: {problem}"
        if fix:
            msg += f" Fix: {fix}"
        super().__init__(msg)


class NetworkError(PhonftError):
    """A download or web API call failed, or no credentials were given for it."""

    def __init__(self, material: str, problem: str, fix: str):
        self.material = material
        super().__init__(f"material '{material}': {problem} Fix: {fix}")


def short_repr(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, so an error quoting a user's value stays one short line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
