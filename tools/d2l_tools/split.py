"""Split the tabbed notebooks into one notebook per framework (``make split``).

    python -m d2l_tools split [--src chapter_mlp] [--out build/notebooks]

Writes ``<out>/<framework>/<chapter folder>/<name>.ipynb``: the reader's edition of each
notebook (see d2l_tools.editions), with its local images attached. These are the book's
downloads, the PDFs' source and what nbval runs.
"""

import argparse
import base64
import copy
import re
import sys
from pathlib import Path

from d2l_shim import FRAMEWORKS
from d2l_shim.tab import TabMarkerError
from d2l_tools.cells import (
    DEFAULT_SRC,
    NotebookError,
    cell_body,
    cell_tab,
    describe,
    find_notebooks,
    read_notebook,
    write_notebook,
)
from d2l_tools.editions import EditionError, reader_edition
from d2l_tools.kernels import notebook_kernelspec

DEFAULT_OUT = "build/notebooks"
LOCAL_IMAGE = re.compile(r"!\[([^\]]*)\]\((?!attachment:|[a-z]+://|/)([^)\s]+)\)")
IMAGE_TYPES = {".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def attach_images(cell, folder):
    """Embed the local images a markdown cell shows (``![alt](img/x.svg)``) as cell attachments.

    A split notebook travels alone (the book's downloads, a reader's copy); with its images
    attached it shows them wherever it is opened.
    """

    def attach(match):
        path = Path(folder) / match.group(2)
        mime = IMAGE_TYPES.get(path.suffix.lower())
        if mime is None or not path.is_file():
            return match.group(0)
        name = path.name
        cell.setdefault("attachments", {})[name] = {mime: base64.b64encode(path.read_bytes()).decode("ascii")}
        return f"![{match.group(1)}](attachment:{name})"

    cell.source = LOCAL_IMAGE.sub(attach, cell.source)


def split_notebook(nb, framework, folder=None):
    """The plain notebook for one framework: its cells and the shared ones, no ``%%tab`` lines,
    the framework's d2l kernel. With ``folder`` (where the tabbed notebook lives), its local
    images are attached.
    """
    split = copy.deepcopy(nb)
    cells = []
    count = 0
    for index, cell in enumerate(split.cells):
        if cell.cell_type == "code":
            try:
                if framework not in cell_tab(cell).frameworks:
                    continue
            except TabMarkerError as err:
                raise NotebookError(f"{describe(index, cell)}: {err}") from None
            cell.source = cell_body(cell)
            # nbval compares outputs only of cells that carry an execution count.
            count += 1
            cell.execution_count = count
            for output in cell.outputs:
                if output.output_type == "execute_result":
                    output.execution_count = count
            d2l = cell.metadata.get("d2l", {})
            d2l.pop("source_sha256", None)  # it hashed the tabbed source, not this one
            if "d2l" in cell.metadata and not d2l:
                del cell.metadata["d2l"]
        elif cell.cell_type == "markdown" and folder is not None:
            attach_images(cell, folder)
        cells.append(cell)
    split.cells = cells
    split.metadata["kernelspec"] = notebook_kernelspec(framework)
    return split


def split_notebooks(paths, out, frameworks=FRAMEWORKS, prune=False, edition=None):
    """Write ``out/<framework>/<folder>/<name>.ipynb`` for each notebook; returns the paths.

    ``edition(nb, framework)``, when given, turns each split notebook into what is written
    (the reader's edition). ``prune`` removes split notebooks whose source is gone (when
    ``paths`` is a whole folder).
    """
    written = []
    for path in paths:
        try:
            nb = read_notebook(path)
            splits = {fw: split_notebook(nb, fw, folder=path.parent) for fw in frameworks}
            if edition:
                splits = {fw: edition(split, fw) for fw, split in splits.items()}
        except (NotebookError, EditionError) as err:
            raise NotebookError(f"{path}: {err}") from None
        for fw, split in splits.items():
            target = Path(out) / fw / path.parent.name / path.name
            write_notebook(split, target)
            written.append(target)
    if prune:
        for folder in {target.parent for target in written}:
            for stale in set(folder.glob("*.ipynb")) - set(written):
                stale.unlink()
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m d2l_tools split", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--src", default=DEFAULT_SRC, help=f"folder of tabbed notebooks (default {DEFAULT_SRC})")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"folder for split notebooks (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    try:
        paths = split_notebooks(find_notebooks(args.src), args.out, prune=True, edition=reader_edition)
    except NotebookError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"split {len(paths) // len(FRAMEWORKS)} notebook(s) into {args.out}/<framework>/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
