"""Downloads go through one helper (:func:`phonft.cache.download`): a progress bar with the
size, a connectivity check that fails offline within the connect timeout with one line
naming the URL and where to put the file by hand, and MACE-MP weights routed through it."""

from __future__ import annotations

import hashlib
import socket
import threading
from pathlib import Path

import pytest

from badinput import assert_clean_failure
from phonft.errors import NetworkError


def test_download_shows_a_progress_bar_with_the_size(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from phonft.cache import download

    src = tmp_path / "data.bin"
    src.write_bytes(b"x" * 5000)
    got = download("m", src.as_uri(), tmp_path / "cache" / "data.bin",
                   sha256=hashlib.sha256(src.read_bytes()).hexdigest())
    assert got.read_bytes() == src.read_bytes()
    err = capsys.readouterr().err
    assert "downloading data.bin" in err and "4.88k" in err  # 5000 B in KiB units: the total is known


def test_a_host_that_does_not_answer_is_an_offline_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A blackholed host (the connection never completes): the check gives up after the
    connect timeout, and the one-line error names the URL and the cache path to fill by hand."""
    from phonft import cache

    release = threading.Event()

    def blackhole(address, timeout=None):
        release.wait()
        raise OSError("released")

    monkeypatch.setattr(cache.socket, "create_connection", blackhole)
    monkeypatch.setattr(cache.urllib.request, "urlopen", lambda *a, **k: pytest.fail("read after a failed check"))
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    dest = tmp_path / "cache" / "mdr" / "mp-149.yaml.bz2"
    try:
        with pytest.raises(NetworkError) as info:
            cache.download("mp-149", "https://example.invalid/mp-149.yaml.bz2", dest, connect_timeout_s=0.2)
    finally:
        release.set()
    message = str(info.value)
    assert "\n" not in message
    assert "https://example.invalid/mp-149.yaml.bz2" in message and "within 0.2 s" in message
    assert f"copy the file into the cache at {dest}" in message
    assert not dest.parent.exists() or not any(dest.parent.iterdir())


def test_a_refused_connection_fails_the_structures_stage_cleanly(tmp_path: Path) -> None:
    import json

    settings = {"material": {"structure": {"mdr_id": "mp-149"}}, "mdr_url": "http://127.0.0.1:9/{mdr_id}.yaml.bz2"}
    line = assert_clean_failure(["structures", "--material", "mp-149", "--out", "results/structures/mp-149",
                                 "--cache-dir", str(tmp_path / "cache"), "--settings", json.dumps(settings)],
                                cwd=tmp_path, message="could not download http://127.0.0.1:9/mp-149.yaml.bz2")
    assert "cannot connect to 127.0.0.1:9" in line and "copy the file into the cache at" in line


def test_the_check_goes_to_the_proxy_when_one_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from phonft.cache import endpoint

    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert endpoint("https://example.org/a.txt") == ("proxy.example", 3128)
    assert endpoint("file:///tmp/a.txt") is None


def test_a_local_server_passes_the_check() -> None:
    from phonft.cache import unreachable

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        assert unreachable(f"http://127.0.0.1:{port}/x", timeout_s=2.0) is None


def test_mace_mp_weights_go_through_the_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The named foundation model is downloaded by phonft.cache.download into mace-torch's
    own cache file, so mace-torch and phonft share it."""
    pytest.importorskip("mace")
    import phonft.cache
    from phonft.models.mace import foundation_file

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls = []

    def fake(material, url, dest, **kwargs):
        calls.append((material, url))
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        Path(dest).write_bytes(b"weights")
        return dest

    monkeypatch.setattr(phonft.cache, "download", fake)
    path = foundation_file("medium-0b3")
    assert calls == [("mace-mp:medium-0b3",
                      "https://github.com/ACEsuit/mace-mp/releases/download/mace_mp_0b3/mace-mp-0b3-medium.model")]
    assert Path(path) == tmp_path / "mace" / "macemp0b3mediummodel"
    assert foundation_file("medium-0b3") == path and len(calls) == 1  # cached


def test_an_unknown_mace_mp_name_is_a_config_error() -> None:
    pytest.importorskip("mace")
    from phonft.errors import ConfigError
    from phonft.models.mace import foundation_file

    with pytest.raises(ConfigError, match="knows no foundation model 'huge-9'.*medium-0b3"):
        foundation_file("huge-9")
