"""The four d2l kernels are registered in the project's environment and each runs its framework."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PACKAGES as IMPORTS
from conftest import frameworks_checked
from jupyter_client.manager import start_new_kernel

from d2l_shim import FRAMEWORKS

VENV = Path(sys.prefix)


def test_kernelspec_list_shows_exactly_the_d2l_kernels():
    out = subprocess.run(
        [str(VENV / "bin" / "jupyter"), "kernelspec", "list", "--json"], check=True, capture_output=True, text=True
    ).stdout
    specs = json.loads(out)["kernelspecs"]
    assert (
        {f"d2l-{fw}" for fw in frameworks_checked()} <= set(specs) <= {f"d2l-{fw}" for fw in FRAMEWORKS} | {"python3"}
    )
    for fw in frameworks_checked():
        spec = specs[f"d2l-{fw}"]
        assert Path(spec["resource_dir"]).is_relative_to(VENV), "kernels must live in the environment, not $HOME"
        assert spec["spec"]["env"]["D2L_FRAMEWORK"] == fw
        assert spec["spec"]["display_name"].startswith("Python 3 (d2l · ")


SERVER_DEFAULT_KERNEL = """
from jupyter_server.serverapp import ServerApp
app = ServerApp()
app.initialize(argv=[], find_extensions=False, new_httpserver=False)
print(app.kernel_manager.default_kernel_name)
"""


def test_jupyter_servers_default_to_a_d2l_kernel(tmp_path):
    # The default is what JupyterLab's launcher lists first and what 'New notebook' starts;
    # ipykernel's generic python3 kernel selects no framework, so %%tab cells fail in it.
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path)}  # the environment's config only
    out = subprocess.run(
        [sys.executable, "-c", SERVER_DEFAULT_KERNEL], check=True, capture_output=True, text=True, env=env, cwd=tmp_path
    ).stdout
    assert out.strip() == f"d2l-{FRAMEWORKS[0]}"


def run_in_kernel(client, code):
    """Execute ``code``; return (stdout text, stderr text, error or None)."""
    stdout, stderr, error = [], [], None
    msg_id = client.execute(code)
    while True:
        msg = client.get_iopub_msg(timeout=120)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            (stdout if content["name"] == "stdout" else stderr).append(content["text"])
        elif kind == "error":
            error = f"{content['ename']}: {content['evalue']}"
        elif kind == "status" and content["execution_state"] == "idle":
            return "".join(stdout), "".join(stderr), error


@pytest.mark.parametrize("framework", frameworks_checked())
def test_kernel_sets_its_framework_and_imports_it_quietly(framework):
    manager, client = start_new_kernel(kernel_name=f"d2l-{framework}", startup_timeout=120)
    try:
        out, err, error = run_in_kernel(client, "import os; print(os.environ['D2L_FRAMEWORK'])")
        assert error is None and out.strip() == framework
        module = IMPORTS[framework]
        out, err, error = run_in_kernel(
            client,
            f"from d2l_shim import {'torch' if module == 'torch' else module} as d2l\n"
            f"import {module}; print({module}.__name__)",
        )
        assert error is None, error
        assert out.strip() == module
        assert err == "", f"start-up noise on stderr would land in notebooks: {err!r}"
        # The %%tab extension picks the kernel's framework.
        out, _, error = run_in_kernel(client, "%load_ext d2l_shim.tab\n")
        assert error is None
        out, _, error = run_in_kernel(client, f"%%tab {framework}\nprint('ran')")
        assert (error, out.strip()) == (None, "ran")
        other = next(fw for fw in FRAMEWORKS if fw != framework)
        out, _, error = run_in_kernel(client, f"%%tab {other}\nprint('ran')")
        assert (error, out) == (None, "")
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
