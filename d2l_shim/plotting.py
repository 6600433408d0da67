"""Plotting helpers with d2l's names and meaning, for every framework at once.

matplotlib is imported on first use, so importing a framework module stays cheap.
Any array-like goes in: numpy arrays, lists, and framework tensors (torch tensors that
require grad, MXNet NDArrays, TensorFlow tensors, JAX arrays).
"""

import os
import sys

import numpy as np

DEFAULT_FIGSIZE = (3.5, 2.5)
DEFAULT_FMTS = ("-", "m--", "g-.", "r:")
# A training board's curves are labelled "<role>_<metric>" (d2l's convention: train_loss,
# val_loss, val_acc). Curves of one metric share a panel, so loss and accuracy each get an axis
# of their own; the legend names the role, the y-axis the metric.
BOARD_ROLES = {"train": "training", "val": "validation"}
BOARD_METRICS = {"loss": "loss", "acc": "accuracy"}
_figures_saved = 0


def to_numpy(x):
    """A numpy array holding ``x``, whatever framework made it."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "asnumpy"):  # MXNet
        return x.asnumpy()
    if hasattr(x, "detach"):  # torch: leave the autograd graph and the device first
        x = x.detach().cpu()
    if hasattr(x, "numpy"):  # TensorFlow eager tensors, torch
        return x.numpy()
    return np.asarray(x)  # JAX arrays, lists, scalars


def _pyplot():
    import matplotlib

    if not _in_notebook() and not os.environ.get("MPLBACKEND") and not os.environ.get("DISPLAY"):
        matplotlib.use("Agg")  # headless script: draw off-screen, _show_outside_notebook saves the file
    import matplotlib.pyplot as plt

    # Stable ids inside SVGs, so re-running a notebook does not rewrite every plot.
    plt.rcParams["svg.hashsalt"] = "d2l"
    return plt


class _LazyPyplot:
    """``d2l.plt``: matplotlib.pyplot, imported on first use (keeps ``import d2l_shim.torch`` light)."""

    def __getattr__(self, name):
        return getattr(_pyplot(), name)

    def __repr__(self):
        return "<lazy matplotlib.pyplot (d2l.plt)>"


plt = _LazyPyplot()


def _in_notebook():
    """Whether this runs inside a Jupyter kernel (not merely in a process that imported ipykernel)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def use_svg_display():
    """Show inline figures as SVG (sharp at any zoom) in Jupyter."""
    if not _in_notebook():
        return
    from matplotlib_inline import backend_inline

    backend_inline.set_matplotlib_formats("svg")


def set_figsize(figsize=DEFAULT_FIGSIZE):
    """Set the default figure size for figures made after this call."""
    use_svg_display()
    _pyplot().rcParams["figure.figsize"] = figsize


def set_axes(axes, xlabel, ylabel, xlim, ylim, xscale, yscale, legend):
    """Label, scale and bound one matplotlib Axes, then draw its grid."""
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_xscale(xscale)
    axes.set_yscale(yscale)
    axes.set_xlim(xlim)
    axes.set_ylim(ylim)
    if legend:
        axes.legend(legend)
    axes.grid()


def _is_single_series(X):
    if hasattr(X, "ndim"):
        return X.ndim == 1
    return isinstance(X, (list, tuple)) and not hasattr(X[0], "__len__") and not hasattr(X[0], "ndim")


def plot(
    X,
    Y=None,
    xlabel=None,
    ylabel=None,
    legend=None,
    xlim=None,
    ylim=None,
    xscale="linear",
    yscale="linear",
    fmts=DEFAULT_FMTS,
    figsize=DEFAULT_FIGSIZE,
    axes=None,
):
    """Plot one or several series (``Y`` against ``X``, or ``X`` against its index)."""
    if _is_single_series(X):
        X = [X]
    if Y is None:
        X, Y = [None] * len(X), X
    elif _is_single_series(Y):
        Y = [Y]
    if len(X) != len(Y):
        X = list(X) * len(Y)
    set_figsize(figsize)
    plt = _pyplot()
    if axes is None:
        axes = plt.gca()
    axes.cla()
    for x, y, fmt in zip(X, Y, fmts):
        if x is None:
            axes.plot(to_numpy(y), fmt)
        else:
            axes.plot(to_numpy(x), to_numpy(y), fmt)
    set_axes(axes, xlabel, ylabel, xlim, ylim, xscale, yscale, legend)
    _show_outside_notebook(axes.figure)


