"""The chapter's own notebooks under nbval: floating-point noise passes, real changes fail.

Each test copies one split notebook (``build/notebooks/<framework>/...``, written by the
``split`` stage of ``make test``), optionally edits one cell and cuts the notebook after the
cell that must notice, and runs nbval on it the way ``make test`` does, in a subprocess.

* Noise: the same notebook with two compute threads instead of one (another summation
  order), and TensorFlow with oneDNN switched the other way, must pass.
* Changes: a learning rate of 0.5 instead of 0.1, the sigmoid plotted where the tanh was, and
  a changed batch size must fail, with a message that names the notebook, the framework, the
  cell and the number that moved.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
from conftest import frameworks_under_test
from jupyter_client.kernelspec import KernelSpecManager

from d2l_tools.kernels import REPRODUCIBLE_ENV, kernel_name
from d2l_tools.nbval_plugin import nbval_command
from d2l_tools.procs import junit_results

REPO = Path(__file__).resolve().parent.parent
SPLIT = REPO / "build" / "notebooks"
TWO_THREADS = {
    "OMP_NUM_THREADS": "2",
    "MKL_NUM_THREADS": "2",
    "MXNET_CPU_WORKER_NTHREADS": "2",
    "TF_NUM_INTRAOP_THREADS": "2",
    "TF_NUM_INTEROP_THREADS": "2",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads=2",
}


def split_notebook(framework, name):
    path = SPLIT / framework / "chapter_mlp" / f"{name}.ipynb"
    if not path.exists():
        pytest.fail(f"{path} is missing: run `python -m d2l_tools notebooks split` (the split stage) first")
    return nbformat.read(str(path), as_version=4)


def cell_index(nb, needle):
    """Index of the one code cell whose source contains ``needle``."""
    hits = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and needle in cell.source]
    assert len(hits) == 1, f"{needle!r} is in cells {hits}: the test needs exactly one"
    return hits[0]


def nbval_cell(nb, needle):
    """nbval's number for that cell ("Cell N"): it counts code cells only."""
    index = cell_index(nb, needle)
    return sum(cell.cell_type == "code" for cell in nb.cells[:index])


def edited(nb, needle, old, new, keep_through):
    """A copy of ``nb`` with ``old`` -> ``new`` in the cell holding ``needle``, cut after ``keep_through``."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    index, last = cell_index(nb, needle), cell_index(nb, keep_through)
    assert old in nb.cells[index].source
    nb.cells[index].source = nb.cells[index].source.replace(old, new)
    nb.cells = nb.cells[: last + 1]
    return nb


def kernel_with_env(tmp_path, framework, **env):
    """A JUPYTER_PATH whose copy of the framework's kernel sets ``env`` (kernel env beats ours)."""
    spec_dir = Path(KernelSpecManager().find_kernel_specs()[kernel_name(framework)])
    target = tmp_path / "jupyter" / "kernels" / spec_dir.name
    shutil.copytree(spec_dir, target)
    spec = json.loads((target / "kernel.json").read_text())
    spec["env"].update(env)
    (target / "kernel.json").write_text(json.dumps(spec))
    return str(tmp_path / "jupyter")


def run_nbval(tmp_path, nb, framework, name, env=None):
    """nbval as `make test` runs it; returns (passed, {test name: failure text})."""
    folder = tmp_path / framework / "chapter_mlp"
    folder.mkdir(parents=True)
    nbformat.write(nb, str(folder / f"{name}.ipynb"))
    xml = tmp_path / "junit.xml"
    command = nbval_command(framework, tmp_path / framework, junit_xml=xml)
    run_env = {**os.environ, **REPRODUCIBLE_ENV, **(env or {})}
    result = subprocess.run(command, cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=1200)
    if not xml.exists():
        pytest.fail(
            f"nbval wrote no results (exit {result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    results = junit_results(xml)
    return results.passed, results.messages


# ---------------------------------------------------------------------------------------------
# Noise passes


TESTED = frameworks_under_test()  # `make test FRAMEWORKS=...` narrows it
NOISE_CASES = [
    ("pytorch", "mlp-scratch", "two threads"),
    ("jax", "mlp", "two threads"),
    ("tensorflow", "mlp-scratch", "two threads, oneDNN switched"),
]


def for_framework(framework):
    """Collect a test only when its framework is under test (never a skip that looks like a pass)."""
    return lambda test: test if framework in TESTED else None


@pytest.mark.parametrize("framework, name, how", [case for case in NOISE_CASES if case[0] in TESTED])
def test_noise_passes(tmp_path, framework, name, how):
    env = dict(TWO_THREADS)
    if "oneDNN" in how:
        spec = json.loads(
            (Path(KernelSpecManager().find_kernel_specs()[kernel_name(framework)]) / "kernel.json").read_text()
        )
        flipped = "1" if spec["env"].get("TF_ENABLE_ONEDNN_OPTS", "0") == "0" else "0"
        env["JUPYTER_PATH"] = kernel_with_env(tmp_path, framework, TF_ENABLE_ONEDNN_OPTS=flipped)
    passed, failures = run_nbval(tmp_path, split_notebook(framework, name), framework, name, env)
    assert not failures, "\n\n".join(f"{test}: {text[-1500:]}" for test, text in failures.items())
    assert passed > 10


# ---------------------------------------------------------------------------------------------
# Changes fail, and say where and what


def only_failure(failures):
    assert len(failures) == 1, f"expected one failing cell, got {sorted(failures)}"
    return next(iter(failures.items()))


@for_framework("pytorch")
def test_learning_rate_change_fails_in_the_training_cell(tmp_path):
    nb = split_notebook("pytorch", "mlp-scratch")
    training = nbval_cell(nb, "trainer.fit(")
    changed = edited(nb, "model = MLPScratch(", "lr=0.1", "lr=0.5", keep_through="trainer.fit(")
    _, failures = run_nbval(tmp_path, changed, "pytorch", "mlp-scratch")
    test, text = only_failure(failures)
    assert test.endswith(f"Cell {training}")
    assert f"mlp-scratch.ipynb under pytorch, cell {training}" in text
    assert "stdout: number" in text and "tolerance 0.03 for 'train loss'" in text


@for_framework("pytorch")
def test_sigmoid_plotted_for_tanh_fails(tmp_path):
    nb = split_notebook("pytorch", "mlp")
    # The tanh cell computes the curves; the shared cell after it draws them (a PNG).
    changed = edited(
        nb, "y = torch.tanh(x)", "torch.tanh(x)", "torch.sigmoid(x)", keep_through="plot_pair(x, y, dy, 'tanh')"
    )
    plot = nbval_cell(nb, "plot_pair(x, y, dy, 'tanh')")
    _, failures = run_nbval(tmp_path, changed, "pytorch", "mlp")
    test, text = only_failure(failures)
    assert test.endswith(f"Cell {plot}")
    assert f"mlp.ipynb under pytorch, cell {plot}: image/png:" in text and "of the pixels changed" in text


@for_framework("jax")
def test_changed_shape_fails(tmp_path):
    nb = split_notebook("jax", "mlp-scratch")
    changed = edited(
        nb, "data = d2l.FashionMNIST(", "batch_size=256", "batch_size=128", keep_through="data = d2l.FashionMNIST("
    )
    data_cell = nbval_cell(changed, "data = d2l.FashionMNIST(")
    _, failures = run_nbval(tmp_path, changed, "jax", "mlp-scratch")
    test, text = only_failure(failures)
    assert test.endswith(f"Cell {data_cell}")
    assert f"mlp-scratch.ipynb under jax, cell {data_cell}: stdout: number 256 became 128" in text
