"""The Fashion-MNIST cache's format: its files, their editions, and reading them.

What both the loader (:mod:`d2l_shim.data`) and the download (:mod:`d2l_shim.download`)
need to know about the cache lives here, so that neither imports the other at the top: where
the cache is (:func:`data_dir`, :func:`cache_dir`), its four gzip'd IDX files
(:data:`FILES`, :func:`read_idx`), the known editions of the dataset and their hashes
(:func:`check_edition`), and :func:`cache_fingerprint`. Numpy and the standard library only;
this module imports neither ``data`` nor ``download``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

TEXT_LABELS = ['t-shirt', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker', 'bag', 'ankle boot']
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
# What to do about a damaged file (the loader downloads what is missing on first use).
REFETCH_HINT = (
    "delete it and load again: missing files are downloaded on first use (`make data` in the book's repository)"
)

# The editions of the dataset the loader accepts (all four files of one edition):
# "official": the MD5 of each .gz, as published with the dataset.
OFFICIAL_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
# "npm": the files rebuilt from the npm package (d2l_shim.download.convert_npm_tarball).
# SHA-256 of each file's IDX content, not of its .gz: gzip's bytes vary with the zlib build.
NPM_CONTENT_SHA256 = {
    "train-images-idx3-ubyte.gz": "546fe0cfb28314f56a5aa11412cb8d8ed85a47b23266afc9facf6639ebb9e9d9",
    "train-labels-idx1-ubyte.gz": "43277a20be9d0b6891aae744eed0266f4b185c52c80f22cfd6b84b3aa3e7856d",
    "t10k-images-idx3-ubyte.gz": "02029b8b4c90aff43c20898b268507d388a6afb99861f3b0d3fdfd54098d11ed",
    "t10k-labels-idx1-ubyte.gz": "0e6df821b227ead4aa8d503cbe88b71e42ede1e5add6969fa8d578d32a4bce14",
}
EDITIONS = ("official", "npm")
# Marks a clone of the book's repository (the maintainers' tooling sits beside d2l_shim).
REPO_MARKER = Path("tools", "d2l_tools")


class DataError(RuntimeError):
    """The Fashion-MNIST cache is missing or broken, or could not be fetched."""


class FashionMNISTArrays(NamedTuple):
    """The four arrays of the dataset: images (n, 28, 28) uint8, labels (n,).

    :func:`d2l_shim.data.load_fashion_mnist` gives read-only arrays with int64 labels.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def data_dir() -> Path:
    """Root of the data cache: ``$D2L_DATA_DIR``, else ``<repo>/data`` when this package is
    imported from a clone of the book's repository, else the user cache folder."""
    configured = os.environ.get("D2L_DATA_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    repo = Path(__file__).resolve().parent.parent
    if (repo / REPO_MARKER).is_dir():
        return repo / "data"
    import platformdirs  # a small pure-Python module; only readers outside a clone need it

    return Path(platformdirs.user_cache_dir("d2l-shim", appauthor=False))


def cache_dir(root=None) -> Path:
    """The folder that holds the four files: ``<root>/fashion-mnist`` (root: :func:`data_dir`).

    A root or cache folder that exists but is a file is an error, named here once.
    """
    root = Path(root).expanduser().resolve() if root is not None else data_dir()
    for folder in (root, root / SUBDIR):
        if folder.exists() and not folder.is_dir():
            raise DataError(
                f"the data folder {folder} is a file, not a folder; point "
                f"D2L_DATA_DIR (or --dir) at a folder, or move that file away"
            )
    return root / SUBDIR


# ---------------------------------------------------------------------------------------
# IDX files


def read_idx(path, kind: str | None = None) -> np.ndarray:
    """Parse an IDX file (gzip'd when the name ends in .gz) into a read-only uint8 array.

    ``kind`` ("images" or "labels") makes a file of the other kind an error.
    Images come back as (count, rows, cols), labels as (count,).
    """
    path = Path(path)
    return _parse_idx(path, _idx_content(path, _read_bytes(path)), kind)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(
            f"{path} does not exist; load again: missing files are downloaded "
            f"on first use (`make data` in the book's repository)"
        ) from None
    except OSError as err:
        raise DataError(f"cannot read {path} ({err}); check its permissions") from None


def _idx_content(path: Path, raw: bytes) -> bytes:
    """The IDX bytes of a file's ``raw`` bytes: gunzipped when its name ends in .gz."""
    if path.suffix != ".gz":
        return raw
    if raw[:2] != b"\x1f\x8b":
        raise DataError(f"{path} is not a gzip file although its name ends in .gz; {REFETCH_HINT}")
    try:
        return gzip.decompress(raw)  # also checks the CRC-32 of the content
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path} is a corrupt or truncated gzip file ({err}); {REFETCH_HINT}") from None


