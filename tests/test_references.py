"""Citations and links in the chapter's text (d2l_tools.citations).

The chapter's own notebooks and book/references.bib must pass the check; small notebooks and
.bib files written here show that the check fails on a citation key without a bibliography
entry, on a citation without a key, on a link to a section that does not exist, on an entry no
notebook cites and on a conference paper stored as a journal article, and passes on the
correct forms.
"""

import nbformat
import pytest

from d2l_tools import chapter, citations

BIB = """
@article{known2001,
  author = {Doe, Jane},
  title = {A Known Work},
  journal = {Journal of Examples},
  year = {2001},
}
"""


@pytest.fixture
def entries(tmp_path):
    path = tmp_path / "references.bib"
    path.write_text(BIB, encoding="utf-8")
    return citations.load_bibliography(path)


def write_nb(path, *markdown):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(text) for text in markdown]
    nbformat.write(nb, path)
    return path


def test_the_chapter_cites_only_known_works_and_links_only_to_existing_sections():
    entries = citations.load_bibliography()
    problems = [p for path in chapter.notebooks() for p in citations.check_notebook(path, entries)]
    assert problems == []


def test_the_chapter_cites_something_in_every_notebook_that_has_a_reference_list():
    entries = citations.load_bibliography()
    for path in chapter.notebooks():
        nb = nbformat.read(path, as_version=4)
        has_list = any(citations.is_references_cell(cell) for cell in nb.cells)
        assert has_list == bool(citations.cited_keys(nb, entries)), path.name


def test_every_bibliography_entry_is_cited_and_typed_as_what_it_is():
    entries = citations.load_bibliography()
    notebooks = [nbformat.read(path, as_version=4) for path in chapter.notebooks()]
    cited = {key for nb in notebooks for key in citations.cited_keys(nb, entries)}
    assert citations.bibliography_problems(entries, cited) == []


PROCEEDINGS_BIB = """
@article{conf2001,
  author = {Doe, Jane},
  title = {A Conference Paper},
  journal = {Proceedings of the 18th International Conference on Examples (ICE)},
  year = {2001},
}

@article{ieee2002,
  author = {Roe, Richard},
  title = {A Journal Paper},
  journal = {Proceedings of the IEEE},
  year = {2002},
}

@inproceedings{proper2003,
  author = {Poe, Edgar},
  title = {A Conference Paper Stored Right},
  booktitle = {Proceedings of the 20th International Conference on Examples (ICE)},
  year = {2003},
}
"""


def test_a_conference_paper_stored_as_a_journal_article_fails(tmp_path):
    path = tmp_path / "references.bib"
    path.write_text(PROCEEDINGS_BIB, encoding="utf-8")
    entries = citations.load_bibliography(path)
    problems = citations.bibliography_problems(entries, cited=set(entries))
    # "Proceedings of the IEEE" is a journal; the @inproceedings entry is stored right.
    assert len(problems) == 1
    assert problems[0].startswith("conf2001: a conference paper stored as @article") and "@inproceedings" in problems[0]


def test_a_bibliography_entry_that_no_notebook_cites_fails(tmp_path, entries):
    assert citations.bibliography_problems(entries, cited={"known2001"}) == []
    problems = citations.bibliography_problems(entries, cited=set())
    assert len(problems) == 1 and problems[0].startswith("known2001: no notebook cites it")


def test_a_citation_without_a_key_fails(tmp_path, entries):
    path = write_nb(
        tmp_path / "a.ipynb",
        "# A\n\nFirst [Doe, 2001]() and [Doe, 2001](#), then Doe and\nRoe, 2001 "
        "and Doe et al., 2001 in plain text.\n\nIn code, `Doe, 2001` is no citation, nor is $x, 2001$.",
    )
    problems = citations.check_notebook(path, entries)
    assert [p.split("'")[1] for p in problems] == [
        "[Doe, 2001]()",
        "[Doe, 2001](#)",
        "Doe and Roe, 2001",
        "Doe et al., 2001",
    ]
    assert all("cites a work without its key" in p for p in problems)


