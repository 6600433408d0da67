"""nbval, with outputs compared the way d2l_tools.compare does: noise passes, changes fail.

nbval compares a cell's stored and re-run outputs as exact strings and skips PNG images
altogether, so a plot whose sixth decimal moved fails on another CPU while a training log
can only be ignored. nbval has no hook for the comparison itself, so this plugin replaces
``IPyNbCell.compare_outputs`` with the tolerant one (every other part of nbval, its
sanitizing included, is unchanged): plain ``pytest --nbval`` in ``.venv`` loads it through
the ``pytest11`` entry point that ``tools/pyproject.toml`` declares.

Each notebook cell test also records how it was compared as the JUnit property
``d2l_compare``: ``exact`` (the strict defaults), ``tolerant`` (the cell declares
``metadata.d2l.compare``) or ``ignored`` (tagged ``nbval-ignore-output``); ``make test``
counts them in its summary.

``nbval_command`` is the command line that runs it on one framework's split notebooks.
"""

import os
import re
import sys
from pathlib import Path

import pytest

from d2l_tools.compare import Policy, PolicyError, compare_outputs
from d2l_tools.kernels import CELL_TIMEOUT, kernel_name

COMPARE_PROPERTY = "d2l_compare"
SANITIZE_CFG = Path(__file__).with_name("nbval_sanitize.cfg")


def nbval_command(framework, folder, junit_xml=None, timeout=CELL_TIMEOUT, python=sys.executable):
    """The pytest command line for nbval on one framework's split notebooks in ``folder``.

    Works from any directory; test ids are relative to the split root, so they start with the
    framework: ``pytorch/chapter_mlp/mlp.ipynb::Cell 3``. Run it with
    ``d2l_tools.kernels.REPRODUCIBLE_ENV`` in the environment, as the stored outputs were made.
    """
    folder = Path(folder).resolve()
    command = [
        str(python),
        "-m",
        "pytest",
        str(folder),
        f"--rootdir={folder.parent}",
        "-p",
        "d2l_tools.nbval_plugin",  # tolerant comparison (also loaded by its entry point)
        "--nbval",  # every cell's output is compared unless tagged nbval-ignore-output
        f"--nbval-kernel-name={kernel_name(framework)}",
        f"--nbval-sanitize-with={SANITIZE_CFG}",
        f"--nbval-cell-timeout={timeout}",
        "-p",
        "no:cacheprovider",  # nothing written but the results
        "-v",
        "--color=no",
    ]
    if junit_xml:
        command.append(f"--junitxml={junit_xml}")
    return command


def sanitizer():
    """nbval's own sanitizing with our patterns, so that 'same text' means what it means under nbval."""
    from nbval.plugin import get_sanitize_patterns

    patterns = get_sanitize_patterns(SANITIZE_CFG.read_text(encoding="utf-8"))

    def sanitize(text):
        for regex, replacement in patterns:
            text = re.sub(regex, replacement, text)
        return text

    return sanitize


def _framework(item):
    kernel = item.config.getoption("nbval_kernel_name", None) or (item.parent.nb.metadata.get("kernelspec") or {}).get(
        "name", "?"
    )
    return kernel.removeprefix("d2l-")


def tolerant_compare_outputs(self, test, ref, skip_compare=None):
    """Drop-in for ``IPyNbCell.compare_outputs``: True when ``test`` matches ``ref``."""
    where = f"{os.path.relpath(self.fspath)} under {_framework(self)}, cell {self.cell_num}"
    try:
        policy = Policy.from_metadata(self.cell.metadata)
    except PolicyError as err:
        self.comparison_traceback = [f"{where}: {err}"]
        return False
    problems = compare_outputs(ref, test, policy, sanitize=self.sanitize)
    self.comparison_traceback = [f"{where}: {problem}" for problem in problems]
    return not problems


def pytest_configure(config):
    try:
        from nbval.kernel import RunningKernel
        from nbval.plugin import IPyNbCell
    except ImportError:  # nbval not installed: nothing to adjust
        return
    IPyNbCell.compare_outputs = tolerant_compare_outputs

    # nbval executes cells with store_history=False, and IPython then ignores a trailing ';'
    # (it looks for it in the history), so `plt.plot(x, y);` shows a result under nbval that
    # it never shows in Jupyter (nbval issue #194, IPython issue #14162).
    def execute_cell_input(self, cell_input, allow_stdin=None):
        return self.kc.execute(cell_input, store_history=True, allow_stdin=allow_stdin, stop_on_error=False)

    RunningKernel.execute_cell_input = execute_cell_input


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    try:
        from nbval.plugin import IPyNbCell
    except ImportError:
        return
    if not isinstance(item, IPyNbCell) or item.options.get("skip"):
        return
    if not item.options.get("check", True):
        how = "ignored"
    else:
        try:
            how = "tolerant" if Policy.from_metadata(item.cell.metadata).loosened else "exact"
        except PolicyError:
            how = "exact"  # the comparison reports the bad metadata
    item.user_properties.append((COMPARE_PROPERTY, how))
