"""The framework-neutral half of d2l's training API.

Written once here: the shared set-up and steps of ``Module`` and ``Classifier``, the whole
of ``Trainer.fit`` (the epoch loop with and without validation, the choice between a
model's own steps and a framework's compiled ones, progress and the per-epoch summary)
and the Fashion-MNIST data module; device discovery is in ``d2l_shim.devices``. Each
framework module (``torch``, ``mxnet``, ``tensorflow``, ``jax``) subclasses these and
supplies only what its framework does differently: how one batch is trained, how arrays
become tensors and a batch is gathered, where the devices are. The four have the same
sections in the same order: tensor aliases, devices, models, optimizer, data, trainer.

Compiled or eager: TensorFlow and JAX run a ``Classifier``'s default steps as one compiled
call each (``tf.function``, ``jax.jit``), which a debugger cannot step into. To step through
a training step line by line, call ``d2l.run_eagerly()`` (or start Python with
``D2L_EAGER=1``) before ``fit``: the steps then run as plain Python in every framework (JAX
also turns its ``jit`` off). PyTorch and MXNet always run eagerly here.
"""

import contextlib
import math
import numbers
import os
from collections.abc import Sequence

import numpy as np

from d2l_shim import data as _data
from d2l_shim.hparams import HyperParameters
from d2l_shim.plotting import show_images, to_numpy
from d2l_shim.progress import ProgressBoard

# ---------------------------------------------------------------------------------------
# models


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


def batch_loss(model, batch):
    """The model's loss on ``batch`` (inputs..., labels), as d2l's ``Module`` steps compute it."""
    return model.loss(model(*batch[:-1]), batch[-1])


def batch_loss_and_accuracy(model, batch):
    """A classifier's loss and accuracy on ``batch`` from one forward pass."""
    Y_hat = model(*batch[:-1])
    return model.loss(Y_hat, batch[-1]), model.accuracy(Y_hat, batch[-1])


def plot_validation(model, loss, accuracy):
    """What d2l's ``Classifier.validation_step`` plots."""
    model.plot("loss", loss, train=False)
    model.plot("acc", accuracy, train=False)


def print_layer_shapes(layers, X):
    """d2l's ``layer_summary``: pass ``X`` through ``layers`` one by one, printing each output shape."""
    for layer in layers:
        X = layer(X)
        print(layer.__class__.__name__, "output shape:\t", X.shape)


class ModuleBase(HyperParameters):
    """What d2l's ``Module`` does the same way in PyTorch, MXNet and TensorFlow.

    Framework modules list it before their framework's base class
    (``class Module(ModuleBase, nn.Module)``) so that ``__init__`` and ``forward`` here
    win over the base class's. JAX differs (a flax module is a dataclass whose parameters
    live outside it) and defines its own.
    """

    def __init__(self, plot_train_per_epoch=2, plot_valid_per_epoch=1):
        super().__init__()  # the framework's base class (nn.Module, Block, keras.Model)
        self.save_hyperparameters()
        self.board = ProgressBoard()

    def loss(self, y_hat, y):
        raise NotImplementedError

    def forward(self, X):
        assert hasattr(self, "net"), "define self.net or override forward"
        return self.net(X)

    def plot(self, key, value, train):
        plot_point(self, key, value, train)

    def training_step(self, batch):
        loss = batch_loss(self, batch)
        self.plot("loss", loss, train=True)
        return loss

    def validation_step(self, batch):
        self.plot("loss", batch_loss(self, batch), train=False)


class ClassifierBase:
    """d2l's ``Classifier.validation_step`` (loss and accuracy), for every framework but JAX."""

    def validation_step(self, batch):
        plot_validation(self, *batch_loss_and_accuracy(self, batch))


# ---------------------------------------------------------------------------------------
# trainer

EAGER_VARIABLE = "D2L_EAGER"  # 1: run every step eagerly (see run_eagerly); 0 or unset: compile
_eager = None  # what run_eagerly() last set; None: read $D2L_EAGER


def run_eagerly(eager=True):
    """Make every later ``Trainer.fit`` run its steps eagerly (``True``) or compiled (``False``).

    The one switch that TensorFlow's ``tf.function`` steps and JAX's ``jit`` follow; it
    overrides ``$D2L_EAGER``. Eager steps are slower, but a debugger can stop inside them.
    """
    global _eager
    _eager = bool(eager)


