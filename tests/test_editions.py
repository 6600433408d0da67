"""The reader's editions (d2l_tools.editions): what split writes for readers outside this repository."""

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from d2l_shim import FRAMEWORKS
from d2l_tools import editions
from d2l_tools.cells import find_notebooks, read_notebook
from d2l_tools.editions import EditionError, install_arguments, reader_edition, repository, strip_tabbed_only
from d2l_tools.split import split_notebook

REPO = Path(__file__).resolve().parent.parent
TABBED = REPO / "tests" / "fixtures" / "notebooks" / "tabbed.ipynb"
SPAN = re.compile(r"<!-- tabbed-only -->(.*?)<!-- /tabbed-only -->", re.DOTALL)


@pytest.fixture(autouse=True)
def no_settings(monkeypatch):
    for name in ("D2L_REPOSITORY", "GITHUB_REPOSITORY", "D2L_SHIM_INSTALL"):
        monkeypatch.delenv(name, raising=False)


# --- strip_tabbed_only ---------------------------------------------------------------------


def test_a_sentence_inside_a_paragraph_goes_with_its_space():
    text = "Every cell runs. <!-- tabbed-only -->A kernel runs only its cells.<!-- /tabbed-only --> We train."
    assert strip_tabbed_only(text) == "Every cell runs. We train."


def test_a_sentence_that_opens_a_paragraph_leaves_no_blank_at_its_start():
    text = "Intro.\n\n<!-- tabbed-only -->Each kernel runs its cells.<!-- /tabbed-only --> We fix the seeds."
    assert strip_tabbed_only(text) == "Intro.\n\nWe fix the seeds."


def test_a_whole_paragraph_goes_without_leaving_a_gap():
    text = "First.\n\n<!-- tabbed-only -->\nPick a kernel:\nthe tabs follow it.\n<!-- /tabbed-only -->\n\nLast."
    assert strip_tabbed_only(text) == "First.\n\nLast."


def test_several_spans_and_text_without_spans():
    text = "a <!-- tabbed-only -->x<!-- /tabbed-only -->b <!-- tabbed-only -->y<!-- /tabbed-only -->\nc"
    assert strip_tabbed_only(text) == "ab\nc"
    assert strip_tabbed_only("no spans here\n\nat all") == "no spans here\n\nat all"


@pytest.mark.parametrize(
    "text",
    [
        "a <!-- tabbed-only --> never closed",
        "closed <!-- /tabbed-only --> without opening",
        "a <!--tabbed-only-->typo<!-- /tabbed-only -->",
    ],
)
def test_an_unbalanced_or_misspelt_marker_is_an_error(text):
    with pytest.raises(EditionError, match="tabbed-only"):
        strip_tabbed_only(text)


# --- settings -------------------------------------------------------------------------------


def test_repository_comes_from_d2l_repository_then_github_repository(monkeypatch):
    assert repository() == ""
    monkeypatch.setenv("GITHUB_REPOSITORY", "someone/mlp-book")
    assert repository() == "someone/mlp-book"
    monkeypatch.setenv("D2L_REPOSITORY", "other/fork")
    assert repository() == "other/fork"
    monkeypatch.setenv("D2L_REPOSITORY", "")  # empty means none, even on GitHub Actions
    assert repository() == ""
    monkeypatch.setenv("D2L_REPOSITORY", "https://github.com/a/b")
    with pytest.raises(EditionError, match="owner/name"):
        repository()


def test_install_arguments_by_name_from_pages_or_from_the_setting(monkeypatch):
    assert install_arguments("jax") == '"d2l-shim[jax]"'
    monkeypatch.setenv("D2L_REPOSITORY", "SomeOne/mlp-book")
    wheel = f"d2l_shim-{editions.d2l_shim.__version__}-py3-none-any.whl"
    assert install_arguments("pytorch") == f'"d2l-shim[pytorch] @ https://someone.github.io/mlp-book/dist/{wheel}"'
    monkeypatch.setenv("D2L_REPOSITORY", "someone/someone.github.io")  # a user site lives at the root
    assert install_arguments("jax") == f'"d2l-shim[jax] @ https://someone.github.io/dist/{wheel}"'
    monkeypatch.setenv("D2L_SHIM_INSTALL", "--index-url http://127.0.0.1:9/simple d2l-shim[{framework}]")
    assert install_arguments("mxnet") == "--index-url http://127.0.0.1:9/simple d2l-shim[mxnet]"


# --- reader_edition -------------------------------------------------------------------------


