"""Print the book to one PDF per framework (``make pdf``).

    python -m d2l_tools book pdf [--frameworks jax,pytorch] [--pdf-dir build/pdf]

The book's own pages, printed by the headless Chromium that the browser test uses: Sphinx's
``singlehtml`` builder puts the whole chapter on one page (``build/print/``), which is opened
once per framework with ``?framework=<name>`` and printed. The print style sheet
(``book/_static/d2l-book.css``) leaves out the tab labels, the other frameworks' tabs, the
framework bar and the side bars, and wraps long code lines instead of cutting them off. A
contents list opens the PDF, every section is a bookmark (written with pypdf), the footer
numbers the pages, and the PDF is tagged (accessible). Math is typeset by the book's MathJax
and the figures are the pages' SVGs.

Why Chromium and not Sphinx's LaTeX builder: the browser is already installed for the tests
(the LaTeX route needs a TeX distribution from Debian, hundreds of megabytes, and an SVG
converter for every figure the notebooks draw), and the PDF shows exactly what the HTML book
shows, math and figures included, in seconds.
"""

import functools
import http.server
import logging
import os
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from d2l_shim import FRAMEWORK_INFO, FRAMEWORKS
from d2l_tools import chromium as browsers
from d2l_tools.envs import REPO

PRINT_DIR = REPO / "build" / "print"
PDF_DIR = REPO / "build" / "pdf"
LOCAL_HOST = "127.0.0.1"
WAIT_MS = 60_000
PAGE_MARGIN = {"top": "16mm", "bottom": "16mm", "left": "14mm", "right": "14mm"}
# Chromium draws these in the page margins; its own styles are not applied, so font sizes are set here.
HEADER = (
    '<div style="font-size:8px;width:100%;margin:0 14mm;color:#555;display:flex;'
    'justify-content:space-between"><span class="title"></span><span>{edition}</span></div>'
)
FOOTER = (
    '<div style="font-size:8px;width:100%;text-align:center;color:#555">'
    '<span class="pageNumber"></span> / <span class="totalPages"></span></div>'
)


class PdfError(Exception):
    """The PDFs cannot be printed; the message says what is wrong and what to do."""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextmanager
