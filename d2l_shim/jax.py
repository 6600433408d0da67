"""JAX flavour of the d2l helpers (flax linen + optax): ``from d2l_shim import jax as d2l``.

Models are flax modules, so parameters live outside them, in the trainer's ``state``
(a flax ``TrainState``): after ``trainer.fit(model, data)`` use ``trainer.state.params``.

Training and evaluation mode, as in d2l: a model with a ``training: bool`` field (read by
its ``forward``, or given to ``nn.Dropout(deterministic=not self.training)``) runs with
``training=True`` in training steps, which also pass a fresh dropout key each step
(``rngs={"dropout": ...}``), and with ``training=False`` in validation, which needs no key.
"""

import contextlib
import dataclasses
import logging
import random
from dataclasses import field
from functools import partial
from typing import Any

import jax
import numpy as np
import optax
from flax import linen as nn
from flax.training import train_state
from jax import numpy as jnp

from d2l_shim import training
from d2l_shim.devices import Devices
from d2l_shim.hparams import HyperParameters, add_to_class  # noqa: F401 (re-exported for the book)
from d2l_shim.plotting import plot, plt, set_axes, set_figsize, show_images, use_svg_display  # noqa: F401
from d2l_shim.progress import ProgressBoard
from d2l_shim.training import run_eagerly  # noqa: F401 (the compiled/eager switch, for readers)

# JAX warns on stderr when it looks for a GPU backend that is not installed; on a CPU-only
# machine that is expected, and the warning would otherwise land in every notebook.
logging.getLogger("jax._src.xla_bridge").setLevel(logging.ERROR)

# ---------------------------------------------------------------------------------------
# tensor aliases (d2l's names)

float32 = jnp.float32
arange = jnp.arange
zeros = jnp.zeros
ones = jnp.ones
matmul = jnp.matmul
exp = jnp.exp
log = jnp.log
sigmoid = jax.nn.sigmoid
tanh = jnp.tanh
relu = jax.nn.relu
reshape = jnp.reshape


def get_seed():
    """A random seed from Python's ``random`` module, as d2l's: ``random.seed(0)`` repeats them."""
    return random.randint(0, 10**6)


def get_key(seed=None):
    """A PRNG key from ``seed``, or from ``get_seed()`` (JAX has no global random state)."""
    return jax.random.PRNGKey(get_seed() if seed is None else seed)


# ---------------------------------------------------------------------------------------
# devices


def cpu():
    return jax.devices("cpu")[0]


def _gpus():
    try:
        return jax.devices("gpu")
    except RuntimeError:  # no GPU backend in this jaxlib
        return []


def gpu(i=0):
    return _gpus()[i]


_devices = Devices(cpu, gpu, count_gpus=lambda: len(_gpus()))
num_gpus, try_gpu, try_all_gpus = _devices.num_gpus, _devices.try_gpu, _devices.try_all_gpus

# ---------------------------------------------------------------------------------------
# models


class Module(nn.Module, HyperParameters):
    """Base class of models: a flax module that knows how to train and plot itself.

    Hyperparameters are dataclass fields (flax modules are dataclasses), so there is no
    ``save_hyperparameters`` call in JAX models, and the steps take the parameters and the
    train state: ``training_step(params, batch, state)``.
    """

    plot_train_per_epoch: int = field(default=2, init=False)
    plot_valid_per_epoch: int = field(default=1, init=False)
    # A new board per model instance, not one shared by every instance.
    board: ProgressBoard = field(default_factory=ProgressBoard, init=False)

    def loss(self, y_hat, y):
        raise NotImplementedError

    def forward(self, X, *args, **kwargs):
        assert hasattr(self, "net"), "define self.net or override forward"
        return self.net(X, *args, **kwargs)

    def __call__(self, X, *args, **kwargs):
        return self.forward(X, *args, **kwargs)

    def plot(self, key, value, train):
        training.plot_point(self, key, value, train)

    def training_step(self, params, batch, state):
        loss, grads = jax.value_and_grad(self.loss)(params, batch[:-1], batch[-1], state)
        self.plot("loss", loss, train=True)
        return loss, grads

    def validation_step(self, params, batch, state):
        self.plot("loss", self.loss(params, batch[:-1], batch[-1], state), train=False)

    def apply_init(self, dummy_input, key):
        return self.init(key, *dummy_input)

    def configure_optimizers(self):
        return optax.sgd(self.lr)


