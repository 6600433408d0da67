"""The notebook -> MyST converter of the HTML book (d2l_tools.book)."""

import hashlib
import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from d2l_shim import FRAMEWORKS
from d2l_tools import book

FIXTURE_CHAPTER = Path(__file__).parent / "fixtures" / "book" / "chapter_mlp"
LOCK_OWNER = book.LOCK_NAME + ".owner"
SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="20pt" height="10pt"><rect width="20" height="10"/></svg>\n'


def code(source, outputs=(), tags=(), sha="fresh"):
    """A code cell as `make notebooks` leaves it; ``sha=None``: never run, else a given hash."""
    cell = new_code_cell(source, outputs=list(outputs))
    if tags:
        cell.metadata["tags"] = list(tags)
    if sha == "fresh":
        sha = hashlib.sha256(source.encode()).hexdigest()
    if sha is not None:
        cell.metadata["d2l"] = {"source_sha256": sha}
    return cell


def stream(text, name="stdout"):
    return new_output("stream", name=name, text=text)


def notebook(*cells):
    return new_notebook(cells=list(cells))


def tab_sets(text):
    """[(options, [(label, sync, body), ...])] of the tab-sets in a generated page."""
    sets = []
    for match in re.finditer(r"^(:{4,})\{tab-set\}\n(.*?)^\1$", text, re.MULTILINE | re.DOTALL):
        items = re.findall(
            r"^(:{3,})\{tab-item\} ([^\n]+)\n:sync: (\w+)\n(.*?)^\1$", match.group(2), re.MULTILINE | re.DOTALL
        )
        sets.append((match.group(2).split("\n", 1)[0], [(label, sync, body) for _, label, sync, body in items]))
    return sets


def framework_group(label="x"):
    return [code(f"%%tab {fw}\nprint('{label} {fw}')", [stream(f"{label} out {fw}\n")]) for fw in FRAMEWORKS]


def test_tab_group_becomes_one_synced_tab_set_with_four_tabs_in_order():
    nb = notebook(
        new_markdown_cell("# Title"), *framework_group("first"), new_markdown_cell("text"), *framework_group("second")
    )
    page = book.convert_notebook(nb, "page")
    sets = tab_sets(page.text)
    assert len(sets) == 2
    for options, items in sets:
        assert options == ":sync-group: framework"
        assert [(label, sync) for label, sync, _ in items] == [
            ("PyTorch", "pytorch"),
            ("MXNet", "mxnet"),
            ("TensorFlow", "tensorflow"),
            ("JAX", "jax"),
        ]
    # each tab holds its own framework's code and output, and the %%tab line is gone
    for (_, items), label in zip(sets, ("first", "second")):
        for _, sync, body in items:
            assert f"print('{label} {sync}')" in body
            assert f"{label} out {sync}" in body
            assert "%%tab" not in body
            assert ":class: d2l-output" in body
            others = [fw for fw in FRAMEWORKS if fw != sync]
            assert not any(f"{label} out {fw}" in body for fw in others)


def test_cell_for_several_frameworks_appears_in_each_of_their_tabs_and_missing_ones_say_so():
    nb = notebook(code("%%tab pytorch\na = 1"), code("%%tab mxnet, jax\nb = 2", [stream("two\n")]))
    [(_, items)] = tab_sets(book.convert_notebook(nb, "page").text)
    bodies = {sync: body for _, sync, body in items}
    assert "a = 1" in bodies["pytorch"] and "b = 2" not in bodies["pytorch"]
    for fw in ("mxnet", "jax"):
        assert "b = 2" in bodies[fw] and "two" in bodies[fw]
    assert "No TensorFlow code in this step" in bodies["tensorflow"]


def test_shared_cells_and_tab_all_pass_through_outside_tabs_and_split_groups():
    nb = notebook(
        code("%%tab pytorch\np = 1"), code("%%tab all\nshared = 1", [stream("shared out\n")]), code("%%tab jax\nj = 1")
    )
    page = book.convert_notebook(nb, "page")
    sets = tab_sets(page.text)
    assert len(sets) == 2  # the shared cell ends the first group
    between = page.text.split("shared = 1")[0]
    assert between.count("{tab-set}") == 1
    assert "%%tab all" not in page.text
    assert "shared out" in page.text


