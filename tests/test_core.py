"""Tests of d2l_shim's framework-neutral core: plotting, hyperparameters, the progress board
and the %%tab cell marker.

Runs under both environments: framework tensors are tested for the frameworks of the
running interpreter (conftest.frameworks_under_test), everything else is numpy only.
"""

import contextlib
import os
import subprocess
import sys
import traceback
import types

import numpy as np
import pytest
from conftest import framework_params

from d2l_shim import FRAMEWORKS, plotting, progress, tab, training
from d2l_shim.devices import Devices
from d2l_shim.hparams import HyperParameters, add_to_class
from d2l_shim.progress import ProgressBoard


@pytest.fixture(autouse=True)
def fresh_figures(figure_dir, plain_script):
    """Every test runs as a script, saves figures in its own folder and closes them afterwards."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def as_tensor(kind, values):
    """``values`` (a float32 numpy array) as the array type ``kind``."""
    if kind == "numpy":
        return values
    if kind == "list":
        return values.tolist()
    if kind == "pytorch":
        import torch

        # Not a leaf and requiring grad: `.numpy()` on it raises unless detached first.
        return torch.tensor(values, requires_grad=True) * 1
    if kind == "mxnet":
        from mxnet import np as mxnp

        return mxnp.array(values, dtype="float32")
    if kind == "tensorflow":
        import tensorflow as tf

        return tf.constant(values)
    if kind == "jax":
        from jax import numpy as jnp

        return jnp.asarray(values)
    raise ValueError(kind)


TENSOR_KINDS = [pytest.param("numpy", id="numpy"), pytest.param("list", id="list"), *framework_params()]


def new_axes():
    import matplotlib.pyplot as plt

    return plt.subplots()[1]


# ---------------------------------------------------------------------------------------
# plotting


@pytest.mark.parametrize("kind", TENSOR_KINDS)
def test_plot_draws_the_values_of_every_tensor_type(kind):
    x = np.linspace(-2, 2, 9, dtype=np.float32)
    y = x**2 - 1
    if kind == "pytorch":
        assert as_tensor(kind, y).requires_grad  # the case that needs detaching
    axes = new_axes()
    plotting.plot(as_tensor(kind, x), as_tensor(kind, y), axes=axes)
    assert len(axes.lines) == 1
    np.testing.assert_array_equal(axes.lines[0].get_xdata(), x)
    np.testing.assert_array_equal(axes.lines[0].get_ydata(), y)


@pytest.mark.parametrize("kind", TENSOR_KINDS)
def test_plot_of_x_alone_is_drawn_against_its_index(kind):
    y = np.array([3.0, 1.0, 4.0, 1.0, 5.0], dtype=np.float32)
    axes = new_axes()
    plotting.plot(as_tensor(kind, y), axes=axes)
    assert len(axes.lines) == 1
    np.testing.assert_array_equal(axes.lines[0].get_xdata(), np.arange(len(y)))
    np.testing.assert_array_equal(axes.lines[0].get_ydata(), y)


@pytest.mark.parametrize("kind", TENSOR_KINDS)
def test_plot_of_several_series_shares_x_and_uses_one_format_each(kind):
    x = np.arange(6, dtype=np.float32)
    series = [np.sin(x), np.cos(x), x / 10]
    axes = new_axes()
    plotting.plot(as_tensor(kind, x), [as_tensor(kind, s) for s in series], legend=["sin", "cos", "line"], axes=axes)
    assert len(axes.lines) == len(series)
    for line, expected in zip(axes.lines, series):
        np.testing.assert_array_equal(line.get_xdata(), x)
        np.testing.assert_allclose(line.get_ydata(), expected, rtol=1e-6)
    # d2l's default formats, in order: solid, magenta dashed, green dash-dot.
    assert [line.get_linestyle() for line in axes.lines] == ["-", "--", "-."]
    assert axes.lines[1].get_color() == "m" and axes.lines[2].get_color() == "g"
    assert [text.get_text() for text in axes.get_legend().get_texts()] == ["sin", "cos", "line"]


def test_plot_applies_labels_limits_and_scales():
    axes = new_axes()
    plotting.plot([1.0, 10.0, 100.0], xlabel="x", ylabel="f(x)", xlim=(0, 2), ylim=(1, 100), yscale="log", axes=axes)
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("x", "f(x)")
    assert tuple(axes.get_xlim()) == (0, 2) and tuple(axes.get_ylim()) == (1, 100)
    assert axes.get_yscale() == "log" and axes.get_xscale() == "linear"


def test_plot_without_axes_draws_on_the_current_axes_with_the_requested_size():
    import matplotlib.pyplot as plt

    plotting.plot([0.0, 1.0, 4.0], figsize=(4.5, 1.5))
    axes = plt.gca()
    np.testing.assert_array_equal(axes.lines[0].get_ydata(), [0.0, 1.0, 4.0])
    assert tuple(plt.rcParams["figure.figsize"]) == (4.5, 1.5)


def test_set_figsize_sets_the_default_size_of_new_figures():
    import matplotlib.pyplot as plt

    plotting.set_figsize((5.0, 2.0))
    assert tuple(plt.figure().get_size_inches()) == (5.0, 2.0)


def test_plot_in_a_script_saves_the_figure_and_says_where(figure_dir, capsys):
    plotting.plot([1.0, 2.0, 3.0])
    plotting.plot([3.0, 2.0, 1.0])
    saved = sorted(figure_dir.glob("*.svg"))
    assert len(saved) == 2, "each plot gets its own file; none is overwritten"
    err = capsys.readouterr().err
    for path in saved:
        assert str(path) in err
        assert "<svg" in path.read_text()


def test_headless_script_falls_back_to_agg_and_saves_figures(tmp_path):
    """A real script with no display and no MPLBACKEND: the figure must not be lost."""
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "DISPLAY")}
    env["D2L_FIGURE_DIR"] = str(tmp_path / "out")
    script = (
        "from d2l_shim import plotting\n"
        "plotting.plot([0.0, 1.0], [2.0, 3.0], xlabel='x')\n"
        "import matplotlib; print(matplotlib.get_backend())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().lower() == "agg"
    saved = list((tmp_path / "out").glob("*.svg"))
    assert len(saved) == 1
    assert f"figure saved to {saved[0]}" in done.stderr
    assert "D2L_FIGURE_DIR" in done.stderr  # tells the reader how to choose the folder


def test_importing_ipykernel_does_not_make_a_script_a_notebook(tmp_path):
    """Tools import ipykernel without running in a kernel (nbval's pytest plugin does):
    such a script must still save its figures and get static progress boards."""
    script = (
        "import ipykernel.kernelspec\n"
        "from d2l_shim import plotting, progress\n"
        "plotting.plot([0.0, 1.0])\n"
        "print(progress.live_mode())\n"
    )
    env = {**os.environ, "D2L_FIGURE_DIR": str(tmp_path / "out")}
    env.pop("D2L_PROGRESS", None)
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "out").glob("*.svg"))) == 1, "the figure was lost"
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("kind", TENSOR_KINDS)
def test_show_images_draws_each_image_with_its_title(kind):
    rng = np.random.default_rng(0)
    images = rng.random((3, 4, 5)).astype(np.float32)
    axes = plotting.show_images([as_tensor(kind, im) for im in images], 2, 2, titles=["a", "b", "c"])
    assert len(axes) == 4
    for ax, image, title in zip(axes, images, "abc"):
        np.testing.assert_array_equal(ax.images[0].get_array(), image)
        assert ax.get_title() == title
    assert not axes[3].get_visible()  # the unused cell of the 2 x 2 grid is hidden


# ---------------------------------------------------------------------------------------
# hyperparameters


def test_save_hyperparameters_stores_the_arguments_of_init():
    class Model(HyperParameters):
        def __init__(self, lr, num_hiddens=256, _cache=None, *, sigma=0.01, **extra):
            self.save_hyperparameters(ignore=["num_hiddens"])

    model = Model(0.1, 512, sigma=0.5, depth=3)
    assert model.hparams == {"lr": 0.1, "sigma": 0.5, "extra": {"depth": 3}}
    assert (model.lr, model.sigma, model.extra) == (0.1, 0.5, {"depth": 3})
    assert not hasattr(model, "num_hiddens"), "ignored names are not stored"
    assert not hasattr(model, "_cache"), "names starting with _ are not stored"


def test_save_hyperparameters_in_a_subclass_keeps_the_base_class_values():
    class Base(HyperParameters):
        def __init__(self, width=2):
            self.save_hyperparameters()

    class Child(Base):
        def __init__(self, depth, width=3):
            super().__init__(width * 2)
            self.save_hyperparameters()

    child = Child(depth=5)
    assert (child.depth, child.width) == (5, 3)
    assert child.hparams == {"depth": 5, "width": 3}


def test_add_to_class_attaches_the_function_as_a_method():
    class Counter:
        def __init__(self):
            self.count = 1

    @add_to_class(Counter)
    def double(self):
        self.count *= 2
        return self.count

    counter = Counter()
    assert counter.double() == 2 and counter.double() == 4
    assert double.__name__ == "double"  # the decorator hands the function back


# ---------------------------------------------------------------------------------------
# progress board


class FakeClock:
    def __init__(self, start=1000.0, step=0.0):
        self.now, self.step = start, step

    def __call__(self):
        value = self.now
        self.now += self.step
        return value


def figure_snapshot(fig):
    """What a figure shows at this moment: (label, xs, ys, marker) of each curve, on every panel."""
    return [
        (
            line.get_label(),
            [float(x) for x in line.get_xdata()],
            [float(y) for y in line.get_ydata()],
            line.get_marker(),
        )
        for axes in fig.axes
        for line in axes.lines
    ]


class FakeDisplay:
    """Stands in for IPython.display.display: records each call and what the figure showed.

    As IPython's, a call with ``display_id=True`` returns a new handle (a new output area)
    whose ``update`` redraws that output only; without it, the call returns None.
    """

    def __init__(self):
        self.calls, self.updates, self.handles = [], [], []

    def __call__(self, obj, display_id=None):
        self.calls.append((obj, display_id))
        handle = FakeHandle(self, obj)
        self.handles.append(handle)
        return handle if display_id else None


class FakeHandle:
    """One output area: ``shown`` is what it showed, first display then each update."""

    def __init__(self, display, obj):
        self.display = display
        self.shown = [figure_snapshot(obj)]

    def update(self, obj):
        self.display.updates.append(obj)
        self.shown.append(figure_snapshot(obj))


def pretend_kernel(monkeypatch):
    """Give this process both signs of a Jupyter kernel: the module, and a shell with a kernel."""
    import IPython

    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    monkeypatch.setattr(IPython, "get_ipython", lambda: types.SimpleNamespace(kernel=object()))


@pytest.fixture
def fake_jupyter(monkeypatch):
    """Make the board believe it runs in a kernel; record what it displays."""
    import IPython.display

    pretend_kernel(monkeypatch)
    shown = FakeDisplay()
    monkeypatch.setattr(IPython.display, "display", shown)
    return shown


def feed(board, xs, ys, label, every_n):
    for x, y in zip(xs, ys):
        board.draw(x, y, label, every_n=every_n)


@pytest.mark.parametrize("every_n", [1, 10, 7])
def test_board_averages_every_n_points(every_n):
    rng = np.random.default_rng(1)
    xs = np.arange(1000) / 100
    ys = rng.random(1000).astype(np.float32)
    board = ProgressBoard(display=False)
    feed(board, xs, [np.float32(y) for y in ys], "train_loss", every_n)
    complete = len(xs) // every_n * every_n  # a trailing partial group is not drawn
    got_x, got_y = board.lines["train_loss"]
    np.testing.assert_allclose(got_x, xs[:complete].reshape(-1, every_n).mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(got_y, ys[:complete].astype(np.float64).reshape(-1, every_n).mean(axis=1), rtol=1e-6)


def test_board_keeps_labels_apart():
    board = ProgressBoard(display=False)
    feed(board, [1, 2], [1.0, 3.0], "train_loss", 2)
    feed(board, [1, 2], [10.0, 30.0], "val_loss", 1)
    assert board.lines == {"train_loss": ([1.5], [2.0]), "val_loss": ([1, 2], [10.0, 30.0])}


def test_epoch_summary_is_the_mean_since_the_previous_summary():
    rng = np.random.default_rng(2)
    losses, accs = rng.random(30), rng.random(5)
    board = ProgressBoard(display=False)
    feed(board, range(30), losses, "train_loss", 4)  # means cover partial groups too
    feed(board, range(5), accs, "val_acc", 1)
    summary = board.epoch_summary()
    assert summary.keys() == {"train_loss", "val_acc"}
    assert summary["train_loss"] == pytest.approx(losses.mean(), rel=1e-12)
    assert summary["val_acc"] == pytest.approx(accs.mean(), rel=1e-12)
    more = rng.random(3)
    feed(board, range(3), more, "train_loss", 4)
    assert board.epoch_summary() == {"train_loss": pytest.approx(more.mean(), rel=1e-12)}
    assert board.epoch_summary() == {}


def test_live_board_redraws_at_a_bounded_rate(monkeypatch, fake_jupyter):
    step = 1 / 64  # seconds per point, exact in binary floating point
    clock = FakeClock(step=step)
    monkeypatch.setattr(progress, "live_mode", lambda: True)
    monkeypatch.setattr(progress, "time", types.SimpleNamespace(monotonic=clock))
    board = ProgressBoard()
    points = 1000
    ys = np.linspace(2.0, 0.5, points)
    feed(board, np.arange(points), ys, "train_loss", every_n=1)
    # One redraw per REDRAW_INTERVAL of (fake) time, the first at once: not one per point.
    per_interval = int(progress.REDRAW_INTERVAL / step)
    expected = len(range(0, points, per_interval))
    assert board.redraws == expected
    assert board.redraws <= points * step / progress.REDRAW_INTERVAL + 1
    # One figure is displayed once, then updated in place.
    assert len(fake_jupyter.calls) == 1 and fake_jupyter.calls[0][1] is True
    assert len(fake_jupyter.updates) == expected - 1
    board.finish()
    assert board.redraws == expected + 1 and len(fake_jupyter.updates) == expected
    assert len(fake_jupyter.calls) == 1
    np.testing.assert_allclose(board.axes.lines[0].get_ydata(), ys)  # the final figure is complete


def test_live_board_does_not_redraw_while_time_stands_still(monkeypatch, fake_jupyter):
    monkeypatch.setattr(progress, "live_mode", lambda: True)
    monkeypatch.setattr(progress, "time", types.SimpleNamespace(monotonic=FakeClock()))
    board = ProgressBoard()
    feed(board, range(500), np.ones(500), "train_loss", every_n=1)
    assert board.redraws == 1


def test_static_board_in_a_script_saves_one_figure_at_finish(figure_dir, monkeypatch):
    monkeypatch.setenv("D2L_PROGRESS", "live")  # outside Jupyter there is no live mode anyway
    board = ProgressBoard(xlabel="epoch")
    feed(board, np.arange(100) / 10, np.linspace(1, 0, 100), "train_loss", every_n=5)
    assert board.redraws == 0 and not list(figure_dir.glob("*"))
    board.finish()
    assert board.redraws == 1
    assert len(list(figure_dir.glob("*.svg"))) == 1
    assert board.axes.get_xlabel() == "epoch"
    np.testing.assert_allclose(board.axes.lines[0].get_ydata(), np.linspace(1, 0, 100).reshape(-1, 5).mean(axis=1))


def test_static_board_in_jupyter_displays_only_the_final_figure(monkeypatch, fake_jupyter):
    monkeypatch.setenv("D2L_PROGRESS", "static")
    assert progress.live_mode() is False
    board = ProgressBoard()
    feed(board, range(200), np.linspace(1, 0, 200), "train_loss", every_n=2)
    assert fake_jupyter.calls == []
    board.finish()
    assert [obj for obj, _ in fake_jupyter.calls] == [board.fig] and fake_jupyter.updates == []


def test_board_without_display_draws_nothing(figure_dir):
    board = ProgressBoard(display=False)
    feed(board, range(10), range(10), "train_loss", every_n=1)
    board.finish()
    assert board.redraws == 0 and board.fig is None and not figure_dir.exists()


def test_live_mode_needs_a_kernel_and_respects_d2l_progress(monkeypatch):
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.delenv("D2L_PROGRESS", raising=False)
    assert progress.live_mode() is False
    pretend_kernel(monkeypatch)
    assert progress.live_mode() is True
    monkeypatch.setenv("D2L_PROGRESS", "static")
    assert progress.live_mode() is False


def test_live_board_shows_each_point_it_has_and_nothing_before(monkeypatch, fake_jupyter):
    """A line through one point draws nothing: a lone point gets a marker, or the first
    live frame would be empty axes with a legend."""
    monkeypatch.setenv("D2L_PROGRESS", "live")
    monkeypatch.setattr(progress, "time", types.SimpleNamespace(monotonic=FakeClock(step=2.0)))
    board = ProgressBoard()
    xs, ys = [0.1, 0.2, 0.3, 0.4], [2.0, 1.0, 0.8, 0.6]
    board.draw(xs[0], ys[0], "train_loss", every_n=2)
    assert fake_jupyter.calls == [], "no frame before there is a point"
    board.draw(xs[1], ys[1], "train_loss", every_n=2)
    [(label, px, py, marker)] = fake_jupyter.handles[0].shown[0]
    assert (label, px, py) == ("train_loss", [np.mean(xs[:2])], [np.mean(ys[:2])])
    assert marker not in ("None", "", " ", None), "the single point is drawn"
    feed(board, xs[2:], ys[2:], "train_loss", every_n=2)
    [(_, px, py, marker)] = fake_jupyter.handles[0].shown[-1]
    assert len(px) == 2 and marker == "None", "a line needs no markers"


def test_reset_forgets_the_run_so_far(figure_dir):
    board = ProgressBoard(display=False)
    feed(board, range(5), [1.0] * 5, "train_loss", every_n=2)  # two averaged points, one pending
    board.reset()
    assert board.lines == {} and board.epoch_summary() == {}
    feed(board, range(2), [3.0, 5.0], "train_loss", every_n=2)
    assert board.lines == {"train_loss": ([0.5], [4.0])}, "no value of the earlier run is averaged in"


# ---------------------------------------------------------------------------------------
# the trainer's epoch loop, with a numpy stand-in for a framework


class ToyModel(training.ModuleBase):
    """Its output is its input, its loss the mean of output minus label: known values to plot."""

    def __init__(self, lr=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.net = lambda X: X
        self.steps = []  # ("train" | "val", the trainer's mode then)

    def __call__(self, X):  # what the framework's base class (nn.Module, ...) does
        return self.forward(X)

    def loss(self, y_hat, y):
        return float(np.mean(y_hat - y))

    def configure_optimizers(self):
        return None


class ToyClassifier(training.ClassifierBase, ToyModel):
    def accuracy(self, y_hat, y):
        return float(np.mean(y_hat > y))


class ToyTrainer(training.Trainer):
    """A framework's part of the trainer: a step (nothing to update here) and a mode."""

    current_mode = None

    @contextlib.contextmanager
    def mode(self, train):
        self.current_mode = "train" if train else "eval"
        yield
        self.current_mode = None

    def train_step(self, batch):
        self.model.steps.append(("train", self.current_mode))
        self.model.training_step(batch)

    def val_step(self, batch):
        self.model.steps.append(("val", self.current_mode))
        super().val_step(batch)


class ToyData(training.DataModule):
    """``num_train`` training and ``num_val`` validation examples, all of value ``value`` (labels 0)."""

    take_batch = staticmethod(lambda tensors, indices: tuple(t[indices] for t in tensors))

    def __init__(self, value, num_train=8, num_val=4, batch_size=2):
        super().__init__()
        self.save_hyperparameters()
        self.rng = np.random.default_rng(0)

    def get_dataloader(self, train):
        count = self.num_train if train else self.num_val
        if count == 0:
            return None
        return self.get_tensorloader((np.full(count, self.value), np.zeros(count)), train)


def expected_train_xs(num_batches, epochs, per_epoch):
    """Where the board puts the averaged training points: mean fractional epoch of each group."""
    batch_xs = np.arange(num_batches * epochs) / num_batches
    return batch_xs.reshape(-1, num_batches // per_epoch).mean(axis=1).tolist()


def test_fit_gives_each_run_its_own_live_display_and_curves(monkeypatch, fake_jupyter, capsys):
    """A re-run of a notebook's training cell clears the old output: the second fit must draw
    into a display of its own, and show its own run only."""
    monkeypatch.setenv("D2L_PROGRESS", "live")
    monkeypatch.setattr(progress, "time", types.SimpleNamespace(monotonic=FakeClock(step=2.0)))
    model, epochs = ToyModel(), 2
    ToyTrainer(max_epochs=epochs).fit(model, ToyData(value=1.0))
    first_run_frames = len(fake_jupyter.handles[0].shown)
    ToyTrainer(max_epochs=epochs).fit(model, ToyData(value=5.0))

    assert [display_id for _, display_id in fake_jupyter.calls] == [True, True], "one new display per run"
    first, second = fake_jupyter.handles
    assert len(first.shown) == first_run_frames, "the second run never draws into the first's output"
    for frame in second.shown:
        assert all(y == 5.0 for _, _, ys, _ in frame for y in ys), "a point of the first run is shown"
    final = {label: (xs, ys) for label, xs, ys, _ in second.shown[-1]}
    assert final.keys() == {"train_loss", "val_loss"}
    assert final["train_loss"][0] == pytest.approx(expected_train_xs(4, epochs, 2))
    assert final["val_loss"] == ([1.0, 2.0], [5.0, 5.0])


def test_fit_in_static_jupyter_shows_each_runs_final_figure_once(monkeypatch, fake_jupyter, capsys):
    monkeypatch.setenv("D2L_PROGRESS", "static")
    model = ToyModel()
    for value in (1.0, 5.0):
        ToyTrainer(max_epochs=2).fit(model, ToyData(value=value))
    assert len(fake_jupyter.calls) == 2 and fake_jupyter.updates == []
    final = {label: ys for label, _, ys, _ in fake_jupyter.handles[1].shown[0]}
    assert final == {"train_loss": [5.0] * 4, "val_loss": [5.0] * 2}


def test_fit_without_validation_data_trains_and_reports_training_only(capsys):
    model = ToyModel()
    trainer = ToyTrainer(max_epochs=3)
    trainer.fit(model, ToyData(value=2.0, num_val=0))
    assert trainer.val_dataloader is None and trainer.num_val_batches == 0
    assert model.steps == [("train", "train")] * 3 * 4
    assert model.board.lines.keys() == {"train_loss"}
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"epoch {epoch}/3: train loss 2.0000" for epoch in (1, 2, 3)]


def test_fit_runs_training_and_validation_in_their_modes_and_reports_each_epoch(capsys):
    model = ToyModel()
    ToyTrainer(max_epochs=2).fit(model, ToyData(value=3.0))
    one_epoch = [("train", "train")] * 4 + [("val", "eval")] * 2
    assert model.steps == one_epoch * 2
    out = capsys.readouterr().out
    assert out.splitlines() == [f"epoch {e}/2: train loss 3.0000, val loss 3.0000" for e in (1, 2)]


class CompilingTrainer(ToyTrainer):
    """Like TensorFlow's and JAX's trainers: compiled versions of ToyClassifier's default steps."""

    compiles_steps_of = ToyClassifier

    def compile_train_step(self):
        def step(batch):
            self.model.steps.append(("compiled train", self.current_mode))
            return training.batch_loss(self.model, batch)

        return step

    def compile_val_step(self):
        def step(batch):
            self.model.steps.append(("compiled val", self.current_mode))
            return training.batch_loss_and_accuracy(self.model, batch)

        return step


class OwnTrainingStep(ToyClassifier):
    def training_step(self, batch):
        self.steps.append(("own train", None))
        return super().training_step(batch)


class OwnValidationStep(ToyClassifier):
    def validation_step(self, batch):
        self.steps.append(("own val", None))
        super().validation_step(batch)


@pytest.mark.parametrize(
    "model_class, train_kind, val_kind",
    [
        (ToyClassifier, "compiled train", "compiled val"),
        (OwnTrainingStep, "train", "compiled val"),
        (OwnValidationStep, "compiled train", "val"),
        # A Module's training_step is the Classifier's (it inherits it); its validation_step is
        # not (no accuracy), so only that one runs as written.
        (ToyModel, "compiled train", "val"),
    ],
)
def test_compiled_steps_run_where_the_model_keeps_the_default_steps(model_class, train_kind, val_kind, capsys):
    model = model_class()
    CompilingTrainer(max_epochs=1).fit(model, ToyData(value=0.5))
    kinds = [kind for kind, _ in model.steps if not kind.startswith("own")]
    assert kinds == [train_kind] * 4 + [val_kind] * 2
    # The own steps ran, once per batch, where they replace the compiled ones.
    assert sum(kind == "own train" for kind, _ in model.steps) == (4 if train_kind == "train" else 0)
    assert sum(kind == "own val" for kind, _ in model.steps) == (2 if model_class is OwnValidationStep else 0)
    # Compiled or not, the board gets the same values: what the default steps plot.
    reference = ToyClassifier() if model_class is not ToyModel else ToyModel()
    ToyTrainer(max_epochs=1).fit(reference, ToyData(value=0.5))
    assert model.board.lines == reference.board.lines


# ---------------------------------------------------------------------------------------
# devices


@pytest.mark.parametrize("count", [0, 1, 3])
def test_devices_count_the_gpus_and_fall_back_to_the_cpu(count):
    devices = Devices(cpu=lambda: "cpu", gpu=lambda i: f"gpu{i}", count_gpus=lambda: count)
    gpus = [f"gpu{i}" for i in range(count)]
    assert devices.num_gpus() == count
    assert devices.try_gpu() == (gpus[0] if gpus else "cpu")
    assert devices.try_gpu(count) == "cpu"  # GPU number `count` never exists
    assert [devices.try_gpu(i) for i in range(count)] == gpus
    assert devices.try_all_gpus() == (gpus or ["cpu"])
    assert devices.first_gpus(2) == gpus[:2]
    assert devices.first_gpus(0) == []


# ---------------------------------------------------------------------------------------
# the %%tab marker


@pytest.fixture(scope="module")
def ipython():
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"  # no history database in the home folder
    return InteractiveShell.instance(config=config)


@pytest.fixture
def shell(ipython, monkeypatch):
    """An IPython shell with the extension loaded and no framework chosen yet."""
    monkeypatch.setattr(tab, "_selected", None)
    monkeypatch.delenv("D2L_FRAMEWORK", raising=False)
    ipython.run_line_magic("load_ext", "d2l_shim.tab")
    yield ipython
    ipython.run_line_magic("unload_ext", "d2l_shim.tab")
    for name in ("ran", "value"):
        ipython.user_ns.pop(name, None)


def run(shell, capsys, source):
    capsys.readouterr()
    result = shell.run_cell(source)
    return result, capsys.readouterr().out


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_tab_cell_runs_for_the_active_framework_and_shows_its_value(shell, capsys, framework):
    tab.select(framework)
    result, out = run(shell, capsys, f"%%tab {framework}\nvalue = 41\nvalue + 1\n")
    assert result.success and result.result == 42
    assert "42" in out
    assert shell.user_ns["value"] == 41


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_tab_cells_of_other_frameworks_are_skipped_silently(shell, capsys, framework):
    tab.select(framework)
    for other in FRAMEWORKS:
        if other == framework:
            continue
        result, out = run(shell, capsys, f"%%tab {other}\nran = True\nprint('ran')\n'shown'\n")
        assert result.success and result.result is None
        assert out == ""
        assert "ran" not in shell.user_ns


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_tab_all_and_unmarked_cells_run_under_every_framework(shell, capsys, framework):
    tab.select(framework)
    result, _ = run(shell, capsys, "%%tab all\nran = 'all'\n")
    assert result.success and shell.user_ns["ran"] == "all"
    result, _ = run(shell, capsys, "ran = 'shared'\n")
    assert result.success and shell.user_ns["ran"] == "shared"


@pytest.mark.parametrize(
    "line, runs_for",
    [
        ("%%tab mxnet,jax", {"mxnet", "jax"}),
        ("%%tab pytorch, tensorflow", {"pytorch", "tensorflow"}),
        ("%%tab  jax   mxnet", {"mxnet", "jax"}),
    ],
)
def test_tab_comma_lists(shell, capsys, line, runs_for):
    ran_under = set()
    for framework in FRAMEWORKS:
        tab.select(framework)
        shell.user_ns.pop("ran", None)
        result, _ = run(shell, capsys, f"{line}\nran = True\n")
        assert result.success
        if shell.user_ns.get("ran"):
            ran_under.add(framework)
    assert ran_under == runs_for


@pytest.mark.parametrize(
    "line, hint",
    [
        ("%%tab torch", "unknown framework 'torch'"),
        ("%%tab pytorch,tf", "unknown framework 'tf'"),
        ("%%tab", "names no framework"),
        ("%%tab all, jax", "'all' cannot be combined"),
    ],
)
def test_bad_tab_line_fails_the_cell_with_a_helpful_error(shell, capsys, line, hint):
    tab.select("pytorch")
    result, out = run(shell, capsys, f"{line}\nran = True\n")
    assert not result.success
    assert isinstance(result.error_in_exec, tab.TabMarkerError)
    message = str(result.error_in_exec)
    assert hint in message
    if "unknown" in hint:
        assert all(name in message for name in FRAMEWORKS), "the error lists the valid names"
    assert "ran" not in shell.user_ns
    assert "TabMarkerError" in out


def test_no_framework_selected_says_how_to_pick_one(shell, capsys):
    result, _ = run(shell, capsys, "%%tab pytorch\nran = True\n")
    assert not result.success and isinstance(result.error_in_exec, tab.NoFrameworkError)
    message = str(result.error_in_exec)
    assert "no framework selected" in message
    assert "kernel" in message.lower() and "select('pytorch')" in message
    assert "ran" not in shell.user_ns


def test_d2l_framework_variable_picks_the_framework_and_select_overrides_it(shell, capsys, monkeypatch):
    monkeypatch.setenv("D2L_FRAMEWORK", "JAX ")  # kernels may write it in any case
    assert tab.active() == "jax"
    result, _ = run(shell, capsys, "%%tab jax\nran = 'jax'\n")
    assert result.success and shell.user_ns["ran"] == "jax"
    tab.select("tensorflow")
    shell.user_ns.pop("ran")
    result, _ = run(shell, capsys, "%%tab jax\nran = 'jax'\n")
    assert result.success and "ran" not in shell.user_ns
    result, _ = run(shell, capsys, "%%tab tensorflow\nran = 'tf'\n")
    assert shell.user_ns["ran"] == "tf"


def test_bad_d2l_framework_variable_is_reported(shell, capsys, monkeypatch):
    monkeypatch.setenv("D2L_FRAMEWORK", "theano")
    result, _ = run(shell, capsys, "%%tab jax\n1\n")
    assert isinstance(result.error_in_exec, tab.NoFrameworkError)
    assert "D2L_FRAMEWORK='theano'" in str(result.error_in_exec)


def test_select_rejects_unknown_names_and_selected_answers_for_branches(monkeypatch):
    monkeypatch.setattr(tab, "_selected", None)
    with pytest.raises(tab.TabMarkerError, match="unknown framework 'keras'"):
        tab.select("keras")
    tab.select(" MXNet ")
    assert tab.active() == "mxnet"
    assert tab.selected("mxnet", "jax") and not tab.selected("pytorch")
    with pytest.raises(tab.TabMarkerError):
        tab.selected("numpy")


def test_parse_tab_line():
    assert tab.parse_tab_line("%%tab all") == FRAMEWORKS
    assert tab.parse_tab_line("%%tab jax,pytorch\n") == ("jax", "pytorch")
    assert tab.parse_tab_line("%%tab TensorFlow") == ("tensorflow",)


@pytest.mark.parametrize("body_line", [1, 3])
def test_exception_in_a_tab_cell_fails_it_with_notebook_line_numbers(shell, capsys, body_line):
    tab.select("mxnet")
    body = ["x = 1"] * (body_line - 1) + ["raise ValueError('boom')"]
    result, out = run(shell, capsys, "%%tab mxnet\n" + "\n".join(body) + "\n")
    assert not result.success
    assert isinstance(result.error_in_exec, ValueError)
    frame = traceback.extract_tb(result.error_in_exec.__traceback__)[-1]
    assert frame.filename.startswith("<ipython-input-")
    # The %%tab line is line 1 of the notebook cell, so body line n is line n + 1.
    assert frame.lineno == body_line + 1
    assert "boom" in out


def test_other_magics_still_work_and_unloading_removes_the_marker(shell, capsys):
    tab.select("pytorch")
    result, _ = run(shell, capsys, "%%capture captured\nprint('hidden')\n")
    assert result.success and "hidden" in shell.user_ns["captured"].stdout
    shell.run_line_magic("unload_ext", "d2l_shim.tab")
    result, _ = run(shell, capsys, "%%tab pytorch\nran = True\n")
    assert not result.success and "ran" not in shell.user_ns  # %%tab is unknown again
    shell.run_line_magic("load_ext", "d2l_shim.tab")


def test_indexed_batch_reads_like_the_gathered_tuple_and_gathers_once():
    import numpy as np

    from d2l_shim.training import IndexedBatch

    X, y = np.arange(20).reshape(10, 2), np.arange(10) * 10
    gathers = []

    def take(tensors, indices):
        gathers.append(list(indices))
        return [t[indices] for t in tensors]

    batch = IndexedBatch((X, y), np.array([3, 1]), take)
    assert not batch.is_gathered and len(batch) == 2
    features, labels = batch
    assert features.tolist() == [[6, 7], [2, 3]] and labels.tolist() == [30, 10]
    assert batch[:-1][0].tolist() == [[6, 7], [2, 3]] and batch.is_gathered
    assert gathers == [[3, 1]]  # read three times, gathered once


def test_gathered_or_not_gathers_inside_the_step_only_for_an_unread_batch():
    import numpy as np

    from d2l_shim.training import IndexedBatch, gathered_or_not

    calls = []
    run = gathered_or_not(
        lambda batch: calls.append(("step", len(batch))) or "stepped",
        lambda tensors, indices: calls.append(("gather_and_step", list(indices))) or "fused",
    )
    take = lambda tensors, indices: [t[indices] for t in tensors]  # noqa: E731
    tensors = (np.zeros((4, 2)), np.zeros(4))
    assert run(IndexedBatch(tensors, np.array([0, 2]), take)) == "fused"
    read = IndexedBatch(tensors, np.array([1]), take)
    read.rows()  # someone (a model's own step, a test) looked at it: the tensors are what count
    assert run(read) == "stepped"
    assert run((np.zeros((1, 2)), np.zeros(1))) == "stepped"  # a plain tuple from any loader
    assert calls == [("gather_and_step", [0, 2]), ("step", 2), ("step", 2)]
