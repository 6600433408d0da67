"""Per-framework tests of d2l_shim.<framework>: a short fit on real data learns, the
device helpers fall back to the CPU, each fit draws its own progress display, and a model's
own steps run (and agree with the compiled default steps of TensorFlow and JAX).

Parametrised over the four frameworks; only those of the running interpreter run
(conftest.frameworks_under_test): .venv tests pytorch, tensorflow and jax, .venv-mxnet
tests mxnet. The models are the ones tests/parity_worker.py builds for the parity test.
"""

import re

import numpy as np
import pytest
from conftest import framework_params, import_shim
from parity_worker import build_model, initial_weights
from test_core import FakeDisplay, pretend_kernel

from d2l_shim.plotting import to_numpy

NUM_TRAIN, NUM_VAL = 5000, 1000
BATCH_SIZE = 250  # divides NUM_VAL: the mean of batch means is then the mean over all of it
MAX_EPOCHS, LR = 3, 0.1
CHANCE = 0.1  # ten balanced classes

_datasets = {}


def small_fashion_mnist(d2l):
    """The first NUM_TRAIN / NUM_VAL examples of the real dataset, loaded once per framework."""
    if d2l not in _datasets:

        class SmallFashionMNIST(d2l.FashionMNIST):
            def get_dataloader(self, train):
                tensors, count = (self.train, NUM_TRAIN) if train else (self.val, NUM_VAL)
                return self.get_tensorloader(tensors, train, indices=slice(0, count))

        _datasets[d2l] = SmallFashionMNIST(batch_size=BATCH_SIZE)
    data = _datasets[d2l]
    data.rng = np.random.default_rng(0)  # the same shuffles whichever test runs first
    return data


def predict(framework, model, trainer, X):
    """Logits of the trained model as a numpy array."""
    if framework == "pytorch":
        import torch

        with torch.no_grad():
            return to_numpy(model(X))
    if framework == "jax":  # flax keeps the trained parameters in the trainer's state
        return to_numpy(model.apply({"params": trainer.state.params}, X))
    return to_numpy(model(X))


def epoch_lines(output):
    """{epoch: {'train loss': ..., 'val loss': ..., 'val acc': ...}} from the trainer's report."""
    report = {}
    for epoch, rest in re.findall(r"^epoch\s+(\d+)/\d+: (.*)$", output, flags=re.M):
        report[int(epoch)] = {name: float(value) for name, value in re.findall(r"([a-z]+ [a-z]+) ([-\d.]+)", rest)}
    return report


