"""d2l_shim keeps d2l 1.0.3's meaning, not only its names: training and evaluation mode,
the dropout key of JAX, JAX's seed and key helpers, Keras's ``training=`` and the
compiled/eager switch. Our own small models, per framework (conftest.framework_params:
.venv runs pytorch, tensorflow and jax; .venv-mxnet runs mxnet).

The dropout tests train with ``lr=0`` on batches that are all the same, so the parameters
never change and every loss would be equal if nothing were random: training losses that
differ show dropout on (with a new mask, in JAX a new key, every step), validation losses
that are all equal show it off.
"""

import random

import numpy as np
import pytest
from conftest import framework_params, import_shim

from d2l_shim import training
from d2l_shim.plotting import to_numpy

NUM_INPUTS, NUM_HIDDENS, NUM_OUTPUTS = 4, 64, 3
NUM_TRAIN, NUM_VAL, BATCH_SIZE = 8, 4, 2  # 4 training steps, 2 validation batches an epoch
EPOCHS = 2


@pytest.fixture(autouse=True)
def compiled_by_default(monkeypatch):
    """Each test starts with the switch unset and $D2L_EAGER absent, and leaves it so."""
    monkeypatch.setattr(training, "_eager", None)
    monkeypatch.delenv(training.EAGER_VARIABLE, raising=False)


def same_batches(d2l):
    """Data whose every example is the same: all-ones inputs, label 0."""

    class SameBatches(d2l.DataModule):
        def __init__(self):
            super().__init__()
            self.batch_size = BATCH_SIZE
            self.rng = np.random.default_rng(0)

        def get_dataloader(self, train):
            count = NUM_TRAIN if train else NUM_VAL
            X = np.ones((count, NUM_INPUTS), np.float32)
            y = np.zeros(count, self.label_dtype)
            return self.get_tensorloader((self.to_tensor(X), self.to_tensor(y)), train)

    return SameBatches()


def recording(base):
    """``base`` with the values it plots kept in ``self.plotted``: [(label, float), ...]."""

    class Recording(base):
        def plot(self, key, value, train):
            self.plotted.append((("train_" if train else "val_") + key, float(to_numpy(value))))
            super().plot(key, value, train)

    Recording.__name__ = base.__name__
    return Recording


def dropout_models(framework, d2l):
    """{'layer': a model with the framework's dropout layer, 'flag': a model whose forward
    drops out by hand where the framework's training flag says so}, both with lr=0."""
    if framework == "pytorch":
        import torch
        from torch import nn

        class Layer(d2l.Classifier):
            def __init__(self, lr=0.0):
                super().__init__()
                self.save_hyperparameters()
                self.net = nn.Sequential(
                    nn.Linear(NUM_INPUTS, NUM_HIDDENS), nn.ReLU(), nn.Dropout(0.5), nn.Linear(NUM_HIDDENS, NUM_OUTPUTS)
                )

        class Flag(Layer):
            def forward(self, X):
                H = self.net[1](self.net[0](X))
                if self.training:
                    H = H * (torch.rand(H.shape) > 0.5).to(H.dtype) * 2
                return self.net[3](H)

    elif framework == "mxnet":
        from mxnet import autograd
        from mxnet import np as mnp
        from mxnet.gluon import nn

        class Layer(d2l.Classifier):
            def __init__(self, lr=0.0):
                super().__init__()
                self.save_hyperparameters()
                self.net = nn.Sequential()
                self.net.add(nn.Dense(NUM_HIDDENS, activation="relu"), nn.Dropout(0.5), nn.Dense(NUM_OUTPUTS))
                self.net.initialize()

        class Flag(Layer):
            def forward(self, X):
                H = self.net[0](X)
                if autograd.is_training():
                    H = H * (mnp.random.uniform(size=H.shape) > 0.5).astype(H.dtype) * 2
                return self.net[2](H)

    elif framework == "tensorflow":
        import tensorflow as tf

        class Layer(d2l.Classifier):
            def __init__(self, lr=0.0):
                super().__init__()
                self.save_hyperparameters()
                self.net = tf.keras.Sequential(
                    [
                        tf.keras.layers.Dense(NUM_HIDDENS, activation="relu"),
                        tf.keras.layers.Dropout(0.5),
                        tf.keras.layers.Dense(NUM_OUTPUTS),
                    ]
                )

        class Flag(Layer):
            def forward(self, X):
                H = self.net.layers[0](X)
                if self.training:
                    H = H * tf.cast(tf.random.uniform(tf.shape(H)) > 0.5, H.dtype) * 2
                return self.net.layers[2](H)

    else:
        import jax
        from flax import linen as nn

        class Layer(d2l.Classifier):
            lr: float = 0.0
            training: bool = True  # d2l's flag: the trainer applies the model with it set

            def setup(self):
                self.hidden = nn.Dense(NUM_HIDDENS)
                self.dropout = nn.Dropout(0.5)
                self.out = nn.Dense(NUM_OUTPUTS)

            def forward(self, X):
                return self.out(self.dropout(nn.relu(self.hidden(X)), deterministic=not self.training))

        class Flag(Layer):
            def forward(self, X):
                H = nn.relu(self.hidden(X))
                if self.training:  # the trainer's dropout key, through flax's rng streams
                    H = H * (jax.random.uniform(self.make_rng("dropout"), H.shape) > 0.5).astype(H.dtype) * 2
                return self.out(H)

    return {"layer": recording(Layer), "flag": recording(Flag)}


