"""The framework-neutral half of d2l's training API.

``Trainer.fit`` (the epoch loop, progress and the per-epoch summary), the plotting
logic of ``Module.plot`` and the Fashion-MNIST data module live here once. Each
framework module subclasses them and supplies only what its framework does differently:
how a batch is trained and validated, how arrays become tensors, where the device is.
"""

import math

import numpy as np

from d2l_shim import data as _data
from d2l_shim.hparams import HyperParameters
from d2l_shim.plotting import show_images, to_numpy


def plot_point(model, key, value, train):
    """d2l's ``Module.plot``: send one loss/metric value to the model's board.

    Training values are averaged ``plot_train_per_epoch`` times an epoch and placed at
    fractional epochs; validation values once an epoch, at the epoch's end.
    """
    trainer = getattr(model, "trainer", None)
    if trainer is None:
        raise RuntimeError("model.plot needs a trainer: call it during d2l.Trainer(...).fit(model, data)")
    model.board.xlabel = "epoch"
    if train:
        x = trainer.train_batch_idx / trainer.num_train_batches
        every_n = trainer.num_train_batches / model.plot_train_per_epoch
    else:
        x = trainer.epoch + 1
        every_n = trainer.num_val_batches / model.plot_valid_per_epoch
    model.board.draw(x, value, ("train_" if train else "val_") + key, every_n=int(every_n))


class ModelSteps(HyperParameters):
    """What d2l's ``Module`` does the same way in PyTorch, MXNet and TensorFlow.

    Framework modules list it before their framework's base class
    (``class Module(ModelSteps, nn.Module)``) so that ``forward`` here wins over the
    base class's placeholder. JAX differs (parameters live outside the model) and
    defines its own.
    """

    def loss(self, y_hat, y):
        raise NotImplementedError

    def forward(self, X):
        assert hasattr(self, "net"), "define self.net or override forward"
        return self.net(X)

    def plot(self, key, value, train):
        plot_point(self, key, value, train)

    def training_step(self, batch):
        loss = self.loss(self(*batch[:-1]), batch[-1])
        self.plot("loss", loss, train=True)
        return loss

    def validation_step(self, batch):
        loss = self.loss(self(*batch[:-1]), batch[-1])
        self.plot("loss", loss, train=False)


class ClassifierSteps:
    """d2l's ``Classifier.validation_step``: validation loss and accuracy, for every framework but JAX."""

    def validation_step(self, batch):
        Y_hat = self(*batch[:-1])
        self.plot("loss", self.loss(Y_hat, batch[-1]), train=False)
        self.plot("acc", self.accuracy(Y_hat, batch[-1]), train=False)


class Trainer(HyperParameters):
    """Fit a model to data; framework subclasses define ``fit_epoch`` and the batch hooks."""

    def __init__(self, max_epochs, num_gpus=0, gradient_clip_val=0):
        self.save_hyperparameters()

    def prepare_data(self, data):
        self.train_dataloader = data.train_dataloader()
        self.val_dataloader = data.val_dataloader()
        self.num_train_batches = len(self.train_dataloader)
        self.num_val_batches = len(self.val_dataloader) if self.val_dataloader is not None else 0

    def prepare_model(self, model):
        model.trainer = self
        model.board.xlim = [0, self.max_epochs]
        self.model = model

    def prepare_batch(self, batch):
        return batch

    def fit(self, model, data):
        self.prepare_data(data)
        self.prepare_model(model)
        self.optim = model.configure_optimizers()
        self.prepare_training()
        self.epoch = 0
        self.train_batch_idx = 0
        self.val_batch_idx = 0
        for self.epoch in range(self.max_epochs):
            self.fit_epoch()
            self.report_epoch()
        model.board.finish()

    def prepare_training(self):
        """Hook run once before the first epoch (JAX builds its train state here)."""

    def report_epoch(self):
        """Print one line per epoch with the means of what the model plotted during it."""
        summary = self.model.board.epoch_summary()
        width = len(str(self.max_epochs))
        parts = [f"{label.replace('_', ' ')} {value:.4f}" for label, value in summary.items()]
        print(f"epoch {self.epoch + 1:>{width}}/{self.max_epochs}: " + ", ".join(parts), flush=True)

    def fit_epoch(self):
        raise NotImplementedError


