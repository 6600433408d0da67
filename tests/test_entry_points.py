"""Every entry point the two projects declare exists and answers --help."""

import subprocess
import sys
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parent.parent
PROJECTS = [REPO / "pyproject.toml", REPO / "tools" / "pyproject.toml"]


def declared(group):
    """(project file, name, target) of every entry point in ``group`` (``scripts`` or a plugin group)."""
    found = []
    for path in PROJECTS:
        project = tomllib.loads(path.read_text())["project"]
        table = project.get("scripts", {}) if group == "scripts" else project.get("entry-points", {}).get(group, {})
        found += [(path.relative_to(REPO), name, target) for name, target in table.items()]
    return found


def test_the_tools_declare_a_command_and_the_nbval_plugin():
    assert {name for _, name, _ in declared("scripts")} == {"d2l-tools"}
    assert {name for _, name, _ in declared("pytest11")} == {"d2l_tools.nbval_plugin"}


@pytest.mark.parametrize("project, name, target", declared("scripts"))
def test_console_script_answers_help(project, name, target):
    script = Path(sys.executable).parent / name
    assert script.exists(), f"{name} (declared in {project}) is not installed in {sys.prefix}: run make setup"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout and "notebooks" in done.stdout


@pytest.mark.parametrize(
    "command", ["split", "notebooks", "book", "kernels", "data", "lock", "test", "lab", "citations", "gpu-check"]
)
def test_each_tools_command_answers_help(command):
    done = subprocess.run(
        [sys.executable, "-m", "d2l_tools", command, "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"python -m d2l_tools {command} --help: {done.stderr[-2000:]}"
    assert "usage:" in done.stdout


def test_unknown_tools_command_is_a_clear_error():
    done = subprocess.run([sys.executable, "-m", "d2l_tools", "frobnicate"], capture_output=True, text=True)
    assert done.returncode == 2 and "unknown command 'frobnicate'" in done.stderr and "notebooks" in done.stderr


@pytest.mark.parametrize("project, name, target", declared("pytest11"))
def test_pytest_plugin_entry_point_loads(project, name, target):
    installed = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert installed.get(name) == target, f"{name} from {project} is not installed: run make setup"
    assert hasattr(import_module(target), "pytest_configure")
