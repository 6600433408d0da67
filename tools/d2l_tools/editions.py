"""The reader's editions: one-framework notebooks that run in any Jupyter or in Colab.

``split`` calls :func:`reader_edition` on each one-framework notebook it makes. An edition

* starts its code with a cell that installs what is missing (``%pip install`` of
  ``d2l-shim[<framework>]``) and does nothing when d2l_shim and the framework import; for
  MXNet under Python 3.12 or newer it stops there with one line that says why and what to do;
* has no ``%%tab`` line and no ``%load_ext d2l_shim.tab`` left;
* names the generic ``python3`` kernel ("Python 3 (ipykernel)"), which every Jupyter has;
* drops the prose that speaks of tabs and kernels: spans written as
  ``<!-- tabbed-only -->`` ... ``<!-- /tabbed-only -->`` (:func:`strip_tabbed_only`), which
  the tabbed source and the HTML book keep (HTML comments are invisible there).

Two settings, read when the editions are written (``make split``, ``make book``):

``D2L_REPOSITORY``
    ``owner/name`` of the repository on GitHub; defaults to ``$GITHUB_REPOSITORY`` (set by
    GitHub Actions); empty means none. With one, the install cell takes the wheel that the
    workflow publishes on the repository's GitHub Pages, and the book offers "Open in Colab".
``D2L_SHIM_INSTALL``
    what the install cell passes to ``pip install``, verbatim, with ``{framework}`` replaced by
    the edition's framework: a requirement (``d2l-shim[{framework}]`` from your index), a URL
    (``"d2l-shim[{framework}] @ https://example.org/d2l_shim-0.1.0-py3-none-any.whl"``) or
    options and a requirement (``--index-url https://example.org/simple d2l-shim[{framework}]``).
    Default: the GitHub Pages wheel when a repository is set, else ``d2l-shim[<framework>]``
    by name from pip's configured index.
"""

import copy
import os
import re

import nbformat

import d2l_shim
from d2l_shim import FRAMEWORK_INFO
from d2l_shim.tab import MARKER

REPOSITORY_SETTING = "D2L_REPOSITORY"
INSTALL_SETTING = "D2L_SHIM_INSTALL"
INSTALL_CELL_ID = "d2l-install"
GENERIC_KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
LOAD_TAB_EXTENSION = re.compile(r"^[ \t]*%load_ext[ \t]+d2l_shim\.tab[ \t]*(?:\n|$)", re.MULTILINE)
# The horizontal space before a span goes with it, so "A. <span>B.</span> C." reads "A. C.".
# A span takes the blanks before it with it, and at the start of a line those after it too.
TABBED_ONLY = re.compile(
    r"^<!-- tabbed-only -->.*?<!-- /tabbed-only -->[ \t]*|[ \t]*<!-- tabbed-only -->.*?<!-- /tabbed-only -->",
    re.DOTALL | re.MULTILINE,
)
TABBED_ONLY_MARKER = re.compile(r"<!--\s*/?\s*tabbed-only\s*-->")
REPOSITORY_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}")
# MXNet 1.9.1 needs numpy<1.24, which has no wheels past Python 3.11.
MXNET_NEWEST_PYTHON = (3, 11)


class EditionError(ValueError):
    """A notebook or a setting from which no reader's edition can be made."""


def strip_tabbed_only(markdown):
    """``markdown`` without its ``<!-- tabbed-only -->`` ... ``<!-- /tabbed-only -->`` spans."""
    stripped = TABBED_ONLY.sub("", markdown)
    stray = TABBED_ONLY_MARKER.search(stripped)
    if stray:
        raise EditionError(
            f"unbalanced or misspelt {stray.group(0)!r} near {stripped[stray.start() :][:60]!r}: "
            "write each span as <!-- tabbed-only --> ... <!-- /tabbed-only -->"
        )
    stripped = re.sub(r"[ \t]+\n", "\n", stripped)  # a span that ended a line leaves no trailing space
    return re.sub(r"\n{3,}", "\n\n", stripped).strip("\n")


def repository():
    """``owner/name`` from D2L_REPOSITORY, else GITHUB_REPOSITORY; "" when none is configured."""
    value = os.environ.get(REPOSITORY_SETTING)
    if value is None:
        value = os.environ.get("GITHUB_REPOSITORY", "")
    value = value.strip().strip("/")
    if value and not REPOSITORY_NAME.fullmatch(value):
        raise EditionError(
            f"{REPOSITORY_SETTING}={value!r} is not a GitHub repository: write it as owner/name, "
            "or set it empty for none"
        )
    return value


