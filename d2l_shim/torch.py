"""PyTorch flavour of the d2l helpers: ``from d2l_shim import torch as d2l``."""

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from d2l_shim import training
from d2l_shim.hparams import HyperParameters, add_to_class  # noqa: F401 (re-exported for the book)
from d2l_shim.plotting import plot, plt, set_axes, set_figsize, show_images, use_svg_display  # noqa: F401
from d2l_shim.progress import ProgressBoard

# Tensor aliases the chapter uses (d2l names).
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


def cpu():
    return torch.device("cpu")


def gpu(i=0):
    return torch.device(f"cuda:{i}")


def num_gpus():
    return torch.cuda.device_count()


def try_gpu(i=0):
    """GPU ``i`` if it exists, else the CPU."""
    return gpu(i) if num_gpus() >= i + 1 else cpu()


def try_all_gpus():
    return [gpu(i) for i in range(num_gpus())] or [cpu()]


class Module(training.ModelSteps, nn.Module):
    """Base class of models: a ``torch.nn.Module`` that knows how to train and plot itself."""

    def __init__(self, plot_train_per_epoch=2, plot_valid_per_epoch=1):
        super().__init__()
        self.save_hyperparameters()
        self.board = ProgressBoard()

    def plot(self, key, value, train):
        training.plot_point(self, key, value.detach(), train)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)

    def apply_init(self, inputs, init=None):
        """Run one forward pass (materialises lazy layers), then apply ``init`` to every submodule."""
        self.forward(*inputs)
        if init is not None:
            self.net.apply(init)


class Classifier(training.ClassifierSteps, Module):
    """Base class of classifiers: cross-entropy loss, accuracy, validation accuracy plotting."""

    def accuracy(self, Y_hat, Y, averaged=True):
        Y_hat = Y_hat.reshape((-1, Y_hat.shape[-1]))
        correct = (Y_hat.argmax(dim=1).type(Y.dtype) == Y.reshape(-1)).type(torch.float32)
        return correct.mean() if averaged else correct

    def loss(self, Y_hat, Y, averaged=True):
        Y_hat = Y_hat.reshape((-1, Y_hat.shape[-1]))
        return F.cross_entropy(Y_hat, Y.reshape((-1,)), reduction="mean" if averaged else "none")

    def layer_summary(self, X_shape):
        X = torch.randn(*X_shape)
        for layer in self.net:
            X = layer(X)
            print(layer.__class__.__name__, "output shape:\t", X.shape)


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


class _TensorBatches(torch.utils.data.Dataset):
    """Dataset indexed by a whole batch of indices at once."""

    def __init__(self, tensors):
        self.tensors = tensors

    def __len__(self):
        return len(self.tensors[0])

    def __getitem__(self, indices):
        indices = torch.from_numpy(indices)
        return tuple(t.index_select(0, indices) for t in self.tensors)  # faster than t[indices]


class DataModule(training.DataModule):
    def get_tensorloader(self, tensors, train, indices=slice(0, None)):
        tensors = tuple(t[indices] for t in tensors)
        # A torch DataLoader whose sampler yields whole index batches: one gather per batch.
        sampler = training.IndexBatches(len(tensors[0]), self.batch_size, train, getattr(self, "rng", None))
        return torch.utils.data.DataLoader(_TensorBatches(tensors), sampler=sampler, batch_size=None)


class FashionMNIST(training.FashionMNIST, DataModule):
    channels_last = False
    label_dtype = np.int64

    def to_tensor(self, array):
        return torch.from_numpy(np.ascontiguousarray(array))


class Trainer(training.Trainer):
    """Trains on the first ``num_gpus`` GPUs that exist (at most one here), else on the CPU."""

    def __init__(self, max_epochs, num_gpus=0, gradient_clip_val=0):
        super().__init__(max_epochs, num_gpus, gradient_clip_val)
        self.gpus = [gpu(i) for i in range(min(num_gpus, torch.cuda.device_count()))]

    def prepare_batch(self, batch):
        if self.gpus:
            batch = [a.to(self.gpus[0], non_blocking=True) for a in batch]
        return batch

    def prepare_model(self, model):
        super().prepare_model(model)
        if self.gpus:
            model.to(self.gpus[0])

    def fit_epoch(self):
        self.model.train()
        for batch in self.train_dataloader:
            loss = self.model.training_step(self.prepare_batch(batch))
            self.optim.zero_grad()
            loss.backward()
            if self.gradient_clip_val > 0:
                self.clip_gradients(self.gradient_clip_val, self.model)
            self.optim.step()
            self.train_batch_idx += 1
        if self.val_dataloader is None:
            return
        self.model.eval()
        with torch.no_grad():
            for batch in self.val_dataloader:
                self.model.validation_step(self.prepare_batch(batch))
                self.val_batch_idx += 1

    def clip_gradients(self, grad_clip_val, model):
        params = [p for p in model.parameters() if p.requires_grad]
        norm = torch.sqrt(sum(torch.sum(p.grad ** 2) for p in params))
        if norm > grad_clip_val:
            for param in params:
                param.grad[:] *= grad_clip_val / norm
