"""MXNet flavour of the d2l helpers: ``from d2l_shim import mxnet as d2l``."""

import numpy as onp
from mxnet import autograd, gluon, np, npx
from mxnet.gluon import nn

from d2l_shim import training
from d2l_shim.hparams import HyperParameters, add_to_class  # noqa: F401 (re-exported for the book)
from d2l_shim.plotting import plot, plt, set_axes, set_figsize, show_images, use_svg_display  # noqa: F401
from d2l_shim.progress import ProgressBoard

npx.set_np()  # the book uses MXNet's numpy interface throughout

# Tensor aliases the chapter uses (d2l names).
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


def cpu():
    return npx.cpu()


def gpu(i=0):
    return npx.gpu(i)


def num_gpus():
    return npx.num_gpus()


def try_gpu(i=0):
    """GPU ``i`` if it exists, else the CPU."""
    return gpu(i) if num_gpus() >= i + 1 else cpu()


def try_all_gpus():
    return [gpu(i) for i in range(num_gpus())] or [cpu()]


_cross_entropy = gluon.loss.SoftmaxCrossEntropyLoss()


class Module(training.ModelSteps, nn.Block):
    """Base class of models: a gluon ``Block`` that knows how to train and plot itself.

    Models built from raw arrays (``self.W = np.random.normal(...)``) are trained with
    ``SGD`` over those arrays; models built from gluon layers with a ``gluon.Trainer``.
    """

    def __init__(self, plot_train_per_epoch=2, plot_valid_per_epoch=1):
        super().__init__()
        self.save_hyperparameters()
        self.board = ProgressBoard()

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


class Classifier(training.ClassifierSteps, Module):
    """Base class of classifiers: cross-entropy loss, accuracy, validation accuracy plotting."""

    def accuracy(self, Y_hat, Y, averaged=True):
        Y_hat = Y_hat.reshape((-1, Y_hat.shape[-1]))
        correct = (Y_hat.argmax(axis=1).astype(Y.dtype) == Y.reshape(-1)).astype(onp.float32)
        return correct.mean() if averaged else correct

    def loss(self, Y_hat, Y, averaged=True):
        losses = _cross_entropy(Y_hat.reshape((-1, Y_hat.shape[-1])), Y.reshape((-1,)))
        return losses.mean() if averaged else losses

    def layer_summary(self, X_shape):
        X = np.random.randn(*X_shape)
        for layer in self.net:
            X = layer(X)
            print(layer.__class__.__name__, "output shape:\t", X.shape)


class SGD(HyperParameters):
    """Minibatch stochastic gradient descent over raw arrays (``step(batch_size)`` as gluon's Trainer)."""

    def __init__(self, params, lr):
        self.save_hyperparameters()

    def step(self, _):
        # The loss is already a mean over the batch, so the batch size is not used to rescale.
        for param in self.params:
            param -= self.lr * param.grad


def _take(tensors, indices):
    indices = np.array(indices, dtype=onp.int64)
    return tuple(t.take(indices, axis=0) for t in tensors)


class DataModule(training.DataModule):
    take_batch = staticmethod(_take)


class FashionMNIST(training.FashionMNIST, DataModule):
    channels_last = False
    label_dtype = onp.int32

    def to_tensor(self, array):
        return np.array(array, dtype=array.dtype)


class Trainer(training.Trainer):
    """Trains on the first ``num_gpus`` GPUs that exist (at most one here), else on the CPU."""

    def __init__(self, max_epochs, num_gpus=0, gradient_clip_val=0):
        super().__init__(max_epochs, num_gpus, gradient_clip_val)
        self.gpus = [gpu(i) for i in range(min(num_gpus, npx.num_gpus()))]

    def prepare_batch(self, batch):
        if self.gpus:
            batch = [a.as_in_context(self.gpus[0]) for a in batch]
        return batch

    def prepare_model(self, model):
        super().prepare_model(model)
        if self.gpus:  # the model's parameters must live where the batches go
            model.set_scratch_params_device(self.gpus[0])
            model.collect_params().reset_ctx(self.gpus[0])

    def fit_epoch(self):
        for batch in self.train_dataloader:
            with autograd.record():
                loss = self.model.training_step(self.prepare_batch(batch))
            loss.backward()
            if self.gradient_clip_val > 0:
                self.clip_gradients(self.gradient_clip_val, self.model)
            self.optim.step(1)  # the loss is a batch mean already
            self.train_batch_idx += 1
        if self.val_dataloader is None:
            return
        for batch in self.val_dataloader:
            self.model.validation_step(self.prepare_batch(batch))
            self.val_batch_idx += 1

    def clip_gradients(self, grad_clip_val, model):
        params = model.parameters()
        if not isinstance(params, list):
            params = [p.data() for p in params.values()]
        grads = [p.grad for p in params]
        norm = float(np.sqrt(sum((g ** 2).sum() for g in grads)))
        if norm > grad_clip_val:
            for g in grads:
                g[:] *= grad_clip_val / norm
