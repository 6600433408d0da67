"""Run the chapter's training notebooks on a CUDA GPU (``make gpu-check``).

    python -m d2l_tools gpu-check [--frameworks pytorch,jax] [--epochs N] [--allow-cpu]

For PyTorch and JAX (the two frameworks whose CUDA builds install from the package index),
executes ``mlp-scratch`` and ``mlp-concise`` (that framework's cells) under the framework's
kernel with every ``d2l.Trainer(...)`` given ``num_gpus=1``, then prints, per notebook, the
device that held the model's parameters and the validation accuracy the notebook printed.
Fails with a clear message when the machine has no CUDA device or the installed builds
are CPU-only (``--allow-cpu`` runs the same path on the CPU, to test this script).
"""

import argparse
import copy
import os
import re
import subprocess
import sys

import nbformat

from d2l_tools import add_frameworks_option, chapter
from d2l_tools.cells import REMOVE_CELL_TAG, NotebookError, read_notebook
from d2l_tools.envs import environment_of
from d2l_tools.kernels import STATIC_OUTPUT_ENV, kernel_name
from d2l_tools.split import split_notebook

GPU_FRAMEWORKS = ("pytorch", "jax")
NOTEBOOKS = ("mlp-scratch", "mlp-concise")
# Asks the framework, in its own environment, which accelerator it sees.
PROBES = {
    "pytorch": "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')",
    "jax": "import jax; print(','.join(str(d) for d in jax.devices() if d.platform == 'gpu'))",
}
# Printed by a cell appended to each notebook: where the model's parameters live.
DEVICE_CELL = {
    "pytorch": "print('d2l-gpu-check device:', next(model.parameters()).device)",
    "jax": "import jax\nprint('d2l-gpu-check device:', jax.tree_util.tree_leaves(trainer.state.params)[0].devices())",
}
HOW_TO = (
    "install CUDA builds into .venv: PyTorch's CUDA wheel of the version in requirements/torch.txt, "
    "and `jax[cuda12]` (or the CUDA extra matching your driver), on a machine with an NVIDIA GPU"
)


class GpuCheckError(Exception):
    pass


def find_gpu(framework):
    python = environment_of(framework).python
    done = subprocess.run([str(python), "-c", PROBES[framework]], capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise GpuCheckError(f"{framework}: cannot ask for a GPU: {done.stderr.strip()[-500:]}")
    return done.stdout.strip()


def on_gpu(nb, framework, epochs=None):
    """A copy of the split notebook that trains on the GPU and says where its parameters are."""
    nb = copy.deepcopy(nb)
    cells = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            if REMOVE_CELL_TAG in cell.metadata.get("tags", []) and epochs:
                continue  # its accuracy bound holds for the full run only
            cell.source = re.sub(
                r"d2l\.Trainer\(([^)]*)\)", lambda m: f"d2l.Trainer({m.group(1)}, num_gpus=1)", cell.source
            )
            if epochs:
                cell.source = re.sub(r"max_epochs=\d+", f"max_epochs={epochs}", cell.source)
            cell.outputs = []
        cells.append(cell)
    cells.append(nbformat.v4.new_code_cell(DEVICE_CELL[framework]))
    nb.cells = cells
    return nb


def run(framework, name, epochs=None):
    from nbclient import NotebookClient

    path = chapter.CHAPTER / f"{name}.ipynb"
    nb = on_gpu(split_notebook(read_notebook(path), framework), framework, epochs)
    env = {**os.environ, **STATIC_OUTPUT_ENV}  # a GPU run uses the threads it likes
    NotebookClient(
        nb, kernel_name=kernel_name(framework), timeout=1800, resources={"metadata": {"path": str(path.parent)}}
    ).execute(env=env)
    text = "".join(
        out.get("text", "")
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream"
    )
    device = re.findall(r"d2l-gpu-check device: (.*)", text)
    accuracy = re.findall(r"validation accuracy[^:\n]*:\s*([0-9.]+)", text)
    return (device[-1] if device else "?"), (accuracy or ["?"])


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m d2l_tools gpu-check", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_frameworks_option(parser, allowed=GPU_FRAMEWORKS)
    parser.add_argument("--epochs", type=int, default=None, help="train fewer epochs (default: the notebooks')")
    parser.add_argument("--allow-cpu", action="store_true", help="run on the CPU when there is no GPU")
    args = parser.parse_args(argv)
    try:
        for fw in args.frameworks:
            gpu = find_gpu(fw)
            if not gpu and not args.allow_cpu:
                raise GpuCheckError(f"{fw}: no CUDA device is visible to the installed build; {HOW_TO}")
            print(f"{fw}: GPU {gpu or 'none (running on the CPU: --allow-cpu)'}", flush=True)
            for name in NOTEBOOKS:
                device, accuracy = run(fw, name, args.epochs)
                print(f"  {name}: parameters on {device}; validation accuracy {', '.join(accuracy)}", flush=True)
    except (GpuCheckError, NotebookError) as err:
        print(f"gpu-check: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
