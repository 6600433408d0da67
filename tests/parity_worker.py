"""Train the chapter's MLP in one framework from given weights on given minibatches.

    python tests/parity_worker.py FRAMEWORK MODEL IN.npz OUT.npz

FRAMEWORK is pytorch, mxnet, tensorflow or jax; MODEL is ``scratch`` (raw parameters, as in
mlp-scratch), ``concise`` (the framework's dense layers, as in mlp-concise) or a comma list.
IN.npz holds the weights ``W1`` (inputs, hidden), ``b1``, ``W2`` (hidden, outputs), ``b2``,
the examples ``X`` (n, inputs) float32 and ``y`` (n,) int, and the scalars ``batch_size`` and
``lr``. The model is trained with ``d2l.Trainer`` for one epoch over X in order (no
shuffling, no validation), so step k sees rows [k * batch_size, (k + 1) * batch_size).
OUT.npz gets, per model, the training loss of every step (before that step's update).

test_parity.py runs this once per framework, each in its own environment, and compares
the losses; test_frameworks.py imports ``build_model`` to train the same models on real data.
"""

import importlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from d2l_shim import FRAMEWORK_INFO, FRAMEWORKS

MODELS = ("scratch", "concise")
WEIGHT_NAMES = ("W1", "b1", "W2", "b2")
SHIM_MODULES = {fw.name: f"d2l_shim.{fw.module}" for fw in FRAMEWORK_INFO.values()}


def initial_weights(rng, num_inputs=784, num_hiddens=256, num_outputs=10, sigma=0.01,
                    bias_sigma=0.0):
    """Float32 weights drawn from ``rng``: normal(0, sigma) matrices, normal(0, bias_sigma) biases."""
    shapes = {"W1": (num_inputs, num_hiddens), "b1": (num_hiddens,),
              "W2": (num_hiddens, num_outputs), "b2": (num_outputs,)}
    return {name: (rng.normal(0, sigma if name.startswith("W") else bias_sigma, shape)
                   .astype(np.float32)) for name, shape in shapes.items()}


def build_model(framework, kind, weights, lr):
    """A d2l ``Classifier`` of the given kind whose parameters start as ``weights`` (numpy)."""
    if kind not in MODELS:
        raise ValueError(f"unknown model {kind!r}: use one of {', '.join(MODELS)}")
    missing = [name for name in WEIGHT_NAMES if name not in weights]
    if missing:
        raise ValueError(f"weights lack {', '.join(missing)}; give {', '.join(WEIGHT_NAMES)}")
    weights = {name: np.ascontiguousarray(weights[name], dtype=np.float32) for name in WEIGHT_NAMES}
    d2l = importlib.import_module(SHIM_MODULES[framework])
    return _BUILDERS[framework](d2l, weights)[kind](lr=lr)


def _torch_models(d2l, w):
    import torch
    from torch import nn

    def tensor(name, transpose=False):
        # A copy: a tensor sharing memory with `w` would let training rewrite the given weights.
        return torch.tensor(w[name].T if transpose else w[name])

    class ScratchMLP(d2l.Classifier):
        def __init__(self, lr):
            super().__init__()
            self.save_hyperparameters()
            self.W1, self.b1, self.W2, self.b2 = (nn.Parameter(tensor(n)) for n in WEIGHT_NAMES)

        def forward(self, X):
            H = torch.relu(X.reshape(-1, self.W1.shape[0]) @ self.W1 + self.b1)
            return H @ self.W2 + self.b2

    class ConciseMLP(d2l.Classifier):
        def __init__(self, lr):
            super().__init__()
            self.save_hyperparameters()
            (num_inputs, num_hiddens), num_outputs = w["W1"].shape, w["W2"].shape[1]
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(num_inputs, num_hiddens), nn.ReLU(),
                                     nn.Linear(num_hiddens, num_outputs))
            with torch.no_grad():  # torch stores a Linear weight as (outputs, inputs)
                self.net[1].weight.copy_(tensor("W1", transpose=True))
                self.net[1].bias.copy_(tensor("b1"))
                self.net[3].weight.copy_(tensor("W2", transpose=True))
                self.net[3].bias.copy_(tensor("b2"))

    return {"scratch": ScratchMLP, "concise": ConciseMLP}