def pages_url(repo):
    """Where GitHub Pages serves ``repo``'s gh-pages branch, ending in a slash."""
    owner, name = repo.split("/")
    host = f"{owner.lower()}.github.io"
    return f"https://{host}/" if name.lower() == host else f"https://{host}/{name}/"


def wheel_name():
    """The file name of d2l-shim's wheel (``make dist``): pure Python, any platform."""
    return f"d2l_shim-{d2l_shim.__version__}-py3-none-any.whl"


def install_arguments(framework):
    """What the install cell passes to ``pip install`` for ``framework`` (see the settings above)."""
    setting = os.environ.get(INSTALL_SETTING, "").strip()
    if setting:
        return setting.replace("{framework}", framework)
    repo = repository()
    if repo:
        return f'"d2l-shim[{framework}] @ {pages_url(repo)}dist/{wheel_name()}"'
    return f'"d2l-shim[{framework}]"'


def install_cell_source(framework):
    """The first code cell of an edition: install d2l-shim and the framework when missing."""
    package = FRAMEWORK_INFO[framework].package
    label = FRAMEWORK_INFO[framework].label
    lines = [
        f"# This notebook needs d2l-shim (the book's helpers) and {label}: pip installs them here",
        "# unless both import already.",
        "import importlib.util",
        *(["import sys"] if framework == "mxnet" else []),
        "",
        f'if not all(importlib.util.find_spec(name) for name in ("d2l_shim", "{package}")):',
    ]
    if framework == "mxnet":
        newest = ".".join(map(str, MXNET_NEWEST_PYTHON))
        lines += [
            f"    if sys.version_info[:2] > {MXNET_NEWEST_PYTHON}:",
            "        class MXNetNeedsOlderPython(RuntimeError):",
            "            def _render_traceback_(self):  # IPython shows this one line, no traceback",
            "                return [f'{type(self).__name__}: {self}']",
            "",
            "        raise MXNetNeedsOlderPython(",
            f'            f"MXNet 1.9.1 needs Python {newest} or older and this kernel runs '
            '{sys.version.split()[0]}: "',
            f'            "run this notebook in a Python {newest} environment, or open another framework\'s edition")',
        ]
    lines.append(f"    %pip install --quiet {install_arguments(framework)}")
    return "\n".join(lines)


def install_cell(framework):
    cell = nbformat.v4.new_code_cell(install_cell_source(framework))
    cell.id = INSTALL_CELL_ID
    return cell


def _code_without_tab_extension(index, cell):
    source = LOAD_TAB_EXTENSION.sub("", cell.source)
    if source.lstrip().startswith(MARKER):
        raise EditionError(
            f"cell {index} still starts with {MARKER}: reader_edition takes a notebook "
            "already split for one framework (d2l_tools.split)"
        )
    return source


def reader_edition(nb, framework):
    """The reader's edition of ``nb``, a notebook already split for ``framework``; ``nb`` is kept."""
    if framework not in FRAMEWORK_INFO:
        raise EditionError(f"unknown framework {framework!r}: use one of {', '.join(FRAMEWORK_INFO)}")
    edition = copy.deepcopy(nb)
    cells = []
    for index, cell in enumerate(edition.cells):
        if cell.cell_type == "code":
            cell.source = _code_without_tab_extension(index, cell)
        elif cell.cell_type == "markdown":
            cell.source = strip_tabbed_only(cell.source)
        if cell.cell_type in ("code", "markdown") and not cell.source.strip() and not cell.get("outputs"):
            continue  # nothing left of it (the extension's cell, a tabbed-only paragraph)
        cells.append(cell)
    if any(cell.get("id") == INSTALL_CELL_ID for cell in cells):
        raise EditionError(f"the notebook already has a cell with id {INSTALL_CELL_ID!r}: is it an edition already?")
    first_code = next((i for i, cell in enumerate(cells) if cell.cell_type == "code"), len(cells))
    cells.insert(first_code, install_cell(framework))
    edition.cells = cells
    edition.metadata["kernelspec"] = dict(GENERIC_KERNELSPEC)
    return edition
