"""tools/find_python.py picks the Python for .venv-mxnet (3.11 or 3.10), or stops with one message.

Each test runs the finder in a subprocess whose PATH holds only fake interpreters (shell
scripts that answer the finder's probe with a version) and whose HOME and PYENV_ROOT are
empty folders, so the machine's own Pythons, pyenv and uv are out of sight.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FINDER = REPO / "tools" / "find_python.py"


def fake_python(path, version, venv=True, exit_code=0):
    """A shell script at `path` that answers like a Python `version` ("3.11"); exit_code != 0
    makes it fail the way a pyenv shim for an inactive version does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    major, minor = (int(part) for part in version.split("."))
    answer = json.dumps({"version": [major, minor], "executable": str(path), "venv": venv})
    body = f"echo 'pyenv: {path.name}: command not found' >&2; exit {exit_code}" if exit_code else f"echo '{answer}'"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def sandbox(tmp_path):
    """(bin folder, environment) with nothing but the bin folder on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": str(bin_dir), "HOME": str(home), "PYENV_ROOT": str(tmp_path / "pyenv")}
    return bin_dir, env


def run_finder(env, timeout=30):
    started = time.monotonic()
    result = subprocess.run([sys.executable, str(FINDER)], env=env, capture_output=True, text=True, timeout=timeout)
    return result, time.monotonic() - started


def test_finds_python3_11_on_path_and_ignores_3_12(sandbox):
    bin_dir, env = sandbox
    fake_python(bin_dir / "python3", "3.12")
    fake_python(bin_dir / "python3.12", "3.12")
    wanted = fake_python(bin_dir / "python3.11", "3.11")
    result, _ = run_finder(env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(wanted)


def test_prefers_3_11_to_3_10_and_skips_a_failing_shim(sandbox, tmp_path):
    bin_dir, env = sandbox
    fake_python(bin_dir / "python3.11", "3.11", exit_code=127)  # pyenv shim, version not active
    fake_python(bin_dir / "python3.10", "3.10")
    pyenv_311 = fake_python(tmp_path / "pyenv" / "versions" / "3.11.9" / "bin" / "python3", "3.11")
    result, _ = run_finder(env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(pyenv_311)


def test_falls_back_to_3_10(sandbox):
    bin_dir, env = sandbox
    fake_python(bin_dir / "python3", "3.13")
    wanted = fake_python(bin_dir / "python3.10", "3.10")
    result, _ = run_finder(env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(wanted)


def test_accepts_python3_itself_when_it_is_3_11(sandbox):
    bin_dir, env = sandbox
    wanted = fake_python(bin_dir / "python3", "3.11")
    result, _ = run_finder(env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(wanted)


def test_finds_uv_managed_python(sandbox):
    bin_dir, env = sandbox
    fake_python(bin_dir / "python3", "3.12")
    uv_dir = Path(env["HOME"]) / ".local" / "share" / "uv" / "python"
    fake_python(uv_dir / "cpython-3.11.4-linux-x86_64-gnu" / "bin" / "python3", "3.11")
    newest = fake_python(uv_dir / "cpython-3.11.12-linux-x86_64-gnu" / "bin" / "python3", "3.11")
    result, _ = run_finder(env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(newest)


def test_asks_uv_python_find(sandbox, tmp_path):
    bin_dir, env = sandbox
    managed = fake_python(tmp_path / "uv-managed" / "bin" / "python3.11", "3.11")
    uv = bin_dir / "uv"  # answers only `uv python find 3.11`, as uv does when it has one
    uv.write_text(f'#!/bin/sh\n[ "$*" = "python find 3.11" ] && echo {managed} && exit 0\nexit 2\n')
    uv.chmod(0o755)
    result, _ = run_finder(env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(managed)


def test_mxnet_python_wins_over_the_search(sandbox, tmp_path):
    bin_dir, env = sandbox
    fake_python(bin_dir / "python3.11", "3.11")
    chosen = fake_python(tmp_path / "elsewhere" / "python", "3.10")
    result, _ = run_finder({**env, "MXNET_PYTHON": str(chosen)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(chosen)


def test_mxnet_python_may_be_a_command_name(sandbox):
    bin_dir, env = sandbox
    fake_python(bin_dir / "python3.10", "3.10")
    chosen = fake_python(bin_dir / "py311", "3.11")
    result, _ = run_finder({**env, "MXNET_PYTHON": "py311"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(chosen)


def test_rejects_an_mxnet_python_that_is_3_12(sandbox):
    bin_dir, env = sandbox
    fake_python(bin_dir / "python3.11", "3.11")  # present, but an explicit choice is never overridden
    wrong = fake_python(bin_dir / "python3.12", "3.12")
    result, _ = run_finder({**env, "MXNET_PYTHON": str(wrong)})
    assert result.returncode != 0
    assert result.stdout == ""
    assert f"MXNET_PYTHON={wrong} is Python 3.12" in result.stderr
    assert "3.10 or 3.11" in result.stderr and "numpy<1.24" in result.stderr


def test_rejects_an_mxnet_python_that_does_not_run(sandbox, tmp_path):
    _, env = sandbox
    result, _ = run_finder({**env, "MXNET_PYTHON": str(tmp_path / "no-such-python")})
    assert result.returncode != 0
    assert "could not be run" in result.stderr


def test_a_python_without_venv_support_is_passed_over_and_named(sandbox):
    bin_dir, env = sandbox
    no_venv = fake_python(bin_dir / "python3.11", "3.11", venv=False)
    result, _ = run_finder(env)
    assert result.returncode != 0
    assert f"Rejected: {no_venv} is Python 3.11 but lacks ensurepip" in result.stderr


def test_without_3_10_or_3_11_it_stops_fast_with_one_message(sandbox):
    bin_dir, env = sandbox
    fake_python(bin_dir / "python3", "3.12")
    fake_python(bin_dir / "python3.12", "3.12")
    fake_python(bin_dir / "python3.13", "3.13")
    fake_python(bin_dir / "python3.11", "3.11", exit_code=127)
    result, seconds = run_finder(env)
    assert result.returncode != 0
    assert result.stdout == ""
    assert seconds < 10, f"the finder took {seconds:.1f} s to give up"
    message = result.stderr
    assert message.count("error:") == 1, message
    assert "Python 3.11 or 3.10" in message  # what is needed
    assert "numpy<1.24" in message  # why
    for how in ("pyenv install 3.11", "uv python install 3.11", "MXNET_PYTHON="):  # how to get one
        assert how in message, f"{how!r} missing from:\n{message}"


def make_commands(*targets):
    """The commands `make -n -B` would run for `targets` (nothing is executed)."""
    # FRAMEWORKS= : all four, whatever subset the surrounding `make test FRAMEWORKS=...` checks.
    result = subprocess.run(
        ["make", "-n", "-B", "--no-print-directory", "FRAMEWORKS=", *targets],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MAKEFLAGS": ""},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_book_never_builds_the_mxnet_environment():
    commands = make_commands("book")
    assert ".venv/.installed" in commands or "-m venv .venv" in commands  # it does build .venv
    assert ".venv-mxnet" not in commands and "find_python" not in commands, commands


def test_make_setup_builds_the_mxnet_environment_with_the_found_python():
    commands = make_commands("setup")
    assert "tools/find_python.py" in commands
    # The finder comes first, so a machine without Python 3.11 stops before the long .venv install.
    assert commands.index("tools/find_python.py") < commands.index("requirements/main.lock")
