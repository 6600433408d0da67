"""The training board's figure (d2l_shim.plotting.draw_board): loss and accuracy on panels of
their own, each with axis labels, a legend that names the role, one style per role in every panel,
and a figure as wide as its panels."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from d2l_shim import plotting  # noqa: E402
from d2l_shim.progress import ProgressBoard  # noqa: E402


def board(lines, **settings):
    """A board holding ``lines``, as one is after training, with the given settings."""
    made = ProgressBoard(display=False, **settings)
    made.lines = lines
    return made


def classifier_lines():
    """What a board holds after three epochs of d2l.Classifier: two training points per epoch."""
    rng = np.random.default_rng(0)
    return {
        "train_loss": (list(np.arange(1, 7) / 2), list(rng.random(6))),
        "val_loss": ([1, 2, 3], list(rng.random(3))),
        "val_acc": ([1, 2, 3], list(rng.random(3))),
    }


def test_labels_are_grouped_by_metric_and_others_share_one_panel():
    assert plotting.board_panels(["train_loss", "val_loss", "val_acc"]) == {
        "loss": ["train_loss", "val_loss"],
        "acc": ["val_acc"],
    }
    assert plotting.board_panels(["sin", "cos", "train_loss"]) == {None: ["sin", "cos"], "loss": ["train_loss"]}


def test_loss_and_accuracy_get_a_labelled_panel_each():
    lines = classifier_lines()
    fig = Figure()
    axes = plotting.draw_board(fig, board(lines, xlabel="epoch", xlim=[0, 3], figsize=(3.5, 2.5)))
    assert len(axes) == 2 and fig.axes == axes
    assert [ax.get_ylabel() for ax in axes] == ["loss", "accuracy"]
    assert [ax.get_xlabel() for ax in axes] == ["epoch", "epoch"]
    assert [ax.get_xlim() for ax in axes] == [(0.0, 3.0), (0.0, 3.0)]
    assert [[t.get_text() for t in ax.get_legend().get_texts()] for ax in axes] == [
        ["training", "validation"],
        ["validation"],
    ]
    plotted = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for ax in axes for line in ax.lines}
    assert plotted == lines
    # validation looks the same in both panels, and unlike training
    (train, val_loss), (val_acc,) = axes[0].lines, axes[1].lines
    assert (val_loss.get_linestyle(), val_loss.get_color()) == (val_acc.get_linestyle(), val_acc.get_color())
    assert (train.get_linestyle(), train.get_color()) != (val_loss.get_linestyle(), val_loss.get_color())
    assert tuple(fig.get_size_inches()) == (7.0, 2.5)


def test_a_redraw_replaces_the_panels():
    fig = Figure()
    plotting.draw_board(fig, board({"train_loss": ([0.5], [2.0])}))
    assert len(fig.axes) == 1 and fig.axes[0].lines[0].get_marker() == "o"  # one point: a marker
    plotting.draw_board(fig, board(classifier_lines()))
    assert len(fig.axes) == 2 and [len(ax.lines) for ax in fig.axes] == [2, 1]


def test_curves_without_a_role_share_one_panel_named_by_ylabel():
    fig = Figure()
    x = np.linspace(0, 6, 20)
    (axes,) = plotting.draw_board(
        fig, board({"sin": (x, np.sin(x)), "cos": (x, np.cos(x))}, xlabel="x", ylabel="y", figsize=(3.5, 2.5))
    )
    assert axes.get_ylabel() == "y" and [t.get_text() for t in axes.get_legend().get_texts()] == ["sin", "cos"]
    assert tuple(fig.get_size_inches()) == (3.5, 2.5)
