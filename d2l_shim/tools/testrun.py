"""Run every check of the project in order and print one summary (``make test``).

    python -m d2l_shim.tools.testrun [--only STAGE ...] [--list]

Stages: unit tests in both environments, the structure check of the tabbed notebooks,
nbval on each framework's split notebooks, then the book build and its browser check.
A failing stage does not stop the later ones, so one run reports everything; the exit
status is non-zero when anything failed. Each pytest stage writes JUnit XML to
``build/test-results/`` and the closing line sums them: ``N passed, N failed``.
"""

import argparse
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from d2l_shim import FRAMEWORKS
from d2l_shim.tools import notebooks

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "build" / "test-results"
PY = str(REPO / ".venv" / "bin" / "python")
MXPY = str(REPO / ".venv-mxnet" / "bin" / "python")
PYTEST = ["-m", "pytest", "-q", "--color=no", "-p", "no:cacheprovider"]

# Tests run by a stage of their own (they need the split notebooks, the built book, or MXNet).
NOT_UNIT = ["tests/test_notebook_structure.py", "tests/test_browser.py"]
MXNET_UNIT = ["tests/test_core.py", "tests/test_frameworks.py", "tests/test_imports.py"]


def stages():
    """(name, command, extra env): a pytest command line, or a list of plain commands run in turn."""
    unit_ignores = [f"--ignore={path}" for path in NOT_UNIT]
    yield "unit", [PY, *PYTEST, "tests", *unit_ignores], {"D2L_TEST_FRAMEWORKS": "pytorch,tensorflow,jax"}
    yield "unit-mxnet", [MXPY, *PYTEST, *MXNET_UNIT], {"D2L_TEST_FRAMEWORKS": "mxnet"}
    yield "structure", [PY, *PYTEST, "tests/test_notebook_structure.py"], {}
    yield "split", [[PY, "-m", "d2l_shim.tools.notebooks", "split"]], {}
    for framework in FRAMEWORKS:
        folder = REPO / "build" / "notebooks" / framework
        command = [PY, *notebooks.nbval_command(framework, folder)[1:]]  # run by .venv's Python
        yield f"nbval-{framework}", command, notebooks.REPRODUCIBLE_ENV
    yield "book", [[PY, "-m", "d2l_shim.tools.book", "build"]], {}
    yield "browser", [PY, *PYTEST, "tests/test_browser.py"], {}


def junit_counts(path):
    """(passed, failed, skipped) from a JUnit XML file written by pytest."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    tests = failed = skipped = 0
    for suite in suites:
        tests += int(suite.get("tests", 0))
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped += int(suite.get("skipped", 0))
    return tests - failed - skipped, failed, skipped


def failed_cases(path):
    """Names of failed test cases in a JUnit file: for nbval they name notebook and cell."""
    root = ET.parse(path).getroot()
    names = []
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            names.append(f"{case.get('classname', '')}::{case.get('name', '')}")
    return names


def run_stage(name, command, env):
    print(f"\n===== {name} =====", flush=True)
    env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    start = time.monotonic()
    if command and isinstance(command[0], list):  # plain commands: one check each
        rc = 0
        for step in command:
            rc = subprocess.call(step, cwd=REPO, env=env)
            if rc:
                break
        counts = (0, 1, 0) if rc else (1, 0, 0)
        return counts, [f"{name}: `{' '.join(step[2:])}` exited with {rc}"] if rc else [], time.monotonic() - start
    xml = RESULTS / f"{name}.xml"
    xml.unlink(missing_ok=True)
    rc = subprocess.call([*command, f"--junitxml={xml}"], cwd=REPO, env=env)
    seconds = time.monotonic() - start
    if not xml.exists():
        return (0, 1, 0), [f"{name}: pytest exited with {rc} before writing results"], seconds
    passed, failed, skipped = junit_counts(xml)
    failures = [f"{name}: {case}" for case in failed_cases(xml)]
    if rc not in (0, 1) and not failed:
        failed, failures = 1, [f"{name}: pytest exited with {rc}"]
    return (passed, failed, skipped), failures, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", metavar="STAGE", help="run only these stages")
    parser.add_argument("--list", action="store_true", help="list the stages and exit")
    args = parser.parse_args(argv)
    all_stages = list(stages())
    if args.list:
        print("\n".join(name for name, _, _ in all_stages))
        return 0
    chosen = [s for s in all_stages if not args.only or s[0] in args.only]
    unknown = set(args.only or ()) - {name for name, _, _ in all_stages}
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(sorted(unknown))}; see --list")
    RESULTS.mkdir(parents=True, exist_ok=True)
    totals, all_failures, lines = [0, 0, 0], [], []
    for name, command, env in chosen:
        (passed, failed, skipped), failures, seconds = run_stage(name, command, env)
        for i, n in enumerate((passed, failed, skipped)):
            totals[i] += n
        all_failures += failures
        lines.append(f"  {name:<17} {passed:>4} passed {failed:>3} failed {skipped:>3} skipped {seconds:>7.1f} s")
    print("\n===== summary =====")
    print("\n".join(lines))
    if all_failures:
        print("failures:")
        print("\n".join(f"  {f}" for f in all_failures))
    print(f"{totals[0]} passed, {totals[1]} failed, {totals[2]} skipped")
    return 1 if totals[1] else 0


if __name__ == "__main__":
    sys.exit(main())
