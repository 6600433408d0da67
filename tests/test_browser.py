"""The HTML book in a real browser: Debian's Chromium, headless, driven by Playwright.

Checks on every page: math is typeset by the book's own MathJax, images load, no request
leaves 127.0.0.1 and no script fails; axe-core finds no critical or serious accessibility
violation in the light or the dark theme; at 390 px nothing scrolls sideways and the
framework picker stays in reach. Choosing JAX in one tab group switches every group and the
next page; the framework picker does the same; the side-by-side view shows all four
frameworks on two pages and gives the tabs back; the picker, the side-by-side switch and the
tabs work from the keyboard; a copy button copies a cell's code and nothing else; search
finds a word of the scratch notebook; each framework's download fetches its notebook and, with a
repository configured, "Open in Colab" points at its edition on gh-pages.

``test_built_book`` checks ``build/html`` (made by ``make book``) and writes screenshots to
``build/screenshots/`` (each page at 1280 px per framework, dark, side by side, and at
390 px); ``test_fixture_book`` builds the small fixture chapter first, so the browser side is
tested even before the real notebooks exist.
"""

import os
import re
from contextlib import contextmanager
from urllib.parse import urljoin, urlsplit

import nbformat
import pytest
from test_book_convert import FIXTURE_CHAPTER, make_split

from d2l_shim import FRAMEWORK_INFO, FRAMEWORKS
from d2l_tools import book, chapter
from d2l_tools.chromium import ChromiumMissing, launch
from d2l_tools.envs import REPO
from d2l_tools.pdf import LOCAL_HOST, serve

AXE = REPO / "tools" / "browser-checks" / "node_modules" / "axe-core" / "axe.min.js"
TEX_LEFT_OVER = re.compile(r"\$|\\[()\[\]]|\\[A-Za-z]{2,}")
WAIT_MS = 15_000
WIDE, NARROW = 1280, 390
SERIOUS = ("critical", "serious")


# ---------------------------------------------------------------- launching


@contextmanager
def headless_chromium():
    """d2l_tools.chromium's browser; a missing one fails the test with what to install."""
    try:
        with launch() as browser:
            yield browser
    except ChromiumMissing as err:
        pytest.fail(str(err))


@pytest.fixture(scope="module")
def browser():
    with headless_chromium() as chromium:
        yield chromium


class Session:
    """A fresh browser context that records every request and refuses other hosts."""

    def __init__(self, browser, base_url, width=WIDE, color_scheme="light"):
        self.base_url = base_url
        self.context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=color_scheme)
        self.context.set_default_timeout(WAIT_MS)
        self.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url.rstrip("/"))
        self.requests, self.failures = [], []
        self.context.route("**/*", self._route)
        self.context.on("requestfinished", self._finished)
        self.context.on("requestfailed", self._failed)
        self.page = self.context.new_page()
        self.page_errors = []
        self.page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        self.page.on("console", self._console)

    def _route(self, route):
        self.requests.append(route.request.url)
        if urlsplit(route.request.url).hostname == LOCAL_HOST:
            route.continue_()
        else:
            route.abort()  # recorded above; the assertion names it

    def _console(self, message):
        # Errors a script logs without throwing; failed requests are reported by _finished.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.page_errors.append(f"console: {message.text}")

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
def session(browser, base_url, **options):
    s = Session(browser, base_url, **options)
    try:
        yield s
        s.assert_clean()
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


def panels_per_tab_set(page):
    """For every framework tab-set: the frameworks whose panel a reader sees."""
    return page.evaluate("""() => Array.from(document.querySelectorAll('.sd-tab-set'))
        .filter(set => set.querySelector(':scope > label[data-sync-group="framework"]'))
        .map(set => Array.from(set.querySelectorAll(':scope > .sd-tab-content'))
            .filter(panel => panel.checkVisibility())
            .map(panel => panel.previousElementSibling.getAttribute('data-sync-id')))""")


def switch_pressed(page):
    return page.get_attribute(".d2l-layout-switch", "aria-pressed")


