"""Build the HTML book from the executed tabbed notebooks (``make book``).

    python -m d2l_tools.book build [--src chapter_mlp] [--out build/html]
        [--split-dir build/notebooks] [--work build/book-src]

Neither myst-nb nor Jupyter Book can put notebook cells inside tabs, so each notebook is
converted to a MyST page here: a run of framework cells (``%%tab pytorch`` ...) becomes one
sphinx-design ``tab-set`` synced on the ``framework`` group, with one tab per framework
holding its code and stored outputs. Markdown and shared cells pass through. The pages,
the chapter's ``index.md`` and figures (``img/``), a copy of ``book/`` (Sphinx configuration,
theme templates, static files) and the notebook downloads go to ``--work``; then
``sphinx-build -W`` writes ``--out``. Files whose content did not change are not rewritten, so Sphinx rebuilds only
what changed.

A notebook with an error output, a cell never run by ``make notebooks`` or outputs older
than their cell's source is not published: the build stops and names the notebook and cell.
Outputs are treated as untrusted (d2l_tools.sanitize): HTML is cleaned by nh3 to an allowlist
(when that takes anything out, the page shows the output's text/plain form and the build says
so); an SVG with anything beyond drawing stops the build, naming the cell and what is wrong.

Under each page's title: the notebook's downloads (per framework, and the tabbed one) and,
when a GitHub repository is configured (``D2L_REPOSITORY``, else ``GITHUB_REPOSITORY``),
"Open in Colab" links to the per-framework editions the workflow publishes on ``gh-pages``.
Two builds into the same ``build/`` run one after the other: the second waits for the first's
lock (``build/.book.lock``) and says so.
"""

import argparse
import base64
import hashlib
import importlib.util
import os
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from d2l_shim import FRAMEWORK_INFO, FRAMEWORKS
from d2l_shim.tab import TabMarkerError
from d2l_tools import add_frameworks_option
from d2l_tools.cells import (
    NotebookError,
    cell_body,
    cell_tab,
    describe,
    read_notebook,
)
from d2l_tools.chapter import ChapterError
from d2l_tools.chapter import notebooks as chapter_notebooks
from d2l_tools.checks import publishing_problems, require_whole_tab_groups
from d2l_tools.editions import EditionError, repository, strip_tabbed_only
from d2l_tools.envs import REPO
from d2l_tools.files import write_atomic
from d2l_tools.sanitize import sanitize_html, svg_problems
from d2l_tools.text import output_text, strip_ansi

BOOK_DIR = REPO / "book"  # Sphinx project: conf.py, index.md, _static/, _templates/

SYNC_GROUP = "framework"

# Notebook set-up lines that mean nothing to a reader of the book; dropped everywhere.
SETUP_LINE = re.compile(r"^\s*%(load_ext|matplotlib)\b.*$")
IPYNB_LINK = re.compile(r"\]\((?:\./)?([\w.-]+)\.ipynb(#[^)\s]*)?\)")

IMAGE_TYPES = {"image/svg+xml": "svg", "image/png": "png", "image/jpeg": "jpg"}
# Where "Open in Colab" finds a notebook: the per-framework editions (build/notebooks/, laid
# out <framework>/<chapter>/<name>.ipynb) as the GitHub workflow publishes them on gh-pages.
COLAB_URL = (
    "https://colab.research.google.com/github/{repository}/blob/gh-pages/notebooks/{framework}/{chapter}/{name}.ipynb"
)


class BookError(Exception):
    """The book cannot be built; the message says what is wrong and what to do."""


@dataclass
class Page:
    """A generated MyST page and the files it refers to (paths relative to its folder)."""

    text: str
    files: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)  # what was left out of an output, and why


# ---------------------------------------------------------------- MyST building blocks