class Classifier(Module):
    """Base class of classifiers. ``loss`` returns ``(mean loss, auxiliary state)``, as d2l's does."""

    def training_step(self, params, batch, state):
        (loss, aux), grads = loss_and_grads(self, params, batch, state)
        self.plot("loss", loss, train=True)
        return (loss, aux), grads

    def validation_step(self, params, batch, state):
        training.plot_validation(self, *loss_and_accuracy(self, params, batch, state))

    @partial(jax.jit, static_argnums=(0, 5))
    def accuracy(self, params, X, Y, state, averaged=True):
        Y_hat = state.apply_fn({"params": params}, *X)
        Y_hat = Y_hat.reshape((-1, Y_hat.shape[-1]))
        correct = (Y_hat.argmax(axis=1).astype(Y.dtype) == Y.reshape(-1)).astype(jnp.float32)
        return correct.mean() if averaged else correct

    @partial(jax.jit, static_argnums=(0, 5))
    def loss(self, params, X, Y, state, averaged=True):
        # The dropout key is used only where dropout is on (training); d2l passes it the same way.
        Y_hat = state.apply_fn({"params": params}, *X, rngs={"dropout": state.dropout_rng})
        losses = optax.softmax_cross_entropy_with_integer_labels(Y_hat.reshape((-1, Y_hat.shape[-1])), Y.reshape((-1,)))
        return (losses.mean() if averaged else losses), {}

    def layer_summary(self, X_shape, key=None):
        X = jnp.zeros(X_shape)
        params = self.init(key if key is not None else get_key(), X)
        training.print_layer_shapes(self.clone().bind(params).net.layers, X)


def loss_and_grads(model, params, batch, state):
    """``((loss, aux), grads)`` of a ``Classifier``'s loss on ``batch``: its training step, unplotted."""
    return jax.value_and_grad(model.loss, has_aux=True)(params, batch[:-1], batch[-1], state)


def loss_and_accuracy(model, params, batch, state):
    """A ``Classifier``'s loss and accuracy on ``batch``: what its validation step plots."""
    loss, _ = model.loss(params, batch[:-1], batch[-1], state)
    return loss, model.accuracy(params, batch[:-1], batch[-1], state)


def in_mode(model, train):
    """``model`` as applied in training (``train``) or evaluation: a clone with that ``training``
    field, if it has one. The model itself is never changed: ``jit`` caches its compiled calls
    on the module's fields and would miss a change made to them after the first call."""
    has_flag = any(f.name == "training" for f in dataclasses.fields(model))
    return model.clone(training=train) if has_flag else model


# ---------------------------------------------------------------------------------------
# optimizer


class SGD(HyperParameters):
    """Minibatch stochastic gradient descent written out by hand, as an optax transformation."""

    def __init__(self, lr):
        self.save_hyperparameters()

    def init(self, params):
        return optax.EmptyState()

    def update(self, updates, state, params=None):
        return jax.tree_util.tree_map(lambda g: -self.lr * g, updates), state

    def __call__(self):
        return optax.GradientTransformation(self.init, self.update)


# ---------------------------------------------------------------------------------------
# data


@jax.jit
def _take(tensors, indices):
    # Indexing assumes in-bounds indices; jnp.take's default mode would also mask out-of-bounds ones.
    return tuple(t[indices] for t in tensors)


class DataModule(training.DataModule):
    take_batch = staticmethod(_take)
    to_tensor = staticmethod(jnp.asarray)
    channels_last = True  # images are (height, width, channels), as flax's layers expect
    label_dtype = np.int32
    gathers_in_step = True  # a jitted call costs more than its gather: one call per minibatch


class FashionMNIST(training.FashionMNIST, DataModule):
    """Fashion-MNIST as JAX arrays."""