def only(framework):
    """The one-framework parametrisation, empty where this interpreter does not test ``framework``."""
    return [param for param in framework_params() if param.values[0] == framework]


def plotted(model, label):
    return [value for name, value in model.plotted if name == label]


@pytest.mark.parametrize("kind", ["layer", "flag"])
@pytest.mark.parametrize("framework", framework_params())
def test_dropout_is_random_in_training_and_off_in_validation(framework, kind, capsys):
    d2l = import_shim(framework)
    model = dropout_models(framework, d2l)[kind]()
    model.plotted = []
    trainer = d2l.Trainer(max_epochs=EPOCHS)
    trainer.fit(model, same_batches(d2l))

    train_losses, val_losses = plotted(model, "train_loss"), plotted(model, "val_loss")
    assert len(train_losses) == EPOCHS * NUM_TRAIN // BATCH_SIZE
    assert len(val_losses) == EPOCHS * NUM_VAL // BATCH_SIZE
    assert len(set(train_losses)) == len(train_losses), f"one dropout mask reused in training: {train_losses}"
    assert len(set(val_losses)) == 1, f"validation is random, so dropout is on there: {val_losses}"
    assert len(set(plotted(model, "val_acc"))) == 1


@pytest.mark.parametrize("framework", framework_params())
def test_a_models_own_steps_see_the_same_modes(framework, capsys):
    """A model that overrides its steps runs them as written (never compiled), in the same modes."""
    d2l = import_shim(framework)
    base = dropout_models(framework, d2l)["layer"]

    if framework == "jax":

        class OwnSteps(base):
            def training_step(self, params, batch, state):
                return super().training_step(params, batch, state)

            def validation_step(self, params, batch, state):
                super().validation_step(params, batch, state)
    else:

        class OwnSteps(base):
            def training_step(self, batch):
                return super().training_step(batch)

            def validation_step(self, batch):
                super().validation_step(batch)

    model = OwnSteps()
    model.plotted = []
    d2l.Trainer(max_epochs=EPOCHS).fit(model, same_batches(d2l))
    train_losses, val_losses = plotted(model, "train_loss"), plotted(model, "val_loss")
    assert len(set(train_losses)) == len(train_losses) == EPOCHS * NUM_TRAIN // BATCH_SIZE
    assert len(set(val_losses)) == 1


# ---------------------------------------------------------------------------------------
# each framework's own flag


