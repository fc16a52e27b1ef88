"""Atomic file output and transparent decompression.

Nothing phonft writes is ever half-written: single files go through a temporary sibling
and :func:`os.replace`; stage folders are assembled in a temporary sibling folder and
renamed into place only when complete (:func:`atomic_directory`).
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

COMPRESSED_SUFFIXES = {".bz2": bz2.open, ".xz": lzma.open, ".lzma": lzma.open, ".gz": gzip.open}


def open_text(path: str | os.PathLike) -> io.TextIOBase:
    """Open a text file for reading, decompressing ``.bz2``, ``.xz``, ``.lzma`` or ``.gz``."""
    path = Path(path)
    opener = COMPRESSED_SUFFIXES.get(path.suffix)
    if opener is None:
        return open(path, encoding="utf-8")
    return opener(path, "rt", encoding="utf-8")


def read_text(path: str | os.PathLike) -> str:
    """Return the whole (possibly compressed) text file as a string."""
    with open_text(path) as fh:
        return fh.read()


def read_json(path: str | os.PathLike) -> Any:
    """Parse a (possibly compressed) JSON file."""
    return json.loads(read_text(path))


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def to_json(data: Any) -> str:
    """Serialise to indented JSON, converting numpy values; NaN is written as ``NaN``."""
    return json.dumps(data, indent=2, default=_json_default) + "\n"


# --------------------------------------------------------------------------- temporaries

_RUN_START_S = time.time()
"""When this process imported the module: temporaries without a writer tag older than
this were left by an earlier run."""
_MKSTEMP_CHARS = r"[a-z0-9_]{8}"


def _writer_tag() -> str:
    """``<host>-<pid>`` of this process, safe in a file name (hostname reduced to [A-Za-z0-9_])."""
    host = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "host"
    return f"{host}-{os.getpid()}"


def _temp_prefix(target: Path) -> str:
    """Prefix of a temporary sibling of ``target``: ``.<name>.<host>-<pid>.``."""
    return f".{target.name}.{_writer_tag()}."


def _old_name(target: Path) -> Path:
    """Where :func:`atomic_directory` parks the previous ``target`` during the swap."""
    return target.with_name(f".{target.name}.old-{_writer_tag()}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _is_stale(entry: Path, tag: str | None) -> bool:
    """Whether a temporary of a killed writer: tagged by a dead process of this host, or
    untagged (an older phonft) and older than this run. Other hosts' entries are kept."""
    if tag is None:
        with contextlib.suppress(FileNotFoundError):
            return entry.lstat().st_mtime < _RUN_START_S
        return False
    host, _, pid = tag.rpartition("-")
    mine_host, _, mine_pid = _writer_tag().rpartition("-")
    return host == mine_host and pid != mine_pid and not _pid_alive(int(pid))


def clean_stale_temporaries(target: str | os.PathLike) -> list[Path]:
    """Remove the hidden temporaries that killed writers of ``target`` left beside it.

    Those are ``.<name>.<host>-<pid>.XXXXXXXX.tmp`` files or folders and
    ``.<name>.old-<host>-<pid>`` folders whose writer process is dead (on this host), and
    untagged ones (``.<name>.XXXXXXXX.tmp``, ``.<name>.old-<pid>``, written by earlier
    phonft versions) older than the current run. A live writer's temporaries, and those
    of writers on other hosts (a shared file system), are left alone. Returns what was removed.
    """
    target = Path(target)
    name = re.escape(target.name)
    tagged = re.compile(rf"^\.{name}\.(?:old-)?(?P<tag>[A-Za-z0-9_]+-\d+)(?:\.{_MKSTEMP_CHARS}\.tmp)?$")
    untagged = re.compile(rf"^\.{name}\.(?:{_MKSTEMP_CHARS}(?:\.tmp)?|old-\d+)$")
    removed = []
    if not target.parent.is_dir():
        return removed
    for entry in target.parent.iterdir():
        m = tagged.match(entry.name)
        if (m and _is_stale(entry, m["tag"])) or (not m and untagged.match(entry.name) and _is_stale(entry, None)):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def current_umask() -> int:
    """The process's umask, read without changing it where Linux tells it (``/proc``)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _temp_file(path: Path) -> tuple[int, str]:
    """A temporary sibling of ``path`` (stale ones cleaned first), mode ``0666 & ~umask``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600
    return fd, tmp


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; on success fsync it and rename it
    into place (then fsync the folder); on any exception remove it and leave ``path`` as it was."""
    path = Path(path)
    fd, tmp = _temp_file(path)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


# --------------------------------------------------------------------------- writers


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary sibling, fsync, rename, fsync the folder).

    The file gets the permissions of a plain ``open`` (``0666 & ~umask``).
    """
    path = Path(path)
    fd, tmp = _temp_file(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as JSON to ``path`` atomically."""
    return atomic_write_text(path, to_json(data))


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike) -> Iterator[Path]:
    """Build a folder in a temporary sibling and move it to ``final`` only on success.

    On any exception the temporary folder is removed and ``final`` is left exactly as it
    was (absent, or holding the previous complete result). The folder gets the permissions
    of a plain ``mkdir`` (``0777 & ~umask``); temporaries of killed writers of ``final``
    are removed first (:func:`clean_stale_temporaries`).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(final)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(final), suffix=".tmp", dir=final.parent))
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700
        yield tmp
        if final.exists():
            old = _old_name(final)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(final.parent)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file beside ``path``, fsync it, then rename it into place."""
    import torch

    path = Path(path)
    with atomic_file(path) as tmp:
        torch.save(obj, tmp)
    return path
