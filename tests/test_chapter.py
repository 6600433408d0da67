"""The chapter's table of contents is the one list of its notebooks.

On a copy of the two-page fixture chapter, a third notebook listed in index.md's toctree is
split, found for execution and checking, built into the book and timed by the benchmark, in
the toctree's order, with no other list edited; one not listed there is an error, not a
silently skipped page.
"""

import shutil
import sys
from pathlib import Path

import nbformat
import pytest

from d2l_shim import FRAMEWORKS
from d2l_tools import book, cells, chapter
from d2l_tools.split import split_notebooks

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "book" / "chapter_mlp"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def fixture_chapter(tmp_path):
    folder = tmp_path / "chapter_mlp"
    shutil.copytree(FIXTURE, folder)
    return folder


def add_notebook(folder, name, listed):
    nb = nbformat.read(str(folder / "mlp.ipynb"), as_version=4)
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(f"# {name}\n\nA third page."))
    nbformat.write(nb, str(folder / f"{name}.ipynb"))
    if listed:
        index = folder / "index.md"
        # Between the two pages: order comes from the toctree, not from file names.
        index.write_text(index.read_text().replace("\nmlp\nmlp-scratch\n", f"\nmlp\n{name}\nmlp-scratch\n"))


def test_fixture_chapter_reads_its_toctree(fixture_chapter):
    assert [p.stem for p in chapter.notebooks(fixture_chapter)] == ["mlp", "mlp-scratch"]


def test_an_unlisted_notebook_is_an_error_everywhere(fixture_chapter):
    add_notebook(fixture_chapter, "extra", listed=False)
    with pytest.raises(chapter.ChapterError, match=r"extra\.ipynb, which the \{toctree\} .* does not list"):
        chapter.notebooks(fixture_chapter)
    with pytest.raises(cells.NotebookError, match="does not list"):
        cells.find_notebooks(fixture_chapter)
    with pytest.raises(book.BookError, match="does not list"):
        book.source_tree(fixture_chapter, fixture_chapter.parent / "split")


def test_a_listed_entry_without_a_notebook_is_an_error(fixture_chapter):
    index = fixture_chapter / "index.md"
    index.write_text(index.read_text().replace("\nmlp-scratch\n", "\nmlp-scratch\nmissing-page\n"))
    expected = (
        f"{index} lists missing-page, but {fixture_chapter / 'missing-page.ipynb'} does not exist: "
        "add the notebook or remove the entry from the {toctree}"
    )
    with pytest.raises(chapter.ChapterError) as err:
        chapter.notebooks(fixture_chapter)
    assert str(err.value) == expected
    # Named as such when notebooks are picked by name too (`make notebooks NOTEBOOKS=mlp`).
    with pytest.raises(cells.NotebookError) as err:
        cells.find_notebooks(fixture_chapter, ["mlp"])
    assert str(err.value) == expected


def test_chapter_paths_are_shown_from_the_working_directory(fixture_chapter, monkeypatch):
    index = fixture_chapter / "index.md"
    index.write_text(index.read_text().replace("\nmlp-scratch\n", "\nmlp-scratch\nmlp-foo\n"))
    monkeypatch.chdir(fixture_chapter.parent)
    with pytest.raises(
        chapter.ChapterError,
        match=r"^chapter_mlp/index\.md lists mlp-foo, but "
        r"chapter_mlp/mlp-foo\.ipynb does not exist",
    ):
        chapter.notebooks(fixture_chapter)


def test_a_notebook_added_to_the_toctree_goes_everywhere(fixture_chapter, tmp_path, monkeypatch):
    add_notebook(fixture_chapter, "extra", listed=True)
    order = ["mlp", "extra", "mlp-scratch"]
    # executed and checked: both take find_notebooks' list
    assert [p.stem for p in cells.find_notebooks(fixture_chapter)] == order
    # split: one plain notebook per framework
    written = split_notebooks(cells.find_notebooks(fixture_chapter), tmp_path / "split")
    assert {(p.parent.parent.name, p.stem) for p in written} == {(fw, name) for fw in FRAMEWORKS for name in order}
    # built: a page, with its downloads
    tree = book.source_tree(fixture_chapter, tmp_path / "split")
    assert "chapter_mlp/extra.md" in tree
    assert all(f"chapter_mlp/_notebooks/extra-{fw}.ipynb" in tree for fw in FRAMEWORKS)
    # benchmarked: the bench times the chapter's split notebooks, in the toctree's order
    monkeypatch.setattr(chapter, "CHAPTER", fixture_chapter)
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    sys.modules.pop("bench", None)
    import bench

    monkeypatch.setattr(bench, "SPLIT_DIR", tmp_path / "split")
    assert [p.stem for p in bench.split_notebooks(["jax"])["jax"]] == order
