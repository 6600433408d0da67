"""Hostile notebook outputs cannot run script in the book (d2l_tools.sanitize, d2l_tools.book).

A corpus of known filter-evasion vectors, each a payload that records its name in
``top.__xss`` when it runs. The fast tests feed the sanitizer alone: nothing of an HTML
vector outside the allowlist survives (read back with Python's HTML parser), every hostile
SVG is refused, matplotlib's own SVGs pass unchanged. The browser test puts the HTML vectors
into a notebook's outputs, builds the fixture book with them, opens the page in Chromium and
checks that no payload ran, no request left for a payload's URL and the DOM the browser
built holds only allowed elements and attributes, while a table and a matplotlib figure still
show. Each vector is also opened unsanitized (the positive control): the ones that run raw
must be caught by the recorder, else the test proves nothing.
"""

import html
import html.parser
import io
import re
import shutil
import time
from urllib.parse import urlsplit

import nbformat
import pytest
from nbformat.v4 import new_markdown_cell, new_output
from playwright.sync_api import Error as PlaywrightError
from test_book_convert import FIXTURE_CHAPTER, code, make_split

from d2l_tools import book, sanitize
from d2l_tools.envs import REPO
from d2l_tools.pdf import serve

SETTLE_S = 0.6  # long enough for onerror, ontoggle, autofocus and a 0 s meta refresh to happen


def payload(name):
    """JavaScript that records ``name`` in the top window (in single quotes only)."""
    return f"(top.__xss=top.__xss||[]).push('{name}')"


def _srcdoc(name):
    return html.escape(f"<img src=x onerror=\"{payload(name)}\">", quote=True)


# name -> markup; {p} is the payload. Sources: the vectors the issue found (CDATA, an
# unterminated tag) and the classic families of sanitizer bypasses (case, encoding, nesting,
# foreign content, mutation through re-parsing, navigation, framing).
HTML_VECTORS = {
    "cdata": "<![CDATA[><script>{p}</script>]]>",
    "img-unterminated": '<img src=x onerror="{p}"',
    "img-onerror": "<img src=x onerror=\"{p}\">",
    "img-newline-attr": "<img\nsrc=x\nonerror=\"{p}\"\n>",
    "script": "<script>{p}</script>",
    "script-mixed-case": "<ScRiPt>{p}</sCrIpT>",
    "script-unterminated": "<script>{p}",
    "script-split": "<scr<script>ipt>{p}</scr</script>ipt>",
    "comment-breakout": "<!--<img src=\"--><img src=x onerror=\"{p}\">",
    "bogus-comment": "<? foo=\"><img src=x onerror=\"{p}\"> ?>",
    "svg-onload": "<svg onload=\"{p}\"></svg>",
    "svg-script": "<svg><script>{p}</script></svg>",
    "svg-a-xlink": "<svg><a xlink:href=\"javascript:{p}\"><text x=\"10\" y=\"20\">go</text></a></svg>",
    "svg-animate-href": (
        "<svg><a><animate attributeName=\"href\" values=\"javascript:{p}\"/><text x=\"10\" y=\"20\">go</text></a></svg>"
    ),
    "svg-set-onbegin": "<svg><set attributeName=\"x\" to=\"1\" onbegin=\"{p}\"/></svg>",
    "svg-foreignobject": "<svg><foreignObject><img src=x onerror=\"{p}\"></foreignObject></svg>",
    "math-style-mxss": "<math><mtext><table><mglyph><style><img src=x onerror=\"{p}\"></style></mglyph></table></mtext></math>",
    "math-href": "<math href=\"javascript:{p}\"><mi>x</mi></math>",
    "noscript-mxss": "<noscript><p title=\"</noscript><img src=x onerror=&quot;{p}&quot;>\"></noscript>",
    "style-tag": "<style>@import '/xss-style-import.css';</style><b>styled</b>",
    "style-attr-url": "<div style=\"background:url(/xss-style-url.png)\">x</div>",
    "iframe-srcdoc": "<iframe srcdoc=\"{srcdoc}\"></iframe>",
    "iframe-javascript": "<iframe src=\"javascript:{p}\"></iframe>",
    "iframe-data": "<iframe src=\"data:text/html,<script>{p}</script>\"></iframe>",
    "object-data": "<object data=\"javascript:{p}\"></object>",
    "embed-src": "<embed src=\"javascript:{p}\">",
    "meta-refresh": "<meta http-equiv=\"refresh\" content=\"0;url=/xss-meta-refresh\">",
    "base-href": "<base href=\"/xss-base/\"><img src=\"x.png\">",
    "link-stylesheet": "<link rel=\"stylesheet\" href=\"/xss-link.css\">",
    "form-action": "<form action=\"javascript:{p}\"><button>go</button></form>",
    "a-javascript": "<a href=\"javascript:{p}\">x</a>",
    "a-entity-javascript": "<a href=\"&#106;avascript:{p}\">x</a>",
    "a-padded-entity-javascript": "<a href=\"&#0000106&#0000097vascript:{p}\">x</a>",
    "a-tab-javascript": "<a href=\"jav&#x09;ascript:{p}\">x</a>",
    "a-data-url": "<a href=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">x</a>",
    "details-ontoggle": "<details open ontoggle=\"{p}\"><summary>s</summary></details>",
    "input-autofocus": "<input autofocus onfocus=\"{p}\">",
    "video-source-onerror": "<video><source onerror=\"{p}\"></video>",
    "body-onload": "<body onload=\"{p}\">",
    "table-attr-onmouseover": "<table><tr><td onmouseover=\"{p}\">cell</td></tr></table>",
    "template-content": "<template><img src=x onerror=\"{p}\"></template>",
    "textarea-breakout": "<textarea></textarea><img src=x onerror=\"{p}\">",
}

