"""The chapter's notebooks, in the order of its own table of contents.

``chapter_mlp/index.md`` ends with a MyST ``{toctree}`` that lists the chapter's pages; that
list is the one place a notebook is added. Splitting, executing, checking, benchmarking and
building the book all read it from here.
"""

import os
import re
from pathlib import Path

from d2l_tools.envs import REPO

CHAPTER = REPO / "chapter_mlp"
INDEX = "index.md"
TOCTREE = re.compile(r"^(`{3,}|:{3,})\{toctree\}[^\n]*\n(.*?)^\1[ \t]*$", re.MULTILINE | re.DOTALL)


class ChapterError(Exception):
    """The chapter's table of contents and its notebooks disagree; the message says how."""


def _shown(path):
    """``path`` as a maintainer typed it: relative to the working directory when under it."""
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def toc_entries(index_text):
    """Page names of the index's toctree, in order (options and blank lines skipped)."""
    match = TOCTREE.search(index_text)
    if not match:
        return None
    entries = []
    for line in match.group(2).splitlines():
        line = line.strip()
        if line and not line.startswith(":"):
            entries.append(line.removesuffix(".ipynb").removesuffix(".md"))
    return entries


def notebooks(chapter=None):
    """The chapter's notebook paths in table-of-contents order (default: this project's chapter).

    Raises ChapterError for a toctree entry with no notebook, and for a notebook that the
    toctree does not list (it would be built and tested nowhere).
    """
    chapter = Path(chapter or CHAPTER)
    index = chapter / INDEX
    if not index.is_file():
        raise ChapterError(f"{index} is missing: the chapter needs an index.md whose {{toctree}} lists its notebooks")
    entries = toc_entries(index.read_text(encoding="utf-8"))
    if entries is None:
        raise ChapterError(f"{index} has no {{toctree}}: add one listing the notebooks in reading order")
    missing = [name for name in entries if not (chapter / f"{name}.ipynb").is_file()]
    if missing:
        files = ", ".join(_shown(chapter / f"{name}.ipynb") for name in missing)
        raise ChapterError(
            f"{_shown(index)} lists {', '.join(missing)}, but {files} "
            f"{'does' if len(missing) == 1 else 'do'} not exist: add the notebook or remove "
            "the entry from the {toctree}"
        )
    unlisted = sorted(path.stem for path in chapter.glob("*.ipynb") if path.stem not in entries)
    if unlisted:
        raise ChapterError(
            f"{chapter} has {', '.join(n + '.ipynb' for n in unlisted)}, which the {{toctree}} "
            f"of {index} does not list: add it there (or remove the notebook)"
        )
    return [chapter / f"{name}.ipynb" for name in entries]


def is_training_notebook(nb):
    """A notebook that trains a model (it calls ``.fit(``): it must assert its accuracy."""
    return any(cell.cell_type == "code" and ".fit(" in cell.source for cell in nb.cells)