def test_markdown_and_math_pass_through_and_notebook_links_point_to_pages():
    text = "Math $\\mathbf{x}^2$ and\n\n$$\\sum_i x_i$$\n\nSee [next](mlp-scratch.ipynb#part) and [ext](other.ipynb)."
    page = book.convert_notebook(notebook(new_markdown_cell(text)), "mlp", known_pages=["mlp", "mlp-scratch"])
    assert "Math $\\mathbf{x}^2$ and\n\n$$\\sum_i x_i$$" in page.text
    assert "[next](mlp-scratch.md#part)" in page.text
    assert "[ext](other.ipynb)" in page.text  # not a page of this book: left for Sphinx to report


def test_setup_cell_is_hidden_from_readers():
    nb = notebook(code("%load_ext d2l_shim.tab\n%matplotlib inline"), code("%%tab jax\n%matplotlib inline\nx = 1"))
    page = book.convert_notebook(nb, "page")
    assert "load_ext" not in page.text and "%matplotlib" not in page.text
    assert "x = 1" in page.text


def test_remove_cell_is_dropped_and_hide_input_output_are_dropdowns():
    nb = notebook(
        code("assert checks_pass()", [stream("checked\n")], tags=["remove-cell"]),
        code("draw()", [stream("drawn\n")], tags=["hide-input"]),
        code("log()", [stream("long log\n")], tags=["hide-output"]),
    )
    text = book.convert_notebook(nb, "page").text
    assert "checks_pass" not in text and "checked" not in text
    hidden_code = re.search(r"(:{3,})\{dropdown\} Show code\n(.*?)^\1$", text, re.MULTILINE | re.DOTALL)
    assert hidden_code and "draw()" in hidden_code.group(2) and "drawn" not in hidden_code.group(2)
    assert "drawn" in text
    hidden_out = re.search(r"(:{3,})\{dropdown\} Show output\n(.*?)^\1$", text, re.MULTILINE | re.DOTALL)
    assert hidden_out and "long log" in hidden_out.group(2) and "log()" not in hidden_out.group(2)


def test_svg_and_png_outputs_are_written_as_files_the_page_refers_to():
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    nb = notebook(
        code(
            "%%tab pytorch\nplot()",
            [
                new_output("display_data", data={"image/svg+xml": SVG, "text/plain": "<Figure>"}),
                new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"}),
            ],
        )
    )
    page = book.convert_notebook(nb, "mlp")
    svgs = [path for path in page.files if path.endswith(".svg")]
    pngs = [path for path in page.files if path.endswith(".png")]
    assert len(svgs) == 1 and len(pngs) == 1
    assert page.files[svgs[0]] == SVG.encode()  # kept as SVG, byte for byte
    assert page.files[pngs[0]][:8] == b"\x89PNG\r\n\x1a\n"
    for path in svgs + pngs:
        assert path.startswith("mlp_files/")
        assert f"{{image}} {path}" in page.text
    assert "<Figure>" not in page.text  # the image wins over its text form


def test_allowed_html_is_published_and_anything_else_is_stripped_or_shown_as_text():
    table = "<table border=\"1\" class=\"dataframe\"><tr><th>a</th><td>1</td></tr></table>"
    scripted = "<div><script>alert(1)</script>text</div>"
    nb = notebook(
        code("table", [new_output("execute_result", data={"text/html": table, "text/plain": "   a\n0  1"})]),
        code("widget", [new_output("execute_result", data={"text/html": scripted, "text/plain": "Widget()"})]),
        code("bare", [new_output("display_data", data={"text/html": '<b onclick="x()">bold</b><style>b{}</style>'})]),
    )
    page = book.convert_notebook(nb, "page", where="nb.ipynb")
    raw = re.findall(r"^```\{raw\} html\n(.*?)^```$", page.text, re.MULTILINE | re.DOTALL)
    # the table as the sanitizer writes it (an HTML5 parser adds the implied <tbody>)
    assert raw[0] == (
        '<div class="d2l-output-html">\n<table border="1" class="dataframe"><tbody>'
        "<tr><th>a</th><td>1</td></tr></tbody></table>\n</div>\n"
    )
    # a widget's script: its text/plain form instead, and the build says why
    assert "alert" not in page.text and "Widget()" in page.text
    assert raw[1] == '<div class="d2l-output-html">\n<b>bold</b>\n</div>\n'  # no text/plain: what is left
    assert len(raw) == 2
    assert len(page.notes) == 2
    assert "nb.ipynb: cell 1 ('widget')" in page.notes[0] and "<script>" in page.notes[0]
    assert "text/plain" in page.notes[0]
    assert "onclick=" in page.notes[1] and "<style>" in page.notes[1]


