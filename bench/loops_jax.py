"""JAX side of the bench: the chapter's two models (trained by d2l_shim) and the minimal loop.

The models mirror ``chapter_mlp/mlp-scratch.ipynb`` (``MLPScratch``: hand-written ReLU,
log-softmax cross-entropy and ``d2l.SGD``) and ``chapter_mlp/mlp-concise.ipynb`` (``MLP``:
flax layers, optax loss and optimizer). The minimal loop computes the same functions.
"""

import os
import time
from functools import partial

import jax
import optax
from flax import linen as nn
from jax import numpy as jnp

from d2l_shim import jax as d2l

NUM_INPUTS, NUM_OUTPUTS = 784, 10


def versions():
    import flax

    return {"jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
            "xla_flags": os.environ.get("XLA_FLAGS", "")}


def matmul_seconds(m, k, n):
    a, b = jnp.ones((m, k)), jnp.ones((k, n))
    a.block_until_ready(), b.block_until_ready()
    start = time.perf_counter()
    jnp.matmul(a, b).block_until_ready()
    return time.perf_counter() - start


# The chapter's functions and models.

def relu(X):
    return jnp.maximum(X, 0)


def log_softmax(O):
    O = O - O.max(axis=1, keepdims=True)
    return O - jnp.log(jnp.exp(O).sum(axis=1, keepdims=True))


def cross_entropy(O, y):
    return -log_softmax(O)[jnp.arange(len(y)), y].mean()


def scratch_forward(X, W1, b1, W2, b2):
    return relu(X.reshape((-1, NUM_INPUTS)) @ W1 + b1) @ W2 + b2


class MLPScratch(d2l.Classifier):
    num_inputs: int
    num_outputs: int
    num_hiddens: int
    lr: float
    sigma: float = 0.01

    def setup(self):
        normal = nn.initializers.normal(self.sigma)
        self.W1 = self.param("W1", normal, (self.num_inputs, self.num_hiddens))
        self.b1 = self.param("b1", nn.initializers.zeros, self.num_hiddens)
        self.W2 = self.param("W2", normal, (self.num_hiddens, self.num_outputs))
        self.b2 = self.param("b2", nn.initializers.zeros, self.num_outputs)

    def forward(self, X):
        return scratch_forward(X, self.W1, self.b1, self.W2, self.b2)

    @partial(jax.jit, static_argnums=0)
    def loss(self, params, X, Y, state):
        return cross_entropy(state.apply_fn({"params": params}, *X), Y), {}

    def configure_optimizers(self):
        return d2l.SGD(self.lr)


class ConciseNet(nn.Module):
    num_hiddens: int

    @nn.compact
    def __call__(self, X):
        X = X.reshape((X.shape[0], -1))
        return nn.Dense(NUM_OUTPUTS)(nn.relu(nn.Dense(self.num_hiddens)(X)))


class MLP(d2l.Classifier):
    num_outputs: int
    num_hiddens: int
    lr: float

    @nn.compact
    def __call__(self, X):
        X = X.reshape((X.shape[0], -1))
        H = nn.relu(nn.Dense(self.num_hiddens)(X))
        return nn.Dense(self.num_outputs)(H)

    @partial(jax.jit, static_argnums=0)
    def loss(self, params, X, Y, state):
        Y_hat = state.apply_fn({"params": params}, *X)
        return optax.softmax_cross_entropy_with_integer_labels(Y_hat, Y).mean(), {}

    def configure_optimizers(self):
        return optax.sgd(self.lr)


def shim_model(name, lr, num_hiddens):
    if name == "scratch":
        return MLPScratch(NUM_INPUTS, NUM_OUTPUTS, num_hiddens, lr)
    return MLP(NUM_OUTPUTS, num_hiddens, lr)


# The minimal loop.

class Minimal:
    """Pre-batched arrays; each training and validation step is one jitted call."""

    def __init__(self, name, arrays, batch_size, lr, num_hiddens):
        self.train, self.val = ([(jnp.asarray(images[i:i + batch_size]), jnp.asarray(labels[i:i + batch_size], jnp.int32))
                                 for i in range(0, len(images), batch_size)]
                                for images, labels in (arrays["train"], arrays["val"]))
        if name == "scratch":
            apply = lambda params, X: scratch_forward(X, *params)  # noqa: E731
            loss_of_logits = cross_entropy
            self.tx = optax.GradientTransformation(  # the chapter's d2l.SGD: params -= lr * grad
                lambda params: optax.EmptyState(),
                lambda grads, state, params=None: (jax.tree_util.tree_map(lambda g: -lr * g, grads), state))
        else:
            self.net = ConciseNet(num_hiddens)
            apply = self.net.apply
            loss_of_logits = lambda O, y: optax.softmax_cross_entropy_with_integer_labels(O, y).mean()  # noqa: E731
            self.tx = optax.sgd(lr)

        def loss_fn(params, X, y):
            return loss_of_logits(apply(params, X), y)

        @jax.jit
        def train_step(params, opt_state, X, y):
            loss, grads = jax.value_and_grad(loss_fn)(params, X, y)
            updates, opt_state = self.tx.update(grads, opt_state)
            return optax.apply_updates(params, updates), opt_state, loss

        @jax.jit
        def val_step(params, X, y):
            Y_hat = apply(params, X)
            return loss_of_logits(Y_hat, y), (Y_hat.argmax(axis=1) == y).mean()

        self.train_step, self.val_step = train_step, val_step
        key1, key2 = jax.random.split(jax.random.PRNGKey(0))
        if name == "scratch":
            self.params = (0.01 * jax.random.normal(key1, (NUM_INPUTS, num_hiddens)), jnp.zeros(num_hiddens),
                           0.01 * jax.random.normal(key2, (num_hiddens, NUM_OUTPUTS)), jnp.zeros(NUM_OUTPUTS))
        else:
            self.params = self.net.init(key1, self.train[0][0])
        self.opt_state = self.tx.init(self.params)

    def epoch(self):
        train_losses, val_losses, val_accs = [], [], []
        for X, y in self.train:
            self.params, self.opt_state, loss = self.train_step(self.params, self.opt_state, X, y)
            train_losses.append(loss)
        for X, y in self.val:
            loss, acc = self.val_step(self.params, X, y)
            val_losses.append(loss)
            val_accs.append(acc)
        return {name: float(jnp.mean(jnp.stack(values))) for name, values in
                (("train_loss", train_losses), ("val_loss", val_losses), ("val_acc", val_accs))}