# ---------------------------------------------------------------------------------------
# trainer


class TrainState(train_state.TrainState):
    batch_stats: Any = None
    dropout_rng: Any = None


class Trainer(training.Trainer):
    """Keeps parameters and optimizer state in ``self.state``; the default steps are one jitted call each.

    A model that overrides ``training_step`` (or ``validation_step``) runs that step as
    written; after ``d2l.run_eagerly()`` every step runs as written with ``jit`` off.
    ``state.apply_fn`` applies the model in the current pass's mode (see the module's
    docstring), and each training step moves ``state.dropout_rng`` on to a new key. JAX
    places the work on a GPU by itself when it has one.
    """

    devices = _devices
    compiles_steps_of = Classifier

    def fit(self, model, data, key=None):
        self.key = key if key is not None else get_key()
        super().fit(model, data)

    def prepare_training(self):
        params_key, dropout_key = jax.random.split(self.key)
        # Shapes only. The validation loader is not shuffled, so drawing from it leaves the
        # training order (the same in all four frameworks) untouched.
        dummy_input = next(iter(self.val_dataloader or self.train_dataloader))[:-1]
        variables = self.model.apply_init(dummy_input, key={"params": params_key, "dropout": dropout_key})
        optimizer = self.optim() if isinstance(self.optim, SGD) else self.optim
        self.state = TrainState.create(
            apply_fn=self.model.apply,
            params=variables["params"],
            batch_stats=variables.get("batch_stats", {}),
            dropout_rng=dropout_key,
            tx=optimizer,
        )
        self.apply_fns = {train: in_mode(self.model, train).apply for train in (True, False)}

    @contextlib.contextmanager
    def mode(self, train):
        self.state = self.state.replace(apply_fn=self.apply_fns[train])
        with jax.disable_jit() if self.eager else contextlib.nullcontext():
            yield

    def compile_train_step(self):
        """``Classifier.training_step`` (less its plot) and the update, in one jitted call."""
        model = self.model

        def step(state, batch):
            (loss, _), grads = loss_and_grads(model, state.params, batch, state)
            return self._apply(state, grads), loss

        compiled = self._compiled(step)

        def run(batch):
            self.state, loss = compiled(batch)
            return loss

        return run

    def compile_val_step(self):
        """What ``Classifier.validation_step`` plots, in one jitted call (XLA shares the forward pass)."""
        model = self.model
        return self._compiled(lambda state, batch: loss_and_accuracy(model, state.params, batch, state))

    def _compiled(self, step):
        """``step(state, batch)`` jitted, for the current state; a batch's gather goes inside the call."""
        on_batch = jax.jit(step)
        # The barrier keeps XLA from fusing the gather into each consumer of the batch (the
        # forward and the backward pass): the rows are gathered once, into a buffer.
        on_rows = jax.jit(
            lambda state, tensors, indices: step(state, jax.lax.optimization_barrier(_take(tensors, indices)))
        )
        return training.gathered_or_not(
            lambda batch: on_batch(self.state, batch), lambda tensors, indices: on_rows(self.state, tensors, indices)
        )

    def train_step(self, batch):
        _, grads = self.model.training_step(self.state.params, batch, self.state)
        self.state = self._apply(self.state, grads)

    def val_step(self, batch):
        self.model.validation_step(self.state.params, batch, self.state)

    def _apply(self, state, grads):
        """``state`` after one update with ``grads`` (clipped when ``gradient_clip_val`` is set),
        with a new dropout key for the next step."""
        if self.gradient_clip_val > 0:
            grads = self.clip_gradients(self.gradient_clip_val, grads)
        next_dropout_rng = jax.random.split(state.dropout_rng)[0]
        return state.apply_gradients(grads=grads).replace(dropout_rng=next_dropout_rng)

    def clip_gradients(self, grad_clip_val, grads):
        norm = jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree_util.tree_leaves(grads)))
        scale = jnp.minimum(1.0, grad_clip_val / norm)
        return jax.tree_util.tree_map(lambda g: g * scale, grads)