def assert_side_by_side(page, frameworks):
    """Every tab-set shows all its frameworks' panels at once, named, without tab labels."""
    sets = panels_per_tab_set(page)
    assert sets and all(shown == list(frameworks) for shown in sets), (
        f"{page.url}: side by side shows {sets}, expected all of {list(frameworks)} in each group"
    )
    assert switch_pressed(page) == "true"
    hidden_labels = page.evaluate("""() => Array.from(document.querySelectorAll(
        '.sd-tab-label[data-sync-group="framework"]')).every(label => !label.checkVisibility())""")
    assert hidden_labels, f"{page.url}: tab labels still shown side by side"
    headings = page.evaluate("""() => Array.from(document.querySelector('.sd-tab-set')
        .querySelectorAll(':scope > .sd-tab-content > .d2l-panel-heading'))
        .filter(h => h.checkVisibility()).map(h => h.textContent.trim())""")
    labels = page.evaluate("""() => Array.from(document.querySelector('.sd-tab-set')
        .querySelectorAll(':scope > label')).map(l => l.textContent.trim())""")
    assert headings == labels, f"{page.url}: panels named {headings}, tabs were {labels}"


def panel_columns(page):
    """How many of the first tab-set's panels sit next to each other in its first row."""
    return page.evaluate("""() => {
        const panels = Array.from(document.querySelector('.sd-tab-set')
            .querySelectorAll(':scope > .sd-tab-content')).filter(p => p.checkVisibility());
        const top = panels[0].getBoundingClientRect().top;
        return panels.filter(p => Math.abs(p.getBoundingClientRect().top - top) < 1).length;
    }""")


def horizontal_overflow(page):
    """How far the page is wider than the window (0: nothing scrolls sideways), and the culprits."""
    return page.evaluate("""() => {
        const width = document.documentElement.clientWidth;
        const over = Math.max(document.documentElement.scrollWidth, document.body.scrollWidth) - width;
        const wide = over <= 0 ? [] : Array.from(document.querySelectorAll('body *'))
            .filter(el => el.checkVisibility() && el.getBoundingClientRect().right > width + 1)
            .filter(el => !el.parentElement.closest('pre, .highlight, mjx-container'))
            .slice(0, 5).map(el => el.tagName.toLowerCase() + '.' + (el.className.baseVal ?? el.className));
        return [over, wide];
    }""")


def accessibility_violations(page):
    """axe-core's critical and serious findings on the page: ['rule: help (where)', ...]."""
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run `make axe` (npm ci in tools/browser-checks)")
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(content=AXE.read_text(encoding="utf-8"))  # inline: no request at all
    found = page.evaluate("""async () => {
        const result = await axe.run(document, {resultTypes: ['violations']});
        return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            where: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")
    return [f"{v['id']} ({v['impact']}): {v['help']} at {v['where']}" for v in found if v["impact"] in SERIOUS]


def focus_by_tab(page, selector, presses=120):
    """Press Tab until the focused element matches ``selector``; fails if it never does."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate("sel => document.activeElement && document.activeElement.matches(sel)", selector):
            return
    pytest.fail(f"{page.url}: {presses} presses of Tab never reached {selector}")


def code_cell_sources(notebook_path):
    return [cell.source for cell in nbformat.read(notebook_path, as_version=4).cells if cell.cell_type == "code"]


# ---------------------------------------------------------------- the whole check


def check_book(browser, html_dir, notebook_pages, sources, screenshots=None):
    """``sources``: the code cells' sources of the first notebook page, for the copy button."""
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
                f"search for {unique[0]!r} did not find the scratch page: {results}"
            )

        with session(browser, base_url) as s:
            check_side_by_side(s, first, second, screenshots)
        with session(browser, base_url) as s:
            check_keyboard(s, first)
        with session(browser, base_url) as s:
            check_copy_button(s, first, sources)
        for theme in ("light", "dark"):
            with session(browser, base_url, color_scheme=theme) as s:
                check_accessibility(s, pages, theme, screenshots)
        with session(browser, base_url, width=NARROW) as s:
            check_narrow_screen(s, pages, first, screenshots)


