"""MXNet side of the bench: the chapter's two models (trained by d2l_shim) and the minimal loop.

The models mirror ``chapter_mlp/mlp-scratch.ipynb`` (``MLPScratch``: hand-written ReLU,
log-softmax cross-entropy and ``d2l.SGD``) and ``chapter_mlp/mlp-concise.ipynb`` (``MLP``:
gluon layers, loss and ``gluon.Trainer``). The minimal loop computes the same functions.
"""

import os
import time

import mxnet as mx
from mxnet import autograd, gluon, np, npx
from mxnet.gluon import nn

from d2l_shim import mxnet as d2l

npx.set_np()

NUM_INPUTS, NUM_OUTPUTS = 784, 10


def versions():
    env = {name: os.environ[name] for name in ("OMP_NUM_THREADS", "MXNET_CPU_WORKER_NTHREADS", "MXNET_ENGINE_TYPE")
           if name in os.environ}
    return {"mxnet": mx.__version__, "env": env}


def matmul_seconds(m, k, n):
    a, b = np.random.uniform(size=(m, k)), np.random.uniform(size=(k, n))
    npx.waitall()
    start = time.perf_counter()
    np.dot(a, b).wait_to_read()
    return time.perf_counter() - start


# The chapter's functions and models.

def relu(X):
    return np.maximum(X, 0)


def log_softmax(O):
    O = O - O.max(axis=1, keepdims=True)
    return O - np.log(np.exp(O).sum(axis=1, keepdims=True))


def cross_entropy(O, y):
    return -npx.pick(log_softmax(O), y, axis=1).mean()


def scratch_forward(X, W1, b1, W2, b2):
    return relu(X.reshape((-1, NUM_INPUTS)) @ W1 + b1) @ W2 + b2


class MLPScratch(d2l.Classifier):
    def __init__(self, num_inputs, num_outputs, num_hiddens, lr, sigma=0.01):
        super().__init__()
        self.save_hyperparameters()
        self.W1 = np.random.normal(0, sigma, (num_inputs, num_hiddens))
        self.b1 = np.zeros(num_hiddens)
        self.W2 = np.random.normal(0, sigma, (num_hiddens, num_outputs))
        self.b2 = np.zeros(num_outputs)
        for param in (self.W1, self.b1, self.W2, self.b2):
            param.attach_grad()

    def forward(self, X):
        return scratch_forward(X, self.W1, self.b1, self.W2, self.b2)

    def loss(self, Y_hat, Y):
        return cross_entropy(Y_hat, Y)

    def configure_optimizers(self):
        return d2l.SGD([self.W1, self.b1, self.W2, self.b2], self.lr)


class MLP(d2l.Classifier):
    def __init__(self, num_outputs, num_hiddens, lr):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential()
        self.net.add(nn.Dense(num_hiddens, activation="relu"), nn.Dense(num_outputs))
        self.net.initialize()

    def loss(self, Y_hat, Y):
        return gluon.loss.SoftmaxCrossEntropyLoss()(Y_hat, Y).mean()

    def configure_optimizers(self):
        return gluon.Trainer(self.collect_params(), "sgd", {"learning_rate": self.lr})


def shim_model(name, lr, num_hiddens):
    if name == "scratch":
        return MLPScratch(NUM_INPUTS, NUM_OUTPUTS, num_hiddens, lr)
    return MLP(NUM_OUTPUTS, num_hiddens, lr)


# The minimal loop.

class Minimal:
    """Pre-batched arrays; the concise net and its loss are hybridized (MXNet's compiled mode)."""

    def __init__(self, name, arrays, batch_size, lr, num_hiddens):
        self.name, self.lr = name, lr
        self.train, self.val = ([(np.array(images[i:i + batch_size]), np.array(labels[i:i + batch_size], dtype="int32"))
                                 for i in range(0, len(images), batch_size)]
                                for images, labels in (arrays["train"], arrays["val"]))
        if name == "scratch":
            self.params = [np.random.normal(0, 0.01, (NUM_INPUTS, num_hiddens)), np.zeros(num_hiddens),
                           np.random.normal(0, 0.01, (num_hiddens, NUM_OUTPUTS)), np.zeros(NUM_OUTPUTS)]
            for param in self.params:
                param.attach_grad()
            self.net = lambda X: scratch_forward(X, *self.params)
            self.loss = cross_entropy
        else:
            self.net = nn.HybridSequential()
            self.net.add(nn.Dense(num_hiddens, activation="relu"), nn.Dense(NUM_OUTPUTS))
            self.net.initialize()
            self.net.hybridize()
            loss = gluon.loss.SoftmaxCrossEntropyLoss()
            loss.hybridize()
            self.loss = lambda Y_hat, y: loss(Y_hat, y).mean()
            self.trainer = gluon.Trainer(self.net.collect_params(), "sgd", {"learning_rate": lr})

    def step(self, X, y):
        with autograd.record():
            loss = self.loss(self.net(X), y)
        loss.backward()
        if self.name == "scratch":  # the chapter's hand-written SGD
            for param in self.params:
                param -= self.lr * param.grad
        else:
            self.trainer.step(1)
        return loss

    def epoch(self):
        train_losses = [self.step(X, y) for X, y in self.train]
        val_losses, val_accs = [], []
        for X, y in self.val:
            Y_hat = self.net(X)
            val_losses.append(self.loss(Y_hat, y))
            val_accs.append((Y_hat.argmax(axis=1).astype("int32") == y).astype("float32").mean())
        return {name: float(np.stack(values).mean()) for name, values in
                (("train_loss", train_losses), ("val_loss", val_losses), ("val_acc", val_accs))}
