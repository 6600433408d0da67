"""Execute, check and test the tabbed notebooks.

    python -m d2l_tools notebooks execute [--src chapter_mlp] [--frameworks pytorch,jax]
                                          [--jobs 2] [--timeout 1200] [--force] [NOTEBOOK ...]
    python -m d2l_tools notebooks check   [--src chapter_mlp] [NOTEBOOK ...]
    python -m d2l_tools notebooks nbval   [--frameworks ...]

execute  runs every notebook under each framework's kernel and merges the outputs back into
         the tabbed notebook (``make notebooks``); shared cells must print the same text
         under every framework. Only pairs whose inputs changed run (d2l_tools.execute).
check    the structure rules: tab groups, fresh error-free stored outputs, tags, kernelspec
         (d2l_tools.checks).
nbval    splits, then runs nbval on each framework's notebooks: the split and nbval stages of
         ``python -m d2l_tools test``, which it runs.

Splitting is its own command, ``python -m d2l_tools split``. nbval compares outputs through
d2l_tools.nbval_plugin (numbers within tolerances, see d2l_tools.compare).
"""

import argparse
import subprocess
import sys

import d2l_tools
from d2l_tools.cells import DEFAULT_SRC, NotebookError, find_notebooks
from d2l_tools.checks import check
from d2l_tools.execute import Interrupted, execute_notebooks
from d2l_tools.kernels import CELL_TIMEOUT

INTERRUPTED = 130  # the shell's exit status for a process ended by Ctrl-C (128 + SIGINT)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m d2l_tools notebooks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    execute = sub.add_parser(
        "execute", help="run under every kernel what may be out of date, merge the outputs back (make notebooks)"
    )
    check_ = sub.add_parser("check", help="check the structure of the tabbed notebooks")
    for p in (execute, check_):
        p.add_argument("--src", default=DEFAULT_SRC, help=f"folder of tabbed notebooks (default {DEFAULT_SRC})")
    d2l_tools.add_frameworks_option(execute)
    execute.add_argument("--jobs", type=int, default=2, help="kernels at a time (default 2)")
    execute.add_argument("--timeout", type=int, default=CELL_TIMEOUT, help="seconds per cell")
    execute.add_argument("--force", action="store_true", help="re-execute even the pairs that are current")
    for p in (execute, check_):
        p.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help="default: all in --src")
    nbval = sub.add_parser("nbval", help="split, then run nbval per framework (the nbval stages of make test)")
    d2l_tools.add_frameworks_option(nbval)
    args = parser.parse_args(argv)

    try:
        if args.command == "execute":
            if args.jobs < 1:
                raise NotebookError("--jobs must be at least 1")
            execute_notebooks(
                find_notebooks(args.src, args.notebooks), args.frameworks, args.jobs, args.timeout, args.force
            )
        elif args.command == "check":
            failed = False
            for path in find_notebooks(args.src, args.notebooks):
                problems = check(path)
                failed = failed or bool(problems)
                print(f"{path}: " + ("ok" if not problems else f"{len(problems)} problem(s)"))
                for problem in problems:
                    print("  " + problem.replace("\n", "\n    "))
            return 1 if failed else 0
        elif args.command == "nbval":
            # The test runner's own stages, through the one entry point: no import back up into it.
            stages = ["split", *(f"nbval-{fw}" for fw in args.frameworks)]
            return subprocess.call(
                [
                    sys.executable,
                    "-m",
                    "d2l_tools",
                    "test",
                    "--frameworks",
                    ",".join(args.frameworks),
                    "--only",
                    *stages,
                ]
            )
    except NotebookError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except Interrupted as err:
        print(err, file=sys.stderr)
        return INTERRUPTED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
