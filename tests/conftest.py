"""Shared test helpers: which frameworks this interpreter tests, and where the other envs are.

The main environment (.venv) holds PyTorch, TensorFlow and JAX; MXNet lives in .venv-mxnet
because it needs an older numpy. ``D2L_TEST_FRAMEWORKS`` (a comma list, set by the Makefile)
names the frameworks the running interpreter must test; without it, every framework whose
package is installed here is tested. A framework that is expected but fails to import makes
its tests fail, never skip.
"""

import importlib.util
import os
import sys
from pathlib import Path

import pytest

# Off-screen drawing before anything imports matplotlib.pyplot.
os.environ.setdefault("MPLBACKEND", "Agg")

# torch's CUDA build (what Python 3.12+ gets from the package index, requirements/torch.txt)
# brings triton, and importing triton after tensorflow in one process crashes it (segfault).
# These tests load both frameworks in one process, so triton goes first.
if importlib.util.find_spec("triton") is not None:
    import triton  # noqa: E402, F401

from d2l_shim import FRAMEWORK_INFO, FRAMEWORKS  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

# Framework name -> (its Python package, the d2l_shim module named after it).
PACKAGES = {fw.name: fw.package for fw in FRAMEWORK_INFO.values()}
SHIM_MODULES = {fw.name: fw.shim_module for fw in FRAMEWORK_INFO.values()}
# The environment that holds each framework when it is not the running one.
VENV_OF = {"pytorch": ".venv", "mxnet": ".venv-mxnet", "tensorflow": ".venv", "jax": ".venv"}


def _listed(variable):
    """The frameworks named by the comma list in ``$variable``, in the canonical order."""
    configured = os.environ.get(variable, "")
    names = [name.strip() for name in configured.split(",") if name.strip()]
    unknown = [name for name in names if name not in FRAMEWORKS]
    if unknown:
        raise pytest.UsageError(
            f"{variable}={configured!r} names {unknown}; use a comma list of {', '.join(FRAMEWORKS)}"
        )
    return [fw for fw in FRAMEWORKS if fw in names]


def frameworks_under_test():
    """Frameworks this interpreter must test, in the canonical order."""
    if os.environ.get("D2L_TEST_FRAMEWORKS") is None:
        return [fw for fw in FRAMEWORKS if importlib.util.find_spec(PACKAGES[fw]) is not None]
    return _listed("D2L_TEST_FRAMEWORKS")


def frameworks_checked():
    """Frameworks this test run checks at all (``make test FRAMEWORKS=...``; default all four).

    Tests that reach into another framework's environment (parity, API parity, kernels) stay
    within these, so a run for one framework needs no environment of the others.
    """
    return _listed("D2L_FRAMEWORKS") or list(FRAMEWORKS)


def framework_params():
    """``pytest.param`` per framework this interpreter tests (the others run in their own environment)."""
    return [pytest.param(fw, id=fw) for fw in frameworks_under_test()]


def python_for(framework):
    """The interpreter that has ``framework``: this one, or the one of its environment."""
    if framework in frameworks_under_test():
        return sys.executable
    variable = "D2L_MXNET_PYTHON" if framework == "mxnet" else "D2L_MAIN_PYTHON"
    python = Path(os.environ.get(variable) or REPO / VENV_OF[framework] / "bin" / "python")
    if not python.exists():
        pytest.fail(
            f"{framework} is not installed in this interpreter and {python} does not "
            f"exist: run `make setup` (or set {variable} to a Python that has {framework})"
        )
    return str(python)


def import_shim(framework):
    """``d2l_shim.<module>`` for ``framework``; an import error propagates (the test fails)."""
    return importlib.import_module(SHIM_MODULES[framework])


@pytest.fixture
def fashion_mnist():
    """The real Fashion-MNIST cache as numpy arrays; a missing cache fails with `make data`."""
    from d2l_shim import data

    try:
        return data.load_fashion_mnist()
    except data.DataError as err:
        pytest.fail(f"these tests need the real Fashion-MNIST cache: {err}")


@pytest.fixture(autouse=True)
def figure_dir(tmp_path, monkeypatch):
    """Figures that scripts save (no display) go to a fresh folder, not the working tree: for
    every test, since any test that plots outside a kernel saves one (figures/ in the clone)."""
    folder = tmp_path / "figures"
    monkeypatch.setenv("D2L_FIGURE_DIR", str(folder))
    return folder


@pytest.fixture
def plain_script(monkeypatch):
    """Make this process look like a plain Python script again, not a Jupyter kernel.

    pytest plugins such as nbval import ipykernel, and d2l_shim reads "ipykernel in
    sys.modules" as "running in Jupyter" (see test_core's test of that).
    """
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
