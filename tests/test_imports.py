"""Importing d2l_shim loads no framework, and d2l_shim.<fw> loads no framework but its own."""

import json
import os
import subprocess
import sys

import pytest
from conftest import PACKAGES as MODULE, SHIM_MODULES as SHIM_MODULE, frameworks_under_test

FRAMEWORK_PACKAGES = ("torch", "mxnet", "tensorflow", "jax", "flax", "optax", "keras")
CORE = ["d2l_shim", "d2l_shim.plotting", "d2l_shim.hparams", "d2l_shim.progress", "d2l_shim.training",
        "d2l_shim.data", "d2l_shim.tab"]


def loaded_after(statement):
    code = (f"import sys\n{statement}\n"
            f"import json; print(json.dumps(sorted(p for p in {FRAMEWORK_PACKAGES!r} if p in sys.modules)))")
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
