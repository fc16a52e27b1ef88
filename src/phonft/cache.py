"""The download cache and atomic downloads (a leaf module, shared by the stages)."""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from phonft.errors import NetworkError


def default_cache_dir() -> Path:
    """``$PHONFT_CACHE``, else ``$XDG_CACHE_HOME/phonft``, else ``~/.cache/phonft``."""
    if os.environ.get("PHONFT_CACHE"):
        return Path(os.environ["PHONFT_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "phonft"


def download(material: str, url: str, dest: Path, timeout_s: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically; raise :class:`NetworkError` when offline."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh, urllib.request.urlopen(url, timeout=timeout_s) as resp:
            shutil.copyfileobj(resp, fh)
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        Path(tmp).unlink(missing_ok=True)
        raise NetworkError(material, f"could not download {url} ({exc}).",
                           "connect to the network, or place the file at "
                           f"{dest} by hand, or use a vendored/local reference.") from exc
    return dest