def board_panels(labels):
    """Group a board's curve labels by panel: ``{metric: [label, ...]}`` in order of appearance.

    ``train_loss`` and ``val_loss`` share the panel ``"loss"``, ``val_acc`` gets ``"acc"``; labels
    not of the form ``<train|val>_<metric>`` (``"sin"``, ``"cos"``) share the panel ``None``.
    """
    panels = {}
    for label in labels:
        role, _, metric = label.partition("_")
        panels.setdefault(metric if role in BOARD_ROLES and metric else None, []).append(label)
    return panels


def draw_board(fig, board):
    """Draw a progress board's curves (``board.lines``: ``{label: (xs, ys)}``) on ``fig``, one
    panel per metric, in the board's settings (labels, limits, scales, styles, ``figsize``).

    Each panel is ``board.figsize`` inches, side by side. A role keeps its line style and color in
    every panel (training solid, validation dashed). ``board.ylabel`` names the panel of unlabelled
    curves; a metric's panel is named after the metric. Returns the list of Axes.
    """
    lines, ls, colors = board.lines, board.ls, board.colors
    fig.clear()
    panels = board_panels(lines)
    fig.set_size_inches(board.figsize[0] * max(len(panels), 1), board.figsize[1])
    axes_list = list(fig.subplots(1, max(len(panels), 1), squeeze=False)[0])
    for axes, (metric, labels) in zip(axes_list, panels.items()):
        handles, names = [], []
        for i, label in enumerate(labels):
            role = label.partition("_")[0] if metric else None
            k = list(BOARD_ROLES).index(role) if role else i
            xs, ys = lines[label]
            point = {"marker": "o", "markersize": 3} if len(xs) == 1 else {}  # a 1-point line is invisible
            handles += axes.plot(xs, ys, linestyle=ls[k % len(ls)], color=colors[k % len(colors)], label=label, **point)
            names.append(BOARD_ROLES[role] if role else label)
        axes.set_xlabel(board.xlabel)
        axes.set_ylabel(BOARD_METRICS.get(metric, metric) if metric else board.ylabel)
        axes.set_xscale(board.xscale)
        axes.set_yscale(board.yscale)
        if board.xlim:
            axes.set_xlim(board.xlim)
        if board.ylim:
            axes.set_ylim(board.ylim)
        axes.grid(True)
        axes.legend(handles, names)
    return axes_list


def show_images(imgs, num_rows, num_cols, titles=None, scale=1.5):
    """Show a grid of images (any array-likes of shape (H, W) or (H, W, 1)) with optional titles."""
    plt = _pyplot()
    figsize = (num_cols * scale, num_rows * scale)
    fig, axes = plt.subplots(num_rows, num_cols, figsize=figsize, squeeze=False)
    axes = axes.flatten()
    for i, (ax, img) in enumerate(zip(axes, imgs)):
        img = to_numpy(img)
        ax.imshow(img.squeeze(), cmap="gray" if img.squeeze().ndim == 2 else None)
        ax.axes.get_xaxis().set_visible(False)
        ax.axes.get_yaxis().set_visible(False)
        if titles is not None and i < len(titles):
            ax.set_title(titles[i], fontsize="small")
    for ax in axes[len(imgs) :]:
        ax.set_visible(False)
    _show_outside_notebook(fig)
    return axes


def _show_outside_notebook(fig):
    """In a plain script, show the figure or save it to a file: never drop it silently."""
    global _figures_saved
    if _in_notebook():
        return  # Jupyter's inline backend shows it when the cell ends
    plt = _pyplot()
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "svg", "pdf", "ps", "cairo", "template"):
        plt.show(block=False)
        plt.pause(0.001)
        return
    folder = os.environ.get("D2L_FIGURE_DIR", "figures")
    os.makedirs(folder, exist_ok=True)
    _figures_saved += 1
    path = os.path.join(folder, f"figure-{_figures_saved}.svg")
    fig.savefig(path)
    print(f"[d2l] figure saved to {path} (no display; set D2L_FIGURE_DIR to choose the folder)", file=sys.stderr)
