"""``ProgressBoard``: d2l's live training plot, drawn at a bounded rate.

d2l's board adds a line object per point and redraws after every averaged point, which
costs more than the training step on a laptop. This one keeps plain lists, redraws a
cleared figure at most every ``REDRAW_INTERVAL`` seconds (live mode only) and always ends
with one static figure of the whole run. ``Trainer.fit`` calls ``reset`` first, so every
run (a re-run of a notebook cell included) gets its own display and only its own curves.
A curve of a single point is drawn as a marker: a line through one point shows nothing.

Modes: *live* in a Jupyter kernel (one figure updated in place); *static* when
``D2L_PROGRESS=static`` (set by our notebook runners and nbval) or outside Jupyter, where
only the final figure is emitted. Values may be framework scalars: they are converted to
floats only when a group of ``every_n`` points is averaged, so the training loop does not
wait on the device after every batch.
"""

import os
import time

from d2l_shim.hparams import HyperParameters
from d2l_shim.plotting import _in_notebook, _show_outside_notebook, draw_board, to_numpy

REDRAW_INTERVAL = 1.0  # seconds between live redraws


def _as_float(value):
    return float(to_numpy(value))


def live_mode():
    """Whether boards animate: inside Jupyter and not asked to be static."""
    return _in_notebook() and os.environ.get("D2L_PROGRESS", "live") != "static"


class ProgressBoard(HyperParameters):
    """Plot data points as they arrive: ``draw(x, y, label, every_n)`` averages every n points."""

    def __init__(
        self,
        xlabel=None,
        ylabel=None,
        xlim=None,
        ylim=None,
        xscale="linear",
        yscale="linear",
        ls=("-", "--", "-.", ":"),
        colors=("C0", "C1", "C2", "C3"),
        fig=None,
        axes=None,
        figsize=(3.5, 2.5),
        display=True,
    ):
        self.save_hyperparameters()
        self.redraws = 0
        self.reset()

    def reset(self):
        """Start a new run: no curves, and the next frame goes to a new display.

        The display of an earlier run may be gone (Jupyter clears a cell's output when the
        cell runs again), so a run never updates it.
        """
        self.lines = {}  # label -> ([x, ...], [y, ...]) of averaged points
        self._pending = {}  # label -> [(x, raw y), ...] not yet averaged
        self._epoch_values = {}  # label -> raw values since the last epoch_summary()
        self._last_render = 0.0
        self._handle = None  # the live display of this run, once it has one

    def draw(self, x, y, label, every_n=1):
        self._epoch_values.setdefault(label, []).append(y)
        pending = self._pending.setdefault(label, [])
        pending.append((x, y))
        if len(pending) < max(int(every_n), 1):
            return
        xs, ys = self.lines.setdefault(label, ([], []))
        xs.append(sum(p[0] for p in pending) / len(pending))
        ys.append(sum(_as_float(v) for _, v in pending) / len(pending))
        pending.clear()
        if self.display and live_mode() and time.monotonic() - self._last_render >= REDRAW_INTERVAL:
            self._render()

    def epoch_summary(self):
        """Mean of each label's values drawn since the previous call, then start afresh."""
        summary = {
            label: sum(_as_float(v) for v in values) / len(values)
            for label, values in self._epoch_values.items()
            if values
        }
        self._epoch_values = {}
        return summary

    def finish(self):
        """Draw the final figure of the whole run (live: in place; static: once)."""
        if self.display and self.lines:
            self._render(final=True)

    def _figure(self):
        if self.fig is None:
            from matplotlib.figure import Figure

            # A Figure outside pyplot: Jupyter does not auto-show it at the end of the cell.
            self.fig = Figure(figsize=self.figsize)
        return self.fig

    def _render(self, final=False):
        fig = self._figure()
        # One panel per metric (loss, accuracy), each of the board's figsize; see plotting.draw_board.
        self.axes = draw_board(fig, self)[0]
        fig.tight_layout()
        self._last_render = time.monotonic()
        self.redraws += 1
        if not _in_notebook():
            if final:
                _show_outside_notebook(fig)
            return
        from IPython.display import display

        if live_mode():
            if self._handle is None:
                self._handle = display(fig, display_id=True)
            else:
                self._handle.update(fig)
        elif final:
            display(fig)