def _mxnet_models(d2l, w):
    from mxnet import np as mxnp
    from mxnet import npx
    from mxnet.gluon import nn

    def array(name, transpose=False):
        return mxnp.array(np.ascontiguousarray(w[name].T if transpose else w[name]), dtype="float32")

    class ScratchMLP(d2l.Classifier):
        def __init__(self, lr):
            super().__init__()
            self.save_hyperparameters()
            self.W1, self.b1, self.W2, self.b2 = (array(n) for n in WEIGHT_NAMES)
            for param in self.get_scratch_params():
                param.attach_grad()

        def forward(self, X):
            H = npx.relu(mxnp.dot(X.reshape(-1, self.W1.shape[0]), self.W1) + self.b1)
            return mxnp.dot(H, self.W2) + self.b2

    class ConciseMLP(d2l.Classifier):
        def __init__(self, lr):
            super().__init__()
            self.save_hyperparameters()
            (num_inputs, num_hiddens), num_outputs = w["W1"].shape, w["W2"].shape[1]
            self.net = nn.Sequential()  # gluon's Dense flattens its input itself
            self.net.add(nn.Dense(num_hiddens, activation="relu", in_units=num_inputs),
                         nn.Dense(num_outputs, in_units=num_hiddens))
            self.net.initialize()
            # gluon stores a Dense weight as (outputs, inputs)
            self.net[0].weight.set_data(array("W1", transpose=True))
            self.net[0].bias.set_data(array("b1"))
            self.net[1].weight.set_data(array("W2", transpose=True))
            self.net[1].bias.set_data(array("b2"))

    return {"scratch": ScratchMLP, "concise": ConciseMLP}


def _tensorflow_models(d2l, w):
    import tensorflow as tf

    def dense(units, kernel, bias, activation=None):
        # Keras stores a Dense kernel as (inputs, outputs), like W in X @ W.
        return tf.keras.layers.Dense(units, activation=activation,
                                     kernel_initializer=tf.keras.initializers.Constant(w[kernel]),
                                     bias_initializer=tf.keras.initializers.Constant(w[bias]))

    class ScratchMLP(d2l.Classifier):
        def __init__(self, lr):
            super().__init__()
            self.save_hyperparameters()
            self.W1, self.b1, self.W2, self.b2 = (tf.Variable(w[n]) for n in WEIGHT_NAMES)

        def forward(self, X):
            H = tf.nn.relu(tf.matmul(tf.reshape(X, (-1, self.W1.shape[0])), self.W1) + self.b1)
            return tf.matmul(H, self.W2) + self.b2

    class ConciseMLP(d2l.Classifier):
        def __init__(self, lr):
            super().__init__()
            self.save_hyperparameters()
            self.net = tf.keras.models.Sequential([
                tf.keras.layers.Flatten(),
                dense(w["W1"].shape[1], "W1", "b1", activation="relu"),
                dense(w["W2"].shape[1], "W2", "b2")])

    return {"scratch": ScratchMLP, "concise": ConciseMLP}


