"""TensorFlow flavour of the d2l helpers: ``from d2l_shim import tensorflow as d2l``."""

import numpy as np
import tensorflow as tf

from d2l_shim import training
from d2l_shim.hparams import HyperParameters, add_to_class  # noqa: F401 (re-exported for the book)
from d2l_shim.plotting import plot, plt, set_axes, set_figsize, show_images, use_svg_display  # noqa: F401
from d2l_shim.progress import ProgressBoard

# Tensor aliases the chapter uses (d2l names).
float32 = tf.float32
arange = tf.range
zeros = tf.zeros
ones = tf.ones
normal = tf.random.normal
matmul = tf.matmul
exp = tf.exp
log = tf.math.log
sigmoid = tf.sigmoid
tanh = tf.tanh
relu = tf.nn.relu
reshape = tf.reshape


def cpu():
    return tf.device("/CPU:0")


def gpu(i=0):
    return tf.device(f"/GPU:{i}")


def num_gpus():
    return len(tf.config.experimental.list_physical_devices("GPU"))


def try_gpu(i=0):
    """GPU ``i`` if it exists, else the CPU (as a device context: ``with d2l.try_gpu(): ...``)."""
    return gpu(i) if num_gpus() >= i + 1 else cpu()


def try_all_gpus():
    return [gpu(i) for i in range(num_gpus())] or [cpu()]


class Module(training.ModelSteps, tf.keras.Model):
    """Base class of models: a Keras ``Model`` that knows how to train and plot itself."""

    def __init__(self, plot_train_per_epoch=2, plot_valid_per_epoch=1):
        super().__init__()
        # Keras 3 sets an instance attribute `loss = None` (for compile()), which would hide
        # the loss method that d2l models define.
        vars(self).pop("loss", None)
        self.save_hyperparameters()
        self.board = ProgressBoard()

    def call(self, X, *args, **kwargs):
        return self.forward(X, *args)  # Keras may pass training=...; our models do not use it

    @property
    def trainable_variables(self):
        """Keras-tracked weights plus raw ``tf.Variable`` attributes (models built from scratch).

        Keras 3 does not track a ``tf.Variable`` assigned to a model attribute.
        """
        raw = [value for _, value in sorted(vars(self).items())
               if isinstance(value, tf.Variable) and value.trainable]
        return list(super().trainable_variables) + raw

    def configure_optimizers(self):
        return tf.keras.optimizers.SGD(self.lr)


_cross_entropy = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")


class Classifier(training.ClassifierSteps, Module):
    """Base class of classifiers: cross-entropy loss, accuracy, validation accuracy plotting."""

    def accuracy(self, Y_hat, Y, averaged=True):
        Y_hat = tf.reshape(Y_hat, (-1, Y_hat.shape[-1]))
        preds = tf.cast(tf.argmax(Y_hat, axis=1), Y.dtype)
        correct = tf.cast(preds == tf.reshape(Y, (-1,)), tf.float32)
        return tf.reduce_mean(correct) if averaged else correct

    def loss(self, Y_hat, Y, averaged=True):
        losses = _cross_entropy(tf.reshape(Y, (-1,)), tf.reshape(Y_hat, (-1, Y_hat.shape[-1])))
        return tf.reduce_mean(losses) if averaged else losses

    def layer_summary(self, X_shape):
        X = tf.random.normal(X_shape)
        for layer in self.net.layers:
            X = layer(X)
            print(layer.__class__.__name__, "output shape:\t", X.shape)


class SGD(HyperParameters):
    """Minibatch stochastic gradient descent, written out by hand (Keras-style ``apply_gradients``)."""

    def __init__(self, lr):
        self.save_hyperparameters()

    def apply_gradients(self, grads_and_vars):
        for grad, param in grads_and_vars:
            param.assign_sub(self.lr * grad)


def _take(tensors, indices):
    indices = tf.constant(indices)
    return tuple(tf.gather(t, indices) for t in tensors)


class DataModule(training.DataModule):
    take_batch = staticmethod(_take)


class FashionMNIST(training.FashionMNIST, DataModule):
    channels_last = True
    label_dtype = np.int32

    def to_tensor(self, array):
        return tf.constant(array)


class Trainer(training.Trainer):
    """The book's ``tf.GradientTape`` loop, with the default steps run as ``tf.function`` graphs.

    Keras compiles the steps of its own ``fit`` the same way: an eager step costs several
    times its arithmetic here. A model that overrides ``training_step`` (or
    ``validation_step``), or sets ``run_eagerly = True``, runs that step eagerly.
    """

    def prepare_training(self):
        model = self.model
        default_train = type(model).training_step is Module.training_step
        default_val = type(model).validation_step is Classifier.validation_step
        self.train_graph = tf.function(self._train_step) if default_train and not model.run_eagerly else None
        self.val_graph = tf.function(self._val_loss_acc) if default_val and not model.run_eagerly else None

    def _train_step(self, batch, plot=False):
        with tf.GradientTape() as tape:
            if plot:
                loss = self.model.training_step(batch)
            else:  # Module.training_step without its plot (a Python side effect, done by the caller)
                loss = self.model.loss(self.model(*batch[:-1]), batch[-1])
        grads = tape.gradient(loss, self.model.trainable_variables)
        if self.gradient_clip_val > 0:
            grads = self.clip_gradients(self.gradient_clip_val, grads)
        self.optim.apply_gradients(zip(grads, self.model.trainable_variables))
        return loss

    def _val_loss_acc(self, batch):
        """What Classifier.validation_step plots, computed in a graph."""
        Y_hat = self.model(*batch[:-1])
        return self.model.loss(Y_hat, batch[-1]), self.model.accuracy(Y_hat, batch[-1])

    def fit_epoch(self):
        for batch in self.train_dataloader:
            batch = tuple(self.prepare_batch(batch))
            if self.train_graph is not None:
                self.model.plot("loss", self.train_graph(batch), train=True)
            else:
                self._train_step(batch, plot=True)
            self.train_batch_idx += 1
        if self.val_dataloader is None:
            return
        for batch in self.val_dataloader:
            batch = tuple(self.prepare_batch(batch))
            if self.val_graph is not None:
                loss, acc = self.val_graph(batch)
                self.model.plot("loss", loss, train=False)
                self.model.plot("acc", acc, train=False)
            else:
                self.model.validation_step(batch)
            self.val_batch_idx += 1

    def clip_gradients(self, grad_clip_val, grads):
        clipped, _ = tf.clip_by_global_norm(grads, grad_clip_val)
        return clipped
