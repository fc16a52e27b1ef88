"""The download cache and atomic, checksum-verified downloads (a leaf module, shared by the stages).

Every download of phonft (MDR files, kappa103, MACE-MP foundation weights, upstream replay
data, gnep_data URLs) goes through :func:`download`:

- a connectivity check first: the host (or the proxy that ``$https_proxy``/``$http_proxy``
  names) must resolve and accept a TCP connection within :data:`CONNECT_TIMEOUT_S`
  seconds, so that an offline machine gets a one-line :class:`NetworkError` within
  seconds, naming the URL and where to copy the file by hand, instead of a hang;
- then the transfer, with :data:`READ_TIMEOUT_S` per read and a tqdm progress bar (size,
  rate and ETA) on stderr, which the workflow's rules send to their log;
- where a SHA-256 is known (pinned in the code, or given in the config as ``sha256:``),
  the download must have it before it enters the cache, and a cached file that no longer
  matches is fetched again.

A downloaded file is cached under ``<cache_dir>/<kind>/<url key>/<file name>``, where the
URL key is a digest of the full URL: a changed address (a mirror, another release) is
downloaded afresh instead of silently reusing the file of the old one.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import BinaryIO

from phonft.errors import ConfigError, NetworkError
from phonft.io import atomic_file, sha256_file

CONNECT_TIMEOUT_S = 5.0
"""Seconds the host (or proxy) has to resolve and accept a connection before a download is
declared offline."""
READ_TIMEOUT_S = 60.0
"""Seconds a single read of a download may wait for data."""
_CHUNK_BYTES = 1 << 20


def default_cache_dir() -> Path:
    """``$PHONFT_CACHE``, else ``$XDG_CACHE_HOME/phonft``, else ``~/.cache/phonft``."""
    if os.environ.get("PHONFT_CACHE"):
        return Path(os.environ["PHONFT_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "phonft"


def check_sha256(value: object, key: str) -> str | None:
    """A config ``sha256:`` value as 64 lower-case hex digits (None when not given)."""
    if value is None:
        return None
    text = str(value).strip().lower().removeprefix("sha256:")
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise ConfigError(f"{key}: {value!r} is not a SHA-256 digest. Fix: give the file's 64 hex digits "
                          "(`sha256sum FILE`), or leave the key out.")
    return text


def url_key(url: str) -> str:
    """The cache folder of ``url``: the first 16 hex digits of the SHA-256 of the URL."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


def cache_path(cache_dir: str | os.PathLike, kind: str, url: str, name: str | None = None) -> Path:
    """Where ``url`` is cached: ``<cache_dir>/<kind>/<url key>/<name>`` (default: the URL's file name)."""
    name = name or Path(urllib.parse.urlsplit(url).path).name or "download"
    if Path(name).name != name or name in (".", ".."):
        raise ConfigError(f"{kind}: {name!r} is not a plain file name. Fix: use an id or URL without '/' or '..'.")
    return Path(cache_dir) / kind / url_key(url) / name


def endpoint(url: str) -> tuple[str, int] | None:
    """The (host, port) a download of ``url`` connects to first: the proxy's when the
    environment names one for the URL's scheme (and ``$no_proxy`` does not exempt the
    host), else the URL's own; None for a URL that needs no network (``file:``)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname):
        proxied = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if proxied.hostname:
            return proxied.hostname, proxied.port or 80
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def _connect(host: str, port: int, timeout_s: float, outcome: list[BaseException | None]) -> None:
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
        outcome.append(None)
    except OSError as exc:
        outcome.append(exc)


def unreachable(url: str, timeout_s: float = CONNECT_TIMEOUT_S) -> str | None:
    """Why ``url``'s host (or proxy) cannot be reached within ``timeout_s`` seconds, or None
    when it accepted a TCP connection (or the URL needs no network).

    The DNS lookup has no timeout of its own, so the check runs in a daemon thread and is
    given up after ``timeout_s``.
    """
    target = endpoint(url)
    if target is None:
        return None
    outcome: list[BaseException | None] = []
    thread = threading.Thread(target=_connect, args=(*target, timeout_s, outcome), daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not outcome:
        return f"no connection to {target[0]}:{target[1]} within {timeout_s:g} s"
    if outcome[0] is not None:
        return f"cannot connect to {target[0]}:{target[1]}: {outcome[0]}"
    return None


def _copy_with_progress(resp, fh: BinaryIO, url: str) -> None:
    """Copy the response to ``fh`` with a tqdm bar (size, rate, ETA) on stderr."""
    from tqdm import tqdm

    size = resp.headers.get("Content-Length") if getattr(resp, "headers", None) else None
    total = int(size) if size and size.isdigit() else None
    name = Path(urllib.parse.urlsplit(url).path).name or url
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"downloading {name}",
              file=sys.stderr, mininterval=1.0 if sys.stderr.isatty() else 10.0, ascii=not sys.stderr.isatty(),
              disable=False) as bar:
        while chunk := resp.read(_CHUNK_BYTES):
            fh.write(chunk)
            bar.update(len(chunk))


def download(material: str, url: str, dest: Path, timeout_s: float = READ_TIMEOUT_S, sha256: str | None = None,
             connect_timeout_s: float = CONNECT_TIMEOUT_S) -> Path:
    """Download ``url`` to ``dest`` atomically, with a progress bar; raise :class:`NetworkError`
    within ``connect_timeout_s`` seconds when the host cannot be reached (see :func:`unreachable`).

    ``timeout_s`` bounds each read of the transfer. With ``sha256``, the download must have
    that digest, or it is discarded with a :class:`NetworkError` and ``dest`` is left as it was.
    """
    dest = Path(dest)
    by_hand = f"connect to the network, or copy the file into the cache at {dest} by hand"
    if (reason := unreachable(url, connect_timeout_s)) is not None:
        raise NetworkError(material, f"could not download {url} ({reason}; offline?).", f"{by_hand}.")
    with atomic_file(dest) as tmp:
        try:
            with open(tmp, "wb") as fh, urllib.request.urlopen(url, timeout=timeout_s) as resp:
                _copy_with_progress(resp, fh, url)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise NetworkError(material, f"could not download {url} ({exc}).", f"{by_hand}, or use a "
                               "vendored/local file.") from exc
        if sha256 is not None and (digest := sha256_file(tmp)) != sha256:
            raise NetworkError(material, f"{url} has SHA-256 {digest}, not the expected {sha256}; the "
                               "download was discarded.",
                               f"check the address and the sha256 setting, or place the right file at {dest}.")
    return dest


def fetch(material: str, url: str, cache_dir: str | os.PathLike, kind: str, sha256: str | None = None,
          name: str | None = None) -> Path:
    """The cached copy of ``url`` (:func:`cache_path`), downloaded when missing or when it
    does not match ``sha256``."""
    dest = cache_path(cache_dir, kind, url, name)
    if dest.is_file() and (sha256 is None or sha256_file(dest) == sha256):
        return dest
    return download(material, url, dest, sha256=sha256)


def folder_size_bytes(folder: str | os.PathLike) -> int:
    """Total size in bytes of the files under ``folder`` (0 when it does not exist)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file() and not p.is_symlink())