def _jax_models(d2l, w):
    import jax
    from flax import linen as nn
    from jax import numpy as jnp

    arrays = {name: jnp.asarray(value) for name, value in w.items()}

    def given(name):
        """A flax initializer that ignores key, shape and dtype and returns the given array."""
        return lambda key, *shape_and_dtype: arrays[name]

    class ScratchMLP(d2l.Classifier):
        lr: float

        def setup(self):
            self.W1, self.b1, self.W2, self.b2 = (self.param(n, given(n)) for n in WEIGHT_NAMES)

        def forward(self, X):
            H = jax.nn.relu(X.reshape((-1, self.W1.shape[0])) @ self.W1 + self.b1)
            return H @ self.W2 + self.b2

    class ConciseMLP(d2l.Classifier):
        lr: float

        def setup(self):
            # flax keeps a Dense kernel as (inputs, outputs), like W in X @ W.
            self.net = nn.Sequential([
                lambda X: X.reshape((X.shape[0], -1)),
                nn.Dense(w["W1"].shape[1], kernel_init=given("W1"), bias_init=given("b1")),
                nn.relu,
                nn.Dense(w["W2"].shape[1], kernel_init=given("W2"), bias_init=given("b2"))])

    return {"scratch": ScratchMLP, "concise": ConciseMLP}


_BUILDERS = {"pytorch": _torch_models, "mxnet": _mxnet_models,
             "tensorflow": _tensorflow_models, "jax": _jax_models}


def _to_tensor(framework, array):
    if framework == "pytorch":
        import torch
        return torch.from_numpy(np.ascontiguousarray(array))
    if framework == "mxnet":
        from mxnet import np as mxnp
        return mxnp.array(array, dtype=array.dtype)
    if framework == "tensorflow":
        import tensorflow as tf
        return tf.constant(array)
    from jax import numpy as jnp
    return jnp.asarray(array)


def train_steps(framework, kind, weights, X, y, batch_size, lr):
    """Per-step training losses of one epoch of ``d2l.Trainer`` over (X, y) in order."""
    from d2l_shim.plotting import to_numpy

    d2l = importlib.import_module(SHIM_MODULES[framework])
    model = build_model(framework, kind, weights, lr)
    tensors = (_to_tensor(framework, np.asarray(X, dtype=np.float32)),
               _to_tensor(framework, np.asarray(y).astype(d2l.FashionMNIST.label_dtype)))

    class InOrder(d2l.DataModule):
        def __init__(self):
            super().__init__()
            self.batch_size = int(batch_size)

        def get_dataloader(self, train):
            # No shuffling and no validation: every framework takes exactly the same steps.
            return self.get_tensorloader(tensors, train=False) if train else None

    losses = []
    # The trainer reports every step's loss to the board (which averages them); keep them all.
    model.board.display = False
    model.board.draw = lambda x, value, label, every_n=1: (
        losses.append(value) if label == "train_loss" else None)
    d2l.Trainer(max_epochs=1).fit(model, InOrder())
    return np.array([float(to_numpy(value)) for value in losses])


def _save_npz(path, arrays):
    """Write ``arrays`` to ``path`` via a temporary file, so no reader sees half a file."""
    path = Path(path)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npz")
    os.close(handle)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main(argv):
    usage = f"usage: {Path(__file__).name} FRAMEWORK MODEL[,MODEL] IN.npz OUT.npz"
    if len(argv) != 4:
        sys.exit(f"{usage}\n(expected 4 arguments, got {len(argv)})")
    framework, models, source, target = argv
    kinds = [kind.strip() for kind in models.split(",")]
    if framework not in FRAMEWORKS:
        sys.exit(f"{usage}\nunknown framework {framework!r}: use one of {', '.join(FRAMEWORKS)}")
    if not kinds or any(kind not in MODELS for kind in kinds):
        sys.exit(f"{usage}\nunknown model in {models!r}: use {', '.join(MODELS)} or a comma list")
    with np.load(source) as given:
        missing = [key for key in (*WEIGHT_NAMES, "X", "y", "batch_size", "lr") if key not in given]
        if missing:
            sys.exit(f"{source} lacks {', '.join(missing)}; see the docstring of {__file__}")
        inputs = {key: given[key] for key in given.files}
    weights = {name: inputs[name] for name in WEIGHT_NAMES}
    losses = {kind: train_steps(framework, kind, weights, inputs["X"], inputs["y"],
                                int(inputs["batch_size"]), float(inputs["lr"])) for kind in kinds}
    _save_npz(target, losses)


if __name__ == "__main__":
    main(sys.argv[1:])
