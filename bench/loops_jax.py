"""JAX's minimal loop for the bench: the chapter's model trained by a plain jitted loop.

``Minimal`` trains a model of the chapter (built by worker.py from the notebook's own cells)
as flax's examples do: its parameters in a flax ``TrainState``, one jitted call per step
(the model's loss, its gradient and the optimizer's update), one per validation batch, no
``d2l.Trainer``. With ``shuffle`` each epoch draws a fresh permutation and every training
step gathers its minibatch inside the jitted call (one call per step, as in d2l_shim);
without it the batches are cut once.
"""

import os

import jax
import optax
from flax.training.train_state import TrainState
from jax import numpy as jnp


def versions():
    import flax

    return {
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def matmul(m, k, n):
    """A call that multiplies an (m, k) by a (k, n) float32 matrix and waits for the result."""
    a, b = jnp.ones((m, k)), jnp.ones((k, n))
    a.block_until_ready(), b.block_until_ready()
    return lambda: jnp.matmul(a, b).block_until_ready()


class Minimal:
    def __init__(self, model, arrays, batch_size, shuffle, rng):
        self.model, self.batch_size, self.shuffle, self.rng = model, batch_size, shuffle, rng
        self.train, self.val = (
            (jnp.asarray(images), jnp.asarray(labels, jnp.int32)) for images, labels in (arrays["train"], arrays["val"])
        )
        self.prebatched, self.val_batches = (
            [[t[i : i + batch_size] for t in tensors] for i in range(0, len(tensors[0]), batch_size)]
            for tensors in (self.train, self.val)
        )
        params = model.init(jax.random.PRNGKey(0), self.val_batches[0][0])["params"]
        optim = model.configure_optimizers()  # an optax transformation, or d2l.SGD with the same methods
        self.state = TrainState.create(
            apply_fn=model.apply, params=params, tx=optax.GradientTransformation(optim.init, optim.update)
        )

        def step(state, X, y):
            (loss, _), grads = jax.value_and_grad(model.loss, has_aux=True)(state.params, (X,), y, state)
            return state.apply_gradients(grads=grads), loss

        def val_step(state, X, y):
            loss, _ = model.loss(state.params, (X,), y, state)
            correct = state.apply_fn({"params": state.params}, X).argmax(axis=1) == y
            return loss, correct.mean()

        self.train_step, self.val_step = jax.jit(step), jax.jit(val_step)
        # The barrier keeps XLA from fusing the gather into both passes (measured slower).
        self.gather_and_train_step = jax.jit(
            lambda state, X_all, y_all, indices: step(
                state, *jax.lax.optimization_barrier((X_all[indices], y_all[indices]))
            )
        )

    def epoch(self):
        train_losses = []
        if self.shuffle:
            order = self.rng.permutation(len(self.train[0]))
            for i in range(0, len(order), self.batch_size):
                self.state, loss = self.gather_and_train_step(self.state, *self.train, order[i : i + self.batch_size])
                train_losses.append(loss)
        else:
            for X, y in self.prebatched:
                self.state, loss = self.train_step(self.state, X, y)
                train_losses.append(loss)
        val_losses, val_accs = zip(*(self.val_step(self.state, X, y) for X, y in self.val_batches))
        return {
            "train_loss": float(jnp.mean(jnp.stack(train_losses))),
            "val_loss": float(jnp.mean(jnp.stack(val_losses))),
            "val_acc": float(jnp.mean(jnp.stack(val_accs))),
        }