@pytest.mark.parametrize("kind", ["scratch", "concise"])
@pytest.mark.parametrize("framework", framework_params())
def test_short_fit_on_real_data_learns(framework, kind, figure_dir, plain_script, capsys):
    d2l = import_shim(framework)
    data = small_fashion_mnist(d2l)
    # The book's initialisation for the scratch MLP: normal(0, 0.01) weights, zero biases.
    model = build_model(framework, kind, initial_weights(np.random.default_rng(7)), lr=LR)
    # num_gpus=1 as the book writes it: must train on the CPU when there is no GPU.
    trainer = d2l.Trainer(max_epochs=MAX_EPOCHS, num_gpus=1)
    trainer.fit(model, data)

    report = epoch_lines(capsys.readouterr().out)
    assert sorted(report) == list(range(1, MAX_EPOCHS + 1)), "one report line per epoch"
    assert all(line.keys() == {"train loss", "val loss", "val acc"} for line in report.values())
    first, last = report[1], report[MAX_EPOCHS]
    assert last["train loss"] < first["train loss"] < np.log(10)  # ln 10: loss of a uniform guess
    assert last["val loss"] < first["val loss"]

    # Accuracy and loss computed here from the model's logits, independently of d2l_shim.
    X_val, y_val = (t[:NUM_VAL] for t in data.val)
    logits = predict(framework, model, trainer, X_val).astype(np.float64)
    labels = to_numpy(y_val).astype(np.int64)
    accuracy = float((logits.argmax(axis=1) == labels).mean())
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    val_loss = float(-log_probs[np.arange(len(labels)), labels].mean())
    assert accuracy > CHANCE + 0.4, f"{framework} {kind}: val accuracy {accuracy:.3f}"
    # The reported numbers are those of the trained model (printed with 4 decimals).
    assert last["val acc"] == pytest.approx(accuracy, abs=6e-5)
    assert last["val loss"] == pytest.approx(val_loss, abs=1e-4)

    # The progress board: two training points and one validation point per epoch, and one
    # figure of the whole run saved at the end (no display: this is a script).
    steps = NUM_TRAIN // BATCH_SIZE
    fractional_epochs = np.arange(MAX_EPOCHS * steps) / steps  # where each step's loss goes
    np.testing.assert_allclose(
        model.board.lines["train_loss"][0], fractional_epochs.reshape(-1, steps // 2).mean(axis=1), rtol=1e-12
    )
    assert model.board.lines["val_acc"][0] == list(range(1, MAX_EPOCHS + 1))
    assert len(list(figure_dir.glob("*.svg"))) == 1


def assert_cpu_device(framework, d2l, device):
    """``device`` is the framework's CPU device, and a tensor made there works."""
    if framework == "pytorch":
        import torch

        assert device == torch.device("cpu") == d2l.cpu()
        assert torch.ones(3, device=device).sum().item() == 3
    elif framework == "mxnet":
        import mxnet as mx
        from mxnet import np as mxnp

        assert device == mx.cpu() == d2l.cpu()
        x = mxnp.ones(3, ctx=device)
        assert x.ctx == mx.cpu() and float(x.sum()) == 3
    elif framework == "tensorflow":
        import tensorflow as tf

        with device:  # TensorFlow's devices are contexts
            x = tf.ones(3)
        assert x.device.endswith("CPU:0") and float(tf.reduce_sum(x)) == 3
    else:
        import jax
        from jax import numpy as jnp

        assert device == jax.devices("cpu")[0] == d2l.cpu()
        x = jax.device_put(jnp.ones(3), device)
        assert x.devices() == {device} and float(x.sum()) == 3


def framework_gpu_count(framework):
    """The number of GPUs as the framework itself reports it."""
    if framework == "pytorch":
        import torch

        return torch.cuda.device_count()
    if framework == "mxnet":
        import mxnet as mx

        return mx.context.num_gpus()
    if framework == "tensorflow":
        import tensorflow as tf

        return len(tf.config.list_physical_devices("GPU"))
    import jax

    return sum(device.platform == "gpu" for device in jax.devices())


@pytest.mark.parametrize("framework", framework_params())
def test_try_gpu_falls_back_to_the_cpu(framework):
    d2l = import_shim(framework)
    count = d2l.num_gpus()
    assert count == framework_gpu_count(framework)
    assert_cpu_device(framework, d2l, d2l.try_gpu(count))  # GPU number `count` never exists
    if count == 0:  # a machine without GPU: the defaults land on the CPU as well
        assert_cpu_device(framework, d2l, d2l.try_gpu())
        all_devices = d2l.try_all_gpus()
        assert len(all_devices) == 1
        assert_cpu_device(framework, d2l, all_devices[0])


@pytest.mark.parametrize("framework", framework_params())
def test_trainer_sees_the_minibatches_that_the_seed_determines(framework, figure_dir, plain_script):
    """Same seed, same minibatches, in every framework: each epoch shuffles the training
    examples with the next permutation of the data's generator; validation keeps its order."""
    d2l = import_shim(framework)
    data = small_fashion_mnist(d2l)
    seen = []

    class RecordingTrainer(d2l.Trainer):
        def prepare_batch(self, batch):  # every training and validation batch passes here
            seen.append(to_numpy(batch[-1]))
            return super().prepare_batch(batch)

    model = build_model(framework, "concise", initial_weights(np.random.default_rng(3)), lr=LR)
    model.board.display = False
    epochs = 2
    RecordingTrainer(max_epochs=epochs).fit(model, data)

    train_labels = to_numpy(data.train[1])[:NUM_TRAIN]
    val_labels = to_numpy(data.val[1])[:NUM_VAL]
    rng = np.random.default_rng(0)  # the seed small_fashion_mnist gives the data
    expected = []
    for _ in range(epochs):
        order = rng.permutation(NUM_TRAIN)
        expected += [train_labels[order[i : i + BATCH_SIZE]] for i in range(0, NUM_TRAIN, BATCH_SIZE)]
        expected += [val_labels[i : i + BATCH_SIZE] for i in range(0, NUM_VAL, BATCH_SIZE)]
    assert len(seen) == len(expected)
    mismatched = [i for i, (got, want) in enumerate(zip(seen, expected)) if not np.array_equal(got, want)]
    assert not mismatched, (
        f"{len(mismatched)} of {len(seen)} minibatches differ from the seeded order, the first is batch {mismatched[0]}"
    )


@pytest.mark.parametrize("framework", framework_params())
def test_each_fit_draws_its_own_live_display(framework, figure_dir, plain_script, monkeypatch, capsys):
    """Re-running a notebook's training cell clears its old output: the second fit must show
    a new display with the second run's curves only, never update the first one."""
    import IPython.display

    d2l = import_shim(framework)
    pretend_kernel(monkeypatch)
    shown = FakeDisplay()
    monkeypatch.setattr(IPython.display, "display", shown)
    monkeypatch.setenv("D2L_PROGRESS", "live")
    model = build_model(framework, "concise", initial_weights(np.random.default_rng(5)), lr=LR)
    d2l.Trainer(max_epochs=1).fit(model, small_fashion_mnist(d2l))
    first_run_frames = len(shown.handles[0].shown)
    d2l.Trainer(max_epochs=1).fit(model, small_fashion_mnist(d2l))

    assert [display_id for _, display_id in shown.calls] == [True, True], "one new display per fit"
    first, second = shown.handles
    assert len(first.shown) == first_run_frames, "the second fit drew into the first fit's output"
    final = {label: (xs, ys, marker) for label, xs, ys, marker in second.shown[-1]}
    assert final.keys() == {"train_loss", "val_loss", "val_acc"}
    for label, (xs, ys) in model.board.lines.items():  # the second run's own points, no more
        assert final[label][:2] == (pytest.approx(xs), pytest.approx(ys))
    assert len(final["train_loss"][0]) == model.plot_train_per_epoch
    assert len(final["val_acc"][0]) == 1 and final["val_acc"][2] != "None", "a lone point is drawn"


def model_with_own_steps(framework, weights, calls):
    """The concise model, with training_step and validation_step overridden (they record each call)."""
    base = type(build_model(framework, "concise", weights, lr=LR))
    if framework == "jax":  # flax steps take the parameters and the train state

        class OwnSteps(base):
            def training_step(self, params, batch, state):
                calls.append("train")
                return super().training_step(params, batch, state)

            def validation_step(self, params, batch, state):
                calls.append("val")
                super().validation_step(params, batch, state)
    else:

        class OwnSteps(base):
            def training_step(self, batch):
                calls.append("train")
                return super().training_step(batch)

            def validation_step(self, batch):
                calls.append("val")
                super().validation_step(batch)

    return OwnSteps(lr=LR)


@pytest.mark.parametrize("framework", framework_params())
def test_own_steps_run_and_agree_with_the_default_steps(framework, figure_dir, plain_script, capsys):
    d2l = import_shim(framework)
    weights = initial_weights(np.random.default_rng(11))
    default = build_model(framework, "concise", weights, lr=LR)
    default.board.display = False
    trainer = d2l.Trainer(max_epochs=1)
    trainer.fit(default, small_fashion_mnist(d2l))
    # TensorFlow and JAX run the default steps compiled (tf.function graphs, jitted): the fast path.
    compiles = framework in ("tensorflow", "jax")
    assert (trainer.compiled_train_step is not None, trainer.compiled_val_step is not None) == (compiles,) * 2

    calls = []
    own = model_with_own_steps(framework, weights, calls)
    own.board.display = False
    d2l.Trainer(max_epochs=1).fit(own, small_fashion_mnist(d2l))
    assert calls == ["train"] * (NUM_TRAIN // BATCH_SIZE) + ["val"] * (NUM_VAL // BATCH_SIZE)
    # Same weights, same minibatches: the same losses and accuracy, compiled or not.
    assert own.board.lines.keys() == default.board.lines.keys() == {"train_loss", "val_loss", "val_acc"}
    for label, (xs, ys) in default.board.lines.items():
        assert own.board.lines[label][0] == xs
        np.testing.assert_allclose(own.board.lines[label][1], ys, rtol=1e-4, err_msg=label)
