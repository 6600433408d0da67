"""The chapter's tabbed notebooks follow the structure rules (d2l_tools.notebooks.check)."""

from pathlib import Path

import pytest

from d2l_tools.notebooks import DEFAULT_SRC, check

CHAPTER = Path(__file__).resolve().parents[1] / DEFAULT_SRC
NOTEBOOKS = sorted(CHAPTER.glob("*.ipynb"))


def test_chapter_has_its_notebooks():
    names = {path.stem for path in NOTEBOOKS}
    missing = {"mlp", "mlp-scratch", "mlp-concise"} - names
    assert not missing, f"{CHAPTER} lacks {', '.join(sorted(missing))}.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.name for path in NOTEBOOKS])
def test_notebook_structure(path):
    problems = check(path)
    assert not problems, f"{path.name}: {len(problems)} problem(s):\n" + "\n".join(problems)
