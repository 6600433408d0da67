"""Run every check of the project in order and print one summary (``make test``).

    python -m d2l_tools.testrun [--only STAGE ...] [--list]

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
import threading
import time
from concurrent.futures import ThreadPoolExecutor
import xml.etree.ElementTree as ET
from pathlib import Path

from d2l_shim import FRAMEWORKS
from d2l_tools import notebooks

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "build" / "test-results"
PY = str(REPO / ".venv" / "bin" / "python")
MXPY = str(REPO / ".venv-mxnet" / "bin" / "python")
PYTEST = ["-m", "pytest", "-q", "--color=no", "-p", "no:cacheprovider"]

# Tests run by a stage of their own (they need the split notebooks, the built book, or MXNet).
NOT_UNIT = ["tests/test_notebook_structure.py", "tests/test_browser.py", "tests/test_lab.py"]
MXNET_UNIT = ["tests/test_core.py", "tests/test_data.py", "tests/test_frameworks.py", "tests/test_imports.py"]


def stages():
    """Groups of (name, command, extra env), in order; the stages of a group may run side by side.

    A command is a pytest command line, or a list of plain commands run in turn.
    """
    unit_ignores = [f"--ignore={path}" for path in NOT_UNIT]
    yield [("unit", [PY, *PYTEST, "tests", *unit_ignores], {"D2L_TEST_FRAMEWORKS": "pytorch,tensorflow,jax"})]
    yield [("unit-mxnet", [MXPY, *PYTEST, *MXNET_UNIT], {"D2L_TEST_FRAMEWORKS": "mxnet"})]
    yield [("structure", [PY, *PYTEST, "tests/test_notebook_structure.py"], {})]
    yield [("split", [[PY, "-m", "d2l_tools.notebooks", "split"]], {})]
    yield [(f"nbval-{framework}",
            [PY, *notebooks.nbval_command(framework, REPO / "build" / "notebooks" / framework)[1:]],
            notebooks.REPRODUCIBLE_ENV)
           for framework in FRAMEWORKS]
    yield [("book", [[PY, "-m", "d2l_tools.book", "build"]], {})]
    yield [("browser", [PY, *PYTEST, "tests/test_browser.py"], {})]
    yield [("lab", [PY, *PYTEST, "tests/test_lab.py"], {})]


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


_print_lock = threading.Lock()


def _call(command, env, prefix):
    """Run ``command``; with a prefix, its output lines are tagged (it runs beside another stage)."""
    if not prefix:
        return subprocess.call(command, cwd=REPO, env=env)
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:
        with _print_lock:
            print(f"[{prefix}] {line}", end="", flush=True)
    return process.wait()


def run_stage(name, command, env, parallel=False):
    print(f"\n===== {name} =====", flush=True)
    prefix = name if parallel else None
    env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    start = time.monotonic()
    if command and isinstance(command[0], list):  # plain commands: one check each
        rc = 0
        for step in command:
            rc = _call(step, env, prefix)
            if rc:
                break
        counts = (0, 1, 0) if rc else (1, 0, 0)
        return counts, [f"{name}: `{' '.join(step[2:])}` exited with {rc}"] if rc else [], time.monotonic() - start
    xml = RESULTS / f"{name}.xml"
    xml.unlink(missing_ok=True)
    rc = _call([*command, f"--junitxml={xml}"], env, prefix)
    seconds = time.monotonic() - start
    if not xml.exists():
        return (0, 1, 0), [f"{name}: pytest exited with {rc} before writing results"], seconds
    passed, failed, skipped = junit_counts(xml)
    failures = [f"{name}: {case}" for case in failed_cases(xml)]
    if rc not in (0, 1) and not failed:
        failed, failures = 1, [f"{name}: pytest exited with {rc}"]
    return (passed, failed, skipped), failures, seconds


# Notebook kernels run with one compute thread each (notebooks.ONE_THREAD_ENV): two at a
# time use both cores.
PARALLEL_JOBS = 2


def run_parallel(chosen, jobs):
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [(name, pool.submit(run_stage, name, command, env, True)) for name, command, env in chosen]
        return [(name, *future.result()) for name, future in futures]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", metavar="STAGE", help="run only these stages")
    parser.add_argument("--list", action="store_true", help="list the stages and exit")
    args = parser.parse_args(argv)
    groups = list(stages())
    names = [name for group in groups for name, _, _ in group]
    if args.list:
        print("\n".join(names))
        return 0
    unknown = set(args.only or ()) - set(names)
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(sorted(unknown))}; see --list")
    RESULTS.mkdir(parents=True, exist_ok=True)
    totals, all_failures, lines, results = [0, 0, 0], [], [], []
    for group in groups:
        chosen = [stage for stage in group if not args.only or stage[0] in args.only]
        if len(chosen) == 1:
            results.append((chosen[0][0], *run_stage(*chosen[0])))
        elif chosen:
            results += run_parallel(chosen, PARALLEL_JOBS)
    for name, (passed, failed, skipped), failures, seconds in results:
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