def _fence(char, body, minimum=3):
    """A fence of ``char`` longer than any run of it at a line start in ``body``."""
    runs = [len(m.group(1)) for m in re.finditer(rf"^[ \t]*({re.escape(char)}+)", body, re.MULTILINE)]
    return char * max([minimum] + [run + 1 for run in runs])


def code_block(text, language, css_class=None):
    text = text.rstrip("\n")
    fence = _fence("`", text)
    if css_class is None:
        return f"{fence}{language}\n{text}\n{fence}"
    return f"{fence}{{code-block}} {language}\n:class: {css_class}\n\n{text}\n{fence}"


def directive(name, argument="", options=(), body=""):
    """A colon-fenced directive; its fence outgrows any nested one in ``body``."""
    fence = _fence(":", body)
    lines = [f"{fence}{{{name}}} {argument}".rstrip()]
    lines += [f":{key}: {value}".rstrip() for key, value in options]
    return "\n".join(lines) + "\n\n" + body.rstrip("\n") + f"\n{fence}"


# ---------------------------------------------------------------- outputs


def _clean_stream(text):
    """Terminal text as the reader saw it last: no colour codes, progress overwritten by \\r."""
    lines = []
    for line in strip_ansi(text).split("\n"):
        parts = [part for part in line.split("\r") if part]
        lines.append(parts[-1] if parts else "")
    return "\n".join(lines)


