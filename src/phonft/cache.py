"""The download cache and atomic, checksum-verified downloads (a leaf module, shared by the stages).

A downloaded file is cached under ``<cache_dir>/<kind>/<url key>/<file name>``, where the
URL key is a digest of the full URL: a changed address (a mirror, another release) is
downloaded afresh instead of silently reusing the file of the old one. Where a SHA-256 is
known (pinned in the code, or given in the config as ``sha256:``), the download is checked
against it before it enters the cache, and a cached file that no longer matches is fetched
again.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from phonft.errors import ConfigError, NetworkError
from phonft.io import atomic_file, sha256_file


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


def download(material: str, url: str, dest: Path, timeout_s: float = 60.0, sha256: str | None = None) -> Path:
    """Download ``url`` to ``dest`` atomically; raise :class:`NetworkError` when offline.

    With ``sha256``, the download must have that digest, or it is discarded with a
    :class:`NetworkError` and ``dest`` is left as it was.
    """
    with atomic_file(dest) as tmp:
        try:
            with open(tmp, "wb") as fh, urllib.request.urlopen(url, timeout=timeout_s) as resp:
                shutil.copyfileobj(resp, fh)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise NetworkError(material, f"could not download {url} ({exc}).",
                               "connect to the network, or place the file at "
                               f"{dest} by hand, or use a vendored/local reference.") from exc
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
