"""The tabbed notebook's cells, and reading, writing and finding notebooks.

A tabbed notebook holds each framework-specific code cell once per framework, marked by a
first line ``%%tab pytorch`` (or a comma list, or ``%%tab all``), next to shared cells. The
marker's grammar lives in ``d2l_shim.tab``; this module applies it to nbformat cells.
"""

import hashlib
from pathlib import Path

import nbformat

from d2l_shim.tab import SHARED, is_tab_line, source_tab
from d2l_tools import chapter
from d2l_tools.files import write_atomic

DEFAULT_SRC = "chapter_mlp"
IGNORE_OUTPUT_TAG = "nbval-ignore-output"
REMOVE_CELL_TAG = "remove-cell"


class NotebookError(Exception):
    """A problem the user has to fix; the message says where and how."""


def first_line(source):
    return source.split("\n", 1)[0]


def cell_tab(cell):
    """The cell's Tab (SHARED for a markdown or raw cell); raises TabMarkerError for a bad ``%%tab`` line."""
    return source_tab(cell.source) if cell.cell_type == "code" else SHARED


def cell_body(cell):
    """The source without its ``%%tab`` line."""
    if not is_tab_line(first_line(cell.source)):
        return cell.source
    return cell.source.split("\n", 1)[1] if "\n" in cell.source else ""


def source_sha256(source):
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def describe(index, cell):
    line = first_line(cell.source)
    return f"cell {index} ({line[:60] + '...' if len(line) > 60 else line!r})"


def read_notebook(path):
    try:
        return nbformat.read(str(path), as_version=4)
    except (OSError, ValueError) as err:
        raise NotebookError(f"{path}: cannot read the notebook: {err}") from None


def notebook_text(nb):
    # nbformat's own layout (sorted keys, indent 1), as Jupyter saves it: no diff churn.
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def write_notebook(nb, path):
    """Write atomically; returns False (file untouched, mtime kept) when the bytes are equal."""
    path = Path(path)
    text = notebook_text(nb)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    write_atomic(path, text, mode=path.stat().st_mode & 0o777 if path.exists() else 0o644)
    return True


def find_notebooks(src, names=()):
    """The notebooks named on the command line, or those of ``src``'s table of contents, in its order.

    A name is a path, or a name of the chapter's table of contents ("mlp-scratch", as
    NOTEBOOKS= gives it). A table of contents that disagrees with the chapter's notebooks is
    reported as such, unless every name is a path to a notebook.
    """
    try:
        listed = chapter.notebooks(src)
    except chapter.ChapterError as err:
        if not names or not all(Path(name).is_file() for name in names):
            raise NotebookError(str(err)) from None
        return [Path(name) for name in names]
    if not names:
        return listed
    by_name = {path.stem: path for path in listed}
    paths = [by_name.get(name.removesuffix(".ipynb"), Path(name)) for name in names]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise NotebookError(f"no such notebook: {', '.join(missing)} (the chapter's are: {', '.join(by_name)})")
    return paths