class Converter:
    """Turns one tabbed notebook into a :class:`Page`."""

    def __init__(self, nb, name, where, known_pages=(), downloads=None, colab=None, printed=False):
        self.nb = nb
        self.name = name  # page name, e.g. "mlp"
        self.where = where  # notebook path for messages
        self.known_pages = set(known_pages)
        self.downloads = downloads  # [(label, path relative to the page)] or None
        self.colab = colab  # [(label, URL)] or None
        self.printed = printed  # the PDFs' source: tabbed-only prose left out
        self.files = {}
        self.notes = []

    # -- messages

    def _cell_place(self, index, cell):
        return f"{self.where}: {describe(index, cell)}"

    # -- files

    def _add_file(self, data, extension):
        path = f"{self.name}_files/{hashlib.sha256(data).hexdigest()[:16]}.{extension}"
        self.files[path] = data
        return path

    # -- cells

    def _frameworks(self, index, cell):
        """Frameworks of a code cell: None for a shared cell (no marker or ``%%tab all``)."""
        try:
            tab = cell_tab(cell)
        except TabMarkerError as err:
            raise BookError(f"{self._cell_place(index, cell)}: {err}") from None
        return None if tab.shared else tab.frameworks

    def _check_code_cell(self, index, cell):
        # The notebook check's own rule (checks.publishing_problems), so the two never disagree.
        problems = publishing_problems(cell)
        if problems:
            raise BookError(
                f"{self._cell_place(index, cell)}: {'; '.join(problems)}; "
                "fix the cell and re-run `make notebooks`: a cell like this is not published"
            )

    @staticmethod
    def _display_source(cell):
        # Without the %%tab line (the tab says it) and the set-up magics.
        lines = [line for line in cell_body(cell).split("\n") if not SETUP_LINE.match(line)]
        return "\n".join(lines).strip("\n")

    def _image(self, raw, mime, place):
        """The bytes of an image output or attachment; an SVG must pass svg_problems."""
        if mime != "image/svg+xml":
            return base64.b64decode(raw)
        problems = svg_problems(raw)
        if problems:
            raise BookError(
                f"{place} has an SVG image the book will not publish: {'; '.join(problems[:5])}. "
                "A figure may hold drawing only (d2l_tools.sanitize lists what is allowed): "
                "remove the output or draw it with matplotlib."
            )
        return raw.encode("utf-8")

    def _render_html(self, index, cell, data):
        """The output's text/html through the sanitizer; its text/plain if that took something out."""
        clean, stripped = sanitize_html(output_text(data["text/html"]))
        if stripped:
            shown = "its text/plain form" if "text/plain" in data else "what is left of it"
            self.notes.append(
                f"{self._cell_place(index, cell)}: its HTML output uses {', '.join(stripped)}, "
                f"which the book does not publish; the page shows {shown}"
            )
            if "text/plain" in data:
                return None
        body = clean.strip("\n")
        if not body:
            return ""
        fence = _fence("`", body)
        return f'{fence}{{raw}} html\n<div class="d2l-output-html">\n{body}\n</div>\n{fence}'

    def _render_output(self, index, cell, out):
        if out.output_type == "stream":
            css = "d2l-output d2l-output-stderr" if out.get("name") == "stderr" else "d2l-output"
            text = _clean_stream(output_text(out.text)).strip("\n")
            return code_block(text, "none", css) if text else None
        data = out.get("data", {})
        for mime, extension in IMAGE_TYPES.items():
            if mime in data:
                blob = self._image(output_text(data[mime]), mime, self._cell_place(index, cell))
                options = [("alt", "Figure made by the code above"), ("class", "d2l-output-image")]
                width = out.get("metadata", {}).get(mime, {}).get("width")
                if width:
                    options.append(("width", f"{width}px"))
                opts = "".join(f":{k}: {v}\n" for k, v in options)
                return f"```{{image}} {self._add_file(blob, extension)}\n{opts}```"
        if "text/html" in data:
            shown = self._render_html(index, cell, data)
            if shown is not None:
                return shown or None
        if "text/plain" in data:
            text = _clean_stream(output_text(data["text/plain"])).strip("\n")
            return code_block(text, "none", "d2l-output") if text else None
        raise BookError(
            f"{self._cell_place(index, cell)} has an output the book cannot show "
            f"(types: {', '.join(sorted(data)) or 'none'}); add a text/plain or image form of it."
        )

    def _render_code(self, index, cell):
        tags = set(cell.metadata.get("tags", []))
        blocks = []
        source = self._display_source(cell)
        # A PDF cannot open a "Show code" dropdown: there a hidden input is left out, like a removed one.
        if source and "remove-input" not in tags and not (self.printed and "hide-input" in tags):
            code = code_block(source, "ipython3")
            if "hide-input" in tags:
                code = directive("dropdown", "Show code", body=code)
            blocks.append(code)
        if "remove-output" not in tags:
            outputs = [self._render_output(index, cell, out) for out in cell.get("outputs", [])]
            outputs = "\n\n".join(block for block in outputs if block)
            if outputs and "hide-output" in tags:
                outputs = directive("dropdown", "Show output", body=outputs)
            if outputs:
                blocks.append(outputs)
        return "\n\n".join(blocks)

    def _render_tab_group(self, group):
        items = []
        for framework in FRAMEWORKS:
            bodies = [self._render_code(i, cell) for i, cell, fws in group if framework in fws]
            label = FRAMEWORK_INFO[framework].label
            body = "\n\n".join(b for b in bodies if b) or f'<p class="d2l-no-code">No {label} code in this step.</p>'
            # Names the panel when the side-by-side view hides the tab labels (d2l-book.css).
            heading = f'<p class="d2l-panel-heading">{label}</p>'
            items.append(directive("tab-item", label, [("sync", framework)], f"{heading}\n\n{body}"))
        return directive("tab-set", options=[("sync-group", SYNC_GROUP)], body="\n\n".join(items))

    def _render_markdown(self, index, cell):
        text = cell.source
        if self.printed:
            try:
                text = strip_tabbed_only(text)
            except EditionError as err:
                raise BookError(f"{self._cell_place(index, cell)}: {err}") from None
        for name, bundle in cell.get("attachments", {}).items():
            mime = next((m for m in IMAGE_TYPES if m in bundle), None)
            if mime:
                blob = self._image(
                    output_text(bundle[mime]), mime, f"{self._cell_place(index, cell)} (attachment {name})"
                )
                text = text.replace(f"attachment:{name}", self._add_file(blob, IMAGE_TYPES[mime]))
        return rewrite_notebook_links(text, self.known_pages)

    def _download_line(self):
        lines = []
        if self.downloads:
            links = " · ".join(f"{{download}}`{label} <{path}>`" for label, path in self.downloads)
            lines.append(f"Download this notebook: {links}")
        if self.colab:
            links = " · ".join(f"[{label}]({url})" for label, url in self.colab)
            lines.append(f"Open in Colab: {links}")
        return directive("container", "d2l-downloads", body="\n\n".join(lines))

    def convert(self):
        # Keep the cells a reader sees, each as (index, cell, frameworks or None).
        cells = []
        for index, cell in enumerate(self.nb.cells):
            if cell.cell_type == "code":
                self._check_code_cell(index, cell)  # hidden check cells too: they must pass
            if "remove-cell" in cell.metadata.get("tags", []) or cell.cell_type == "raw":
                continue
            if cell.cell_type == "code":
                frameworks = self._frameworks(index, cell)
                if not self._display_source(cell) and not cell.get("outputs"):
                    continue  # set-up only (%load_ext, %matplotlib): nothing to show
                cells.append((index, cell, frameworks))
            else:
                cells.append((index, cell, None))

        blocks, group = [], []
        for index, cell, frameworks in cells + [(None, None, None)]:
            if frameworks is not None:
                group.append((index, cell, frameworks))
                continue
            if group:  # a run of framework cells ends here
                blocks.append(self._render_tab_group(group))
                group = []
            if cell is None:
                break
            if cell.cell_type == "markdown":
                blocks.append(self._render_markdown(index, cell))
            else:
                blocks.append(self._render_code(index, cell))
        blocks = [block.strip("\n") for block in blocks if block.strip()]
        if self.downloads or self.colab:
            blocks = _insert_after_title(blocks, self._download_line())
        return Page("\n\n".join(blocks) + "\n", self.files, self.notes)


