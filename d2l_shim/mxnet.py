"""MXNet flavour of the d2l helpers: ``from d2l_shim import mxnet as d2l``."""

import contextlib

import numpy as onp
from mxnet import autograd, gluon, np, npx
from mxnet.gluon import nn

from d2l_shim import training
from d2l_shim.devices import Devices
from d2l_shim.hparams import HyperParameters, add_to_class  # noqa: F401 (re-exported for the book)
from d2l_shim.plotting import plot, plt, set_axes, set_figsize, show_images, use_svg_display  # noqa: F401
from d2l_shim.progress import ProgressBoard  # noqa: F401 (re-exported for the book)
from d2l_shim.training import run_eagerly  # noqa: F401 (the compiled/eager switch, for readers)

npx.set_np()  # the book uses MXNet's numpy interface throughout

# ---------------------------------------------------------------------------------------
# tensor aliases (d2l's names)

float32 = onp.float32
arange = np.arange
zeros = np.zeros
ones = np.ones
normal = np.random.normal
matmul = np.dot
exp = np.exp
log = np.log
tanh = np.tanh
sigmoid = npx.sigmoid
relu = npx.relu
reshape = np.reshape

# ---------------------------------------------------------------------------------------
# devices


def cpu():
    return npx.cpu()


def gpu(i=0):
    return npx.gpu(i)


_devices = Devices(cpu, gpu, count_gpus=npx.num_gpus)
num_gpus, try_gpu, try_all_gpus = _devices.num_gpus, _devices.try_gpu, _devices.try_all_gpus

# ---------------------------------------------------------------------------------------
# models

_cross_entropy = gluon.loss.SoftmaxCrossEntropyLoss()


class Module(training.ModuleBase, nn.Block):
    """Base class of models: a gluon ``Block`` that knows how to train and plot itself.

    Models built from raw arrays (``self.W = np.random.normal(...)``) are trained with
    ``SGD`` over those arrays; models built from gluon layers with a ``gluon.Trainer``.
    """

    def get_scratch_params(self):
        """The raw ``np.ndarray`` attributes of this model (and of its d2l submodules)."""
        params = []
        for name in sorted(vars(self)):
            value = getattr(self, name)
            if isinstance(value, np.ndarray):
                params.append(value)
            elif isinstance(value, Module):
                params.extend(value.get_scratch_params())
        return params

    def set_scratch_params_device(self, device):
        """Move the raw-array parameters (and those of d2l submodules) to ``device``."""
        for name in sorted(vars(self)):
            value = getattr(self, name)
            if isinstance(value, np.ndarray):
                moved = value.as_in_ctx(device)
                moved.attach_grad()  # a copy on another device has no gradient buffer yet
                setattr(self, name, moved)
            elif isinstance(value, Module):
                value.set_scratch_params_device(device)

    def parameters(self):
        params = self.collect_params()
        return params if len(params.keys()) else self.get_scratch_params()

    def configure_optimizers(self):
        params = self.parameters()
        if isinstance(params, list):
            return SGD(params, self.lr)
        return gluon.Trainer(params, "sgd", {"learning_rate": self.lr})


class Classifier(training.ClassifierBase, Module):
    """Base class of classifiers: cross-entropy loss, accuracy, validation accuracy plotting."""

    def accuracy(self, Y_hat, Y, averaged=True):
        Y_hat = Y_hat.reshape((-1, Y_hat.shape[-1]))
        correct = (Y_hat.argmax(axis=1).astype(Y.dtype) == Y.reshape(-1)).astype(onp.float32)
        return correct.mean() if averaged else correct

    def loss(self, Y_hat, Y, averaged=True):
        losses = _cross_entropy(Y_hat.reshape((-1, Y_hat.shape[-1])), Y.reshape((-1,)))
        return losses.mean() if averaged else losses

    def layer_summary(self, X_shape):
        training.print_layer_shapes(self.net, np.random.randn(*X_shape))


# ---------------------------------------------------------------------------------------
# optimizer


class SGD(HyperParameters):
    """Minibatch stochastic gradient descent over raw arrays (``step(batch_size)`` as gluon's Trainer)."""

    def __init__(self, params, lr):
        self.save_hyperparameters()

    def step(self, _):
        # The loss is already a mean over the batch, so the batch size is not used to rescale.
        for param in self.params:
            param -= self.lr * param.grad


# ---------------------------------------------------------------------------------------
# data


def _take(tensors, indices):
    indices = np.array(indices, dtype=onp.int64)
    return tuple(t.take(indices, axis=0) for t in tensors)


def _to_tensor(array):
    return np.array(array, dtype=array.dtype)  # np.array alone would make float32 of every dtype


class DataModule(training.DataModule):
    take_batch = staticmethod(_take)
    to_tensor = staticmethod(_to_tensor)
    channels_last = False  # images are (channels, height, width)
    label_dtype = onp.int32


class FashionMNIST(training.FashionMNIST, DataModule):
    """Fashion-MNIST as MXNet arrays."""


# ---------------------------------------------------------------------------------------
# trainer


class Trainer(training.Trainer):
    """Trains on the first ``num_gpus`` GPUs that exist (at most one here), else on the CPU.

    Every step runs eagerly (the trainer hybridizes nothing), so ``d2l.run_eagerly``
    changes nothing here. Training mode is autograd's: on inside ``autograd.record()``
    (each training step), off in validation, where ``autograd.is_training()`` is False.
    """

    devices = _devices

    def prepare_batch(self, batch):
        if self.gpus:
            batch = [a.as_in_context(self.gpus[0]) for a in batch]
        return batch

    def prepare_model(self, model):
        super().prepare_model(model)
        if self.gpus:  # the model's parameters must live where the batches go
            model.set_scratch_params_device(self.gpus[0])
            model.collect_params().reset_ctx(self.gpus[0])

    def mode(self, train):
        # Training steps switch training mode on themselves (record); validation runs in
        # predict mode even when fit is called inside autograd.train_mode().
        return contextlib.nullcontext() if train else autograd.predict_mode()

    def train_step(self, batch):
        with autograd.record():  # also puts the model in training mode
            loss = self.model.training_step(batch)
        loss.backward()
        if self.gradient_clip_val > 0:
            self.clip_gradients(self.gradient_clip_val, self.model)
        self.optim.step(1)  # the loss is a batch mean already

    def clip_gradients(self, grad_clip_val, model):
        params = model.parameters()
        if not isinstance(params, list):
            params = [p.data() for p in params.values()]
        grads = [p.grad for p in params]
        norm = float(np.sqrt(sum((g**2).sum() for g in grads)))
        if norm > grad_clip_val:
            for g in grads:
                g[:] *= grad_clip_val / norm
