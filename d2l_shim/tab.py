"""The ``%%tab`` cell marker: one notebook, four frameworks.

Load it with ``%load_ext d2l_shim.tab``. A code cell whose first line is

    %%tab pytorch            (or mxnet, tensorflow, jax; a comma list; or ``all``)

runs only when that framework is the active one, and is skipped silently otherwise.
The active framework comes from ``select('jax')`` or, failing that, from the
``D2L_FRAMEWORK`` variable that each d2l Jupyter kernel sets.

The marker is handled by an input transformer rather than by running the body from
inside a cell magic: the body then executes as an ordinary cell, so its last
expression is displayed and an exception fails the cell the way it would without
the marker (a nested ``run_cell`` reports errors but lets the outer cell succeed).
"""

import os
from typing import NamedTuple

from d2l_shim import FRAMEWORKS

MARKER = "%%tab"
_selected = None


class _OneLineInIPython:
    """Mixin: IPython shows the exception as one line, ``Name: message``, with no traceback.

    The message says what is wrong and how to fix it; a traceback would only repeat it (the
    failing line of a ``%%tab`` cell is the generated ``raise`` that carries the message).
    IPython asks an exception for ``_render_traceback_()`` before formatting one itself.
    """

    def _render_traceback_(self):
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


class TabMarkerError(_OneLineInIPython, ValueError):
    """A ``%%tab`` line, or a framework name given to ``select``/``selected``, is wrong."""


class NoFrameworkError(_OneLineInIPython, RuntimeError):
    """No framework is active: the notebook runs in a kernel that is not a d2l kernel."""


def _check(name):
    if name not in FRAMEWORKS:
        raise TabMarkerError(
            f"unknown framework {name!r}: use one of {', '.join(FRAMEWORKS)} (or 'all' in a %%tab line)"
        )
    return name


def select(framework):
    """Make ``framework`` the active one for this process (overrides D2L_FRAMEWORK)."""
    global _selected
    _selected = _check(framework.strip().lower())


def active():
    """The active framework; raises NoFrameworkError saying how to pick one if there is none."""
    if _selected is not None:
        return _selected
    from_env = os.environ.get("D2L_FRAMEWORK", "").strip().lower()
    if not from_env:
        raise NoFrameworkError(
            "no framework selected: this kernel is not one of the four d2l kernels. In Jupyter, "
            "pick one under Kernel > Change Kernel: 'Python 3 (d2l · PyTorch)', '... MXNet', "
            "'... TensorFlow' or '... JAX'; elsewhere call d2l_shim.tab.select('pytorch') first"
        )
    try:
        return _check(from_env)
    except TabMarkerError as err:
        raise NoFrameworkError(f"D2L_FRAMEWORK={from_env!r} is not a framework: {err}") from None


class Tab(NamedTuple):
    """Which kernels run a code cell: ``frameworks`` in the book's order; ``shared`` when the
    cell has no ``%%tab`` line or says ``%%tab all``."""

    frameworks: tuple
    shared: bool


SHARED = Tab(FRAMEWORKS, True)


def _read_tab_line(line):
    """(names as written, says ``all``) of a ``%%tab`` line: the marker's one grammar."""
    spec = line.strip()[len(MARKER) :].replace(",", " ").split()
    if not spec:
        raise TabMarkerError(f"'{line.strip()}' names no framework: write e.g. '%%tab pytorch' or '%%tab all'")
    if "all" in spec:
        if len(spec) > 1:
            raise TabMarkerError(f"'{line.strip()}': 'all' cannot be combined with other names")
        return FRAMEWORKS, True
    names = tuple(_check(name.lower()) for name in spec)
    if len(set(names)) < len(names):
        raise TabMarkerError(f"'{line.strip()}' names a framework twice: name each once")
    return names, False


def parse_tab_line(line):
    """Frameworks named by a ``%%tab ...`` line: a tuple, FRAMEWORKS for ``all``."""
    return _read_tab_line(line)[0]


def source_tab(source):
    """The Tab of a code cell's ``source``; raises TabMarkerError for a bad ``%%tab`` line."""
    line = source.split("\n", 1)[0]
    if not is_tab_line(line):
        return SHARED
    names, says_all = _read_tab_line(line)
    return SHARED if says_all else Tab(tuple(fw for fw in FRAMEWORKS if fw in names), False)


def selected(*frameworks):
    """True when the active framework is one of ``frameworks`` (for branches in shared cells)."""
    names = [_check(f) for f in frameworks]
    return active() in names


def is_tab_line(line):
    """True for a ``%%tab`` marker line (not another magic whose name starts with 'tab')."""
    return line.startswith(MARKER) and line[len(MARKER) :][:1] in ("", " ", "\t", "\n")


def _transform(lines):
    """IPython cleanup transformer: strip the marker line or drop the whole cell."""
    if not lines or not is_tab_line(lines[0]):
        return lines
    try:
        named = parse_tab_line(lines[0])  # a bad line is reported under any kernel
        run = active() in named
    except (TabMarkerError, NoFrameworkError) as err:
        # Raised from the cell itself, so the cell fails (a transformer's own exception would be
        # reported as an IPython internal error); the class shows it as one line.
        return [f"raise __import__('d2l_shim.tab').tab.{type(err).__name__}({str(err)!r})\n"]
    # A blank first line keeps traceback line numbers equal to the notebook's.
    return ["\n"] + lines[1:] if run else []


def load_ipython_extension(ipython):
    if _transform not in ipython.input_transformers_cleanup:
        ipython.input_transformers_cleanup.append(_transform)


def unload_ipython_extension(ipython):
    if _transform in ipython.input_transformers_cleanup:
        ipython.input_transformers_cleanup.remove(_transform)