def _insert_after_title(blocks, extra):
    """Put ``extra`` right under the page's first ``# `` heading (or on top if none)."""
    for number, block in enumerate(blocks):
        lines = block.split("\n")
        in_code = False
        for line_no, line in enumerate(lines):
            if line.startswith(("```", "~~~")):
                in_code = not in_code
            elif not in_code and line.startswith("# "):
                head = "\n".join(lines[: line_no + 1])
                tail = "\n".join(lines[line_no + 1 :]).strip("\n")
                return blocks[:number] + [head, extra] + ([tail] if tail else []) + blocks[number + 1 :]
    return [extra] + blocks


def rewrite_notebook_links(text, known_pages):
    """``[x](mlp-scratch.ipynb#part)`` -> ``[x](mlp-scratch.md#part)`` for pages of this book."""

    def swap(match):
        name, anchor = match.group(1), match.group(2) or ""
        return f"]({name}.md{anchor})" if name in known_pages else match.group(0)

    return IPYNB_LINK.sub(swap, text)


def convert_notebook(nb, name, where=None, known_pages=(), downloads=None, colab=None, printed=False):
    """Convert a tabbed notebook (an nbformat v4 node) to a :class:`Page` named ``name``.

    ``downloads``: [(label, path)] and ``colab``: [(label, URL)] go under the title;
    ``printed``: the page is for the PDFs (tabbed-only prose left out).
    """
    return Converter(nb, name, where or f"{name}.ipynb", known_pages, downloads, colab, printed).convert()


def colab_links(chapter, name, repo=None):
    """[(framework label, "Open in Colab" URL)] of a page, or None when no repository is set."""
    try:
        repo = repository() if repo is None else repo
    except EditionError as err:
        raise BookError(str(err)) from None
    if not repo:
        return None
    return [
        (FRAMEWORK_INFO[fw].label, COLAB_URL.format(repository=repo, framework=fw, chapter=chapter, name=name))
        for fw in FRAMEWORKS
    ]


# ---------------------------------------------------------------- the source tree


