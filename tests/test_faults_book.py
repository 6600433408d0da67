"""Faults of the book build: two builds at once (``make book`` twice).

The second build waits for the first's lock and says so, naming the first's pid; both end
well; nothing is left half-written (no temporary files, every page whole, no lock owner).
"""

import os
import subprocess
import sys
import time

from test_book_convert import FIXTURE_CHAPTER, make_split

from d2l_tools import book
from d2l_tools.envs import REPO

WAIT_S = 300  # a fixture build takes seconds; on a busy 2-core machine, more


def build_command(root):
    return [
        sys.executable,
        "-m",
        "d2l_tools",
        "book",
        "build",
        "--no-pdf",
        "--src",
        str(FIXTURE_CHAPTER),
        "--out",
        str(root / "html"),
        "--split-dir",
        str(root / "split"),
        "--work",
        str(root / "src"),
    ]


def start(root):
    env = dict(os.environ, D2L_REPOSITORY="", PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        build_command(root), cwd=REPO, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def assert_whole(root):
    """The book is complete and nothing temporary or stale is left under ``root``."""
    html_dir = root / "html"
    for rel in ("index.html", "chapter_mlp/index.html", "chapter_mlp/mlp.html", "chapter_mlp/mlp-scratch.html"):
        text = (html_dir / rel).read_text(encoding="utf-8")
        assert text.rstrip().endswith("</html>"), f"{rel} is cut short"
    assert (html_dir / "_static" / "mathjax" / "tex-chtml.js").is_file()
    left = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.name.endswith(".tmp")]
    assert not left, f"temporary files left behind: {left}"
    assert not (root / (book.LOCK_NAME + ".owner")).exists()


def test_a_second_build_waits_for_the_lock_and_names_its_holder(tmp_path):
    make_split(tmp_path / "split", FIXTURE_CHAPTER)
    with book.build_lock(tmp_path):  # this test plays the first build
        second = start(tmp_path)
        line = second.stderr.readline()  # its first word, or the end of the stream if it failed
        assert line.strip() == (
            f"book: waiting for another book build (pid {os.getpid()}) to finish ({tmp_path / book.LOCK_NAME})"
        ), line + second.stderr.read()
        time.sleep(1)
        assert second.poll() is None, "the second build did not wait"
        assert not (tmp_path / "html").exists() and not (tmp_path / "src").exists()
    out, err = second.communicate(timeout=WAIT_S)
    assert second.returncode == 0, err
    assert "book: " in out and "(html) built in" in out
    assert_whole(tmp_path)


def test_two_builds_at_once_both_succeed_one_after_the_other(tmp_path):
    make_split(tmp_path / "split", FIXTURE_CHAPTER)
    runs = [start(tmp_path), start(tmp_path)]
    results = [(run.pid, *run.communicate(timeout=WAIT_S), run.returncode) for run in runs]
    for pid, out, err, code in results:
        assert code == 0, f"build {pid} failed:\n{err}"
        assert "(html) built in" in out
    waited = [(pid, err) for pid, _, err, _ in results if "waiting for another book build" in err]
    assert len(waited) == 1, f"expected exactly one build to wait: {results}"
    waiter, err = waited[0]
    other = next(pid for pid, *_ in results if pid != waiter)
    assert f"waiting for another book build (pid {other}) to finish" in err
    assert_whole(tmp_path)
