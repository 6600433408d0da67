"""`make notebooks` re-executes only the (notebook, framework) pairs whose outputs may be stale.

On a fixture chapter of two tabbed notebooks, with the kernel run replaced by a stand-in that
records what it was asked to run (the real runs are tested in test_notebook_tools.py): no
change runs nothing, a changed cell runs only its notebook's pairs, a changed lock file only
its environment's pairs, and --force runs everything. On a copy of the chapter as a fresh
clone has it, a re-fetch of the same data runs none of its pairs, and other data runs all.
"""

import copy
import gzip
import json
import shutil
from pathlib import Path

import nbformat
import pytest

from d2l_shim import FRAMEWORKS
from d2l_tools import cells, envs
from d2l_tools import execute as tool

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "notebooks" / "tabbed.ipynb"
REPO = Path(__file__).resolve().parent.parent


def stand_in_kernels(monkeypatch):
    """Replace the kernel runs by a stand-in; returns the list of (notebook, framework) it ran."""
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
    return ran


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
    return folder, stand_in_kernels(monkeypatch)


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


# --- the data part of the key: what the files hold, not when they were fetched ---------------


def fetch_into(root, fetched_utc, change_a_label=False):
    """Write the repository's data cache into ``root`` as a new fetch would: new files, a
    provenance.json with its own time stamp (and, optionally, one test label changed)."""
    from d2l_shim import data

    source, target = REPO / "data" / "fashion-mnist", root / "fashion-mnist"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for path in source.iterdir():
        shutil.copy(path, target / path.name)
    provenance = json.loads((source / data.PROVENANCE).read_text())
    provenance["fetched_utc"] = fetched_utc
    (target / data.PROVENANCE).write_text(json.dumps(provenance, indent=2) + "\n")
    if change_a_label:
        labels = target / "t10k-labels-idx1-ubyte.gz"
        raw = bytearray(gzip.decompress(labels.read_bytes()))
        raw[-1] = (raw[-1] + 1) % 10
        labels.write_bytes(gzip.compress(bytes(raw), mtime=0))


@pytest.fixture
def fresh_clone(tmp_path, monkeypatch):
    """The chapter's notebooks with keys stored against one fetch of the data, as a clone has them."""
    from d2l_shim import data

    if not all((REPO / "data" / "fashion-mnist" / name).is_file() for name in data.FILES):
        pytest.fail("this test copies the repository's data cache (data/fashion-mnist): run `make data`")
    monkeypatch.setenv("D2L_DATA_DIR", str(tmp_path / "data"))
    fetch_into(tmp_path / "data", "2024-01-01T00:00:00+00:00")
    folder = tmp_path / "chapter_mlp"
    shutil.copytree(REPO / "chapter_mlp", folder, ignore=shutil.ignore_patterns("img"))
    for path in cells.find_notebooks(folder):
        nb = nbformat.read(str(path), as_version=4)
        nb.metadata.setdefault("d2l", {})["execution_keys"] = {fw: tool.execution_key(nb, fw) for fw in FRAMEWORKS}
        nbformat.write(nb, str(path))
    return folder, tmp_path / "data", stand_in_kernels(monkeypatch)


def test_a_refetch_of_the_same_data_runs_nothing(fresh_clone, capsys):
    folder, data_root, ran = fresh_clone
    paths = cells.find_notebooks(folder)
    pairs = len(paths) * len(FRAMEWORKS)
    fetch_into(data_root, "2030-06-01T12:00:00+00:00")  # same files, fetched again later
    tool.execute_notebooks(paths, FRAMEWORKS, jobs=2)
    assert ran == []
    assert f"executed 0 of {pairs} (notebook, framework) pair(s)" in capsys.readouterr().out

    fetch_into(data_root, "2030-06-01T12:00:00+00:00", change_a_label=True)  # other data
    tool.execute_notebooks(paths, FRAMEWORKS, jobs=2)
    assert len(ran) == pairs
    assert capsys.readouterr().out.count("executing: the data cache changed") == pairs
