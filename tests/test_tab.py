"""The ``%%tab`` errors as a reader sees them: one line, a class of their own, once.

A notebook run under a kernel that is not a d2l kernel (ipykernel's generic 'Python 3') must
fail its first ``%%tab`` cell with one clear line that says how to fix it, not a traceback
that repeats the message inside the generated ``raise`` line.
"""

import builtins
import os

import pytest
from jupyter_client.manager import start_new_kernel

from d2l_shim import FRAMEWORK_INFO, FRAMEWORKS, tab
from d2l_tools.kernels import display_name
from d2l_tools.text import strip_ansi


def test_error_classes_do_not_shadow_python_names():
    for cls in (tab.TabMarkerError, tab.NoFrameworkError):
        assert not hasattr(builtins, cls.__name__), f"{cls.__name__} is a built-in name"
    # Code that catches the standard kinds keeps working.
    assert issubclass(tab.TabMarkerError, ValueError)
    assert issubclass(tab.NoFrameworkError, RuntimeError)


# ---------------------------------------------------------------- in a real kernel


def run_in_kernel(client, code):
    """Execute ``code``; returns (the error message content or None, stdout + stderr text)."""
    msg_id = client.execute(code)
    error, text = None, []
    while True:
        msg = client.get_iopub_msg(timeout=60)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "error":
            assert error is None, "a second error message for one cell"
            error = msg["content"]
        elif msg["msg_type"] == "stream":
            text.append(msg["content"]["text"])
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return error, "".join(text)


@pytest.fixture(scope="module")
def generic_kernel():
    """ipykernel's own 'python3' kernel: what 'New notebook' used to start, no D2L_FRAMEWORK."""
    env = {key: value for key, value in os.environ.items() if key != "D2L_FRAMEWORK"}
    manager, client = start_new_kernel(kernel_name="python3", startup_timeout=120, env=env)
    try:
        error, _ = run_in_kernel(client, "%load_ext d2l_shim.tab")
        assert error is None, error
        yield client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def shown_lines(error):
    """The lines Jupyter renders for an error output: its traceback, colours removed."""
    return [line for entry in error["traceback"] for line in strip_ansi(entry).splitlines()]


def test_wrong_kernel_fails_the_tab_cell_with_one_clear_line(generic_kernel):
    error, printed = run_in_kernel(generic_kernel, "%%tab pytorch\nran = True\n")
    assert error is not None, "a %%tab cell ran under a kernel that selects no framework"
    assert error["ename"] == "NoFrameworkError"
    lines = shown_lines(error)
    assert lines == [f"NoFrameworkError: {error['evalue']}"], f"Jupyter would show: {lines}"
    message = error["evalue"]
    assert "no framework selected" in message and "Kernel > Change Kernel" in message
    assert display_name(FRAMEWORKS[0]) in message
    for framework in FRAMEWORKS[1:]:
        assert FRAMEWORK_INFO[framework].label in message
    assert printed == ""
    # The cell did not run.
    error, printed = run_in_kernel(generic_kernel, "print('ran' in globals())")
    assert (error, printed.strip()) == (None, "False")


def test_bad_tab_line_fails_with_one_line_naming_the_fix(generic_kernel):
    error, _ = run_in_kernel(generic_kernel, "%%tab pytroch\nx = 1\n")
    assert error["ename"] == "TabMarkerError"
    assert shown_lines(error) == [f"TabMarkerError: {error['evalue']}"]
    assert "unknown framework 'pytroch'" in error["evalue"]
    assert all(fw in error["evalue"] for fw in FRAMEWORKS)


def test_other_errors_keep_their_tracebacks(generic_kernel):
    # Only our errors are shortened: a reader's own bug still shows where it happened.
    error, _ = run_in_kernel(generic_kernel, "def f():\n    return 1 / 0\nf()\n")
    assert error["ename"] == "ZeroDivisionError"
    assert len(shown_lines(error)) > 3


# ---------------------------------------------------------------- in IPython and plain Python