def test_an_svg_output_with_anything_but_drawing_stops_the_build_naming_the_cell():
    hostile = SVG.replace("<rect ", '<rect onclick="alert(1)" ')
    nb = notebook(
        new_markdown_cell("# T"),
        code(
            "%%tab jax\nplot()", [new_output("display_data", data={"image/svg+xml": hostile, "text/plain": "<Figure>"})]
        ),
    )
    with pytest.raises(book.BookError) as err:
        book.convert_notebook(nb, "mlp", where="chapter_mlp/mlp.ipynb")
    message = str(err.value)
    assert "chapter_mlp/mlp.ipynb: cell 1 ('%%tab jax')" in message
    assert "onclick= on <rect> is not allowed" in message


def test_an_svg_attachment_is_checked_like_an_output():
    cell = new_markdown_cell("![fig](attachment:fig.svg)")
    cell.attachments = {"fig.svg": {"image/svg+xml": SVG.replace("<rect", "<script>x()</script><rect")}}
    with pytest.raises(book.BookError, match=r"cell 0 .*attachment fig.svg.*<script> is not allowed"):
        book.convert_notebook(notebook(cell), "page")


def test_stream_output_is_cleaned_of_colour_codes_and_overwritten_progress():
    nb = notebook(code("train()", [stream("\x1b[32mok\x1b[0m\nepoch 1\repoch 2\repoch 3\ndone\n")]))
    text = book.convert_notebook(nb, "page").text
    assert "\x1b" not in text
    assert "ok\nepoch 3\ndone" in text and "epoch 1" not in text


def test_code_containing_backtick_fences_gets_a_longer_fence():
    nb = notebook(code('doc = """\n```\nnot the end\n```\n"""'))
    text = book.convert_notebook(nb, "page").text
    assert "````ipython3\n" in text and "\n````" in text


def test_error_output_fails_naming_notebook_and_cell():
    bad = code(
        "%%tab jax\n1 / 0", [new_output("error", ename="ZeroDivisionError", evalue="division by zero", traceback=[])]
    )
    nb = notebook(new_markdown_cell("# T"), code("ok = 1"), bad)
    with pytest.raises(book.BookError) as err:
        book.convert_notebook(nb, "mlp", where="chapter_mlp/mlp.ipynb")
    message = str(err.value)
    assert "chapter_mlp/mlp.ipynb: cell 2 ('%%tab jax')" in message
    assert "ZeroDivisionError" in message and "make notebooks" in message


def test_stale_or_never_run_cells_fail_and_fresh_ones_pass():
    source = "print(1)"
    fresh = hashlib.sha256(source.encode()).hexdigest()
    book.convert_notebook(notebook(code(source, [stream("1\n")], sha=fresh)), "page")
    stale = hashlib.sha256(b"print(2)").hexdigest()
    with pytest.raises(book.BookError, match=r"page.ipynb: cell 0 .*stale outputs.*make notebooks"):
        book.convert_notebook(notebook(code(source, [stream("1\n")], sha=stale)), "page")
    with pytest.raises(book.BookError, match=r"page.ipynb: cell 1 .*never run by `make notebooks`"):
        book.convert_notebook(notebook(new_markdown_cell("# T"), code(source, sha=None)), "page")


def test_a_failing_hidden_check_cell_also_stops_publication():
    failed = code(
        "assert ok()", [new_output("error", ename="AssertionError", evalue="", traceback=[])], tags=["remove-cell"]
    )
    with pytest.raises(book.BookError, match=r"cell 0 .*AssertionError"):
        book.convert_notebook(notebook(failed), "page")


