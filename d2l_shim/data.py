"""Fashion-MNIST for the chapter: a local IDX cache and a fast, numpy-only loader.

The chapter never downloads data while a notebook runs. ``make data`` (which runs
``python -m d2l_tools data fetch``, the maintainers' tooling in ``tools/``) fills the cache
once; afterwards :func:`load_fashion_mnist` parses the four gzip'd IDX files with numpy alone.

Cache layout: ``<data_dir()>/fashion-mnist/`` holds the four standard files
(``train-images-idx3-ubyte.gz`` ...) and ``provenance.json`` (where they came from,
their SHA-256). ``data_dir()`` is ``$D2L_DATA_DIR`` or ``<repo>/data``.

This module is framework neutral: numpy and the standard library only (numpy 1.23+). It
reads the cache and never fetches, so importing it loads no network or archive code.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

TEXT_LABELS = ['t-shirt', 'trouser', 'pullover', 'dress', 'coat',
               'sandal', 'shirt', 'sneaker', 'bag', 'ankle boot']
NUM_CLASSES = len(TEXT_LABELS)
IMAGE_SHAPE = (28, 28)

SUBDIR = "fashion-mnist"
PROVENANCE = "provenance.json"

# The cache's files: name -> (field of FashionMNISTArrays, IDX kind).
FILES = {
    "train-images-idx3-ubyte.gz": ("train_images", "images"),
    "train-labels-idx1-ubyte.gz": ("train_labels", "labels"),
    "t10k-images-idx3-ubyte.gz": ("test_images", "images"),
    "t10k-labels-idx1-ubyte.gz": ("test_labels", "labels"),
}

IDX_MAGIC = {"images": 2051, "labels": 2049}
FETCH_HINT = "run `make data` (or `python -m d2l_tools data fetch`)"


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


def cache_dir(root=None) -> Path:
    """The folder that holds the four files: ``<root>/fashion-mnist`` (root: :func:`data_dir`)."""
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


# ---------------------------------------------------------------------------------------
# Loading

_loaded: dict[Path, tuple[tuple, FashionMNISTArrays]] = {}


def load_fashion_mnist(root=None) -> FashionMNISTArrays:
    """The cached dataset as numpy arrays, parsed once per directory and process.

    ``root`` is the data directory (default :func:`data_dir`); files are read from
    ``<root>/fashion-mnist/``. The arrays are shared between callers and read-only.
    Checksums are not recomputed here: gzip's CRC-32 and the IDX size checks already
    catch damaged files, and ``python -m d2l_tools data verify`` compares them
    against provenance.json.
    """
    directory = cache_dir(root)
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
    parts = {role: read_idx(directory / name, kind) for name, (role, kind) in FILES.items()}
    for split in ("train", "test"):
        images, labels = parts[f"{split}_images"], parts[f"{split}_labels"]
        image_file, label_file = (name for name, (role, _) in FILES.items()
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
