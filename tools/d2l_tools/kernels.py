"""Register the four d2l Jupyter kernels inside the project's environment.

    python -m d2l_tools kernels install [--prefix .venv] [--mxnet-python .venv-mxnet/bin/python]

Each kernel runs ipykernel in the environment that holds its framework and sets
``D2L_FRAMEWORK`` so that ``%%tab`` cells for that framework run and the others are
skipped. The specs go under ``<prefix>/share/jupyter/kernels`` (the environment's own data
dir, which Jupyter started from that environment searches), never the user's home.

It also makes ``d2l-<first framework>`` the server's default kernel (in
``<prefix>/etc/jupyter/jupyter_server_config.json``), so JupyterLab's launcher lists the d2l
kernels first and *New notebook* starts one: under ipykernel's generic 'Python 3 (ipykernel)'
no ``%%tab`` cell can run. The generic kernel stays available for other work.
"""

import argparse
import json
import sys
from pathlib import Path

from d2l_shim import FRAMEWORK_INFO, FRAMEWORKS
from d2l_tools import add_frameworks_option
from d2l_tools.envs import ENVIRONMENTS
from d2l_tools.files import write_atomic

# Start-up chatter that would otherwise land in notebook outputs as stderr text.
QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # TensorFlow's C++ info/warning lines (oneDNN, CPU features)
    # oneDNN off. Its outputs would pass the tolerant comparison (tests/test_compare_notebooks.py
    # switches it), but `make bench` measured it only 3-6% faster per epoch on these models, and
    # with it on TF writes a timestamped notice to the process's stderr, which TF_CPP_MIN_LOG_LEVEL
    # does not silence and which ipykernel may forward into a notebook's outputs.
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "PYTHONWARNINGS": "ignore::DeprecationWarning",  # old MXNet code trips numpy/ipykernel deprecations
}


# What a kernel running the chapter's notebooks gets on top of its spec's env, for stored and
# re-run outputs alike (`notebooks execute`, nbval, the lab check): matplotlib stamps SVG figures
# with the current date unless SOURCE_DATE_EPOCH is set; D2L_PROGRESS=static makes training boards
# emit one final figure instead of animating (nbval ignores clear_output and would see them all).
STATIC_OUTPUT_ENV = {"SOURCE_DATE_EPOCH": "0", "D2L_PROGRESS": "static"}
# Two kernels run side by side (--jobs 2) on a 2-core machine, so each gets one compute
# thread: oversubscribed, PyTorch was measured 12x slower per minibatch.
ONE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MXNET_CPU_WORKER_NTHREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}
REPRODUCIBLE_ENV = {**STATIC_OUTPUT_ENV, **ONE_THREAD_ENV}
CELL_TIMEOUT = 1200  # seconds one notebook cell may run; a full training run on 2 CPU cores takes minutes


class KernelError(Exception):
    """A d2l kernel is missing; the message says how to install it."""


def kernel_name(framework):
    return f"d2l-{framework}"


def display_name(framework):
    return f"Python 3 (d2l · {FRAMEWORK_INFO[framework].label})"


def notebook_kernelspec(framework):
    """``metadata.kernelspec`` of a notebook that runs under ``framework``'s kernel."""
    return {"name": kernel_name(framework), "display_name": display_name(framework), "language": "python"}


def require_kernels(frameworks):
    """Raise KernelError naming the d2l kernels of ``frameworks`` that Jupyter cannot find."""
    from jupyter_client.kernelspec import KernelSpecManager

    installed = KernelSpecManager().find_kernel_specs()
    missing = [kernel_name(fw) for fw in frameworks if kernel_name(fw) not in installed]
    if missing:
        raise KernelError(
            f"Jupyter kernel(s) {', '.join(missing)} not installed: run "
            "`python -m d2l_tools kernels install` (part of `make setup`)"
        )


def kernel_spec(framework, python):
    return {
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": display_name(framework),
        "language": "python",
        "env": {"D2L_FRAMEWORK": framework, **QUIET_ENV},
        "metadata": {"debugger": True},
    }


def write_json_atomic(path, data):
    write_atomic(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")


DEFAULT_KERNEL = kernel_name(FRAMEWORKS[0])


def server_config_path(prefix):
    """The environment's server config, read by every Jupyter server started from it
    (JupyterLab, Notebook 7). Its ``jupyter_server_config.d/`` only enables extensions."""
    return Path(prefix) / "etc" / "jupyter" / "jupyter_server_config.json"


def with_default_kernel(config):
    """``config`` (a server config dict) with the d2l default kernel; other settings are kept."""
    config = dict(config)
    config["MappingKernelManager"] = {**config.get("MappingKernelManager", {}), "default_kernel_name": DEFAULT_KERNEL}
    return config


def install(prefix, pythons, quiet=False):
    kernels_dir = Path(prefix) / "share" / "jupyter" / "kernels"
    for framework, python in pythons.items():
        if not Path(python).exists():
            sys.exit(f"error: no Python at {python} for the {framework} kernel; run `make setup` first")
        target = kernels_dir / kernel_name(framework) / "kernel.json"
        write_json_atomic(target, kernel_spec(framework, Path(python).absolute()))
        if not quiet:
            print(f"installed kernel {kernel_name(framework)!r} -> {target}")
    config = server_config_path(prefix)
    try:
        existing = json.loads(config.read_text(encoding="utf-8")) if config.exists() else {}
    except ValueError as err:
        sys.exit(f"error: {config} is not valid JSON ({err}); fix or delete it and run again")
    write_json_atomic(config, with_default_kernel(existing))
    if not quiet:
        print(f"default kernel {DEFAULT_KERNEL!r} -> {config}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    inst = sub.add_parser("install", help="write the four kernelspecs")
    inst.add_argument("--prefix", default=sys.prefix, help="environment that Jupyter runs from (default: this one)")
    inst.add_argument("--python", default=sys.executable, help="interpreter for pytorch/tensorflow/jax kernels")
    inst.add_argument(
        "--mxnet-python", default=str(ENVIRONMENTS["mxnet"].python), help="interpreter for the mxnet kernel"
    )
    add_frameworks_option(inst)
    inst.add_argument("--quiet", action="store_true", help="print nothing when all went well")
    args = parser.parse_args(argv)
    pythons = {fw: (args.mxnet_python if fw == "mxnet" else args.python) for fw in args.frameworks}
    install(args.prefix, pythons, quiet=args.quiet)


if __name__ == "__main__":
    main()
