"""`make gpu-check`: the training notebooks on a GPU, with a clear error where there is none.

This machine (and CI) has no GPU: the run itself is checked on the CPU (--allow-cpu, one
epoch), which goes through the same notebook rewriting, kernels and output parsing.
"""

import subprocess
import sys

import nbformat
import pytest

from d2l_tools import gpu_check


def test_notebook_is_rewritten_for_the_gpu():
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("trainer = d2l.Trainer(max_epochs=10)\ntrainer.fit(model, data)"),
            nbformat.v4.new_code_cell("d2l.Trainer(max_epochs=10).fit(scratch, data)"),
            nbformat.v4.new_code_cell("assert val_acc >= 0.8", metadata={"tags": ["remove-cell"]}),
        ]
    )
    full = gpu_check.on_gpu(nb, "pytorch")
    assert full.cells[0].source.startswith("trainer = d2l.Trainer(max_epochs=10, num_gpus=1)")
    assert full.cells[1].source == "d2l.Trainer(max_epochs=10, num_gpus=1).fit(scratch, data)"
    assert len(full.cells) == 4 and "d2l-gpu-check device:" in full.cells[-1].source
    short = gpu_check.on_gpu(nb, "jax", epochs=1)
    assert "max_epochs=1, num_gpus=1" in short.cells[0].source
    assert not any("assert" in cell.source for cell in short.cells)  # the bound holds after 10 epochs only


@pytest.mark.parametrize("framework", gpu_check.GPU_FRAMEWORKS)
def test_without_a_gpu_it_says_what_to_install(framework):
    if gpu_check.find_gpu(framework):
        pytest.fail("this test expects a machine without a GPU; on a GPU machine run `make gpu-check` instead")
    done = subprocess.run(
        [sys.executable, "-m", "d2l_tools", "gpu-check", "--frameworks", framework],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    assert f"gpu-check: error: {framework}: no CUDA device" in done.stderr and "jax[cuda12]" in done.stderr


def test_the_run_reports_device_and_accuracy_on_the_cpu():
    done = subprocess.run(
        [sys.executable, "-m", "d2l_tools", "gpu-check", "--frameworks", "jax", "--epochs", "1", "--allow-cpu"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "jax: GPU none (running on the CPU: --allow-cpu)"
    for name in gpu_check.NOTEBOOKS:
        line = next(line for line in lines if line.startswith(f"  {name}:"))
        assert "parameters on {CpuDevice(id=0)}" in line
        assert float(line.rsplit("validation accuracy ", 1)[1].split(",")[0]) > 0.5