def check_side_by_side(s, first, second, screenshots):
    """On across two pages, a grid on a wide screen; off gives the reader's tabs back."""
    page = s.open(first + "?framework=jax")
    frameworks = page.evaluate("""() => Array.from(document.querySelector('.sd-tab-set')
        .querySelectorAll(':scope > label')).map(l => l.dataset.syncId)""")
    assert switch_pressed(page) == "false" and page.is_visible(".d2l-layout-switch")
    page.locator(".d2l-layout-switch").click()
    assert_side_by_side(page, frameworks)
    assert panel_columns(page) >= 2, f"{first}: at {WIDE} px the panels are not side by side"
    assert horizontal_overflow(page)[0] <= 0, f"{first}: side by side scrolls sideways"
    if screenshots is not None:
        take_screenshot(page, screenshots / f"{page_slug(first)}-side-by-side.png")
    page.locator("a.right-next").click()
    page.wait_for_url("**/" + second)
    assert_side_by_side(page, frameworks)  # the choice persists across pages
    page.locator(".d2l-layout-switch").click()
    assert switch_pressed(page) == "false"
    assert_on_framework(page, "jax")  # tabs again, on the reader's framework
    page.locator("a.left-prev").click()
    page.wait_for_url("**/" + first)
    assert_on_framework(page, "jax")
    assert switch_pressed(page) == "false"


def check_keyboard(s, first):
    """The picker, the side-by-side switch and the tabs, from the keyboard alone."""
    page = s.open(first)
    assert_on_framework(page, "pytorch")
    focus_by_tab(page, '.d2l-picker-choice[data-framework="mxnet"]')
    page.keyboard.press("Enter")
    assert_on_framework(page, "mxnet")
    focus_by_tab(page, ".d2l-layout-switch")
    page.keyboard.press("Space")
    assert switch_pressed(page) == "true" and panel_columns(page) >= 2
    page.keyboard.press("Enter")
    assert switch_pressed(page) == "false"
    assert_on_framework(page, "mxnet")
    focus_by_tab(page, ".sd-tab-set > input")  # Tab lands on the group's chosen tab
    page.keyboard.press("ArrowRight")  # the next framework, in every group
    frameworks = page.evaluate("""() => Array.from(document.querySelector('.sd-tab-set')
        .querySelectorAll(':scope > label')).map(l => l.dataset.syncId)""")
    assert_on_framework(page, frameworks[frameworks.index("mxnet") + 1])


def check_copy_button(s, first, sources):
    """The copy button of a code cell puts exactly that cell's code on the clipboard."""
    page = s.open(first)
    cell = page.locator(".sd-tab-content:visible div.highlight-ipython3 pre").first
    shown = cell.inner_text().strip("\n")
    cell.hover()
    page.locator(".sd-tab-content:visible div.highlight-ipython3 button.copybtn").first.click()
    copied = page.evaluate("() => navigator.clipboard.readText()").strip("\n")
    assert copied == shown, f"{first}: the copy button copied {copied!r}, the cell shows {shown!r}"
    assert any(copied in source for source in sources), (
        f"{first}: the copied text is no notebook cell's code: {copied!r}"
    )
    outputs = page.locator(".sd-tab-content:visible div.d2l-output pre").all_inner_texts()
    assert outputs and not any(text.strip() and text.strip() in copied for text in outputs)
    assert page.locator("div.d2l-output button.copybtn").count() == 0, "outputs have copy buttons"


def check_accessibility(s, pages, theme, screenshots):
    """axe-core on every page in ``theme``: no critical or serious violation."""
    found = {}
    for rel in pages:
        page = s.open(rel)
        assert page.evaluate("() => document.documentElement.dataset.theme") == theme
        assert_math_typeset(page)
        violations = accessibility_violations(page)
        if violations:
            found[rel] = violations
        if screenshots is not None and theme == "dark":
            take_screenshot(page, screenshots / f"{page_slug(rel)}-dark.png")
    assert not found, f"axe-core ({theme} theme): {found}"