@pytest.fixture
def shell(monkeypatch, capsys):
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    monkeypatch.setattr(tab, "_selected", None)
    monkeypatch.delenv("D2L_FRAMEWORK", raising=False)
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    ipython = InteractiveShell.instance(config=config)
    ipython.run_line_magic("load_ext", "d2l_shim.tab")
    yield ipython
    ipython.run_line_magic("unload_ext", "d2l_shim.tab")


def test_ipython_prints_the_message_once(shell, capsys):
    capsys.readouterr()
    result = shell.run_cell("%%tab jax\nx = 1\n")
    out = strip_ansi(capsys.readouterr().out)
    assert isinstance(result.error_in_exec, tab.NoFrameworkError)
    assert out.count("no framework selected") == 1, out
    assert "raise __import__" not in out


def test_bad_d2l_framework_variable_is_a_wrong_kernel(shell, monkeypatch):
    monkeypatch.setenv("D2L_FRAMEWORK", "theano")
    result = shell.run_cell("%%tab jax\n1\n")
    assert isinstance(result.error_in_exec, tab.NoFrameworkError)
    assert "D2L_FRAMEWORK='theano' is not a framework" in str(result.error_in_exec)


def test_plain_python_sees_an_ordinary_exception(monkeypatch):
    monkeypatch.setattr(tab, "_selected", None)
    monkeypatch.delenv("D2L_FRAMEWORK", raising=False)
    with pytest.raises(tab.NoFrameworkError, match=r"select\('pytorch'\)"):
        tab.active()
    with pytest.raises(tab.TabMarkerError, match="names no framework"):
        tab.parse_tab_line("%%tab")


# --- the marker's grammar: one home (d2l_shim.tab), read by the tools and the bench alike -----


def test_source_tab_reports_all_and_the_frameworks_in_the_books_order():
    assert tab.source_tab("x = 1") == tab.Tab(FRAMEWORKS, True) == tab.SHARED
    assert tab.source_tab("%%tab all\nx") == tab.SHARED  # `all` is a shared cell, not a tab group
    assert tab.source_tab("%%tab jax, PyTorch\nx") == tab.Tab(("pytorch", "jax"), False)
    named_all = ",".join(reversed(FRAMEWORKS))
    assert tab.source_tab(f"%%tab {named_all}\nx") == tab.Tab(FRAMEWORKS, False)  # named, so not `all`
    assert tab.source_tab("%%table\nx") == tab.SHARED  # another magic


@pytest.mark.parametrize(
    "line, message",
    [
        ("%%tab jax,jax", "names a framework twice"),
        ("%%tab jax JAX", "names a framework twice"),
        ("%%tab all,jax", "'all' cannot be combined"),
        ("%%tab pytroch", "unknown framework 'pytroch'"),
        ("%%tab", "names no framework"),
    ],
)
def test_bad_tab_lines_are_refused_by_every_reader(line, message, shell, monkeypatch):
    with pytest.raises(tab.TabMarkerError, match=message):
        tab.parse_tab_line(line)
    with pytest.raises(tab.TabMarkerError, match=message):
        tab.source_tab(line + "\nx = 1")
    monkeypatch.setenv("D2L_FRAMEWORK", "jax")
    result = shell.run_cell(line + "\nx = 1\n")  # the kernel refuses it too
    assert isinstance(result.error_in_exec, tab.TabMarkerError) and message in str(result.error_in_exec)


def test_bench_reads_cells_with_the_same_grammar(tmp_path, monkeypatch):
    import json
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "bench"))
    sys.modules.pop("chapter_models", None)
    import chapter_models

    cells = [
        {"cell_type": "code", "source": source, "metadata": {}, "outputs": [], "execution_count": None}
        for source in ("%%tab all\nshared = 1", "%%tab jax\nj = 1", "plain = 1", "%%tab jax,jax\nbad = 1")
    ]
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"cells": cells[:3], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    assert list(chapter_models.framework_cells(path, "jax")) == [(0, "\nshared = 1"), (1, "\nj = 1"), (2, "plain = 1")]
    assert list(chapter_models.framework_cells(path, "pytorch")) == [(0, "\nshared = 1"), (2, "plain = 1")]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    with pytest.raises(tab.TabMarkerError, match="twice"):
        list(chapter_models.framework_cells(path, "jax"))