# Hostile SVG outputs; a published SVG is a file a reader may open on its own.
SVG_NS = 'xmlns="http://www.w3.org/2000/svg"'
XLINK_NS = 'xmlns:xlink="http://www.w3.org/1999/xlink"'
SVG_VECTORS = {
    "svg-file-onload": f"<svg {SVG_NS} onload=\"{{p}}\"><rect width=\"5\" height=\"5\"/></svg>",
    "svg-file-script": f"<svg {SVG_NS}><script>{{p}}</script></svg>",
    "svg-file-cdata-script": f"<svg {SVG_NS}><script><![CDATA[{{p}}]]></script></svg>",
    "svg-file-xlink-a": f"<svg {SVG_NS} {XLINK_NS}><a xlink:href=\"javascript:{{p}}\"><text y=\"9\">a</text></a></svg>",
    "svg-file-animate": (
        f"<svg {SVG_NS}><a><animate attributeName=\"href\" values=\"javascript:{{p}}\"/>"
        "<text y=\"9\">a</text></a></svg>"
    ),
    "svg-file-set-onbegin": f"<svg {SVG_NS}><set attributeName=\"x\" to=\"1\" onbegin=\"{{p}}\"/></svg>",
    "svg-file-foreignobject": (
        f"<svg {SVG_NS}><foreignObject width=\"9\" height=\"9\"><img "
        f"xmlns=\"http://www.w3.org/1999/xhtml\" src=\"x\" onerror=\"{{p}}\"/></foreignObject></svg>"
    ),
    "svg-file-image-onerror": f"<svg {SVG_NS}><image href=\"x.png\" onerror=\"{{p}}\"/></svg>",
    "svg-file-xhtml-script": (
        f"<svg {SVG_NS}><metadata><script xmlns=\"http://www.w3.org/1999/xhtml\">{{p}}</script></metadata></svg>"
    ),
    "svg-file-attlist-default": (f"<!DOCTYPE svg [<!ATTLIST svg onload CDATA \"{{p}}\">]><svg {SVG_NS}/>"),
    "svg-file-stylesheet-pi": f"<?xml-stylesheet href=\"/xss-pi.css\"?><svg {SVG_NS}/>",
    "svg-file-style-import": f"<svg {SVG_NS}><style>@import url(/xss-svg-import.css);</style></svg>",
    "svg-file-external-use": f"<svg {SVG_NS}><use href=\"/xss-use.svg#a\"/></svg>",
    "svg-file-fill-url": f"<svg {SVG_NS}><rect width=\"5\" height=\"5\" fill=\"url(/xss-fill.svg#g)\"/></svg>",
    "svg-file-entity": f"<!DOCTYPE svg [<!ENTITY e \"x\">]><svg {SVG_NS}><text>&e;</text></svg>",
    "svg-file-xhtml-root": "<html xmlns=\"http://www.w3.org/1999/xhtml\"><script>{p}</script></html>",
}


