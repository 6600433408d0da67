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
"""

import os

import pytest

from d2l_tools.compare import Policy, PolicyError, compare_outputs

COMPARE_PROPERTY = "d2l_compare"


def _framework(item):
    kernel = item.config.getoption("nbval_kernel_name", None) or \
        (item.parent.nb.metadata.get("kernelspec") or {}).get("name", "?")
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
