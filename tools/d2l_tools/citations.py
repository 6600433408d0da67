"""Citations and links in the notebooks' text: checked, listed per notebook, and turned into
sphinxcontrib-bibtex citations in the book.

    python -m d2l_tools.citations [--src chapter_mlp] [--bib book/references.bib] [--write]

A notebook cites a work as a Markdown link to its BibTeX key, ``[Cybenko, 1989](#cybenko1989)``,
which reads as plain text in Jupyter, and ends with a "References" cell generated from
``book/references.bib`` (``--write`` regenerates it): one entry per cited work, in the order of
first citation, each behind an HTML anchor named by its key, so the link jumps to it. In the
book (``setup_sphinx``, connected in ``book/conf.py``), each citation becomes a numbered footnote
citation (``{footcite:p}``) and the References cell a ``{footbibliography}``: the entries come
from the .bib file, and each number links to its entry on the same page.

Without ``--write`` the command checks every link of every markdown cell: a citation key must
have an entry in the .bib file, a link to ``#section`` must name a heading of the same notebook
and one to ``other.ipynb#section`` a heading of that notebook, a citation must have a key (an
empty link target or an unlinked "Author, 1999" is an error), and the References cell must be
current. It also checks the .bib file itself: every entry is cited by some notebook, and a
conference paper is not stored as an ``@article`` whose journal is the proceedings. It prints
one line per problem and exits with status 1 if there is any.
"""

import argparse
import re
import sys
from pathlib import Path

import nbformat

from d2l_tools import chapter
from d2l_tools.cells import write_notebook
from d2l_tools.envs import REPO

BIB = REPO / "book" / "references.bib"
HEADING_DEPTH = 3  # book/conf.py: myst_heading_anchors = 3, the deepest heading a link may name

