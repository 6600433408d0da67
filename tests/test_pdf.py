"""The book's PDFs, one per framework (``make pdf``, also made by ``make book``).

Each PDF is read back with pdfium (pypdfium2), a reader independent of the Chromium that
printed it: its text holds its own framework's ``d2l_shim`` import and no other framework's,
and every line of that framework's code cells (no code line lost at the margin); its
bookmarks name each notebook of the chapter; its pages are numbered. The page with the first
code cell is rendered to ``build/screenshots/pdf-<framework>.png`` to look at.
"""

import re

import nbformat
import pytest

from d2l_shim import FRAMEWORK_INFO, FRAMEWORKS
from d2l_tools import chapter
from d2l_tools.cells import cell_body, cell_tab
from d2l_tools.envs import REPO

PDF_DIR = REPO / "build" / "pdf"
SCREENSHOTS = REPO / "build" / "screenshots"
HIDDEN_TAGS = {"remove-cell", "remove-input", "hide-input"}  # a PDF has no "Show code" dropdown to open


def import_line(framework):
    return f"from d2l_shim import {FRAMEWORK_INFO[framework].module} as d2l"


def squeeze(text):
    """``text`` without any white space: a wrapped line reads the same as the unwrapped one."""
    return re.sub(r"\s+", "", text)


def code_lines(framework):
    """Every line a reader of ``framework`` sees in a code cell of the chapter."""
    lines = []
    for notebook in chapter.notebooks():
        for cell in nbformat.read(notebook, as_version=4).cells:
            if cell.cell_type != "code" or HIDDEN_TAGS & set(cell.metadata.get("tags", [])):
                continue
            tab = cell_tab(cell)
            if tab.shared or framework in tab.frameworks:
                lines += [
                    line for line in cell_body(cell).splitlines() if line.strip() and not line.lstrip().startswith("%")
                ]
    return lines


def notebook_titles():
    titles = []
    for notebook in chapter.notebooks():
        first = next(cell for cell in nbformat.read(notebook, as_version=4).cells if cell.cell_type == "markdown")
        titles.append(re.search(r"^# (.+)$", first.source, re.MULTILINE).group(1).strip())
    return titles


@pytest.fixture(scope="module", params=FRAMEWORKS)
def pdf(request):
    import pypdfium2 as pdfium

    path = PDF_DIR / f"{request.param}.pdf"
    if not path.is_file():
        pytest.fail(f"{path.relative_to(REPO)} is missing: run `make pdf` (or `make book`)")
    document = pdfium.PdfDocument(path)
    pages = [document[i].get_textpage().get_text_bounded() for i in range(len(document))]
    yield request.param, document, pages
    document.close()


def test_pdf_shows_its_framework_and_no_other(pdf):
    framework, _, pages = pdf
    text = squeeze("\n".join(pages))
    assert squeeze(import_line(framework)) in text, f"{framework}.pdf lacks `{import_line(framework)}`"
    others = [fw for fw in FRAMEWORKS if fw != framework and squeeze(import_line(fw)) in text]
    assert not others, f"{framework}.pdf holds the code of {others}"


def test_pdf_loses_no_code_line_at_the_margin(pdf):
    framework, _, pages = pdf
    text = squeeze("\n".join(pages))
    lines = code_lines(framework)
    assert len(lines) > 20
    lost = [line for line in lines if squeeze(line) not in text]
    assert not lost, f"{framework}.pdf lacks these code lines (cut off or missing): {lost[:5]}"


def test_pdf_has_bookmarks_contents_and_page_numbers(pdf):
    framework, document, pages = pdf
    bookmarks = [item.get_title() for item in document.get_toc()]
    for title in notebook_titles():
        assert title in bookmarks, f"{framework}.pdf: no bookmark {title!r} in {bookmarks}"
    assert squeeze(notebook_titles()[-1]) in squeeze(pages[0]), f"{framework}.pdf: no contents list on page 1"
    for number, text in enumerate(pages, start=1):
        assert re.search(rf"\b{number}\s*/\s*{len(pages)}\b", text), f"{framework}.pdf: page {number} is not numbered"


def test_a_page_with_code_renders(pdf):
    framework, document, pages = pdf
    number = next(i for i, text in enumerate(pages) if squeeze(import_line(framework)) in squeeze(text))
    image = document[number].render(scale=1.5).to_pil()
    assert image.size[0] > 800
    colours = image.convert("L").getextrema()
    assert colours[0] < 64 and colours[1] > 192, "the page renders blank"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"pdf-{framework}.png"
    tmp = path.with_name(f".{path.name}.tmp.png")
    image.save(tmp)
    tmp.replace(path)


def test_printing_without_chromium_or_the_print_page_says_what_to_run(tmp_path):
    from d2l_tools import pdf

    with pytest.raises(pdf.PdfError, match=r"make chromium"):
        with pdf.chromium(tmp_path / "no-browser"):
            pass
    with pytest.raises(pdf.PdfError, match=r"index.html is missing.*make pdf"):
        pdf.print_book(tmp_path / "print", tmp_path / "pdf")
    assert not (tmp_path / "pdf").exists()