def check_edition(edition, framework):
    """What every edition must be; returns its code cells."""
    assert edition.metadata["kernelspec"] == {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    code = [cell for cell in edition.cells if cell.cell_type == "code"]
    assert code[0].id == "d2l-install"
    assert "%pip install --quiet" in code[0].source and f"d2l-shim[{framework}]" in code[0].source
    for cell in edition.cells:
        assert "%%tab" not in cell.source
        assert "%load_ext d2l_shim.tab" not in cell.source
        assert "tabbed-only" not in cell.source
    nbformat.validate(edition)
    return code


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_fixture_edition(framework):
    tabbed = read_notebook(TABBED)
    split = split_notebook(tabbed, framework)
    before = nbformat.writes(split)
    edition = reader_edition(split, framework)
    assert nbformat.writes(split) == before, "reader_edition changed its argument"
    code = check_edition(edition, framework)
    # The extension's cell keeps its other line; the framework's cells follow unchanged.
    assert code[1].source == "%matplotlib inline"
    assert code[2].source == f"framework = '{framework}'\nprint('hello from', framework)"
    assert [cell.source for cell in code[2:]] == [cell.source for cell in split.cells[2:] if cell.cell_type == "code"]
    assert edition.cells[0] is code[0]  # the fixture starts with code: the install cell comes first


def test_an_unsplit_notebook_is_refused():
    with pytest.raises(EditionError, match="already split"):
        reader_edition(read_notebook(TABBED), "jax")
    with pytest.raises(EditionError, match="unknown framework"):
        reader_edition(split_notebook(read_notebook(TABBED), "jax"), "keras")


CHAPTER = find_notebooks(REPO / "chapter_mlp")


@pytest.mark.parametrize("path", CHAPTER, ids=lambda path: path.name)
def test_the_chapter_editions(path):
    tabbed = read_notebook(path)
    spans = [
        span.strip() for cell in tabbed.cells if cell.cell_type == "markdown" for span in SPAN.findall(cell.source)
    ]
    for framework in FRAMEWORKS:
        split = split_notebook(tabbed, framework, folder=path.parent)
        edition = reader_edition(split, framework)
        code = check_edition(edition, framework)
        assert edition.cells.index(code[0]) <= next(
            i for i, cell in enumerate(split.cells) if cell.cell_type == "code"
        ), "install cell is not the first code"
        # Nothing but the extension's line and the spans was lost.
        expected = [c.source.replace("%load_ext d2l_shim.tab\n", "") for c in split.cells if c.cell_type == "code"]
        assert [cell.source for cell in code[1:]] == [s for s in expected if s.strip()]
        prose = "\n".join(cell.source for cell in edition.cells if cell.cell_type == "markdown")
        for span in spans:
            assert span not in prose


# --- the install cell, run by IPython -------------------------------------------------------


def run_cells(sources, timeout=120):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    client = NotebookClient(nb, kernel_name="python3", timeout=timeout, allow_errors=True)
    client.execute()
    return [cell.outputs for cell in nb.cells]


def test_the_install_cell_does_nothing_when_everything_imports_and_stops_mxnet_on_new_pythons(monkeypatch):
    # This environment has d2l_shim and JAX: the cell must not run pip (which would print).
    # It has no MXNet: on a Python newer than 3.11 (faked here) that cell stops with one line.
    fake_312 = "import sys\nsys.version_info = (3, 12, 4, 'final', 0)\nsys.version = '3.12.4 (fake)'"
    jax_outputs, _, mxnet_outputs = run_cells(
        [editions.install_cell_source("jax"), fake_312, editions.install_cell_source("mxnet")]
    )
    assert jax_outputs == []
    assert len(mxnet_outputs) == 1 and mxnet_outputs[0].output_type == "error"
    error = mxnet_outputs[0]
    assert error.ename == "MXNetNeedsOlderPython"
    assert len(error.traceback) == 1, error.traceback  # one line, no traceback
    assert "MXNet 1.9.1 needs Python 3.11 or older and this kernel runs 3.12.4" in error.traceback[0]
    assert "Python 3.11 environment" in error.evalue


def test_the_install_cell_runs_pip_with_the_setting_when_something_is_missing(monkeypatch, tmp_path):
    # No MXNet here on Python 3.11: pip runs with what D2L_SHIM_INSTALL says (a name that no
    # folder holds, with no index: it fails at once and says what it could not find).
    monkeypatch.setenv("D2L_SHIM_INSTALL", f"--no-index --find-links {tmp_path} missing-{{framework}}-shim")
    (outputs,) = run_cells([editions.install_cell_source("mxnet")])
    text = "".join(out.get("text", "") for out in outputs)
    assert "No matching distribution found for missing-mxnet-shim" in text, text