def _parse_idx(path: Path, raw: bytes, kind: str | None) -> np.ndarray:
    fix = REFETCH_HINT
    if len(raw) < 8:
        raise DataError(f"{path} is too short to hold an IDX header ({len(raw)} bytes); {fix}")
    magic, count = struct.unpack(">II", raw[:8])
    expected = [IDX_MAGIC[kind]] if kind else sorted(IDX_MAGIC.values())
    if magic not in expected:
        wanted = " or ".join(f"{m} ({k})" for k, m in IDX_MAGIC.items() if m in expected)
        raise DataError(
            f"{path} has IDX magic number {magic}, expected {wanted}; "
            f"it is not a Fashion-MNIST {kind or 'IDX'} file; {fix}"
        )
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
        raise DataError(
            f"{path} is {problem}: its header promises {' x '.join(map(str, shape))}"
            f" = {promised} bytes of data but it holds {len(raw) - header}; {fix}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


# ---------------------------------------------------------------------------------------
# Editions and content hashes


class FileDigest(NamedTuple):
    """What identifies one cache file: the MD5 of its bytes, the SHA-256 of its IDX content."""

    md5: str
    content_sha256: str


def file_signature(path) -> tuple:
    """Changes when the file is replaced or rewritten (a new fetch, a hand edit)."""
    stat = os.stat(path)
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


# path -> (signature, digest): each file version is hashed once per process.
_digests: dict[Path, tuple[tuple, FileDigest]] = {}


def _digest(path: Path, raw: bytes, content: bytes) -> FileDigest:
    digest = FileDigest(hashlib.md5(raw).hexdigest(), hashlib.sha256(content).hexdigest())
    _digests[path] = (file_signature(path), digest)
    return digest


def file_digest(path) -> FileDigest:
    """The :class:`FileDigest` of a cache file (computed once per version of the file)."""
    path = Path(path)
    cached = _digests.get(path)
    if cached and cached[0] == file_signature(path):
        return cached[1]
    raw = _read_bytes(path)
    return _digest(path, raw, _idx_content(path, raw))


def editions_of(name: str, digest: FileDigest) -> set[str]:
    """The known editions (:data:`EDITIONS`) that file ``name`` with ``digest`` belongs to."""
    found = set()
    if OFFICIAL_MD5.get(name) == digest.md5:
        found.add("official")
    if NPM_CONTENT_SHA256.get(name) == digest.content_sha256:
        found.add("npm")
    return found


def check_edition(directory, digests: dict[str, FileDigest]) -> str:
    """The edition that all of ``digests`` (file name -> digest) belong to; else a
    :class:`DataError` that names the file that does not fit, and what to do."""
    directory = Path(directory)
    matches = {name: editions_of(name, digest) for name, digest in digests.items()}
    for edition in EDITIONS:
        if all(edition in found for found in matches.values()):
            return edition
    # The edition most files belong to tells which file is the odd one out.
    best = max(EDITIONS, key=lambda edition: sum(edition in found for found in matches.values()))
    odd = [name for name, found in matches.items() if best not in found]
    if any(matches[name] for name in odd):
        raise DataError(
            f"{directory} mixes editions of Fashion-MNIST: {', '.join(odd)} "
            f"{'is' if len(odd) == 1 else 'are'} not from the {best} edition of "
            f"the other files; delete {directory} and load again: the files are "
            f"downloaded on first use (`make data` in the book's repository)"
        )
    raise DataError(
        f"{directory / odd[0]} is damaged or not Fashion-MNIST: its content matches "
        f"neither the official files nor the npm edition (MD5 {digests[odd[0]].md5}); "
        f"{REFETCH_HINT}"
    )


def cache_fingerprint(data_dir=None) -> str:
    """A digest of what the four cache files hold (their IDX content's SHA-256s).

    It does not depend on when or how the files were fetched, nor on their gzip bytes:
    a re-fetch of the same edition gives the same fingerprint. ``"no data cache"`` when a
    file is missing. ``data_dir`` is the data root (default :func:`data_dir`).
    """
    directory = cache_dir(data_dir)
    if not all((directory / name).is_file() for name in FILES):
        return "no data cache"
    summary = hashlib.sha256()
    for name in FILES:
        summary.update(f"{name} {file_digest(directory / name).content_sha256}\n".encode())
    return summary.hexdigest()


def read_cache(directory) -> FashionMNISTArrays:
    """The four files of cache folder ``directory``, parsed, once checked to be one known
    edition (:func:`check_edition`: a changed pixel is caught, not only a broken gzip).

    Each file is read once, for its digest and its arrays; the digests are kept for
    :func:`file_digest`. The arrays are read-only uint8, as stored.
    """
    directory = Path(directory)
    parts, digests = {}, {}
    for name, (role, kind) in FILES.items():
        path = directory / name
        raw = _read_bytes(path)
        content = _idx_content(path, raw)
        digests[name] = _digest(path, raw, content)
        parts[role] = _parse_idx(path, content, kind)
    check_edition(directory, digests)  # a known edition: counts and labels are right
    return FashionMNISTArrays(**parts)
