"""PyTorch flavour of the d2l helpers: ``from d2l_shim import torch as d2l``."""

import contextlib

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from d2l_shim import training
from d2l_shim.devices import Devices
from d2l_shim.hparams import HyperParameters, add_to_class  # noqa: F401 (re-exported for the book)
from d2l_shim.plotting import plot, plt, set_axes, set_figsize, show_images, use_svg_display  # noqa: F401
from d2l_shim.progress import ProgressBoard  # noqa: F401 (re-exported for the book)
from d2l_shim.training import run_eagerly  # noqa: F401 (the compiled/eager switch, for readers)

# ---------------------------------------------------------------------------------------
# tensor aliases (d2l's names)

float32 = torch.float32
arange = torch.arange
reshape = torch.reshape
zeros = torch.zeros
ones = torch.ones
normal = torch.normal
matmul = torch.matmul
exp = torch.exp
log = torch.log
sigmoid = torch.sigmoid
tanh = torch.tanh
relu = torch.relu

# ---------------------------------------------------------------------------------------
# devices


def cpu():
    return torch.device("cpu")


def gpu(i=0):
    return torch.device(f"cuda:{i}")


_devices = Devices(cpu, gpu, count_gpus=torch.cuda.device_count)
num_gpus, try_gpu, try_all_gpus = _devices.num_gpus, _devices.try_gpu, _devices.try_all_gpus

# ---------------------------------------------------------------------------------------
# models


class Module(training.ModuleBase, nn.Module):
    """Base class of models: a ``torch.nn.Module`` that knows how to train and plot itself."""

    def plot(self, key, value, train):
        # Detached: the board keeps values until it averages them, and must not keep their graphs.
        super().plot(key, value.detach(), train)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)

    def apply_init(self, inputs, init=None):
        """Run one forward pass (materialises lazy layers), then apply ``init`` to every submodule."""
        self.forward(*inputs)
        if init is not None:
            self.net.apply(init)


class Classifier(training.ClassifierBase, Module):
    """Base class of classifiers: cross-entropy loss, accuracy, validation accuracy plotting."""

    def accuracy(self, Y_hat, Y, averaged=True):
        Y_hat = Y_hat.reshape((-1, Y_hat.shape[-1]))
        correct = (Y_hat.argmax(dim=1).type(Y.dtype) == Y.reshape(-1)).type(torch.float32)
        return correct.mean() if averaged else correct

    def loss(self, Y_hat, Y, averaged=True):
        Y_hat = Y_hat.reshape((-1, Y_hat.shape[-1]))
        return F.cross_entropy(Y_hat, Y.reshape((-1,)), reduction="mean" if averaged else "none")

    def layer_summary(self, X_shape):
        training.print_layer_shapes(self.net, torch.randn(*X_shape))


# ---------------------------------------------------------------------------------------
# optimizer


class SGD(HyperParameters):
    """Minibatch stochastic gradient descent, written out by hand."""

    def __init__(self, params, lr):
        self.save_hyperparameters()

    def step(self):
        with torch.no_grad():
            for param in self.params:
                param -= self.lr * param.grad

    def zero_grad(self):
        for param in self.params:
            if param.grad is not None:
                param.grad.zero_()


# ---------------------------------------------------------------------------------------
# data


def _take(tensors, indices):
    indices = torch.from_numpy(indices)
    return tuple(t.index_select(0, indices) for t in tensors)  # faster than t[indices]


def _to_tensor(array):
    return torch.from_numpy(np.ascontiguousarray(array))  # shares the memory of `array`


class DataModule(training.DataModule):
    take_batch = staticmethod(_take)
    to_tensor = staticmethod(_to_tensor)
    channels_last = False  # images are (channels, height, width)
    label_dtype = np.int64  # what F.cross_entropy expects


class FashionMNIST(training.FashionMNIST, DataModule):
    """Fashion-MNIST as PyTorch tensors."""


# ---------------------------------------------------------------------------------------
# trainer


class Trainer(training.Trainer):
    """Trains on the first ``num_gpus`` GPUs that exist (at most one here), else on the CPU.

    Every step runs eagerly (nothing is compiled), so ``d2l.run_eagerly`` changes nothing here.
    """

    devices = _devices

    def prepare_batch(self, batch):
        if self.gpus:
            batch = [a.to(self.gpus[0], non_blocking=True) for a in batch]
        return batch

    def prepare_model(self, model):
        super().prepare_model(model)
        if self.gpus:
            model.to(self.gpus[0])

    @contextlib.contextmanager
    def mode(self, train):
        self.model.train(train)  # dropout and the like behave as in training, or not
        with torch.set_grad_enabled(train):
            yield

    def train_step(self, batch):
        loss = self.model.training_step(batch)
        self.optim.zero_grad()
        loss.backward()
        if self.gradient_clip_val > 0:
            self.clip_gradients(self.gradient_clip_val, self.model)
        self.optim.step()

    def clip_gradients(self, grad_clip_val, model):
        params = [p for p in model.parameters() if p.requires_grad]
        norm = torch.sqrt(sum(torch.sum(p.grad**2) for p in params))
        if norm > grad_clip_val:
            for param in params:
                param.grad[:] *= grad_clip_val / norm