def runs_eagerly():
    """Whether ``fit`` runs its steps eagerly now: ``run_eagerly``'s setting, else ``$D2L_EAGER``."""
    if _eager is not None:
        return _eager
    value = os.environ.get(EAGER_VARIABLE, "").strip()
    if value not in ("", "0", "1"):
        raise ValueError(
            f"{EAGER_VARIABLE}={value!r} is not understood: set it to 1 (run the "
            f"training steps eagerly) or 0 (compile them), or unset it"
        )
    return value == "1"


def check_count(owner, name, value, minimum):
    """Refuse ``value`` unless it is a whole number >= ``minimum`` (a bool is not a count)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{owner}({name}={value!r}): {name} must be a whole number >= {minimum}, not {type(value).__name__}"
        )
    if value < minimum:
        raise ValueError(f"{owner}({name}={value!r}): {name} must be >= {minimum}")


def keeps_step(model, step, defaults):
    """Whether ``model``'s class runs ``defaults.<step>`` unchanged (it overrides nothing there)."""
    return defaults is not None and getattr(type(model), step) is getattr(defaults, step)


class Trainer(HyperParameters):
    """Fit a model to data: the epoch loop, once for every framework.

    A framework's ``Trainer`` supplies, in its own idiom:

    * ``train_step(batch)``: run the model's ``training_step`` and update the parameters;
    * ``val_step(batch)``, if the model's ``validation_step`` takes more than the batch (JAX);
    * ``mode(train)``, if the framework switches the model between training and
      evaluation otherwise than by setting ``model.training`` (the default, as d2l's
      TensorFlow trainer does);
    * ``devices``, its ``devices.Devices``; ``prepare_batch``/``prepare_model`` to move
      batches and parameters there;
    * optionally ``compile_train_step()`` and ``compile_val_step()`` with
      ``compiles_steps_of = Classifier``: compiled versions of that class's default steps
      (``batch -> loss`` and ``batch -> (loss, accuracy)``, without the plotting). They run
      instead of the model's steps unless the model overrides them, or ``runs_eagerly()``.

    ``max_epochs=0`` is allowed, as in d2l: ``fit`` then prepares the model and trains nothing.
    """

    devices = None
    compiles_steps_of = None
    eager = False  # whether this fit runs its steps eagerly (runs_eagerly() when it began)

    def __init__(self, max_epochs, num_gpus=0, gradient_clip_val=0):
        check_count("Trainer", "max_epochs", max_epochs, minimum=0)
        check_count("Trainer", "num_gpus", num_gpus, minimum=0)
        self.save_hyperparameters()
        self.gpus = self.devices.first_gpus(num_gpus) if self.devices is not None else []

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
        self.eager = runs_eagerly()
        self.prepare_training()
        self.prepare_steps()
        model.board.reset()  # a re-run gets a new display, with this run's curves only
        self.epoch = 0
        self.train_batch_idx = 0
        self.val_batch_idx = 0
        for epoch in range(self.max_epochs):
            self.epoch = epoch
            self.fit_epoch()
            self.report_epoch()
        model.board.finish()

    def prepare_training(self):
        """Hook run once before the first epoch (JAX builds its train state here)."""

    def prepare_steps(self):
        """Use the framework's compiled default steps where the model keeps the default ones."""
        model, defaults = self.model, self.compiles_steps_of
        if self.eager:
            defaults = None  # the model's own steps, as plain Python
        self.compiled_train_step = self.compile_train_step() if keeps_step(model, "training_step", defaults) else None
        self.compiled_val_step = self.compile_val_step() if keeps_step(model, "validation_step", defaults) else None

    def fit_epoch(self):
        model = self.model
        with self.mode(train=True):
            for batch in self.train_dataloader:
                batch = self.prepare_batch(batch)
                if self.compiled_train_step is None:
                    self.train_step(batch)
                else:  # plotting is a Python side effect, so it stays out of the compiled step
                    model.plot("loss", self.compiled_train_step(batch), train=True)
                self.train_batch_idx += 1
        if self.val_dataloader is None:
            return
        with self.mode(train=False):
            for batch in self.val_dataloader:
                batch = self.prepare_batch(batch)
                if self.compiled_val_step is None:
                    self.val_step(batch)
                else:
                    plot_validation(model, *self.compiled_val_step(batch))
                self.val_batch_idx += 1

    def report_epoch(self):
        """Print one line per epoch with the means of what the model plotted during it."""
        summary = self.model.board.epoch_summary()
        width = len(str(self.max_epochs))
        parts = [f"{label.replace('_', ' ')} {value:.4f}" for label, value in summary.items()]
        print(f"epoch {self.epoch + 1:>{width}}/{self.max_epochs}: " + ", ".join(parts), flush=True)

    # What a framework supplies (see the class docstring).

    def train_step(self, batch):
        raise NotImplementedError(
            f"{type(self).__name__} defines no train_step(batch): a framework's "
            "Trainer runs the model's training_step and updates the parameters there"
        )

    def val_step(self, batch):
        self.model.validation_step(batch)

    def mode(self, train):
        """Context in which one pass over the training (``train``) or validation data runs.

        By default it sets ``model.training``, which a model's ``forward`` may read to
        switch dropout on in training and off in evaluation.
        """
        self.model.training = train
        return contextlib.nullcontext()

    def compile_train_step(self):
        return None

    def compile_val_step(self):
        return None


