"""PyTorch side of the bench: the chapter's two models (trained by d2l_shim) and the minimal loop.

The models mirror ``chapter_mlp/mlp-scratch.ipynb`` (``MLPScratch``: hand-written ReLU,
log-softmax cross-entropy and ``d2l.SGD``) and ``chapter_mlp/mlp-concise.ipynb`` (``MLP``:
framework layers, loss and optimizer). The minimal loop computes the same functions.
"""

import time

import torch
from torch import nn
from torch.nn import functional as F

from d2l_shim import torch as d2l

NUM_INPUTS, NUM_OUTPUTS = 784, 10


def versions():
    return {"torch": torch.__version__, "threads": torch.get_num_threads()}


def matmul_seconds(m, k, n):
    a, b = torch.rand(m, k), torch.rand(k, n)
    start = time.perf_counter()
    torch.mm(a, b)
    return time.perf_counter() - start


# The chapter's functions and models.

def relu(X):
    return torch.maximum(X, torch.zeros_like(X))


def log_softmax(O):
    O = O - O.max(dim=1, keepdim=True).values
    return O - torch.log(torch.exp(O).sum(dim=1, keepdim=True))


def cross_entropy(O, y):
    return -log_softmax(O)[torch.arange(len(y)), y].mean()


def scratch_forward(X, W1, b1, W2, b2):
    return relu(X.reshape((-1, NUM_INPUTS)) @ W1 + b1) @ W2 + b2


class MLPScratch(d2l.Classifier):
    def __init__(self, num_inputs, num_outputs, num_hiddens, lr, sigma=0.01):
        super().__init__()
        self.save_hyperparameters()
        self.W1 = nn.Parameter(torch.randn(num_inputs, num_hiddens) * sigma)
        self.b1 = nn.Parameter(torch.zeros(num_hiddens))
        self.W2 = nn.Parameter(torch.randn(num_hiddens, num_outputs) * sigma)
        self.b2 = nn.Parameter(torch.zeros(num_outputs))

    def forward(self, X):
        return scratch_forward(X, self.W1, self.b1, self.W2, self.b2)

    def loss(self, Y_hat, Y):
        return cross_entropy(Y_hat, Y)

    def configure_optimizers(self):
        return d2l.SGD([self.W1, self.b1, self.W2, self.b2], self.lr)


def concise_net(num_hiddens):
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_hiddens), nn.ReLU(), nn.LazyLinear(NUM_OUTPUTS))


class MLP(d2l.Classifier):
    def __init__(self, num_outputs, num_hiddens, lr):
        super().__init__()
        self.save_hyperparameters()
        self.net = concise_net(num_hiddens)

    def loss(self, Y_hat, Y):
        return F.cross_entropy(Y_hat, Y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def shim_model(name, lr, num_hiddens):
    if name == "scratch":
        return MLPScratch(NUM_INPUTS, NUM_OUTPUTS, num_hiddens, lr)
    return MLP(NUM_OUTPUTS, num_hiddens, lr)


# The minimal loop.

class Minimal:
    """Pre-batched tensors, eager steps (PyTorch's normal mode), no d2l_shim involved."""

    def __init__(self, name, arrays, batch_size, lr, num_hiddens):
        self.name, self.lr = name, lr
        self.train, self.val = (list(zip(torch.from_numpy(images).split(batch_size),
                                         torch.from_numpy(labels).split(batch_size)))
                                for images, labels in (arrays["train"], arrays["val"]))
        if name == "scratch":
            self.params = [(torch.randn(NUM_INPUTS, num_hiddens) * 0.01).requires_grad_(),
                           torch.zeros(num_hiddens, requires_grad=True),
                           (torch.randn(num_hiddens, NUM_OUTPUTS) * 0.01).requires_grad_(),
                           torch.zeros(NUM_OUTPUTS, requires_grad=True)]
            self.net = lambda X: scratch_forward(X, *self.params)
            self.loss = cross_entropy
        else:
            self.net = concise_net(num_hiddens)
            self.net(self.train[0][0])  # materialise the lazy layers
            self.loss = F.cross_entropy
            self.optim = torch.optim.SGD(self.net.parameters(), lr=lr)

    def step(self, X, y):
        loss = self.loss(self.net(X), y)
        if self.name == "scratch":  # the chapter's hand-written SGD
            loss.backward()
            with torch.no_grad():
                for param in self.params:
                    param -= self.lr * param.grad
                    param.grad.zero_()
        else:
            self.optim.zero_grad()
            loss.backward()
            self.optim.step()
        return loss.detach()

    def epoch(self):
        train_losses = [self.step(X, y) for X, y in self.train]
        val_losses, val_accs = [], []
        with torch.no_grad():
            for X, y in self.val:
                Y_hat = self.net(X)
                val_losses.append(self.loss(Y_hat, y))
                val_accs.append((Y_hat.argmax(dim=1) == y).float().mean())
        return {name: float(torch.stack(values).mean()) for name, values in
                (("train_loss", train_losses), ("val_loss", val_losses), ("val_acc", val_accs))}