def test_bad_tab_line_fails_with_the_cell_named():
    with pytest.raises(book.BookError, match=r"cell 0 .*unknown framework 'caffe'"):
        book.convert_notebook(notebook(code("%%tab caffe\nx = 1")), "page")


def test_download_links_sit_under_the_title():
    downloads = [("PyTorch", "_notebooks/mlp-pytorch.ipynb"), ("all", "_notebooks/mlp.ipynb")]
    nb = notebook(new_markdown_cell("# The Title\n\nIntro text."), code("x = 1"))
    text = book.convert_notebook(nb, "mlp", downloads=downloads).text
    title, rest = text.split("# The Title\n", 1)
    assert title == ""
    assert rest.index("{download}`PyTorch <_notebooks/mlp-pytorch.ipynb>`") < rest.index("Intro text.")


def test_colab_links_sit_under_the_downloads_only_when_a_repository_is_set():
    nb = notebook(new_markdown_cell("# The Title\n\nIntro text."), code("x = 1"))
    downloads = [("PyTorch", "_notebooks/mlp-pytorch.ipynb")]
    colab = book.colab_links("chapter_mlp", "mlp", repo="someone/mlp-book")
    assert [label for label, _ in colab] == ["PyTorch", "MXNet", "TensorFlow", "JAX"]
    assert dict(colab)["JAX"] == (
        "https://colab.research.google.com/github/someone/mlp-book/blob/gh-pages/notebooks/jax/chapter_mlp/mlp.ipynb"
    )
    text = book.convert_notebook(nb, "mlp", downloads=downloads, colab=colab).text
    line = re.search(r"^Open in Colab: (.*)$", text, re.MULTILINE).group(1)
    assert line.split(" · ") == [f"[{label}]({url})" for label, url in colab]
    assert text.index("Download this notebook") < text.index("Open in Colab") < text.index("Intro text.")
    assert book.colab_links("chapter_mlp", "mlp", repo="") is None
    assert "Colab" not in book.convert_notebook(nb, "mlp", downloads=downloads, colab=None).text


def test_colab_links_follow_the_repository_setting(monkeypatch):
    monkeypatch.delenv("D2L_REPOSITORY", raising=False)
    monkeypatch.delenv("GITHUB_REPOSITORY", raising=False)
    assert book.colab_links("chapter_mlp", "mlp") is None
    monkeypatch.setenv("GITHUB_REPOSITORY", "ci/book")
    assert "/github/ci/book/blob/gh-pages/" in book.colab_links("chapter_mlp", "mlp")[0][1]
    monkeypatch.setenv("D2L_REPOSITORY", "")  # set empty: none, even on GitHub Actions
    assert book.colab_links("chapter_mlp", "mlp") is None
    monkeypatch.setenv("D2L_REPOSITORY", "not a repository")
    with pytest.raises(book.BookError, match="owner/name"):
        book.colab_links("chapter_mlp", "mlp")


def test_the_print_edition_drops_tabbed_only_prose_downloads_and_links():
    prose = "Read on. <!-- tabbed-only -->Each tab runs in its own kernel.<!-- /tabbed-only --> Then train."
    nb = notebook(new_markdown_cell(f"# T\n\n{prose}"), code("x = 1"))
    web = book.convert_notebook(
        nb, "mlp", downloads=[("JAX", "_notebooks/mlp-jax.ipynb")], colab=[("JAX", "https://colab.example/x")]
    ).text
    assert "Each tab runs in its own kernel." in web and "Open in Colab" in web
    printed = book.convert_notebook(nb, "mlp", printed=True).text
    assert "kernel" not in printed and "tabbed-only" not in printed
    assert "Read on. Then train." in printed
    assert "Download" not in printed and "Colab" not in printed


def test_a_hidden_input_is_a_dropdown_on_the_web_and_left_out_of_the_print_edition():
    nb = notebook(code("draw_the_graph()", [stream("the figure\n")], tags=["hide-input"]))
    web = book.convert_notebook(nb, "page").text
    assert "Show code" in web and "draw_the_graph()" in web and "the figure" in web
    printed = book.convert_notebook(nb, "page", printed=True).text
    assert "draw_the_graph()" not in printed and "Show code" not in printed and "the figure" in printed


