"""The CI workflow a fork runs: actionlint finds nothing wrong, and it covers every framework."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from d2l_shim import FRAMEWORKS

REPO = Path(__file__).resolve().parent.parent
WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"
ACTIONLINT = Path(sys.executable).parent / "actionlint"


def actionlint(root):
    if not ACTIONLINT.exists():
        pytest.fail(f"{ACTIONLINT} is missing: it comes with requirements/main.lock (make setup)")
    github = Path(root) / ".github"
    command = [
        str(ACTIONLINT),
        "-no-color",
        "-config-file",
        str(github / "actionlint.yaml"),
        *map(str, sorted((github / "workflows").glob("*.yml"))),
    ]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120)


def test_actionlint_passes_on_the_workflow():
    done = actionlint(REPO)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_fails_on_a_broken_copy(tmp_path):
    shutil.copytree(REPO / ".github", tmp_path / ".github")
    broken = tmp_path / ".github" / "workflows" / "ci.yml"
    text = broken.read_text()
    assert "FRAMEWORKS=${{ matrix.framework }}" in text
    broken.write_text(text.replace("FRAMEWORKS=${{ matrix.framework }}", "FRAMEWORKS=${{ matrix.frameworks }}"))
    done = actionlint(tmp_path)
    assert done.returncode == 1
    assert "ci.yml" in done.stdout and "frameworks" in done.stdout


def test_one_job_per_framework_runs_make_test_for_it():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    test_job = workflow["jobs"]["test"]
    assert test_job["strategy"]["matrix"]["framework"] == list(FRAMEWORKS)
    assert any(step.get("run") == "make test FRAMEWORKS=${{ matrix.framework }}" for step in test_job["steps"])
    assert any(step.get("run") == "make book" for step in workflow["jobs"]["book"]["steps"])
    assert "self-hosted" in workflow["jobs"]["gpu"]["runs-on"]


def test_main_publishes_the_site_that_the_editions_and_colab_links_point_at(monkeypatch):
    """gh-pages gets the HTML, the PDFs, the editions where "Open in Colab" looks for them and the
    wheel where an edition's install cell looks for it."""
    from d2l_tools.book import COLAB_URL
    from d2l_tools.editions import install_arguments

    workflow = yaml.safe_load(WORKFLOW.read_text())
    publish = workflow["jobs"]["publish"]
    assert "refs/heads/main" in publish["if"] and set(publish["needs"]) == {"test", "book"}
    assert publish["permissions"] == {"contents": "write"}
    assert any("gh-pages" in step.get("run", "") and "git push" in step.get("run", "") for step in publish["steps"])
    site = "\n".join(step.get("run", "") for step in workflow["jobs"]["book"]["steps"])
    # build/notebooks/<framework>/<chapter>/<name>.ipynb -> notebooks/<framework>/<chapter>/<name>.ipynb
    assert "cp -r build/notebooks/. build/site/notebooks/" in site
    assert "blob/gh-pages/notebooks/{framework}/{chapter}/{name}.ipynb" in COLAB_URL
    assert "cp -r build/html build/site" in site and "build/site/pdf" in site
    # The Makefile puts the wheel into build/html/dist/, where the install cell asks for it.
    assert "cp build/dist/*.whl build/html/dist/" in (REPO / "Makefile").read_text()
    monkeypatch.setenv("D2L_REPOSITORY", "someone/book")
    monkeypatch.delenv("D2L_SHIM_INSTALL", raising=False)
    assert "@ https://someone.github.io/book/dist/d2l_shim-" in install_arguments("jax")