def check_narrow_screen(s, pages, first, screenshots):
    """At 390 px no page scrolls sideways, and the picker is on screen and usable."""
    for rel in pages:
        page = s.open(rel)
        assert_math_typeset(page)
        over, wide = horizontal_overflow(page)
        assert over <= 0, f"{rel}: at {NARROW} px the page is {over} px too wide: {wide}"
        page.evaluate("() => window.scrollTo(0, document.body.scrollHeight / 2)")
        choice = page.locator('.d2l-picker-choice[data-framework="jax"]')
        box = choice.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= NARROW and box["y"] >= 0, (
            f"{rel}: the picker is out of reach at {NARROW} px: {box}"
        )
        if screenshots is not None:
            take_screenshot(page, screenshots / f"{page_slug(rel)}-{NARROW}.png")
    page = s.open(first)
    page.locator('.d2l-picker-choice[data-framework="jax"]').click()
    assert_on_framework(page, "jax")
    page.locator(".d2l-layout-switch").click()
    assert panel_columns(page) == 1, f"{first}: side by side is not stacked at {NARROW} px"
    assert horizontal_overflow(page)[0] <= 0, f"{first}: side by side scrolls sideways at {NARROW} px"


def page_slug(rel):
    return "home" if rel == "index.html" else rel[: -len(".html")].replace("/", "-")


def take_screenshot(page, path):
    """The page as a reader first sees it, scrolled to its first code tabs if it has any."""
    page.evaluate("""() => {
        const tabs = document.querySelector('.sd-tab-set');
        window.scrollTo(0, tabs ? tabs.getBoundingClientRect().top + window.scrollY - 320 : 0);
    }""")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    page.screenshot(path=str(tmp))
    os.replace(tmp, path)


# ---------------------------------------------------------------- the tests


def check_notebook_links(browser, html_dir, rel, repository):
    """Each framework's download link fetches its notebook; each Colab link names its edition."""
    with serve(html_dir) as base_url, session(browser, base_url) as s:
        page = s.open(rel)
        links = page.locator(".d2l-downloads a")
        downloads = {
            a.inner_text().strip(): a.get_attribute("href")
            for a in links.all()
            if a.get_attribute("href").endswith(".ipynb") and "colab" not in a.get_attribute("href")
        }
        name = rel.rsplit("/", 1)[-1][: -len(".html")]
        for fw in FRAMEWORKS:
            label = FRAMEWORK_INFO[fw].label
            assert downloads.get(label, "").endswith(f"/{name}-{fw}.ipynb"), f"{rel}: {label} download: {downloads}"
            response = page.request.get(urljoin(page.url, downloads[label]))
            assert response.ok and response.body() == (html_dir / urljoin(rel, downloads[label])).read_bytes()
        colab = {
            a.inner_text().strip(): a.get_attribute("href")
            for a in links.all()
            if "colab.research.google.com" in a.get_attribute("href")
        }
        expected = {
            FRAMEWORK_INFO[fw].label: f"https://colab.research.google.com/github/{repository}/blob/gh-pages/"
            f"notebooks/{fw}/chapter_mlp/{name}.ipynb"
            for fw in FRAMEWORKS
        }
        assert colab == expected
        assert page.get_by_text("Open in Colab").is_visible()


def test_fixture_book(browser, tmp_path, monkeypatch):
    monkeypatch.setenv("D2L_REPOSITORY", "someone/mlp-book")  # Colab links; test_book_convert builds without
    make_split(tmp_path / "split", FIXTURE_CHAPTER)
    book.build(FIXTURE_CHAPTER, tmp_path / "html", tmp_path / "split", tmp_path / "src")
    check_notebook_links(browser, tmp_path / "html", "chapter_mlp/mlp.html", "someone/mlp-book")
    check_book(browser, tmp_path / "html", ["mlp", "mlp-scratch"], code_cell_sources(FIXTURE_CHAPTER / "mlp.ipynb"))


def test_built_book(browser):
    html_dir = REPO / "build" / "html"
    notebooks = chapter.notebooks()
    pages = [path.stem for path in notebooks]
    expected = [html_dir / "chapter_mlp" / f"{name}.html" for name in pages]
    missing = [str(path.relative_to(REPO)) for path in [html_dir / "index.html"] + expected if not path.exists()]
    if missing:
        pytest.fail(f"the built book lacks {', '.join(missing)}: run `make book` first")
    # what `du -s` counts (whole blocks), under the 12 MB the book may weigh
    disk = sum(path.stat().st_blocks * 512 for path in html_dir.rglob("*"))
    assert disk < 12_000_000, f"build/html takes {disk / 1e6:.1f} MB on disk, more than 12 MB"
    check_book(browser, html_dir, pages, code_cell_sources(notebooks[0]), screenshots=REPO / "build" / "screenshots")