@pytest.mark.parametrize("framework", only("pytorch"))
def test_pytorch_trains_with_gradients_and_validates_without(framework):
    import torch

    d2l = import_shim("pytorch")
    base = dropout_models("pytorch", d2l)["layer"]

    class Modes(base):
        def forward(self, X):
            self.modes.append((self.training, self.net[2].training, torch.is_grad_enabled()))
            return super().forward(X)

    model = Modes()
    model.plotted, model.modes = [], []
    d2l.Trainer(max_epochs=1).fit(model, same_batches(d2l))
    assert model.modes == [(True, True, True)] * 4 + [(False, False, False)] * 2


@pytest.mark.parametrize("framework", only("mxnet"))
def test_mxnet_trains_in_autograds_training_mode_and_validates_in_predict_mode(framework):
    from mxnet import autograd

    d2l = import_shim("mxnet")
    base = dropout_models("mxnet", d2l)["layer"]

    class Modes(base):
        def forward(self, X):
            self.modes.append((autograd.is_training(), autograd.is_recording()))
            return super().forward(X)

    model = Modes()
    model.plotted, model.modes = [], []
    with autograd.train_mode():  # validation still runs in predict mode
        d2l.Trainer(max_epochs=1).fit(model, same_batches(d2l))
    assert model.modes == [(True, True)] * 4 + [(False, False)] * 2


@pytest.mark.parametrize("framework", only("tensorflow"))
def test_keras_call_records_training_and_a_plain_call_follows_it(framework):
    """d2l's Keras ``Module.call`` keeps ``training=`` in ``self.training``; a call without it
    runs in that mode, and Keras layers inside (Dropout) follow."""
    import tensorflow as tf

    d2l = import_shim("tensorflow")
    model = dropout_models("tensorflow", d2l)["layer"]()
    X = tf.ones((8, NUM_INPUTS))
    assert model.training is None  # as d2l's: unset until a trainer or a call sets it
    first = model(X).numpy()
    assert np.array_equal(model(X).numpy(), first), "a model called before training drops nothing"

    model(X, training=True)
    assert model.training is True
    assert not np.array_equal(model(X).numpy(), model(X).numpy()), "training mode: dropout is on"
    model(X, training=False)
    assert model.training is False
    assert np.array_equal(model(X).numpy(), first)


@pytest.mark.parametrize("framework", only("tensorflow"))
def test_keras_trainer_sets_training_for_each_pass(framework, capsys):
    d2l = import_shim("tensorflow")
    base = dropout_models("tensorflow", d2l)["flag"]

    class Modes(base):
        def training_step(self, batch):  # an own step runs eagerly, every batch
            self.modes.append(self.training)
            return super().training_step(batch)

        def validation_step(self, batch):
            self.modes.append(self.training)
            super().validation_step(batch)

    model = Modes()
    model.plotted, model.modes = [], []
    d2l.Trainer(max_epochs=1).fit(model, same_batches(d2l))
    assert model.modes == [True] * 4 + [False] * 2


@pytest.mark.parametrize("framework", only("jax"))
def test_flax_model_is_left_as_built_and_the_state_applies_it_in_evaluation_after_fit(framework, capsys):
    """The trainer applies clones with ``training`` set; the model keeps its own field (jit caches
    on it), and after fit ``state.apply_fn`` predicts deterministically, without a dropout key."""
    import jax.numpy as jnp

    d2l = import_shim("jax")
    model = dropout_models("jax", d2l)["layer"]()
    model.plotted = []
    trainer = d2l.Trainer(max_epochs=1)
    trainer.fit(model, same_batches(d2l), key=d2l.get_key(0))
    assert model.training is True
    X = jnp.ones((8, NUM_INPUTS))
    variables = {"params": trainer.state.params}
    predicted = trainer.state.apply_fn(variables, X)
    assert np.array_equal(predicted, trainer.state.apply_fn(variables, X))
    assert np.array_equal(predicted, model.clone(training=False).apply(variables, X))


# ---------------------------------------------------------------------------------------
# JAX's seed and key helpers


@pytest.mark.parametrize("framework", only("jax"))
def test_jax_get_seed_draws_from_pythons_random_module(framework):
    d2l = import_shim("jax")
    random.seed(1)
    seeds = [d2l.get_seed() for _ in range(5)]
    random.seed(1)
    assert [d2l.get_seed() for _ in range(5)] == seeds, "random.seed repeats the seeds"
    assert len(set(seeds)) == 5 and all(isinstance(s, int) and 0 <= s <= 10**6 for s in seeds)


