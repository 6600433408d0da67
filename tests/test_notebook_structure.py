"""The chapter's tabbed notebooks follow the structure rules (d2l_tools.checks.check)."""

import pytest

from d2l_tools import chapter
from d2l_tools.checks import check

NOTEBOOKS = chapter.notebooks()  # the chapter's table of contents; raises when it and the folder disagree


def test_chapter_lists_its_notebooks():
    assert [path.stem for path in NOTEBOOKS] == ["mlp", "mlp-scratch", "mlp-concise"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.name for path in NOTEBOOKS])
def test_notebook_structure(path):
    problems = check(path)
    assert not problems, f"{path.name}: {len(problems)} problem(s):\n" + "\n".join(problems)
