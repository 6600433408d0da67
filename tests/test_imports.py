"""Importing d2l_shim loads no framework, and d2l_shim.<fw> loads no framework but its own.

Nor does a reader's import load any of the maintainers' tooling: the d2l_tools package (the
data fetcher included), pytest, sphinx, nbval, nbformat.
"""

import json
import os
import subprocess
import sys

import pytest
from conftest import PACKAGES as MODULE
from conftest import SHIM_MODULES as SHIM_MODULE
from conftest import frameworks_under_test

FRAMEWORK_PACKAGES = ("torch", "mxnet", "tensorflow", "jax", "flax", "optax", "keras")
CORE = [
    "d2l_shim",
    "d2l_shim.plotting",
    "d2l_shim.hparams",
    "d2l_shim.progress",
    "d2l_shim.training",
    "d2l_shim.data",
    "d2l_shim.tab",
]


# (Not urllib or tarfile: the frameworks themselves import those; the fetcher is d2l_tools.fetch.)
TOOLING = ("d2l_tools", "pytest", "_pytest", "sphinx", "nbval", "nbformat", "nbclient", "jupyter_client")


def loaded_after(statement, watched=FRAMEWORK_PACKAGES):
    """Which of ``watched`` (top-level names, or dotted module names) ``statement`` imports."""
    code = (
        f"import sys\n{statement}\n"
        f"import json; print(json.dumps(sorted(p for p in {tuple(watched)!r} if p in sys.modules or "
        f"any(m.startswith(p + '.') for m in sys.modules))))"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_core_modules_import_no_framework():
    assert loaded_after("\n".join(f"import {m}" for m in CORE)) == set()


@pytest.mark.parametrize("framework", frameworks_under_test())
def test_framework_module_imports_only_what_its_framework_does(framework):
    baseline = loaded_after(f"import {MODULE[framework]}")
    if framework == "jax":
        baseline |= loaded_after("import jax, flax.linen, optax")  # the JAX module is flax + optax
    assert loaded_after(f"import {SHIM_MODULE[framework]}") == baseline


@pytest.mark.parametrize("framework", frameworks_under_test())
def test_a_readers_import_loads_none_of_the_tooling(framework):
    assert loaded_after(f"import {SHIM_MODULE[framework]}\nimport d2l_shim.tab, d2l_shim.data", TOOLING) == set()