@pytest.mark.parametrize("framework", only("jax"))
def test_jax_get_key_makes_keys_from_a_seed_or_a_drawn_one(framework):
    import jax

    d2l = import_shim("jax")
    assert np.array_equal(d2l.get_key(7), jax.random.PRNGKey(7))
    random.seed(3)
    drawn = [d2l.get_key(), d2l.get_key()]
    assert not np.array_equal(*drawn), "each call draws a new seed"
    random.seed(3)
    assert np.array_equal(d2l.get_key(), drawn[0])


@pytest.mark.parametrize("framework", only("jax"))
def test_jax_fit_without_a_key_draws_one_through_get_key(framework, capsys):
    """As d2l's: ``fit(model, data)`` draws its key from Python's ``random``, so ``random.seed``
    makes the initial parameters repeat, and a different seed changes them."""
    import jax

    d2l = import_shim("jax")
    Layer = dropout_models("jax", d2l)["layer"]

    def initial_params(seed):
        random.seed(seed)
        model = Layer()
        model.plotted = []
        trainer = d2l.Trainer(max_epochs=0)
        trainer.fit(model, same_batches(d2l))
        return np.concatenate([np.ravel(p) for p in jax.tree_util.tree_leaves(trainer.state.params)])

    assert np.array_equal(initial_params(0), initial_params(0))
    assert not np.array_equal(initial_params(0), initial_params(1))


# ---------------------------------------------------------------------------------------
# compiled or eager: one switch


def counting_model(framework, d2l):
    """A classifier whose forward counts its Python runs (a side effect a compiled step skips)."""
    base = dropout_models(framework, d2l)["layer"]
    runs = []

    class Counting(base):
        def forward(self, X):
            runs.append(1)
            return super().forward(X)

    model = Counting()
    model.plotted = []
    return model, runs


@pytest.mark.parametrize("how", ["function", "variable"])
@pytest.mark.parametrize("framework", only("tensorflow") + only("jax"))
def test_the_switch_makes_tensorflow_and_jax_run_every_step_eagerly(framework, how, monkeypatch, capsys):
    d2l = import_shim(framework)
    steps = EPOCHS * (NUM_TRAIN + NUM_VAL) // BATCH_SIZE

    compiled, compiled_runs = counting_model(framework, d2l)
    d2l.Trainer(max_epochs=EPOCHS).fit(compiled, same_batches(d2l))
    assert len(compiled_runs) < steps, "compiled steps run the forward only while tracing"

    if how == "function":
        d2l.run_eagerly()
    else:
        monkeypatch.setenv(training.EAGER_VARIABLE, "1")
    eager, eager_runs = counting_model(framework, d2l)
    d2l.Trainer(max_epochs=EPOCHS).fit(eager, same_batches(d2l))
    assert len(eager_runs) >= steps, "every step runs the forward as Python"
    # Eager or compiled, the modes are the same: dropout in training only.
    assert len(set(plotted(eager, "val_loss"))) == 1
    assert len(set(plotted(eager, "train_loss"))) == EPOCHS * NUM_TRAIN // BATCH_SIZE

    d2l.run_eagerly(False)  # the function's setting wins over the variable
    again, again_runs = counting_model(framework, d2l)
    d2l.Trainer(max_epochs=EPOCHS).fit(again, same_batches(d2l))
    assert len(again_runs) < steps


def test_runs_eagerly_reads_the_variable_unless_the_function_set_it(monkeypatch):
    assert training.runs_eagerly() is False
    for value, eager in (("1", True), ("0", False), ("", False)):
        monkeypatch.setenv(training.EAGER_VARIABLE, value)
        assert training.runs_eagerly() is eager
    monkeypatch.setenv(training.EAGER_VARIABLE, "1")
    training.run_eagerly(False)
    assert training.runs_eagerly() is False
    training.run_eagerly()
    assert training.runs_eagerly() is True