def test_chapter_index_links_point_at_pages():
    text = book.chapter_index("# Chapter\n\nSee [intro](mlp.ipynb).\n\n```{toctree}\nmlp\n```\n", ["mlp"])
    assert "[intro](mlp.md)" in text and text.endswith("```{toctree}\nmlp\n```\n")


def make_split(split_dir, chapter_dir, skip=()):
    for fw in FRAMEWORKS:
        target = Path(split_dir) / fw / Path(chapter_dir).name
        target.mkdir(parents=True, exist_ok=True)
        for path in Path(chapter_dir).glob("*.ipynb"):
            if (fw, path.stem) not in skip:
                # stand-ins: the converter only copies split notebooks, it never reads them
                (target / path.name).write_text(f'{{"stand-in": "{fw}"}}')


def test_missing_split_notebooks_fail_with_what_to_run(tmp_path):
    make_split(tmp_path / "split", FIXTURE_CHAPTER, skip={("jax", "mlp-scratch")})
    with pytest.raises(book.BookError) as err:
        book.source_tree(FIXTURE_CHAPTER, tmp_path / "split")
    message = str(err.value)
    assert str(tmp_path / "split" / "jax" / "chapter_mlp" / "mlp-scratch.ipynb") in message
    assert "python -m d2l_tools split" in message


def test_source_tree_holds_pages_book_config_and_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("D2L_REPOSITORY", "")
    make_split(tmp_path / "split", FIXTURE_CHAPTER)
    tree = book.source_tree(FIXTURE_CHAPTER, tmp_path / "split")
    for rel in (
        "conf.py",
        "index.md",
        "_templates/framework-picker.html",
        "_static/framework-picker.js",
        "chapter_mlp/index.md",
        "chapter_mlp/mlp.md",
        "chapter_mlp/mlp-scratch.md",
    ):
        assert rel in tree
    assert tree["chapter_mlp/_notebooks/mlp.ipynb"] == (FIXTURE_CHAPTER / "mlp.ipynb").read_bytes()
    # the chapter's figures come along, so img/... links in the text keep working
    assert tree["chapter_mlp/img/tiny-mlp.svg"] == (FIXTURE_CHAPTER / "img" / "tiny-mlp.svg").read_bytes()
    assert tree["chapter_mlp/_notebooks/mlp-jax.ipynb"] == b'{"stand-in": "jax"}'
    assert "{download}`JAX <_notebooks/mlp-jax.ipynb>`" in tree["chapter_mlp/mlp.md"].decode()
    assert "Colab" not in tree["chapter_mlp/mlp.md"].decode()
    # the PDFs' tree: the same pages, no downloads
    printed = book.source_tree(FIXTURE_CHAPTER, tmp_path / "split", printed=True)
    assert "chapter_mlp/mlp.md" in printed and not [rel for rel in printed if "_notebooks" in rel]
    assert "{download}" not in printed["chapter_mlp/mlp.md"].decode()


def test_a_hostile_figure_in_img_stops_the_build(tmp_path):
    chapter = tmp_path / "chapter_mlp"
    shutil.copytree(FIXTURE_CHAPTER, chapter)
    figure = chapter / "img" / "tiny-mlp.svg"
    figure.write_text(figure.read_text().replace("<g ", '<g onmouseover="alert(1)" ', 1))
    make_split(tmp_path / "split", chapter)
    with pytest.raises(book.BookError, match=r"tiny-mlp.svg: .*onmouseover= on <g> is not allowed"):
        book.source_tree(chapter, tmp_path / "split")


def test_write_tree_rewrites_only_changes_and_removes_leftovers(tmp_path):
    assert book.write_tree(tmp_path, {"a.md": b"one", "sub/b.md": b"two", "old/c.md": b"x"}) == 3
    past = 1_000_000_000
    os.utime(tmp_path / "a.md", (past, past))
    assert book.write_tree(tmp_path, {"a.md": b"one", "sub/b.md": b"2"}) == 1
    assert (tmp_path / "a.md").stat().st_mtime == past  # unchanged: Sphinx will not re-read it
    assert (tmp_path / "sub/b.md").read_bytes() == b"2"
    assert not (tmp_path / "old").exists()
    assert not list(tmp_path.rglob("*.tmp"))


