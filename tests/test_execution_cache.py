"""`make notebooks` re-executes only the (notebook, framework) pairs whose outputs may be stale.

On a fixture chapter of two tabbed notebooks, with the kernel run replaced by a stand-in that
records what it was asked to run (the real runs are tested in test_notebook_tools.py): no
change runs nothing, a changed cell runs only its notebook's pairs, a changed lock file only
its environment's pairs, and --force runs everything.
"""

import copy
import shutil
from pathlib import Path

import nbformat
import pytest

from d2l_shim import FRAMEWORKS
from d2l_tools import cells, envs
from d2l_tools import execute as tool

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "notebooks" / "tabbed.ipynb"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def chapter(tmp_path, monkeypatch):
    folder = tmp_path / "chapter_x"
    folder.mkdir()
    for name in ("one", "two"):
        shutil.copy(FIXTURE, folder / f"{name}.ipynb")
    (folder / "index.md").write_text("# Chapter\n\n```{toctree}\none\ntwo\n```\n")
    requirements = tmp_path / "requirements"
    shutil.copytree(REPO / "requirements", requirements)
    monkeypatch.setattr(envs, "REQUIREMENTS", requirements)  # lock files we may edit
    ran = []

    async def stand_in_run(path, nb, framework, timeout, slots):
        ran.append((path.stem, framework))
        run = copy.deepcopy(nb)
        for cell in run.cells:
            if cell.cell_type == "code" and framework not in cells.cell_tab(cell).frameworks:
                cell.outputs = []  # what a kernel that skips the cell would leave
        return run

    monkeypatch.setattr(tool, "_run_under", stand_in_run)
    monkeypatch.setattr(tool, "require_kernels", lambda frameworks: None)
    return folder, ran


def execute(folder, ran, force=False):
    ran.clear()
    tool.execute_notebooks(cells.find_notebooks(folder), FRAMEWORKS, jobs=2, force=force)
    return sorted(ran)


def all_pairs(*names, frameworks=FRAMEWORKS):
    return sorted((name, fw) for name in names for fw in frameworks)


def test_cache_runs_only_what_changed(chapter, capsys):
    folder, ran = chapter
    assert execute(folder, ran) == all_pairs("one", "two")  # no keys stored yet
    assert "never executed with an execution key" in capsys.readouterr().out
    keys = nbformat.read(str(folder / "one.ipynb"), as_version=4).metadata.d2l.execution_keys
    assert set(keys) == set(FRAMEWORKS) and set(keys["jax"]) == set(tool.KEY_PARTS)

    assert execute(folder, ran) == []
    out = capsys.readouterr().out
    assert out.count("skipped: nothing that can change its outputs changed") == 8
    assert "executed 0 of 8" in out

    nb = nbformat.read(str(folder / "two.ipynb"), as_version=4)
    nb.cells[6].source += "\n# a shared cell, edited"
    nb.cells[6].metadata.d2l.source_sha256 = cells.source_sha256(nb.cells[6].source)
    nbformat.write(nb, str(folder / "two.ipynb"))
    assert execute(folder, ran) == all_pairs("two")
    assert "[two.ipynb · jax] executing: its cells changed" in capsys.readouterr().out

    nb = nbformat.read(str(folder / "one.ipynb"), as_version=4)
    nb.cells[2].source += "\n# the pytorch cell, edited"
    nbformat.write(nb, str(folder / "one.ipynb"))
    assert execute(folder, ran) == [("one", "pytorch")]

    lock = envs.ENVIRONMENTS["mxnet"].lock_file
    lock.write_text(lock.read_text() + "\n# re-resolved\n")
    assert execute(folder, ran) == all_pairs("one", "two", frameworks=["mxnet"])
    assert "the environment's lock file changed" in capsys.readouterr().out

    assert execute(folder, ran) == []
    assert execute(folder, ran, force=True) == all_pairs("one", "two")


def test_notebook_names_select_pairs(chapter):
    folder, ran = chapter
    ran.clear()
    paths = cells.find_notebooks(folder, ["two"])
    assert paths == [folder / "two.ipynb"]
    tool.execute_notebooks(paths, ["jax"], jobs=1)
    assert ran == [("two", "jax")]
    with pytest.raises(cells.NotebookError, match="no such notebook: three .*the chapter's are: one, two"):
        cells.find_notebooks(folder, ["three"])
