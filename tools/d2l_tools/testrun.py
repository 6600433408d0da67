"""Run every check of the project in order and print one summary (``make test``).

    python -m d2l_tools test [--frameworks jax,pytorch] [--only STAGE ...] [--list]

Stages: unit tests in both environments, the structure check of the tabbed notebooks, the
split, ruff, nbval on each framework's split notebooks (with the tests that noise passes and
changes fail), the reader's path (the editions in a clean environment outside the repository),
then the book build, its browser check and the JupyterLab check. A failing stage does
not stop the later ones, so one run reports everything; the exit status is non-zero when
anything failed. Each pytest stage writes JUnit XML to ``build/test-results/`` and the
closing line sums them: ``N passed, N failed``. ``--frameworks`` runs the framework-neutral
stages and those of the named frameworks; the summary lists the others as not run.
"""

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from d2l_shim import FRAMEWORKS
from d2l_tools import add_frameworks_option
from d2l_tools.envs import ENVIRONMENTS, REPO
from d2l_tools.kernels import REPRODUCIBLE_ENV
from d2l_tools.nbval_plugin import COMPARE_PROPERTY, nbval_command
from d2l_tools.procs import Results, junit_results, stream

RESULTS = REPO / "build" / "test-results"
PY = str(ENVIRONMENTS["main"].python)
MXPY = str(ENVIRONMENTS["mxnet"].python)
PYTEST = ["-m", "pytest", "-q", "--color=no", "-p", "no:cacheprovider"]
RUFF = str(ENVIRONMENTS["main"].python.parent / "ruff")
MAIN_ENV_FRAMEWORKS = ENVIRONMENTS["main"].frameworks