# A Markdown link that is not an image: [text](target); the text may wrap, the target has no spaces.
LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)")
# What a BibTeX key of this project looks like (author and year): a link like this that is
# neither a key nor a heading is reported as a missing bibliography entry.
KEY_LIKE = re.compile(r"^[a-z]+\d{4}[a-z]?$")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.MULTILINE)
# A citation without a key: a link with an empty target, [Doe, 2001]() or [Doe, 2001](#) ...
EMPTY_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(\s*#?\s*\)")
# ... or author and year as plain text, outside any link: "Doe, 2001", "Doe and Roe, 2001",
# "Doe et al., 2001" (a name may wrap onto the next line).
UNLINKED_CITATION = re.compile(
    r"\b[A-Z][\w'\u2019-]+(?:\s+(?:et\s+al\.|and\s+[A-Z][\w'\u2019-]+))?,\s+(?:1[89]|20)\d\d[a-z]?\b"
)
CODE_OR_MATH = re.compile(r"(`{3,}|~{3,}).*?^\1|`[^`]*`|\$\$.*?\$\$|\$[^$]*\$", re.MULTILINE | re.DOTALL)
# Journals whose names begin with "Proceedings": an @article in one of them is a journal paper.
PROCEEDINGS_JOURNALS = (
    "Proceedings of the IEEE",
    "Proceedings of the National Academy of Sciences",
    "Proceedings of the Royal Society",
    "Proceedings of the American Mathematical Society",
)
REFERENCES_HEADING = "## References"
# From the References heading to the end of a page (it is the notebook's last cell).
REFERENCES_SECTION = re.compile(r"^## References[ \t]*\n.*\Z", re.MULTILINE | re.DOTALL)


class CitationError(Exception):
    """The bibliography cannot be read; the message says which file and why."""


def load_bibliography(path=BIB):
    """``{key: pybtex Entry}`` of a .bib file, in the file's order."""
    from pybtex.database import parse_file
    from pybtex.scanner import PybtexError

    path = Path(path)
    if not path.is_file():
        raise CitationError(f"{path}: no such bibliography file")
    try:
        return dict(parse_file(str(path), bib_format="bibtex").entries)
    except PybtexError as err:
        raise CitationError(f"{path}: {err}") from None


def heading_slugs(markdown_texts, depth=HEADING_DEPTH):
    """The anchors MyST gives the headings (levels 1..depth) of some markdown text."""
    slugs = set()
    for text in markdown_texts:
        text = re.sub(r"^(`{3,}|~{3,}).*?^\1", "", text, flags=re.MULTILINE | re.DOTALL)  # no code blocks
        for hashes, title in HEADING.findall(text):
            if len(hashes) <= depth:
                slugs.add(slugify(title))
    return slugs


def slugify(title):
    """GitHub-style anchor of a heading, as MyST makes them: lower case, punctuation dropped."""
    title = re.sub(r"[`*_]", "", title.strip().lower())
    return re.sub(r"[^\w\- ]", "", title).replace(" ", "-")


def markdown_cells(nb):
    return [cell for cell in nb.cells if cell.cell_type == "markdown"]


def cited_keys(nb, keys):
    """The bibliography keys a notebook's text cites, in the order of first citation."""
    cited = []
    for cell in markdown_cells(nb):
        for _, target in LINK.findall(cell.source):
            key = target[1:] if target.startswith("#") else None
            if key in keys and key not in cited:
                cited.append(key)
    return cited


def keyless_citations(text):
    """The citations in some markdown text that name no bibliography key, as strings."""
    prose = CODE_OR_MATH.sub(" ", text)
    found = [match.group(0) for match in EMPTY_LINK.finditer(prose)]
    without_links = LINK.sub(" ", EMPTY_LINK.sub(" ", prose))
    found += [" ".join(match.group(0).split()) for match in UNLINKED_CITATION.finditer(without_links)]
    return found


def is_journal_named_proceedings(journal):
    return journal == PROCEEDINGS_JOURNALS[0] or journal.startswith(PROCEEDINGS_JOURNALS[1:])


def bibliography_problems(entries, cited):
    """Problems of the .bib entries themselves, given the set of keys that the notebooks cite."""
    problems = []
    for key, entry in entries.items():
        journal = " ".join(entry.fields.get("journal", "").split())
        if entry.type == "article" and journal.startswith("Proceedings") and not is_journal_named_proceedings(journal):
            problems.append(
                f"{key}: a conference paper stored as @article with journal '{journal}'; make it "
                "an @inproceedings with that name as its booktitle"
            )
        if key not in cited:
            problems.append(f"{key}: no notebook cites it; cite it where the text relies on it, or remove the entry")
    return problems


def format_entries(entries, keys):
    """Plain text for the bibliography entries ``keys`` (pybtex's plain style), one line each."""
    from pybtex.database import BibliographyData
    from pybtex.style.formatting.plain import Style

    data = BibliographyData(entries={key: entries[key] for key in keys})
    formatted = Style().format_entries(data.entries.values())
    return {entry.key: " ".join(entry.text.render_as("text").split()) for entry in formatted}


def references_cell(keys, entries):
    """The source of a notebook's References cell for the cited ``keys``."""
    texts = format_entries(entries, keys)
    items = [f'<a id="{key}"></a>{texts[key]}' for key in keys]
    return "\n\n".join([REFERENCES_HEADING] + items)


def is_references_cell(cell):
    return cell.cell_type == "markdown" and cell.source.startswith(REFERENCES_HEADING)


def check_notebook(path, entries):
    """Problems with the links and citations of the notebook at ``path`` (a list of strings)."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    cells = markdown_cells(nb)
    own = heading_slugs(cell.source for cell in cells)
    problems = []
    for number, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown" or is_references_cell(cell):
            continue
        for citation in keyless_citations(cell.source):
            problems.append(
                f"{path.name}, cell {number}: '{citation}' cites a work without its key; write it "
                "as a link to the key, [Doe, 2001](#doe2001)"
            )
        for text, target in LINK.findall(cell.source):
            where = f"{path.name}, cell {number}: [{text}]({target})"
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target == "#":  # http:, ...: not ours; "#": above
                continue
            page, _, anchor = target.partition("#")
            if not page:
                if anchor in entries or anchor in own:
                    continue
                if KEY_LIKE.match(anchor):
                    problems.append(
                        f"{where}: cites '{anchor}', which has no entry in the bibliography "
                        "(add it to book/references.bib, or fix the key)"
                    )
                else:
                    problems.append(
                        f"{where}: no section of {path.name} has the anchor '#{anchor}' "
                        f"(headings down to level {HEADING_DEPTH} have anchors)"
                    )
                continue
            other = path.parent / page
            if not other.is_file():
                problems.append(f"{where}: {page} does not exist next to {path.name}")
                continue
            if anchor and page.endswith(".ipynb"):
                other_nb = nbformat.read(other, as_version=4)
                if anchor not in heading_slugs(c.source for c in markdown_cells(other_nb)):
                    problems.append(f"{where}: no section of {page} has the anchor '#{anchor}'")
    keys = cited_keys(nb, entries)
    references = [cell for cell in nb.cells if is_references_cell(cell)]
    if keys:
        expected = references_cell(keys, entries)
        if not references or nb.cells[-1] is not references[-1] or references[-1].source != expected:
            problems.append(
                f"{path.name}: its last cell must be the References cell for the works it "
                f"cites ({', '.join(keys)}); run `python -m d2l_tools.citations --write`"
            )
    elif references:
        problems.append(f"{path.name}: has a References cell but cites nothing; remove the cell")
    return problems


def write_references(path, entries):
    """Make the notebook's last cell its current References cell; True if the file changed."""
    nb = nbformat.read(path, as_version=4)
    old = [cell for cell in nb.cells if is_references_cell(cell)]
    nb.cells = [cell for cell in nb.cells if not is_references_cell(cell)]
    keys = cited_keys(nb, entries)
    if keys:
        # Keep the old cell (and its id) when there is one, so that a current file stays unchanged.
        cell = old[-1] if old else nbformat.v4.new_markdown_cell()
        cell.source = references_cell(keys, entries)
        nb.cells.append(cell)
    return write_notebook(nb, path)


def to_myst(text, keys):
    """A book page's MyST text with the notebook's citations as sphinxcontrib-bibtex roles."""

    def cite(match):
        label, target = match.group(1), match.group(2)
        if target.startswith("#") and target[1:] in keys:
            return f"{label}{{footcite:p}}`{target[1:]}`"
        return match.group(0)

    text = LINK.sub(cite, text)
    return REFERENCES_SECTION.sub(f"{REFERENCES_HEADING}\n\n```{{footbibliography}}\n```\n", text)


def setup_sphinx(app):
    """Connect ``to_myst`` to Sphinx's ``source-read`` event (called from book/conf.py)."""

    def on_source_read(app, docname, source):
        keys = set()
        for name in app.config.bibtex_bibfiles:
            keys.update(load_bibliography(Path(app.srcdir) / name))
        source[0] = to_myst(source[0], keys)

    app.connect("source-read", on_source_read)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m d2l_tools.citations", description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", default=str(chapter.CHAPTER), help="the chapter folder (default chapter_mlp)")
    parser.add_argument("--bib", default=str(BIB), help="the bibliography (default book/references.bib)")
    parser.add_argument("--write", action="store_true", help="regenerate the References cells, then check")
    args = parser.parse_args(argv)
    try:
        entries = load_bibliography(args.bib)
        paths = chapter.notebooks(args.src)
    except (CitationError, chapter.ChapterError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.write:
        for path in paths:
            if write_references(path, entries):
                print(f"{path}: References cell updated")
    problems = [problem for path in paths for problem in check_notebook(path, entries)]
    cited = {key for path in paths for key in cited_keys(nbformat.read(path, as_version=4), entries)}
    problems += [f"{Path(args.bib).name}: {problem}" for problem in bibliography_problems(entries, cited)]
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"citations: {len(paths)} notebooks checked, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