def html_vector(name):
    return HTML_VECTORS[name].format(p=payload(name), srcdoc=_srcdoc(name))


def svg_vector(name):
    return SVG_VECTORS[name].replace("{p}", payload(name))


def matplotlib_svgs():
    """SVGs as matplotlib's inline backend writes them: lines, a legend, text, a log axis, an image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figures = []
    for fonttype in ("path", "none"):  # text as glyph paths (matplotlib's default) or as <text>
        with plt.rc_context({"svg.fonttype": fonttype, "svg.hashsalt": "d2l"}):
            fig, (left, right) = plt.subplots(1, 2, figsize=(5, 2.5))
            x = np.linspace(-3, 3, 50)
            left.plot(x, np.maximum(x, 0), "m--", label="ReLU")
            left.plot(x, 1 / (1 + np.exp(-x)), label="sigmoid")
            left.set_yscale("symlog")
            left.set_xlabel("$x$")
            left.legend()
            left.grid()
            right.imshow(np.arange(64.0).reshape(8, 8))
            right.set_title("image")
            buffer = io.StringIO()
            fig.savefig(buffer, format="svg", bbox_inches="tight")
            plt.close(fig)
            figures.append(buffer.getvalue())
    return figures


class _Tags(html.parser.HTMLParser):
    """Every start tag and attribute of well-formed HTML (nh3's output is)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.other = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, [name for name, _ in attrs]))

    def handle_comment(self, data):
        self.other.append(f"<!--{data}-->")

    def handle_decl(self, decl):
        self.other.append(decl)

    def unknown_decl(self, data):
        self.other.append(data)

    def handle_pi(self, data):
        self.other.append(data)


def disallowed(markup):
    parser = _Tags()
    parser.feed(markup)
    parser.close()
    found = list(parser.other)
    for tag, names in parser.tags:
        if tag not in sanitize.HTML_TAGS:
            found.append(f"<{tag}>")
        allowed = sanitize.HTML_ATTRIBUTES["*"] | sanitize.HTML_ATTRIBUTES.get(tag, set())
        found += [f"{name}= on <{tag}>" for name in names if name not in allowed]
    return found


# ---------------------------------------------------------------- the sanitizer alone


@pytest.mark.parametrize("name", sorted(HTML_VECTORS))
def test_html_vector_leaves_nothing_outside_the_allowlist(name):
    markup = html_vector(name)
    clean, stripped = sanitize.sanitize_html(markup)
    assert not disallowed(clean), f"{name}: {clean!r}"
    assert not re.search(r"<\s*(script|iframe|svg|math|style|meta|base|link|form|object|embed)", clean, re.I)
    assert stripped, f"{name}: the sanitizer reported nothing taken out of {markup!r}"


def test_allowed_html_passes_with_nothing_reported():
    table = (
        '<table border="1" class="dataframe"><thead><tr><th colspan="2">a</th></tr></thead>'
        '<tbody><tr><td align="right">1</td><td>2 &lt; 3</td></tr></tbody></table>'
    )
    clean, stripped = sanitize.sanitize_html(table)
    assert stripped == [] and clean == table


@pytest.mark.parametrize("name", sorted(SVG_VECTORS))
def test_hostile_svg_is_refused(name):
    problems = sanitize.svg_problems(svg_vector(name))
    assert problems, f"{name} was accepted"


def test_matplotlib_and_chapter_figures_pass_the_svg_check_unchanged():
    figures = matplotlib_svgs()
    assert any("<text" in svg for svg in figures) and all("<image" in svg for svg in figures)
    for svg in figures:
        assert sanitize.svg_problems(svg) == []
    for path in sorted(REPO.glob("chapter_*/img/*.svg")) + sorted(FIXTURE_CHAPTER.glob("img/*.svg")):
        assert sanitize.svg_problems(path.read_bytes()) == [], path


# ---------------------------------------------------------------- in the browser


def chapter_with_vectors(root, svg):
    """The fixture chapter, its first page extended by one output per HTML vector and two good ones."""
    chapter = root / "chapter_mlp"
    shutil.copytree(FIXTURE_CHAPTER, chapter)
    nb = nbformat.read(chapter / "mlp.ipynb", as_version=4)
    nb.cells.append(new_markdown_cell("## Hostile outputs"))
    for name in HTML_VECTORS:
        nb.cells.append(code(f"show({name!r})", [new_output("display_data", data={"text/html": html_vector(name)})]))
    table = '<table border="1" class="dataframe"><tr><th>epoch</th><td>3</td></tr></table>'
    nb.cells.append(code("table()", [new_output("execute_result", data={"text/html": table, "text/plain": "t"})]))
    nb.cells.append(code("figure()", [new_output("display_data", data={"image/svg+xml": svg, "text/plain": "<F>"})]))
    nbformat.write(nb, chapter / "mlp.ipynb")
    return chapter


def visit(browser, url, requests):
    """Open ``url``; returns (names recorded in top.__xss, the page's final URL)."""
    context = browser.new_context()
    context.set_default_timeout(15_000)

    def route(r):
        requests.append(r.request.url)
        if urlsplit(r.request.url).hostname == "127.0.0.1":
            r.continue_()
        else:
            r.abort()

    context.route("**/*", route)
    try:
        page = context.new_page()
        page.goto(url)
        page.wait_for_load_state("load")
        time.sleep(SETTLE_S)
        for _ in range(3):  # a payload that navigates (meta refresh) replaces the page under us
            try:
                page.wait_for_load_state("load")
                return page.evaluate("() => window.__xss || []"), page.url, page
            except PlaywrightError:
                time.sleep(0.2)
        return ["(the page kept navigating)"], page.url, page
    except Exception:
        context.close()
        raise


BROWSER_DOM_CHECK = """() => {
    const allowed = new Set(ALLOWED_TAGS);
    const attrs = ALLOWED_ATTRIBUTES;
    const found = [];
    for (const box of document.querySelectorAll('.d2l-output-html')) {
        for (const el of box.querySelectorAll('*')) {
            const tag = el.tagName.toLowerCase();
            if (!allowed.has(tag) || el.namespaceURI !== 'http://www.w3.org/1999/xhtml') found.push('<' + tag + '>');
            for (const a of el.attributes) {
                if (!(attrs['*'].includes(a.name) || (attrs[tag] || []).includes(a.name))) found.push(a.name + '= on <' + tag + '>');
            }
        }
    }
    return found;
}"""


def test_no_payload_runs_in_the_built_page_and_good_outputs_show(tmp_path, monkeypatch, capsys):
    from test_browser import headless_chromium

    monkeypatch.setenv("D2L_REPOSITORY", "")
    svg = matplotlib_svgs()[1]
    chapter = chapter_with_vectors(tmp_path, svg)
    make_split(tmp_path / "split", chapter)
    html_dir = tmp_path / "html"
    book.build(chapter, html_dir, tmp_path / "split", tmp_path / "src")
    notes = capsys.readouterr().err
    assert notes.count("which the book does not publish") == len(HTML_VECTORS)  # each one named

    # positive controls: every vector unsanitized, each on a page of its own
    controls = html_dir / "controls"
    controls.mkdir()
    for name in HTML_VECTORS:
        (controls / f"{name}.html").write_text(
            f'<!doctype html><html><body><div class="d2l-output-html">\n{html_vector(name)}\n</div>'
            "<p>after</p></body></html>"
        )
    for name in SVG_VECTORS:
        (controls / f"{name}.svg").write_text(svg_vector(name))

    allowed_js = {
        "ALLOWED_TAGS": sorted(sanitize.HTML_TAGS | {"div"}),
        "ALLOWED_ATTRIBUTES": {k: sorted(v) for k, v in sanitize.HTML_ATTRIBUTES.items()},
    }
    check = BROWSER_DOM_CHECK
    for key, value in allowed_js.items():
        check = check.replace(key, repr(value).replace("'", '"'))

    with serve(html_dir) as base_url, headless_chromium() as browser:
        ran_raw = set()
        for name in HTML_VECTORS:
            requests = []
            recorded, final_url, page = visit(browser, f"{base_url}controls/{name}.html", requests)
            if recorded or any("xss-" in url for url in requests) or "xss-" in final_url:
                ran_raw.add(name)
            page.context.close()
        svg_ran_raw = set()
        for name in SVG_VECTORS:
            requests = []
            recorded, final_url, page = visit(browser, f"{base_url}controls/{name}.svg", requests)
            if recorded or any("xss-" in url for url in requests):
                svg_ran_raw.add(name)
            page.context.close()

        requests = []
        recorded, final_url, page = visit(browser, f"{base_url}chapter_mlp/mlp.html", requests)
        try:
            assert recorded == [], f"payloads ran in the book: {recorded}"
            assert final_url == f"{base_url}chapter_mlp/mlp.html", f"the page navigated to {final_url}"
            assert not [url for url in requests if "xss" in url], "payload requests left the page"
            assert page.evaluate(check) == [], "the browser built disallowed elements from the outputs"
            # nothing to click or hover is left either: no links, no handlers in the outputs
            assert page.locator(".d2l-output-html a, .d2l-output-html [onclick]").count() == 0
            # the good outputs: the table as a table, the figure loaded with a size
            assert page.locator(".d2l-output-html table.dataframe th").inner_text() == "epoch"
            figure = page.evaluate("""() => Array.from(document.images)
                .filter(img => img.src.endsWith('.svg') && img.closest('article') && img.complete
                        && img.naturalWidth > 0).map(img => img.src)""")
            published = [p for p in (html_dir / "_images").glob("*.svg") if p.read_text() == svg]
            assert published, "the matplotlib figure was not published byte for byte"
            assert any(url.endswith(published[0].name) for url in figure), f"figure not shown: {figure}"
        finally:
            page.context.close()

    print(
        f"ran unsanitized: {len(ran_raw)} of {len(HTML_VECTORS)} HTML, {len(svg_ran_raw)} of {len(SVG_VECTORS)} SVG: "
        f"{sorted(ran_raw | svg_ran_raw)}"
    )
    # the controls prove the recorder sees what runs: the two vectors and the classics
    must_run_raw = {
        "cdata",
        "img-unterminated",
        "img-onerror",
        "script",
        "script-mixed-case",
        "comment-breakout",
        "textarea-breakout",
        "svg-onload",
        "svg-script",
        "svg-foreignobject",
        "details-ontoggle",
        "input-autofocus",
        "iframe-srcdoc",
        "meta-refresh",
        "base-href",
        "link-stylesheet",
    }
    assert must_run_raw <= ran_raw, f"control payloads that did not run raw: {sorted(must_run_raw - ran_raw)}"
    assert {
        "svg-file-onload",
        "svg-file-script",
        "svg-file-cdata-script",
        "svg-file-foreignobject",
        "svg-file-xhtml-script",
        "svg-file-attlist-default",
        "svg-file-stylesheet-pi",
    } <= svg_ran_raw, f"SVG controls that ran raw: {sorted(svg_ran_raw)}"
    for name in svg_ran_raw:  # every SVG that can run something is refused by the check
        assert sanitize.svg_problems(svg_vector(name)), name