class DataModule(HyperParameters):
    """Base class of data: ``train_dataloader()`` and ``val_dataloader()``."""

    def __init__(self, root=None, num_workers=0):
        self.save_hyperparameters()

    def get_dataloader(self, train):
        raise NotImplementedError

    def train_dataloader(self):
        return self.get_dataloader(train=True)

    def val_dataloader(self):
        return self.get_dataloader(train=False)

    def get_tensorloader(self, tensors, train, indices=slice(0, None)):
        """Minibatches of in-memory ``tensors`` (shuffled when ``train``), one gather per batch.

        Framework modules set ``take_batch(tensors, indices)``, their gather of a batch.
        """
        tensors = tuple(t[indices] for t in tensors)
        return IndexBatchLoader(tensors, self.batch_size, train, take=self.take_batch,
                                rng=getattr(self, "rng", None))


class IndexBatches:
    """Index arrays covering ``range(num_examples)``, one per minibatch, reshuffled each epoch."""

    def __init__(self, num_examples, batch_size, shuffle, rng=None):
        self.num_examples = num_examples
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.rng = rng if rng is not None else np.random.default_rng()

    def __len__(self):
        return math.ceil(self.num_examples / self.batch_size)

    def __iter__(self):
        return iter(_data.batch_indices(self.num_examples, self.batch_size, self.shuffle, self.rng))


class IndexBatchLoader:
    """Minibatches of in-memory tensors: one gather per tensor per batch, no per-example work.

    ``take(tensors, indices)`` is the framework's gather of the rows ``indices`` (an int64
    numpy array) from each of ``tensors``; one call per batch, so the indices are converted
    to the framework once per batch, not once per tensor.
    """

    def __init__(self, tensors, batch_size, shuffle, take, rng=None):
        self.tensors = tuple(tensors)
        self.take = take
        self.batches = IndexBatches(len(self.tensors[0]), batch_size, shuffle, rng)

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        for indices in self.batches:
            yield self.take(self.tensors, indices)


class FashionMNIST(DataModule):
    """Fashion-MNIST from the local cache, as float32 images in [0, 1] and integer labels.

    Framework subclasses set ``channels_last`` and ``label_dtype`` and define
    ``to_tensor`` and ``get_tensorloader``. Shuffling uses a generator seeded with
    ``seed``, so the same notebook sees the same minibatches on every run.
    """

    channels_last = False
    label_dtype = np.int64

    def __init__(self, batch_size=64, resize=(28, 28), root=None, seed=0):
        super().__init__(root=root)
        self.save_hyperparameters()
        arrays = _data.load_fashion_mnist(root)
        self.rng = np.random.default_rng(seed)
        self.train = self._tensors(arrays.train_images, arrays.train_labels)
        self.val = self._tensors(arrays.test_images, arrays.test_labels)

    def _tensors(self, images, labels):
        images = _data.resize_images(images, self.resize).astype(np.float32) / 255
        images = images[..., None] if self.channels_last else images[:, None]
        return self.to_tensor(images), self.to_tensor(labels.astype(self.label_dtype))

    def text_labels(self, indices):
        return _data.text_labels(to_numpy(indices))

    def get_dataloader(self, train):
        return self.get_tensorloader(self.train if train else self.val, train)

    def visualize(self, batch, nrows=1, ncols=8, labels=()):
        X, y = batch
        if not labels:
            labels = self.text_labels(y)
        images = to_numpy(X)
        images = images[..., 0] if self.channels_last else images[:, 0]
        show_images(images, nrows, ncols, titles=labels)