def chapter_index(text, pages):
    """The chapter's index.md with its links to notebooks pointing at the pages."""
    return rewrite_notebook_links(text, pages)


def split_notebook_path(split_dir, framework, chapter, name):
    return Path(split_dir) / framework / chapter / f"{name}.ipynb"


def source_tree(src, split_dir, printed=False, notes=None):
    """Every file of the generated Sphinx source tree: {relative path: bytes}.

    ``printed``: the tree the PDFs are printed from: no downloads, no tabbed-only prose.
    ``notes``: a list that receives what was left out of outputs, and why.
    """
    src = Path(src)
    chapter = src.name
    try:
        notebooks = {path.stem: path for path in chapter_notebooks(src)}
    except ChapterError as err:
        raise BookError(str(err)) from None
    index = src / "index.md"
    pages = list(notebooks)

    missing = [
        str(split_notebook_path(split_dir, fw, chapter, name))
        for name in pages
        for fw in FRAMEWORKS
        if not split_notebook_path(split_dir, fw, chapter, name).is_file()
    ]
    if missing and not printed:
        raise BookError(
            "the per-framework notebooks offered for download are missing:\n  "
            + "\n  ".join(missing)
            + "\nrun `python -m d2l_tools split` (or `make split`) first, "
            "or point --split-dir at them"
        )

    tree = {
        path.relative_to(BOOK_DIR).as_posix(): path.read_bytes()
        for path in sorted(BOOK_DIR.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }
    index_text = index.read_text(encoding="utf-8")
    if printed:
        try:
            index_text = strip_tabbed_only(index_text)
        except EditionError as err:
            raise BookError(f"{index}: {err}") from None
    tree[f"{chapter}/index.md"] = chapter_index(index_text, pages).encode("utf-8")
    for path in sorted(src.rglob("*")):  # figures the text refers to, e.g. img/mlp.svg
        rel = path.relative_to(src)
        hidden = any(part.startswith((".", "_")) for part in rel.parts)
        if path.is_file() and not hidden and path.parent != src:
            data = path.read_bytes()
            problems = svg_problems(data) if path.suffix == ".svg" else []
            if problems:
                raise BookError(f"{path}: the book will not publish this SVG: {'; '.join(problems[:5])}")
            tree[f"{chapter}/{rel.as_posix()}"] = data
    for name in pages:
        path = notebooks[name]
        downloads_dir = "_notebooks"
        downloads = [(FRAMEWORK_INFO[fw].label, f"{downloads_dir}/{name}-{fw}.ipynb") for fw in FRAMEWORKS]
        downloads.append(("all four frameworks, tabbed", f"{downloads_dir}/{name}.ipynb"))
        try:
            nb = read_notebook(path)
            require_whole_tab_groups(path, nb)  # a group that lost a framework is not published
        except NotebookError as err:
            raise BookError(str(err)) from None
        if printed:  # the PDFs show neither downloads nor links
            page = convert_notebook(nb, name, where=str(path), known_pages=pages, printed=True)
        else:
            page = convert_notebook(
                nb, name, where=str(path), known_pages=pages, downloads=downloads, colab=colab_links(chapter, name)
            )
        if notes is not None:
            notes += page.notes
        tree[f"{chapter}/{name}.md"] = page.text.encode("utf-8")
        for rel, data in page.files.items():
            tree[f"{chapter}/{rel}"] = data
        if printed:
            continue
        tree[f"{chapter}/{downloads_dir}/{name}.ipynb"] = path.read_bytes()
        for fw in FRAMEWORKS:
            split = split_notebook_path(split_dir, fw, chapter, name)
            tree[f"{chapter}/{downloads_dir}/{name}-{fw}.ipynb"] = split.read_bytes()
    return tree


def write_tree(root, tree):
    """Make ``root`` hold exactly ``tree``; returns how many files were (re)written.

    Unchanged files keep their modification time, which is what lets Sphinx skip them.
    """
    root = Path(root)
    written = 0
    for rel, data in tree.items():
        path = root / rel
        if path.is_file() and path.read_bytes() == data:
            continue
        write_atomic(path, data)
        written += 1
    wanted = {root / rel for rel in tree}
    for path in sorted(root.rglob("*"), reverse=True):  # files before their folders
        if path.is_file() and path not in wanted:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return written


# ---------------------------------------------------------------- offline check

_ASSET_ATTR = re.compile(
    r"<(script|link|img|iframe|source|video|audio|embed)\b[^>]*?\s(?:src|href)\s*=\s*[\"']"
    r"((?:https?:)?//[^\"']+)",
    re.IGNORECASE,
)
_CSS_URL = re.compile(r"(?:url\(\s*[\"']?|@import\s+[\"'])((?:https?:)?//[^\"')\s]+)", re.IGNORECASE)


def external_assets(html_dir):
    """Resources the built book would load from other hosts: [(file, url)].

    Looks at what a browser fetches by itself (scripts, styles, images, frames, fonts from
    CSS); plain links a reader may click are fine.
    """
    found = []
    html_dir = Path(html_dir)
    for path in sorted(html_dir.rglob("*.html")):
        for match in _ASSET_ATTR.finditer(path.read_text(encoding="utf-8", errors="replace")):
            tag = match.group(0)
            if match.group(1).lower() == "link" and not re.search(
                r"rel\s*=\s*[\"'][^\"']*(stylesheet|icon|preload|prefetch|manifest)", tag, re.I
            ):
                continue
            found.append((path.relative_to(html_dir).as_posix(), match.group(2)))
    for path in sorted(html_dir.rglob("*.css")):
        for match in _CSS_URL.finditer(path.read_text(encoding="utf-8", errors="replace")):
            found.append((path.relative_to(html_dir).as_posix(), match.group(1)))
    return found


# ---------------------------------------------------------------- what _static carries

MATHJAX_PACKAGE = "sphinx-mathjax-offline"  # MathJax 3.2's browser build, as package data
# What the pages load of it: the combined TeX input + CommonHTML output component, the TeX
# extensions its autoload fetches for rarer macros (\boldsymbol, \cancel, ...), and the
# CommonHTML fonts. Not the SVG and MathML builds, nor the speech rule engine (16 MB more).
MATHJAX_PARTS = ("tex-chtml.js", "input/tex/extensions/*.js", "output/chtml/fonts/woff-v2/*.woff")
# Files the themes copy into _static that no page loads: source maps (read by browser
# developer tools only) and pydata-sphinx-theme's translation catalogues (read by Sphinx).
UNUSED_STATIC = ("**/*.map", "locales/**/*")
# pydata-sphinx-theme draws its icons twice: with Font Awesome's CSS and webfonts, and again
# with a 1.5 MB script that swaps them for SVGs so that a site can add icons of its own. The
# book adds none, so the pages drop the script and keep the CSS icons.
ICON_SCRIPT = "scripts/fontawesome.js"
ICON_SCRIPT_TAG = re.compile(r'[ \t]*<script defer src="[^"]*_static/scripts/fontawesome\.js[^"]*"></script>\n?')


def mathjax_source():
    spec = importlib.util.find_spec(MATHJAX_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BookError(f"{MATHJAX_PACKAGE} is not installed in {sys.prefix}: run `make setup`")
    source = Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax"
    if not (source / MATHJAX_PARTS[0]).is_file():
        raise BookError(f"{source / MATHJAX_PARTS[0]} is missing: reinstall {MATHJAX_PACKAGE} (`make setup`)")
    return source


def ship_mathjax(out):
    """Make ``out/_static/mathjax`` hold exactly MATHJAX_PARTS; returns how many files it has."""
    source = mathjax_source()
    parts = {
        path.relative_to(source).as_posix(): path.read_bytes()
        for pattern in MATHJAX_PARTS
        for path in sorted(source.glob(pattern))
    }
    write_tree(Path(out) / "_static" / "mathjax", parts)  # also drops files of older builds
    return len(parts)


def prune_static(out):
    """Delete the UNUSED_STATIC files of ``out/_static``; returns how many there were."""
    static = Path(out) / "_static"
    unused = {path for pattern in UNUSED_STATIC for path in static.glob(pattern) if path.is_file()}
    for path in unused:
        path.unlink()
    for path in sorted(static.rglob("*"), reverse=True):  # folders left empty
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return len(unused)


def drop_icon_script(out):
    """Take ICON_SCRIPT out of every page and of ``out/_static``; returns how many pages had it."""
    pages = 0
    for path in Path(out).rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        kept = ICON_SCRIPT_TAG.sub("", text)
        if kept != text:
            write_atomic(path, kept.encode("utf-8"))
            pages += 1
    for name in (ICON_SCRIPT, ICON_SCRIPT + ".LICENSE.txt"):
        (Path(out) / "_static" / name).unlink(missing_ok=True)
    return pages


def tree_size(root):
    """Bytes of the files under ``root``."""
    return sum(path.stat().st_size for path in Path(root).rglob("*") if path.is_file())


# ---------------------------------------------------------------- one build at a time

LOCK_NAME = ".book.lock"  # in the folder that holds the work tree (build/ by default)
_locks = {}  # one FileLock per path, so that build_pdfs -> build re-enters the lock it holds


@contextmanager
def build_lock(folder):
    """Hold the book builds' lock in ``folder``; a second build waits for the first and says so.

    Two builds into the same folders would overwrite each other's files halfway (Sphinx's
    output, the print page, the PDFs). The lock is the operating system's (filelock), so it
    goes with its process, however that ends. ``<lock>.owner`` names the holder's pid.
    """
    from filelock import FileLock, Timeout

    path = Path(folder) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = _locks.setdefault(path, FileLock(path))
    owner = path.with_name(path.name + ".owner")
    if lock.is_locked:  # this process holds it already
        with lock:
            yield
        return
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(
            f"book: waiting for another book build (pid {_holder(owner)}) to finish ({path})",
            file=sys.stderr,
            flush=True,
        )
        lock.acquire()
    try:
        write_atomic(owner, f"{os.getpid()}\n")
        yield
    finally:
        owner.unlink(missing_ok=True)
        lock.release()


def _holder(owner, wait_s=2.0):
    """The pid in ``owner``, written by the lock's holder right after it took the lock."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return int(owner.read_text())
        except (OSError, ValueError):
            if time.monotonic() > deadline:
                return "unknown"
            time.sleep(0.05)


# ---------------------------------------------------------------- build


def build(src, out, split_dir, work, quiet=True, builder="html"):
    """Generate the MyST tree in ``work`` and run ``sphinx-build -W -b builder`` into ``out``.

    ``builder`` is ``html`` for the book, ``singlehtml`` for the page that d2l_tools.pdf
    prints; that one is generated in ``<work>-print`` without downloads and without the
    tabbed-only prose. One build at a time per folder of ``work`` (``build_lock``).
    """
    work, out = Path(work), Path(out)
    with build_lock(work.parent):
        _build(src, out, split_dir, work, quiet, builder)


def _build(src, out, split_dir, work, quiet, builder):
    started = time.monotonic()
    printed = builder != "html"
    if printed:
        work = work.with_name(f"{work.name}-print")
    notes = []
    tree = source_tree(src, split_dir, printed=printed, notes=notes)
    for note in dict.fromkeys(notes):
        print(f"book: note: {note}", file=sys.stderr)
    written = write_tree(work, tree)
    doctrees = work.with_name(f"{work.name}-doctrees")
    command = [
        sys.executable,
        "-m",
        "sphinx",
        "-W",
        "--keep-going",
        "-b",
        builder,
        "-d",
        str(doctrees),
        str(work),
        str(out),
    ]
    if quiet:
        command.insert(3, "-q")
    env = dict(os.environ)
    # conf.py imports d2l_shim; make that work without an installed package too.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    result = subprocess.run(command, env=env)
    if result.returncode != 0:
        raise BookError(
            f"sphinx-build failed (exit {result.returncode}); its warnings above say where "
            f"(generated pages are in {work}, edit the notebooks or {BOOK_DIR} instead)"
        )
    ship_mathjax(out)
    removed = prune_static(out)
    drop_icon_script(out)
    leaks = external_assets(out)
    if leaks:
        listed = "\n  ".join(f"{page}: {url}" for page, url in leaks[:20])
        raise BookError(
            f"the book would load resources from other hosts:\n  {listed}\nserve them from book/_static instead"
        )
    print(
        f"book: {out} ({builder}) built in {time.monotonic() - started:.1f} s "
        f"({written} of {len(tree)} source files changed); {tree_size(out) / 2**20:.1f} MiB, "
        f"{removed} theme files no page loads left out"
    )


def build_pdfs(src, split_dir, work, print_dir, pdf_dir, frameworks=FRAMEWORKS, quiet=True):
    """The single-page book in ``print_dir``, printed to ``pdf_dir/<framework>.pdf``."""
    from d2l_tools import pdf  # Playwright is imported only when PDFs are made

    with build_lock(Path(work).parent):  # the print page and the PDFs are written under it too
        build(src, print_dir, split_dir, work, quiet=quiet, builder="singlehtml")
        try:
            return pdf.print_book(print_dir, pdf_dir, frameworks)
        except pdf.PdfError as err:
            raise BookError(str(err)) from None


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m d2l_tools.book", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    html_run = commands.add_parser("build", help="convert the notebooks, build the HTML book and its PDFs")
    pdf_run = commands.add_parser("pdf", help="print one PDF per framework (d2l_tools.pdf says how)")
    for run in (html_run, pdf_run):
        run.add_argument(
            "--src",
            default=REPO / "chapter_mlp",
            type=Path,
            help="chapter folder with the tabbed notebooks and index.md (default: chapter_mlp)",
        )
        run.add_argument(
            "--split-dir",
            default=REPO / "build" / "notebooks",
            type=Path,
            help="per-framework notebooks, <dir>/<framework>/<chapter>/<name>.ipynb (default: build/notebooks)",
        )
        run.add_argument(
            "--work",
            default=REPO / "build" / "book-src",
            type=Path,
            help="generated Sphinx source tree (default: build/book-src)",
        )
        run.add_argument(
            "--print-dir",
            default=REPO / "build" / "print",
            type=Path,
            help="the whole book on one page, which the PDFs are printed from (default: build/print)",
        )
        run.add_argument(
            "--pdf-dir",
            default=REPO / "build" / "pdf",
            type=Path,
            help="where the PDFs go, one per framework (default: build/pdf)",
        )
        run.add_argument("--verbose", action="store_true", help="show sphinx-build's progress")
        add_frameworks_option(run)  # which PDFs
    html_run.add_argument(
        "--out", default=REPO / "build" / "html", type=Path, help="where the HTML goes (default: build/html)"
    )
    html_run.add_argument("--no-pdf", action="store_true", help="the HTML book only (no Chromium needed)")
    args = parser.parse_args(argv)
    try:
        with build_lock(args.work.parent):  # the HTML and the PDFs of one run, together
            if args.command == "build":
                build(args.src, args.out, args.split_dir, args.work, quiet=not args.verbose)
            if args.command == "pdf" or not args.no_pdf:
                build_pdfs(
                    args.src,
                    args.split_dir,
                    args.work,
                    args.print_dir,
                    args.pdf_dir,
                    args.frameworks,
                    quiet=not args.verbose,
                )
    except BookError as err:
        print(f"book: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