def test_external_assets_are_found_but_plain_links_are_fine(tmp_path):
    (tmp_path / "page.html").write_text(
        '<script src="https://cdn.example.org/mathjax.js"></script>'
        '<link rel="stylesheet" href="//fonts.example.org/css">'
        '<link rel="canonical" href="https://example.org/page.html">'
        '<a href="https://www.sphinx-doc.org/">Sphinx</a><script src="_static/local.js"></script>'
    )
    (tmp_path / "style.css").write_text("@font-face { src: url('https://fonts.example.org/a.woff2'); }")
    found = sorted(url for _, url in book.external_assets(tmp_path))
    assert found == [
        "//fonts.example.org/css",
        "https://cdn.example.org/mathjax.js",
        "https://fonts.example.org/a.woff2",
    ]


@pytest.fixture(scope="module")
def fixture_book(tmp_path_factory):
    root = tmp_path_factory.mktemp("book")
    make_split(root / "split", FIXTURE_CHAPTER)
    with pytest.MonkeyPatch.context() as env:  # no repository: no Colab links (test_browser has them)
        env.setenv("D2L_REPOSITORY", "")
        book.build(FIXTURE_CHAPTER, root / "html", root / "split", root / "src")
    return root


def test_fixture_book_builds_with_tabs_images_downloads_and_no_checks(fixture_book):
    html_dir = fixture_book / "html"
    page = (html_dir / "chapter_mlp" / "mlp.html").read_text()
    labels = re.findall(r'class="sd-tab-label" data-sync-group="framework" data-sync-id="(\w+)"', page)
    assert labels == list(FRAMEWORKS) * 2
    images = re.findall(r'<img [^>]*src="\.\./(_images/[^"]+\.svg)"', page)
    assert len(images) >= 5 and all((html_dir / src).is_file() for src in images)
    assert any(Path(src).name == "tiny-mlp.svg" for src in images)  # the figure from img/
    assert "assert len(x) == 2" not in page  # remove-cell
    assert "%%tab" not in page and "load_ext" not in page
    downloads = re.findall(r'href="\.\./(_downloads/[^"]+\.ipynb)"', page)
    names = sorted(Path(d).name for d in downloads)
    assert names == sorted([f"mlp-{fw}.ipynb" for fw in FRAMEWORKS] + ["mlp.ipynb"])
    assert all((html_dir / d).is_file() for d in downloads)
    assert "colab.research.google.com" not in page and "Open in Colab" not in page
    assert not (fixture_book / LOCK_OWNER).exists()  # the build let go of its lock
    assert 'class="d2l-picker"' in page
    assert book.external_assets(html_dir) == []
    assert (html_dir / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert "_static/mathjax/tex-chtml.js" in page
    assert 'class="copybtn' not in page and "copybutton.js" in page  # buttons are added by the script
    assert "fontawesome.js" not in page and not list(html_dir.rglob("*.map"))
    assert book.tree_size(html_dir) < 6 * 2**20


def test_rebuild_without_changes_rewrites_no_source(fixture_book, capsys, monkeypatch):
    monkeypatch.setenv("D2L_REPOSITORY", "")
    book.build(FIXTURE_CHAPTER, fixture_book / "html", fixture_book / "split", fixture_book / "src")
    assert "(0 of " in capsys.readouterr().out


def test_a_tab_group_that_lost_a_framework_stops_the_build_with_the_checks_words(tmp_path):
    from d2l_tools.checks import tab_group_problems

    chapter = tmp_path / "chapter_mlp"
    shutil.copytree(FIXTURE_CHAPTER, chapter)
    nb = nbformat.read(chapter / "mlp.ipynb", as_version=4)
    mxnet = next(i for i, cell in enumerate(nb.cells) if cell.source.startswith("%%tab mxnet"))
    del nb.cells[mxnet]
    nbformat.write(nb, chapter / "mlp.ipynb")
    expected = tab_group_problems(nb)
    assert expected and "no cell for mxnet" in expected[0]
    make_split(tmp_path / "split", chapter)
    with pytest.raises(book.BookError) as err:
        book.source_tree(chapter, tmp_path / "split")
    assert str(chapter / "mlp.ipynb") in str(err.value) and expected[0] in str(err.value)


def test_cli_reports_an_unpublishable_notebook_and_exits_1(tmp_path, capsys):
    chapter = tmp_path / "chapter_mlp"
    shutil.copytree(FIXTURE_CHAPTER, chapter)
    nb = nbformat.read(chapter / "mlp.ipynb", as_version=4)
    nb.cells[3].outputs = [new_output("error", ename="ValueError", evalue="boom", traceback=[])]
    nbformat.write(nb, chapter / "mlp.ipynb")
    make_split(tmp_path / "split", chapter)
    code_ = book.main(
        [
            "build",
            "--src",
            str(chapter),
            "--out",
            str(tmp_path / "html"),
            "--split-dir",
            str(tmp_path / "split"),
            "--work",
            str(tmp_path / "src"),
        ]
    )
    assert code_ == 1
    err = capsys.readouterr().err
    assert f"{chapter / 'mlp.ipynb'}: cell 3" in err and "ValueError: boom" in err
    assert not (tmp_path / "html").exists()


def test_each_tab_panel_carries_its_framework_name_for_the_side_by_side_view():
    [(_, items)] = tab_sets(book.convert_notebook(notebook(*framework_group()), "page").text)
    for label, _, body in items:
        assert body.lstrip("\n").startswith(f'<p class="d2l-panel-heading">{label}</p>\n')


def test_ship_mathjax_copies_only_tex_input_chtml_output_and_fonts_and_drops_the_rest(tmp_path):
    stale = tmp_path / "_static" / "mathjax" / "tex-svg-full.js"
    stale.parent.mkdir(parents=True)
    stale.write_text("left by an older build")
    count = book.ship_mathjax(tmp_path)
    shipped = sorted(
        p.relative_to(tmp_path / "_static" / "mathjax").as_posix()
        for p in (tmp_path / "_static" / "mathjax").rglob("*")
        if p.is_file()
    )
    assert len(shipped) == count and "tex-chtml.js" in shipped
    source = book.mathjax_source()
    assert all((tmp_path / "_static" / "mathjax" / rel).read_bytes() == (source / rel).read_bytes() for rel in shipped)
    assert any(rel.startswith("output/chtml/fonts/woff-v2/") and rel.endswith(".woff") for rel in shipped)
    assert any(rel.startswith("input/tex/extensions/") for rel in shipped)
    assert not stale.exists()
    assert not [rel for rel in shipped if rel.startswith(("sre/", "a11y/", "output/svg")) or "mml" in rel]
    assert book.tree_size(tmp_path) < book.tree_size(source) / 5


def test_prune_static_drops_source_maps_and_catalogues_only(tmp_path):
    static = tmp_path / "_static"
    files = [
        "scripts/theme.js",
        "scripts/theme.js.map",
        "styles/theme.css",
        "styles/theme.css.map",
        "locales/de/LC_MESSAGES/sphinx.mo",
        "mathjax/tex-chtml.js",
    ]
    for rel in files:
        (static / rel).parent.mkdir(parents=True, exist_ok=True)
        (static / rel).write_text(rel)
    assert book.prune_static(tmp_path) == 3
    left = sorted(p.relative_to(static).as_posix() for p in static.rglob("*"))
    assert left == ["mathjax", "mathjax/tex-chtml.js", "scripts", "scripts/theme.js", "styles", "styles/theme.css"]


def test_drop_icon_script_takes_the_tag_out_of_every_page_and_the_file(tmp_path):
    tag = '<script defer src="../_static/scripts/fontawesome.js?digest=abc"></script>\n'
    page = tmp_path / "chapter" / "page.html"
    page.parent.mkdir()
    page.write_text(f"<head>\n  {tag}  <script src=\"../_static/other.js\"></script>\n</head>\n")
    (tmp_path / "plain.html").write_text("<head></head>\n")
    (tmp_path / "_static" / "scripts").mkdir(parents=True)
    (tmp_path / "_static" / "scripts" / "fontawesome.js").write_text("icons")
    assert book.drop_icon_script(tmp_path) == 1
    assert page.read_text() == '<head>\n  <script src="../_static/other.js"></script>\n</head>\n'
    assert not (tmp_path / "_static" / "scripts" / "fontawesome.js").exists()
