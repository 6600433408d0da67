"""Train the chapter's MLPs in one framework from given weights on given minibatches.

    python tests/parity_worker.py FRAMEWORK MODEL IN.npz OUT.npz

FRAMEWORK is pytorch, mxnet, tensorflow or jax; MODEL is one of MODELS below or a comma list:
``scratch`` (``MLPScratch`` of mlp-scratch: hand-written ReLU, loss and SGD), ``concise``
(``MLP`` of mlp-concise: the framework's layers, loss and optimizer) or ``concise-scratch``
(the raw-parameter ``MLPScratch`` that mlp-concise compares with it). The classes are the
notebooks' own, read from their cells (bench/chapter_models.py); only their initial weights
are replaced. IN.npz holds the weights ``W1`` (inputs, hidden), ``b1``, ``W2`` (hidden,
outputs), ``b2``, the examples ``X`` (n, inputs) float32 and ``y`` (n,) int, and the scalars
``batch_size`` and ``lr``. The model is trained with ``d2l.Trainer`` for one epoch over X in
order (no shuffling, no validation), so step k sees rows [k * batch_size, (k + 1) * batch_size).
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from chapter_models import CHAPTER_MODELS, accepted, model_class  # noqa: E402 (bench/ is not a package)

MODELS = CHAPTER_MODELS
WEIGHT_NAMES = ("W1", "b1", "W2", "b2")


def initial_weights(rng, num_inputs=784, num_hiddens=256, num_outputs=10, sigma=0.01, bias_sigma=0.0):
    """Float32 weights drawn from ``rng``: normal(0, sigma) matrices, normal(0, bias_sigma) biases."""
    shapes = {
        "W1": (num_inputs, num_hiddens),
        "b1": (num_hiddens,),
        "W2": (num_hiddens, num_outputs),
        "b2": (num_outputs,),
    }
    return {
        name: (rng.normal(0, sigma if name.startswith("W") else bias_sigma, shape).astype(np.float32))
        for name, shape in shapes.items()
    }


def build_model(framework, kind, weights, lr):
    """The chapter's model of the given kind, its parameters starting as ``weights`` (numpy).

    An instance of a subclass of the notebook's class whose constructor takes ``lr`` alone
    (``type(model)(lr=...)`` makes another one with the same weights); the subclass only
    sets the weights after the chapter's own initialisation.
    """
    if kind not in MODELS:
        raise ValueError(f"unknown model {kind!r}: use one of {', '.join(MODELS)}")
    missing = [name for name in WEIGHT_NAMES if name not in weights]
    if missing:
        raise ValueError(f"weights lack {', '.join(missing)}; give {', '.join(WEIGHT_NAMES)}")
    weights = {name: np.ascontiguousarray(weights[name], dtype=np.float32) for name in WEIGHT_NAMES}
    notebook, class_name = MODELS[kind]
    base = model_class(notebook, framework, class_name)
    (num_inputs, num_hiddens), num_outputs = weights["W1"].shape, weights["W2"].shape[1]
    sizes = {"num_inputs": num_inputs, "num_outputs": num_outputs, "num_hiddens": num_hiddens}
    if framework == "jax":
        return _jax_class(base, sizes, weights, lr)(lr=lr)
    set_weights = _SETTERS[framework]
    arguments = accepted(base, sizes)

    class GivenWeights(base):
        def __init__(self, lr):
            super().__init__(**arguments, lr=lr)
            set_weights(self, weights, num_inputs)

    GivenWeights.__name__ = GivenWeights.__qualname__ = f"GivenWeights{base.__name__}"
    return GivenWeights(lr=lr)


def _two_dense(model, layers):
    """``layers`` if there are two (a one-hidden-layer MLP), else a clear error."""
    if len(layers) != 2:
        raise ValueError(
            f"{type(model).__name__} has {len(layers)} dense layers; the parity test "
            "sets the weights of a one-hidden-layer MLP (two)"
        )
    return layers


def _check_shape(what, have, want):
    if tuple(have) != tuple(want):
        raise ValueError(f"{what} has shape {tuple(have)}, the given weights {tuple(want)}")


def _set_torch(model, w, num_inputs):
    import torch
    from torch import nn

    with torch.no_grad():
        model(torch.zeros(1, num_inputs))  # materialises lazy layers
        layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if all(hasattr(model, name) for name in WEIGHT_NAMES):
            pairs = [(getattr(model, name), w[name]) for name in WEIGHT_NAMES]
        else:  # torch stores a Linear weight as (outputs, inputs)
            layers = _two_dense(model, layers)
            pairs = [
                (layers[0].weight, w["W1"].T),
                (layers[0].bias, w["b1"]),
                (layers[1].weight, w["W2"].T),
                (layers[1].bias, w["b2"]),
            ]
        for param, value in pairs:
            _check_shape("a parameter", param.shape, value.shape)
            param.copy_(torch.from_numpy(np.ascontiguousarray(value)))  # a copy: w stays as given


def _set_mxnet(model, w, num_inputs):
    from mxnet import np as mxnp
    from mxnet.gluon import nn

    model(mxnp.zeros((1, num_inputs)))  # deferred initialisation happens at the first call
    if all(hasattr(model, name) for name in WEIGHT_NAMES):
        for name in WEIGHT_NAMES:  # in place: the arrays keep their gradient buffers
            param = getattr(model, name)
            _check_shape(name, param.shape, w[name].shape)
            param[:] = mxnp.array(w[name], dtype="float32")
        return
    layers = _two_dense(model, [block for block in model.net._children.values() if isinstance(block, nn.Dense)])
    # gluon stores a Dense weight as (outputs, inputs)
    for layer, kernel, bias in ((layers[0], "W1", "b1"), (layers[1], "W2", "b2")):
        _check_shape(kernel, layer.weight.shape, w[kernel].T.shape)
        layer.weight.set_data(mxnp.array(np.ascontiguousarray(w[kernel].T), dtype="float32"))
        layer.bias.set_data(mxnp.array(w[bias], dtype="float32"))


def _set_tensorflow(model, w, num_inputs):
    import tensorflow as tf

    if all(hasattr(model, name) for name in WEIGHT_NAMES):
        pairs = [(getattr(model, name), w[name]) for name in WEIGHT_NAMES]
    else:  # Keras stores a Dense kernel as (inputs, outputs), like W in X @ W
        layers = _two_dense(model, [layer for layer in model.net.layers if isinstance(layer, tf.keras.layers.Dense)])
        # Built layer by layer: a Sequential built by a call would accept only that input shape.
        layers[0].build((None, num_inputs))
        layers[1].build((None, layers[0].units))
        pairs = [
            (layers[0].kernel, w["W1"]),
            (layers[0].bias, w["b1"]),
            (layers[1].kernel, w["W2"]),
            (layers[1].bias, w["b2"]),
        ]
    for variable, value in pairs:
        _check_shape(variable.name, variable.shape, value.shape)
        variable.assign(value)


def _jax_class(base, sizes, w, lr):
    """A flax subclass of ``base`` with defaults for its size fields, whose parameters start as ``w``."""
    import jax
    from jax import numpy as jnp

    def apply_init(self, dummy_input, key):
        variables = base.apply_init(self, dummy_input, key)  # the chapter's own shapes
        params = dict(variables["params"])
        if set(params) == set(WEIGHT_NAMES):  # raw parameters, as in MLPScratch
            given = {name: w[name] for name in WEIGHT_NAMES}
        else:  # flax keeps a Dense kernel as (inputs, outputs), like W in X @ W
            layers = _two_dense(self, sorted(name for name, value in params.items() if "kernel" in value))
            given = {layers[0]: {"kernel": w["W1"], "bias": w["b1"]}, layers[1]: {"kernel": w["W2"], "bias": w["b2"]}}
        jax.tree_util.tree_map(
            lambda have, want: _check_shape("a parameter", have.shape, want.shape), {k: params[k] for k in given}, given
        )
        return {**variables, "params": {**params, **jax.tree_util.tree_map(jnp.asarray, given)}}

    fields = accepted(base, {**sizes, "lr": lr})
    namespace = {
        "__annotations__": {name: type(value) for name, value in fields.items()},
        **fields,
        "apply_init": apply_init,
        "__module__": base.__module__,
    }
    return type(base)(f"GivenWeights{base.__name__}", (base,), namespace)


_SETTERS = {"pytorch": _set_torch, "mxnet": _set_mxnet, "tensorflow": _set_tensorflow}


def train_steps(framework, kind, weights, X, y, batch_size, lr):
    """Per-step training losses of one epoch of ``d2l.Trainer`` over (X, y) in order."""
    from d2l_shim.plotting import to_numpy

    d2l = importlib.import_module(FRAMEWORK_INFO[framework].shim_module)
    model = build_model(framework, kind, weights, lr)
    tensors = (
        d2l.DataModule.to_tensor(np.asarray(X, dtype=np.float32)),
        d2l.DataModule.to_tensor(np.asarray(y).astype(d2l.DataModule.label_dtype)),
    )

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
    model.board.draw = lambda x, value, label, every_n=1: losses.append(value) if label == "train_loss" else None
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
    losses = {
        kind: train_steps(
            framework, kind, weights, inputs["X"], inputs["y"], int(inputs["batch_size"]), float(inputs["lr"])
        )
        for kind in kinds
    }
    _save_npz(target, losses)


if __name__ == "__main__":
    main(sys.argv[1:])
