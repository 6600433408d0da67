"""The team's habits: ruff reads ruff.toml over code and notebooks (and sees the editions' cells
that it cannot see in the tabbed source), pre-commit runs the same local ruff, and `make nbdime`
sets up notebook diffs in this clone only."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import yaml

from d2l_tools.editions import reader_edition
from d2l_tools.split import split_notebook

REPO = Path(__file__).resolve().parent.parent
RUFF = Path(sys.executable).parent / "ruff"


def ruff(*args, cwd=REPO):
    return subprocess.run([str(RUFF), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_ruff_reads_the_projects_settings():
    done = ruff("check", "--show-settings", "d2l_shim/__init__.py")
    assert done.returncode == 0, done.stderr
    assert "line_length = 120" in done.stdout and str(REPO / "ruff.toml") in done.stdout


def test_an_unused_import_is_found_in_code_and_in_an_editions_cell_but_not_in_a_tab_cell(tmp_path):
    (tmp_path / "ruff.toml").write_text((REPO / "ruff.toml").read_text())
    (tmp_path / "module.py").write_text("import os\n")
    cells = [
        nbformat.v4.new_code_cell("%load_ext d2l_shim.tab"),
        nbformat.v4.new_code_cell("%%tab jax\nimport os\nx = 1"),
        nbformat.v4.new_code_cell("print(x)"),
    ]
    tabbed = nbformat.v4.new_notebook(cells=cells)
    nbformat.write(tabbed, tmp_path / "tabbed.ipynb")
    nbformat.write(reader_edition(split_notebook(tabbed, "jax"), "jax"), tmp_path / "edition.ipynb")
    done = ruff("check", "--no-cache", "--output-format", "concise", "--select", "F401", ".", cwd=tmp_path)
    flagged = {line.split(":")[0] for line in done.stdout.splitlines() if "F401" in line}
    # ruff skips cells with a cell magic: hence the lint stage also checks the editions.
    assert flagged == {"module.py", "edition.ipynb"}, done.stdout


def test_pre_commit_runs_the_local_ruff_with_no_downloads():
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    entries = [hook["entry"] for hook in config["repos"][0]["hooks"]]
    assert entries == [".venv/bin/ruff check --force-exclude", ".venv/bin/ruff format --check --force-exclude"]
    assert all(hook["language"] == "system" for hook in config["repos"][0]["hooks"])


def test_make_nbdime_sets_up_notebook_diffs_in_this_clone_only(tmp_path):
    clone, home = tmp_path / "clone", tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "MAKEFLAGS": "",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, env=env)
    for name in ("Makefile", ".gitattributes"):
        (clone / name).write_text((REPO / name).read_text())
    (clone / ".venv").mkdir()
    (clone / ".venv" / "bin").symlink_to(REPO / ".venv" / "bin")
    (clone / ".venv" / ".installed").touch()  # as after `make setup`: nothing to install
    done = subprocess.run(["make", "nbdime"], cwd=clone, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (home / ".gitconfig").exists() and not (home / ".config" / "git").exists()
    command = subprocess.run(
        ["git", "config", "--local", "diff.jupyternotebook.command"], cwd=clone, capture_output=True, text=True, env=env
    ).stdout.strip()
    assert command == f"{clone}/.venv/bin/git-nbdiffdriver diff"
    # A changed cell shows as a changed cell, not as JSON.
    notebook = clone / "tests" / "fixtures" / "notebooks" / "tabbed.ipynb"
    nb = nbformat.read(notebook, as_version=4)
    nb.cells[1].source = nb.cells[1].source.replace("says hello", "says goodbye")
    nbformat.write(nb, notebook)
    diff = subprocess.run(
        ["git", "diff", "--no-color", "--", str(notebook)],
        cwd=clone,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert diff.returncode == 0, diff.stderr
    assert "## modified /cells/1/source" in diff.stdout, diff.stdout
    assert '"cell_type"' not in diff.stdout


def test_gitattributes_names_the_drivers_for_notebooks():
    done = subprocess.run(
        ["git", "check-attr", "diff", "merge", "--", "chapter_mlp/mlp.ipynb"], cwd=REPO, capture_output=True, text=True
    )
    assert "diff: jupyternotebook" in done.stdout and "merge: jupyternotebook" in done.stdout