def test_the_command_reports_the_bibliography_and_exits_1(tmp_path, entries, capsys):
    folder = tmp_path / "chapter"
    folder.mkdir()
    (folder / "index.md").write_text("# C\n\n```{toctree}\na\n```\n", encoding="utf-8")
    write_nb(folder / "a.ipynb", "# A\n\nNo citation here.")
    bib = tmp_path / "references.bib"
    bib.write_text(BIB, encoding="utf-8")
    assert citations.main(["--src", str(folder), "--bib", str(bib)]) == 1
    assert "references.bib: known2001: no notebook cites it" in capsys.readouterr().err


def test_a_citation_key_without_a_bibliography_entry_fails(tmp_path, entries):
    path = write_nb(tmp_path / "a.ipynb", "# A\n\nAs shown by [Roe, 1999](#roe1999).")
    problems = citations.check_notebook(path, entries)
    assert len(problems) == 1
    assert "'roe1999'" in problems[0] and "no entry in the bibliography" in problems[0]


def test_a_known_citation_passes_once_its_references_cell_is_written(tmp_path, entries):
    path = write_nb(tmp_path / "a.ipynb", "# A\n\nAs shown by [Doe,\n2001](#known2001).")
    assert "References cell" in " ".join(citations.check_notebook(path, entries))
    assert citations.write_references(path, entries)
    assert citations.check_notebook(path, entries) == []
    last = nbformat.read(path, as_version=4).cells[-1].source
    assert last.startswith("## References") and '<a id="known2001"></a>Jane Doe. A known work.' in last
    assert not citations.write_references(path, entries)  # current: the file is left alone


def test_a_stale_references_cell_fails(tmp_path, entries):
    path = write_nb(tmp_path / "a.ipynb", "# A\n\nNo citation here.", "## References\n\nsomething")
    assert "cites nothing" in citations.check_notebook(path, entries)[0]


def test_a_link_to_a_section_that_does_not_exist_fails(tmp_path, entries):
    path = write_nb(
        tmp_path / "a.ipynb", "# A\n\n## The Data\n\nSee [the data](#the-data) and [the model](#the-model)."
    )
    problems = citations.check_notebook(path, entries)
    assert len(problems) == 1 and "'#the-model'" in problems[0]


def test_a_link_to_a_section_of_another_notebook_is_checked_there(tmp_path, entries):
    write_nb(tmp_path / "b.ipynb", "# B\n\n### Training Loop")
    good = write_nb(tmp_path / "a.ipynb", "# A\n\n[loop](b.ipynb#training-loop), [B](b.ipynb)")
    assert citations.check_notebook(good, entries) == []
    bad = write_nb(tmp_path / "c.ipynb", "# C\n\n[loop](b.ipynb#training), [D](d.ipynb)")
    problems = citations.check_notebook(bad, entries)
    assert len(problems) == 2
    assert "no section of b.ipynb has the anchor '#training'" in problems[0]
    assert "d.ipynb does not exist" in problems[1]


def test_headings_deeper_than_myst_anchors_are_not_link_targets(tmp_path, entries):
    path = write_nb(tmp_path / "a.ipynb", "# A\n\n#### Deep Heading\n\n[x](#deep-heading)")
    assert len(citations.check_notebook(path, entries)) == 1


def test_the_book_gets_footnote_citations_and_a_reference_list():
    text = "Known ([Doe, 2001](#known2001); [a section](#the-data)).\n\n## References\n\n<a id=\"known2001\"></a>Doe.\n"
    myst = citations.to_myst(text, {"known2001"})
    assert "Doe, 2001{footcite:p}`known2001`" in myst
    assert "[a section](#the-data)" in myst  # not a key: stays a link
    assert myst.endswith("## References\n\n```{footbibliography}\n```\n")
    assert "<a id" not in myst


def test_a_missing_bibliography_file_says_which(tmp_path):
    with pytest.raises(citations.CitationError, match="no such bibliography file"):
        citations.load_bibliography(tmp_path / "missing.bib")
