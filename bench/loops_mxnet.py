"""MXNet's minimal loop for the bench: the chapter's model trained by a plain gluon loop.

``Minimal`` trains a model of the chapter (built by worker.py from the notebook's own cells)
as gluon's tutorials do: ``autograd.record``, ``backward``, the model's optimizer ``step``,
no ``d2l.Trainer``. The chapter's concise net is a ``nn.Sequential`` (not hybridizable), so
both sides run imperatively. With ``shuffle`` each epoch draws a fresh permutation and
gathers every minibatch with ``take``; without it the batches are cut once, in order.
"""

import os

import mxnet as mx
from mxnet import autograd, np, npx

THREAD_SETTINGS = ("OMP_NUM_THREADS", "MXNET_CPU_WORKER_NTHREADS", "MXNET_ENGINE_TYPE")


def versions():
    env = {name: os.environ[name] for name in THREAD_SETTINGS if name in os.environ}
    return {"mxnet": mx.__version__, "env": env}


def matmul(m, k, n):
    """A call that multiplies an (m, k) by a (k, n) float32 matrix and waits for the result."""
    a, b = np.random.uniform(size=(m, k)), np.random.uniform(size=(k, n))
    npx.waitall()
    return lambda: np.dot(a, b).wait_to_read()


class Minimal:
    def __init__(self, model, arrays, batch_size, shuffle, rng):
        self.model, self.batch_size, self.shuffle, self.rng = model, batch_size, shuffle, rng
        self.train, self.val = (
            (np.array(images), np.array(labels, dtype="int32")) for images, labels in (arrays["train"], arrays["val"])
        )
        self.prebatched = [
            [t[i : i + batch_size] for t in self.train] for i in range(0, len(self.train[0]), batch_size)
        ]
        self.val_batches = [[t[i : i + batch_size] for t in self.val] for i in range(0, len(self.val[0]), batch_size)]
        model(self.val_batches[0][0])  # gluon's deferred initialisation happens at the first call
        self.optim = model.configure_optimizers()

    def train_batches(self):
        if not self.shuffle:
            return self.prebatched
        order = np.array(self.rng.permutation(len(self.train[0])), dtype="int64")
        return (
            [t.take(order[i : i + self.batch_size], axis=0) for t in self.train]
            for i in range(0, len(order), self.batch_size)
        )

    def epoch(self):
        model, train_losses, val_losses, val_accs = self.model, [], [], []
        for X, y in self.train_batches():
            with autograd.record():
                loss = model.loss(model(X), y)
            loss.backward()
            self.optim.step(1)  # the loss is a batch mean already
            train_losses.append(loss)
        for X, y in self.val_batches:
            Y_hat = model(X)
            val_losses.append(model.loss(Y_hat, y))
            val_accs.append((Y_hat.argmax(axis=1).astype("int32") == y).astype("float32").mean())
        return {
            "train_loss": float(np.stack(train_losses).mean()),
            "val_loss": float(np.stack(val_losses).mean()),
            "val_acc": float(np.stack(val_accs).mean()),
        }
