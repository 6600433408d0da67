"""make's stamps see every input: an edit to any Python file of d2l_shim/ or tools/d2l_tools/
rebuilds the split notebooks, the book and the PDFs (and d2l_shim's files the wheel).

Nothing is built: in a scratch clone every stamp is given a time after its inputs (the state a
finished build leaves), one file at a time is touched, and ``make -n`` says which stamps it
would remake. ``D2L_STAMP_TEST_MAKEFILE=path`` runs the same checks on another Makefile (for
example ``git show HEAD~5:Makefile``).
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MAKEFILE = Path(os.environ.get("D2L_STAMP_TEST_MAKEFILE", REPO / "Makefile"))
SPLIT, DIST, HTML, PDF = "build/notebooks/.stamp", "build/dist/.stamp", "build/html/.stamp", "build/pdf/.stamp"
# Stamps, oldest first: each is newer than what it is made from.
STAMPS = [".venv/.installed", ".venv-mxnet/.installed", SPLIT, DIST, HTML, PDF]
BUILT_AT = 1_700_000_000  # a finished build, in the past; inputs are older still, an edit is now


def run(command, cwd, check=True, **kwargs):
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60, check=check, **kwargs)


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    if shutil.which("make") is None or shutil.which("git") is None:
        pytest.fail("make and git are needed (Debian: apt-get install make git)")
    root = tmp_path_factory.mktemp("stamps") / "clone"
    run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(root)], cwd=REPO)
    shutil.copy(MAKEFILE, root / "Makefile")  # the Makefile under test, committed or not
    # This tree's Python files, committed or not, so the clone has the same modules as the tree.
    for pattern in ("d2l_shim/*.py", "tools/d2l_tools/*.py"):
        for path in REPO.glob(pattern):
            shutil.copy(path, root / path.relative_to(REPO))
    for path in root.rglob("*"):  # folders too: the book's inputs include book/'s subfolders
        if ".git" not in path.parts:
            os.utime(path, (BUILT_AT - 1000, BUILT_AT - 1000))
    stale(root)  # the Makefile writes what it keeps of the settings (build/.edition-settings), if anything
    for path in (root / "build").glob(".*settings*"):
        os.utime(path, (BUILT_AT - 1000, BUILT_AT - 1000))
    for offset, stamp in enumerate(STAMPS):
        path = root / stamp
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        os.utime(path, (BUILT_AT + offset, BUILT_AT + offset))
    return root


def stale(root, *variables):
    """The stamps ``make -n`` would remake (it prints ``touch <stamp>`` for each)."""
    # -k: a Makefile without one of these stamps still answers for the others.
    done = run(
        ["make", "-n", "-k", *variables, SPLIT, DIST, HTML, PDF],
        cwd=root,
        check=False,
        env={**os.environ, "MAKEFLAGS": "", "D2L_REPOSITORY": "", "D2L_SHIM_INSTALL": ""},
    )
    assert done.returncode == 0 or "No rule to make target" in done.stderr, done.stderr
    return {stamp for stamp in (SPLIT, DIST, HTML, PDF) if f"touch {stamp}" in done.stdout}


def edited(root, path):
    """Which stamps go stale when ``path`` (relative to the clone) is edited now."""
    target = root / path
    before = target.stat()
    target.touch()
    try:
        return stale(root)
    finally:
        os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))


def tracked(root, pattern):
    files = sorted(path.relative_to(root).as_posix() for path in root.glob(pattern))
    assert files, f"no {pattern} in the clone"
    return files


def test_a_finished_build_is_up_to_date(clone):
    assert stale(clone) == set()


def test_every_file_of_d2l_shim_rebuilds_the_notebooks_the_book_the_pdfs_and_the_wheel(clone):
    missed = {}
    for path in tracked(clone, "d2l_shim/*.py"):
        missing = {SPLIT, DIST, HTML, PDF} - edited(clone, path)
        if missing:
            missed[path] = sorted(missing)
    assert not missed, f"edited, these stamps stayed up to date: {missed}"


def test_every_file_of_the_tooling_rebuilds_the_notebooks_the_book_and_the_pdfs(clone):
    missed = {}
    for path in tracked(clone, "tools/d2l_tools/*.py"):
        missing = {SPLIT, HTML, PDF} - edited(clone, path)
        if missing:
            missed[path] = sorted(missing)
    missing = {HTML, PDF} - edited(clone, "book/conf.py")  # it imports d2l_tools.citations
    if missing:
        missed["book/conf.py"] = sorted(missing)
    assert not missed, f"edited, these stamps stayed up to date: {missed}"


def test_the_wheel_does_not_follow_the_tooling(clone):
    assert DIST not in edited(clone, "tools/d2l_tools/book.py")


def test_a_changed_edition_setting_rebuilds_the_editions_and_the_book(clone):
    assert {SPLIT, HTML, PDF} <= stale(clone, "D2L_REPOSITORY=someone/mlp-book")
    assert {SPLIT, HTML, PDF} <= stale(clone, "D2L_SHIM_INSTALL=d2l-shim[{framework}]")


def test_the_makefile_calls_the_tooling_one_way():
    text = MAKEFILE.read_text()
    assert "-m d2l_tools." not in text, "call the tooling as `$(PY) -m d2l_tools COMMAND`"
