"""The HTML book in a real browser: Debian's Chromium, headless, driven by Playwright.

Checks on every page: math is typeset by the book's own MathJax, images load, and no
request leaves 127.0.0.1. Choosing JAX in one tab group switches every group and the next
page; the framework picker does the same; search finds a word of the scratch notebook.

``test_built_book`` checks ``build/html`` (made by ``make book``) and writes screenshots to
``build/screenshots/``; ``test_fixture_book`` builds the small fixture chapter first, so the
browser side is tested even before the real notebooks exist.
"""

import functools
import http.server
import os
import re
import threading
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from d2l_shim import FRAMEWORKS
from d2l_tools import book, chapter

from test_book_convert import FIXTURE_CHAPTER, make_split

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
]
LOCAL_HOST = "127.0.0.1"
TEX_LEFT_OVER = re.compile(r"\$|\\[()\[\]]|\\[A-Za-z]{2,}")
WAIT_MS = 15_000


# ---------------------------------------------------------------- serving and launching


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


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's browser with "
                    "`apt-get update && apt-get install -y chromium` (make setup does this)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # launch() gives a fresh temporary profile each time
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
        yield chromium
        chromium.close()


class Session:
    """A fresh browser context that records every request and refuses other hosts."""

    def __init__(self, browser, base_url):
        self.base_url = base_url
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.set_default_timeout(WAIT_MS)
        self.requests, self.failures = [], []
        self.context.route("**/*", self._route)
        self.context.on("requestfinished", self._finished)
        self.context.on("requestfailed", self._failed)
        self.page = self.context.new_page()
        self.page_errors = []
        self.page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    def _route(self, route):
        self.requests.append(route.request.url)
        if urlsplit(route.request.url).hostname == LOCAL_HOST:
            route.continue_()
        else:
            route.abort()  # recorded above; the assertion names it

    def _failed(self, request):
        # ERR_ABORTED: the browser dropped the request itself, e.g. a favicon when the test
        # moved on to the next page; real misses show up as HTTP errors in _finished.
        if "ERR_ABORTED" not in (request.failure or ""):
            self.failures.append(f"{request.url} ({request.failure})")

    def _finished(self, request):
        response = request.response()
        if response is not None and response.status >= 400:
            self.failures.append(f"{request.url} (HTTP {response.status})")

    def open(self, rel):
        self.page.goto(self.base_url + rel)
        self.page.wait_for_load_state("load")
        return self.page

    def assert_clean(self):
        foreign = [url for url in self.requests if urlsplit(url).hostname != LOCAL_HOST]
        assert not foreign, f"the book asked other hosts for: {foreign}"
        assert not self.failures, f"requests that failed: {self.failures}"
        assert not self.page_errors, f"JavaScript errors: {self.page_errors}"

    def close(self):
        self.context.close()


@contextmanager
def session(browser, base_url):
    s = Session(browser, base_url)
    try:
        yield s
    finally:
        s.close()


# ---------------------------------------------------------------- page checks


def selected_frameworks(page):
    """The sync id of the checked tab of every framework tab-set on the page."""
    return page.evaluate("""() => Array.from(document.querySelectorAll('.sd-tab-set')).map(set => {
        const input = Array.from(set.children).find(el => el.tagName === 'INPUT' && el.checked);
        const label = input && input.nextElementSibling;
        return label ? label.getAttribute('data-sync-group') + ':' + label.getAttribute('data-sync-id') : null;
    }).filter(x => x && x.startsWith('framework:')).map(x => x.slice('framework:'.length))""")


def visible_tab_frameworks(page):
    """The framework of every tab panel a reader can see."""
    return page.evaluate("""() => Array.from(document.querySelectorAll('.sd-tab-content'))
        .filter(panel => panel.checkVisibility())
        .map(panel => panel.previousElementSibling.getAttribute('data-sync-id'))""")


def pressed_choice(page):
    return page.evaluate("""() => Array.from(document.querySelectorAll('.d2l-picker-choice'))
        .filter(el => el.getAttribute('aria-pressed') === 'true').map(el => el.dataset.framework)""")


def assert_on_framework(page, framework):
    tabs = selected_frameworks(page)
    assert tabs and set(tabs) == {framework}, f"{page.url}: tab groups show {tabs}, expected all {framework}"
    assert set(visible_tab_frameworks(page)) == {framework}
    assert pressed_choice(page) == [framework], f"{page.url}: picker shows {pressed_choice(page)}"


def assert_math_typeset(page):
    """MathJax turned every math element into output and no TeX is left in the text."""
    count = page.evaluate("() => document.querySelectorAll('.math').length")
    if count == 0:
        return 0
    page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
    page.evaluate("() => MathJax.startup.promise")
    untypeset = page.evaluate("""() => Array.from(document.querySelectorAll('.math'))
        .filter(el => !el.querySelector('mjx-container')).map(el => el.textContent.slice(0, 80))""")
    assert not untypeset, f"{page.url}: math MathJax did not typeset: {untypeset}"
    prose = page.evaluate("""() => {
        const article = document.querySelector('article').cloneNode(true);
        article.querySelectorAll('pre, code, script, style, mjx-container').forEach(el => el.remove());
        return article.textContent;
    }""")
    left = sorted(set(TEX_LEFT_OVER.findall(prose)))
    assert not left, f"{page.url}: raw TeX in the page text: {left}"
    return count


