"""Faults of the notebook commands: each gives its one-line reason, its exit code, and leaves
the notebooks as they were.

| fault                                | command                    | exit | message                                  |
|--------------------------------------|----------------------------|------|------------------------------------------|
| a tab group lost a framework's cell  | notebooks execute          | 1    | `notebooks check`'s "no cell for mxnet"  |
| the toctree names a missing notebook | notebooks execute NOTEBOOK | 1    | "index.md lists X, but X.ipynb does not" |
| Ctrl-C while a cell runs             | notebooks execute          | 130  | "interrupted; X.ipynb is unchanged"      |
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from d2l_tools.kernels import kernel_name

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "notebooks"
TOOLS = [sys.executable, "-m", "d2l_tools"]


def chapter_of(folder, **notebooks):
    """``folder/chapter_x`` holding ``notebooks`` (name -> notebook), listed in its index.md."""
    chapter = Path(folder) / "chapter_x"
    chapter.mkdir()
    for name, nb in notebooks.items():
        nbformat.write(nb, str(chapter / f"{name}.ipynb"))
    entries = "\n".join(notebooks)
    (chapter / "index.md").write_text(f"# Chapter\n\n```{{toctree}}\n{entries}\n```\n")
    return chapter


def snapshot(folder):
    """Every file under ``folder`` with its bytes: what a failed command must leave as it was."""
    return {path.relative_to(folder): path.read_bytes() for path in sorted(Path(folder).rglob("*")) if path.is_file()}


def tools(*args, cwd):
    return subprocess.run([*TOOLS, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def installed(*frameworks):
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    return all(kernel_name(fw) in specs for fw in frameworks)


def test_execute_refuses_a_tab_group_without_a_framework_as_check_does(tmp_path):
    nb = nbformat.read(str(FIXTURES / "tabbed.ipynb"), as_version=4)
    assert nb.cells[3].source.startswith("%%tab mxnet")
    del nb.cells[3]  # the first tab group loses its MXNet cell
    chapter_of(tmp_path, lost=nb)
    before = snapshot(tmp_path)

    checked = tools("notebooks", "check", "--src", "chapter_x", cwd=tmp_path)
    [problem] = [line.strip() for line in checked.stdout.splitlines() if "no cell for" in line]
    assert checked.returncode == 1 and "no cell for mxnet" in problem

    started = time.monotonic()
    executed = tools("notebooks", "execute", "--src", "chapter_x", cwd=tmp_path)
    assert executed.returncode == 1
    assert problem in executed.stderr  # the same words as the check, not a second rule
    assert "chapter_x/lost.ipynb" in executed.stderr and "notebooks check" in executed.stderr
    assert "Traceback" not in executed.stderr and "starting kernel" not in executed.stdout
    assert time.monotonic() - started < 60  # refused before any kernel starts
    assert snapshot(tmp_path) == before


def test_a_toctree_entry_without_its_notebook_is_named_as_such(tmp_path):
    chapter = chapter_of(tmp_path, mlp=nbformat.read(str(FIXTURES / "tabbed.ipynb"), as_version=4))
    index = chapter / "index.md"
    index.write_text(index.read_text().replace("\nmlp\n", "\nmlp\nmlp-foo\n"))
    before = snapshot(tmp_path)
    for args in (
        ["notebooks", "execute", "--src", "chapter_x", "mlp"],
        ["notebooks", "check", "--src", "chapter_x"],
        ["split", "--src", "chapter_x", "--out", "out"],
    ):
        done = tools(*args, cwd=tmp_path)
        assert done.returncode == 1, args
        assert done.stderr.strip().splitlines() == [
            "error: chapter_x/index.md lists mlp-foo, but chapter_x/mlp-foo.ipynb does not exist: "
            "add the notebook or remove the entry from the {toctree}"
        ], args
        assert snapshot(tmp_path) == before, args


def sleeping_notebook():
    """A notebook whose one cell per framework writes its kernel's pid, then sleeps."""
    setup = nbformat.v4.new_code_cell("%load_ext d2l_shim.tab\n%matplotlib inline")
    sleep = nbformat.v4.new_code_cell(
        "import os, time\n"
        "with open(f\"kernel-{os.environ['D2L_FRAMEWORK']}.pid\", 'w') as f:\n"
        "    f.write(str(os.getpid()))\n"
        "time.sleep(120)"
    )
    nb = nbformat.v4.new_notebook(cells=[setup, sleep])
    nb.metadata.kernelspec = {"name": "d2l-pytorch", "display_name": "Python 3 (d2l · PyTorch)", "language": "python"}
    return nb


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.skipif(
    not installed("pytorch", "jax"), reason="d2l-pytorch and d2l-jax kernels not installed (make setup)"
)
def test_ctrl_c_during_execute_stops_the_kernels_and_changes_nothing(tmp_path):
    chapter = chapter_of(tmp_path, sleepy=sleeping_notebook())
    before = snapshot(tmp_path)
    frameworks = ("pytorch", "jax")
    # A terminal's Ctrl-C signals the whole foreground process group: so does this test.
    process = subprocess.Popen(
        [*TOOLS, "notebooks", "execute", "--src", "chapter_x", "--frameworks", ",".join(frameworks), "--jobs", "2"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    pid_files = [chapter / f"kernel-{fw}.pid" for fw in frameworks]
    try:
        deadline = time.monotonic() + 120
        while not all(f.is_file() and f.read_text() for f in pid_files):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the sleeping cells did not start within 120 s"
            time.sleep(0.2)
        kernels = [int(f.read_text()) for f in pid_files]
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err
    assert "interrupted; chapter_x/sleepy.ipynb is unchanged" in err.splitlines()
    assert "Traceback" not in err and "ZMQError" not in err and "AssertionError" not in err, err
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in kernels) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(pid) for pid in kernels), "a kernel outlived the interrupted run"
    for f in pid_files:  # what the cells wrote; nothing else may have appeared or changed
        f.unlink()
    assert snapshot(tmp_path) == before