def serve(directory):
    """Serve ``directory`` on 127.0.0.1 at a free port; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer((LOCAL_HOST, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOCAL_HOST}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def chromium(executable=browsers.CHROMIUM):
    """The headless browser of d2l_tools.chromium; a missing one is a PdfError."""
    try:
        with browsers.launch(executable) as browser:
            yield browser
    except browsers.ChromiumMissing as err:
        raise PdfError(str(err)) from None


def wait_until_rendered(page):
    """Math typeset, images decoded and web fonts loaded: what a reader sees once the page settles."""
    page.wait_for_load_state("load")
    page.evaluate("""async () => {
        if (document.querySelector('.math')) {
            while (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) {
                await new Promise(done => setTimeout(done, 50));
            }
            await MathJax.startup.promise;
        }
        await Promise.all(Array.from(document.images).map(img => img.decode().catch(() => null)));
        await document.fonts.ready;
    }""")


# Run on the page before printing: open every dropdown (hidden code is printed too), give the
# sections that share an id across pages (every "Summary") ids of their own, and list the whole
# chapter's sections, with links, where the theme lists only the first page's. Returns the
# listed headings, [{level, title, id}], for the PDF's bookmarks.
PREPARE_PRINT = """() => {
    document.querySelectorAll('details').forEach(details => { details.open = true; });
    const article = document.querySelector('article.bd-article');
    const seen = new Map();
    for (const section of article.querySelectorAll('section[id]')) {
        const count = (seen.get(section.id) || 0) + 1;
        seen.set(section.id, count);
        if (count > 1) section.id = `${section.id}-${count}`;
    }
    const headings = Array.from(article.querySelectorAll('h2, h3, h4, h5'))
        .filter(h => h.parentElement.matches('section[id]'));
    const top = Math.min(...headings.map(h => Number(h.tagName[1])));
    const nav = document.createElement('nav');
    nav.className = 'd2l-print-contents';
    nav.setAttribute('aria-label', 'Contents');
    const title = document.createElement('h2');
    title.textContent = 'Contents';
    const list = document.createElement('ul');
    const listed = [];
    for (const heading of headings) {
        const text = heading.cloneNode(true);
        text.querySelectorAll('.headerlink').forEach(el => el.remove());
        const entry = {level: Number(heading.tagName[1]) - top, title: text.textContent.trim(),
                       id: heading.parentElement.id};
        listed.push(entry);
        const link = document.createElement('a');
        link.href = '#' + entry.id;
        link.textContent = entry.title;
        const item = document.createElement('li');
        item.className = 'd2l-contents-level-' + entry.level;
        item.append(link);
        list.append(item);
    }
    nav.append(title, list);
    const themeList = document.querySelector('#jb-print-toc');
    if (themeList) themeList.replaceWith(nav); else article.prepend(nav);
    return listed;
}"""


def add_bookmarks(path, headings):
    """Bookmarks for ``headings`` ([{level, title, id}]), each opening the page of its section.

    Chromium's own outline (page.pdf(outline=True)) joins a heading's wrapped lines without a
    space and now and then repeats a title; this one uses the headings' text as written. The
    contents list links every section, so each has a named destination in the PDF.
    """
    from pypdf import PdfReader, PdfWriter

    # pypdf notes that Chromium's trailer undercounts the objects; harmless, and not the reader's concern.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    reader = PdfReader(path)
    # Chromium writes the destinations as PDF names, which pypdf gives with their leading "/".
    destinations = {name.lstrip("/"): dest for name, dest in reader.named_destinations.items()}
    missing = [h["id"] for h in headings if h["id"] not in destinations]
    if missing:
        raise PdfError(f"{path}: no destination for the sections {missing}; the contents list links them")
    writer = PdfWriter(clone_from=reader)
    parents = []  # parents[level]: the last bookmark at that level
    for heading in headings:
        page = reader.get_destination_page_number(destinations[heading["id"]])
        parent = parents[heading["level"] - 1] if 0 < heading["level"] <= len(parents) else None
        item = writer.add_outline_item(heading["title"], page, parent=parent)
        parents[heading["level"] :] = [item]
    writer.page_mode = "/UseOutlines"  # viewers open with the bookmarks shown
    writer.write(path)


def print_pdf(browser, url, framework, path):
    """Print ``url`` with ``framework``'s code to ``path`` (written whole or not at all)."""
    context = browser.new_context()
    context.set_default_timeout(WAIT_MS)
    foreign = []

    def local_only(route):
        if route.request.url.startswith(f"http://{LOCAL_HOST}:"):
            route.continue_()
        else:
            foreign.append(route.request.url)
            route.abort()

    context.route("**/*", local_only)
    try:
        page = context.new_page()
        page.goto(f"{url}?framework={framework}")
        wait_until_rendered(page)
        shown = page.evaluate("""() => Array.from(document.querySelectorAll(
            '.sd-tab-set > input:checked + label[data-sync-group="framework"]')).map(l => l.dataset.syncId)""")
        if set(shown) != {framework}:
            raise PdfError(
                f"{url}?framework={framework} shows the tabs of {sorted(set(shown))}, "
                f"not only {framework}: check book/_static/framework-picker.js"
            )
        headings = page.evaluate(PREPARE_PRINT)
        if foreign:
            raise PdfError(f"the print page asked other hosts for {foreign}")
        path.parent.mkdir(parents=True, exist_ok=True)
        # A name of this process's own beside the PDF: a second print never writes over it.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(tmp)
        try:
            page.pdf(
                path=str(tmp),
                format="A4",
                margin=PAGE_MARGIN,
                print_background=True,
                display_header_footer=True,
                tagged=True,
                header_template=HEADER.format(edition=f"{FRAMEWORK_INFO[framework].label} edition"),
                footer_template=FOOTER,
            )
            add_bookmarks(tmp, headings)
            os.chmod(tmp, 0o644)  # mkstemp makes it private
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    finally:
        context.close()


def print_book(print_dir=PRINT_DIR, out=PDF_DIR, frameworks=FRAMEWORKS):
    """One PDF per framework from the single-page book in ``print_dir``; returns the paths."""
    started = time.monotonic()
    index = Path(print_dir) / "index.html"
    if not index.is_file():
        raise PdfError(
            f"{index} is missing: the single-page book is built by `python -m d2l_tools book pdf` (or `make pdf`)"
        )
    paths = []
    with serve(print_dir) as base_url, chromium() as browser:
        for framework in frameworks:
            path = Path(out) / f"{framework}.pdf"
            print_pdf(browser, base_url + "index.html", framework, path)
            paths.append(path)
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in paths)
    print(f"pdf: {out}: {sizes} ({time.monotonic() - started:.1f} s)")
    return paths