def assert_images_loaded(page):
    """Every image has loaded with a size; returns how many a reader sees in the open tabs."""
    page.evaluate("""() => Promise.all(Array.from(document.images).map(img => img.complete ? null :
        new Promise(done => { img.addEventListener('load', done); img.addEventListener('error', done); })))""")
    broken = page.evaluate("""() => Array.from(document.images)
        .filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.src)""")
    assert not broken, f"{page.url}: images that did not load: {broken}"
    return page.evaluate("""() => Array.from(document.querySelectorAll('.sd-tab-content img'))
        .filter(img => img.checkVisibility()).length""")


def page_words(page):
    """Words of the article's paragraphs (no math, no code), lower-cased."""
    text = page.evaluate("""() => Array.from(document.querySelectorAll('article p')).map(p => {
        const copy = p.cloneNode(true);
        copy.querySelectorAll('.math, code, mjx-container').forEach(el => el.remove());
        return copy.textContent;
    }).join(' ')""")
    return set(re.findall(r"[a-z]{6,}", text.lower()))


def search_results(s, word):
    """Links the book's search page lists for ``word`` once it has finished."""
    page = s.open(f"search.html?q={word}")
    page.wait_for_selector("#search-results .search-summary")
    return page.eval_on_selector_all("#search-results ul.search li a", "links => links.map(a => a.href)")


# ---------------------------------------------------------------- the whole check


def check_book(browser, html_dir, notebook_pages, screenshots=None):
    pages = ["index.html", "chapter_mlp/index.html"] + [f"chapter_mlp/{n}.html" for n in notebook_pages]
    first, second = (f"chapter_mlp/{n}.html" for n in notebook_pages[:2])
    with serve(html_dir) as base_url:
        # every page, as a first-time reader (PyTorch) and as a JAX reader
        math_seen = 0
        for framework in ("pytorch", "jax"):
            with session(browser, base_url) as s:
                for rel in pages:
                    page = s.open(rel + ("" if framework == "pytorch" else f"?framework={framework}"))
                    if page.query_selector(".sd-tab-set"):
                        assert_on_framework(page, framework)
                    else:
                        assert pressed_choice(page) == [framework]
                    math_seen += assert_math_typeset(page)
                    assert_images_loaded(page)
                    if screenshots is not None:
                        take_screenshot(page, screenshots / f"{page_slug(rel)}-{framework}.png")
                s.assert_clean()
        assert math_seen > 0, "no page has math: the MathJax check proved nothing"

        # clicking JAX in one tab group switches all of them, the picker, and the next page
        with session(browser, base_url) as s:
            page = s.open(first)
            assert_on_framework(page, "pytorch")
            page.locator('.sd-tab-label[data-sync-group="framework"][data-sync-id="jax"]').first.click()
            assert_on_framework(page, "jax")
            assert assert_images_loaded(page) > 0, f"{first}: no image visible in the JAX tabs"
            page.locator("a.right-next").click()
            page.wait_for_url("**/" + second)
            assert_on_framework(page, "jax")

            # the picker bar drives the same mechanism, here and on the page before
            page.locator('.d2l-picker-choice[data-framework="tensorflow"]').click()
            assert_on_framework(page, "tensorflow")
            page.locator("a.left-prev").click()
            page.wait_for_url("**/" + first)
            assert_on_framework(page, "tensorflow")
            # a link with ?framework= wins over the stored choice
            page = s.open(first + "?framework=mxnet")
            assert_on_framework(page, "mxnet")
            page.locator('.d2l-picker-choice[data-framework="jax"]').press(" ")  # keyboard works too
            assert_on_framework(page, "jax")

            # search finds a word that only the scratch page uses
            scratch_words = page_words(s.open("chapter_mlp/mlp-scratch.html"))
            other_words = set()
            for rel in pages:
                if not rel.endswith("mlp-scratch.html"):
                    other_words |= page_words(s.open(rel))
            unique = sorted(scratch_words - other_words) or sorted(scratch_words)
            assert unique, "the scratch page has no prose to search for"
            results = search_results(s, unique[0])
            assert any(urlsplit(url).path.endswith("/chapter_mlp/mlp-scratch.html") for url in results), (
                f"search for {unique[0]!r} did not find the scratch page: {results}")
            s.assert_clean()


def page_slug(rel):
    return "home" if rel == "index.html" else rel[: -len(".html")].replace("/", "-")


def take_screenshot(page, path):
    """The page as a reader first sees it, scrolled to its first code tabs if it has any."""
    page.evaluate("""() => {
        const tabs = document.querySelector('.sd-tab-set');
        if (tabs) window.scrollTo(0, tabs.getBoundingClientRect().top + window.scrollY - 320);
    }""")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    page.screenshot(path=str(tmp))
    os.replace(tmp, path)


# ---------------------------------------------------------------- the tests


def test_fixture_book(browser, tmp_path):
    make_split(tmp_path / "split", FIXTURE_CHAPTER)
    book.build(FIXTURE_CHAPTER, tmp_path / "html", tmp_path / "split", tmp_path / "src")
    check_book(browser, tmp_path / "html", ["mlp", "mlp-scratch"])


def test_built_book(browser):
    html_dir = REPO / "build" / "html"
    pages = [path.stem for path in chapter.notebooks()]
    expected = [html_dir / "chapter_mlp" / f"{name}.html" for name in pages]
    missing = [str(path.relative_to(REPO)) for path in [html_dir / "index.html"] + expected if not path.exists()]
    if missing:
        pytest.fail(f"the built book lacks {', '.join(missing)}: run `make book` first")
    check_book(browser, html_dir, pages, screenshots=REPO / "build" / "screenshots")