# ---------------------------------------------------------------------------------------
# data


class DataModule(HyperParameters):
    """Base class of data: ``train_dataloader()`` and ``val_dataloader()``.

    A framework's ``DataModule`` sets its conventions for data:

    * ``take_batch(tensors, indices)``: its gather of the rows ``indices`` (an int64 numpy
      array) from each of ``tensors``, one call per batch;
    * ``to_tensor(array)``: a numpy array as its tensor;
    * ``channels_last``: whether images are (height, width, channels), else (channels, ...);
    * ``label_dtype``: the numpy dtype of integer class labels its losses expect;
    * ``gathers_in_step``: whether its compiled steps gather a minibatch's rows themselves
      (the loader then hands out ``IndexedBatch``es that gather only when read).
    """

    gathers_in_step = False

    def __init__(self, root=None, num_workers=0):
        self.save_hyperparameters()

    def get_dataloader(self, train):
        raise NotImplementedError

    def train_dataloader(self):
        return self.get_dataloader(train=True)

    def val_dataloader(self):
        return self.get_dataloader(train=False)

    def get_tensorloader(self, tensors, train, indices=slice(0, None)):
        """Minibatches of in-memory ``tensors`` (shuffled when ``train``), one gather per batch."""
        tensors = tuple(t[indices] for t in tensors)
        return IndexBatchLoader(
            tensors,
            self.batch_size,
            train,
            take=self.take_batch,
            rng=getattr(self, "rng", None),
            deferred=self.gathers_in_step,
        )


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
    to the framework once per batch, not once per tensor. With ``deferred`` each batch is an
    ``IndexedBatch``, gathered when first read or inside a compiled step.
    """

    def __init__(self, tensors, batch_size, shuffle, take, rng=None, deferred=False):
        self.tensors = tuple(tensors)
        self.take = take
        self.deferred = deferred
        self.batches = IndexBatches(len(self.tensors[0]), batch_size, shuffle, rng)

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        for indices in self.batches:
            if self.deferred:
                yield IndexedBatch(self.tensors, indices, self.take)
            else:
                yield self.take(self.tensors, indices)


class IndexedBatch(Sequence):
    """One minibatch, the rows ``indices`` of ``tensors``, gathered when first read.

    It reads like the tuple of gathered tensors (``X, y = batch``, ``batch[:-1]``). A compiled
    step can instead take ``tensors`` and ``indices`` and gather inside the compiled call
    (``gathered_or_not``): one call per minibatch instead of a gather call and a step call,
    which is what a step costs in TensorFlow and JAX on a CPU.
    """

    __slots__ = ("tensors", "indices", "_take", "_rows")

    def __init__(self, tensors, indices, take):
        self.tensors, self.indices, self._take, self._rows = tensors, indices, take, None

    @property
    def is_gathered(self):
        return self._rows is not None

    def rows(self):
        if self._rows is None:
            self._rows = tuple(self._take(self.tensors, self.indices))
        return self._rows

    def __len__(self):
        return len(self.tensors)

    def __getitem__(self, index):
        return self.rows()[index]

    def __iter__(self):
        return iter(self.rows())


def gathered_or_not(step, gather_and_step):
    """One compiled step for every batch: ``gather_and_step(tensors, indices)`` for an
    ``IndexedBatch`` nobody has read yet, else ``step(batch)`` on the batch's tensors."""

    def run(batch):
        if isinstance(batch, IndexedBatch) and not batch.is_gathered:
            return gather_and_step(batch.tensors, batch.indices)
        return step(tuple(batch))

    return run


class FashionMNIST(DataModule):
    """Fashion-MNIST from the local cache, as float32 images in [0, 1] and integer labels.

    A framework's ``FashionMNIST`` derives from this and from its ``DataModule``, whose
    conventions (see ``DataModule``) make the tensors. Shuffling uses a generator seeded
    with ``seed``, so the same notebook sees the same minibatches on every run.
    """

    def __init__(self, batch_size=64, resize=(28, 28), root=None, seed=0):
        check_count(type(self).__name__, "batch_size", batch_size, minimum=1)
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