# Tests run by a stage of their own (they need the split notebooks, the built book, or MXNet).
NOT_UNIT = [
    "tests/test_notebook_structure.py",
    "tests/test_browser.py",
    "tests/test_pdf.py",
    "tests/test_lab.py",
    "tests/test_compare_notebooks.py",
    "tests/test_reader_path.py",
    "tests/test_xss.py",
]
MXNET_UNIT = [
    "tests/test_core.py",
    "tests/test_data.py",
    "tests/test_frameworks.py",
    "tests/test_imports.py",
    "tests/test_semantics.py",
]
# Notebook kernels run with one compute thread each (kernels.ONE_THREAD_ENV), so the nbval
# stages run side by side, one per two cores, at least two and at most one per framework.
PARALLEL_JOBS = max(2, min(len(FRAMEWORKS), (os.cpu_count() or 2) // 2))


@dataclass(frozen=True)
class Stage:
    name: str
    command: list  # a pytest command line, or a list of plain commands run in turn
    env: dict = field(default_factory=dict)
    frameworks: tuple = ()  # the frameworks it checks; () for a framework-neutral stage


def reader_frameworks():
    """The editions the reader's-path test runs (READER_FRAMEWORKS: a comma list or all; default jax)."""
    value = os.environ.get("READER_FRAMEWORKS", "jax").strip()
    return FRAMEWORKS if value == "all" else tuple(fw.strip() for fw in value.split(",") if fw.strip())


def stages(frameworks=FRAMEWORKS):
    """Groups of stages, in order; the stages of a group run side by side."""
    main_env = [fw for fw in MAIN_ENV_FRAMEWORKS if fw in frameworks]
    unit_ignores = [f"--ignore={path}" for path in NOT_UNIT]
    yield [Stage("unit", [PY, *PYTEST, "tests", *unit_ignores], {"D2L_TEST_FRAMEWORKS": ",".join(main_env)})]
    yield [Stage("unit-mxnet", [MXPY, *PYTEST, *MXNET_UNIT], {"D2L_TEST_FRAMEWORKS": "mxnet"}, ("mxnet",))]
    yield [Stage("structure", [PY, *PYTEST, "tests/test_notebook_structure.py"])]
    yield [Stage("split", [[PY, "-m", "d2l_tools", "split"]])]
    # ruff over the code and the tabbed notebooks (ruff.toml), and over the editions, whose
    # cells are plain Python (ruff skips the tabbed source's %%tab cells).
    yield [Stage("lint", [[RUFF, "check"], [RUFF, "format", "--check"], [RUFF, "check", "build/notebooks"]])]
    yield [
        Stage(f"nbval-{fw}", nbval_command(fw, REPO / "build" / "notebooks" / fw, python=PY), REPRODUCIBLE_ENV, (fw,))
        for fw in FRAMEWORKS
    ] + [
        Stage(
            "compare",
            [PY, *PYTEST, "tests/test_compare_notebooks.py"],
            {"D2L_TEST_FRAMEWORKS": ",".join(main_env)},
            MAIN_ENV_FRAMEWORKS,
        )
    ]
    yield [Stage("reader", [PY, *PYTEST, "tests/test_reader_path.py"], {}, reader_frameworks())]
    yield [Stage("book", [[PY, "-m", "d2l_tools", "book", "build"]])]
    yield [Stage("browser", [PY, *PYTEST, "tests/test_browser.py", "tests/test_pdf.py", "tests/test_xss.py"])]
    yield [Stage("lab", [PY, *PYTEST, "tests/test_lab.py"], {}, ("jax",))]


def run_stage(stage, parallel=False):
    """Run one stage; returns (Results, seconds)."""
    print(f"\n===== {stage.name} =====", flush=True)
    prefix = stage.name if parallel else None
    env = {**os.environ, **stage.env, "PYTHONUNBUFFERED": "1"}
    start = time.monotonic()
    if stage.command and isinstance(stage.command[0], list):  # plain commands: one check each
        for step in stage.command:
            rc = stream(step, env, REPO, prefix)
            if rc:
                return Results(
                    failed=1, failures=[f"{stage.name}: `{' '.join(step[1:])}` exited with {rc}"]
                ), time.monotonic() - start
        return Results(passed=1), time.monotonic() - start
    xml = RESULTS / f"{stage.name}.xml"
    xml.unlink(missing_ok=True)
    rc = stream([*stage.command, f"--junitxml={xml}"], env, REPO, prefix)
    seconds = time.monotonic() - start
    if not xml.exists():
        return Results(failed=1, failures=[f"{stage.name}: pytest exited with {rc} before writing results"]), seconds
    results = junit_results(xml)
    results.failures = [f"{stage.name}: {case}" for case in results.failures]
    if rc not in (0, 1) and not results.failed:
        results.failed, results.failures = 1, [f"{stage.name}: pytest exited with {rc}"]
    return results, seconds


def compare_note(results):
    """How the cells of an nbval stage were compared, from the plugin's JUnit properties."""
    counts = {how: results.properties[(COMPARE_PROPERTY, how)] for how in ("exact", "tolerant", "ignored")}
    if not any(counts.values()):
        return ""
    return (
        f"  cells compared: {counts['exact'] + counts['tolerant']} ({counts['tolerant']} with declared "
        f"tolerances), ignored: {counts['ignored']}"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m d2l_tools test", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_frameworks_option(parser, default=os.environ.get("FRAMEWORKS", ""))  # `make test FRAMEWORKS=...`
    parser.add_argument("--only", nargs="+", metavar="STAGE", help="run only these stages")
    parser.add_argument("--list", action="store_true", help="list the stages and exit")
    args = parser.parse_args(argv)
    frameworks = args.frameworks
    groups = [
        [s for s in group if not s.frameworks or set(s.frameworks) & set(frameworks)] for group in stages(frameworks)
    ]
    names = [stage.name for group in groups for stage in group]
    if args.list:
        print("\n".join(names))
        return 0
    unknown = set(args.only or ()) - set(names)
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(sorted(unknown))}; see --list")
    RESULTS.mkdir(parents=True, exist_ok=True)
    os.environ["D2L_FRAMEWORKS"] = ",".join(frameworks)  # tests that span environments stay within them
    results = []
    for group in groups:
        chosen = [stage for stage in group if not args.only or stage.name in args.only]
        with ThreadPoolExecutor(max_workers=PARALLEL_JOBS) as pool:
            futures = [(stage, pool.submit(run_stage, stage, len(chosen) > 1)) for stage in chosen]
            results += [(stage, *future.result()) for stage, future in futures]
    totals, failures, lines = Results(), [], []
    for stage, result, seconds in results:
        totals.passed += result.passed
        totals.failed += result.failed
        totals.skipped += result.skipped
        failures += result.failures
        lines.append(
            f"  {stage.name:<17} {result.passed:>4} passed {result.failed:>3} failed "
            f"{result.skipped:>3} skipped {seconds:>7.1f} s"
        )
        if stage.name.startswith("nbval-"):
            lines[-1] += compare_note(result)
    print("\n===== summary =====")
    print("\n".join(lines))
    left_out = [fw for fw in FRAMEWORKS if fw not in frameworks]
    if left_out:
        print(f"not run: {', '.join(left_out)} (left out by --frameworks/FRAMEWORKS; nothing about them was checked)")
    if failures:
        print("failures:")
        print("\n".join(f"  {f}" for f in failures))
    print(f"{totals.passed} passed, {totals.failed} failed, {totals.skipped} skipped")
    return 1 if totals.failed else 0


if __name__ == "__main__":
    sys.exit(main())
