"""TensorFlow flavour of the d2l helpers: ``from d2l_shim import tensorflow as d2l``."""

from functools import partial

import numpy as np
import tensorflow as tf

from d2l_shim import training
from d2l_shim.devices import Devices
from d2l_shim.hparams import HyperParameters, add_to_class  # noqa: F401 (re-exported for the book)
from d2l_shim.plotting import plot, plt, set_axes, set_figsize, show_images, use_svg_display  # noqa: F401
from d2l_shim.progress import ProgressBoard  # noqa: F401 (re-exported for the book)
from d2l_shim.training import run_eagerly  # noqa: F401 (the compiled/eager switch, for readers)

# ---------------------------------------------------------------------------------------
# tensor aliases (d2l's names)

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

# ---------------------------------------------------------------------------------------
# devices


def cpu():
    """The CPU as a device context: ``with d2l.cpu(): ...``."""
    return tf.device("/CPU:0")


def gpu(i=0):
    """GPU ``i`` as a device context: ``with d2l.gpu(i): ...``."""
    return tf.device(f"/GPU:{i}")


_devices = Devices(cpu, gpu, count_gpus=lambda: len(tf.config.list_physical_devices("GPU")))
num_gpus, try_gpu, try_all_gpus = _devices.num_gpus, _devices.try_gpu, _devices.try_all_gpus

# ---------------------------------------------------------------------------------------
# models

_cross_entropy = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")


class Module(training.ModuleBase, tf.keras.Model):
    """Base class of models: a Keras ``Model`` that knows how to train and plot itself.

    ``self.training`` says whether the model runs in training mode, as in d2l: ``None``
    until ``Trainer`` sets it for each pass (``True`` in training, ``False`` in validation)
    or a call passes ``training=``, which ``call`` records. A ``forward`` may read it to
    switch dropout on and off; Keras layers inside (``Dropout``) get it from the call.
    """

    def __init__(self, plot_train_per_epoch=2, plot_valid_per_epoch=1):
        super().__init__(plot_train_per_epoch, plot_valid_per_epoch)
        # Keras 3 sets an instance attribute `loss = None` (for compile()), which would hide
        # the loss method that d2l models define.
        vars(self).pop("loss", None)
        self.training = None

    def __call__(self, *args, **kwargs):
        # A call without `training=` runs in the mode the trainer set; Keras hands the value
        # on to the layers called inside (its call context), so their dropout follows it.
        if kwargs.get("training") is None and self.training is not None:
            kwargs["training"] = self.training
        return super().__call__(*args, **kwargs)

    def call(self, X, *args, training=None, **kwargs):
        if training is not None:
            self.training = training
        return self.forward(X, *args)

    @property
    def trainable_variables(self):
        """Keras-tracked weights plus raw ``tf.Variable`` attributes (models built from scratch).

        Keras 3 does not track a ``tf.Variable`` assigned to a model attribute.
        """
        raw = [value for _, value in sorted(vars(self).items()) if isinstance(value, tf.Variable) and value.trainable]
        return list(super().trainable_variables) + raw

    def configure_optimizers(self):
        return tf.keras.optimizers.SGD(self.lr)


class Classifier(training.ClassifierBase, Module):
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
        training.print_layer_shapes(self.net.layers, tf.random.normal(X_shape))


# ---------------------------------------------------------------------------------------
# optimizer


class SGD(HyperParameters):
    """Minibatch stochastic gradient descent, written out by hand (Keras-style ``apply_gradients``)."""

    def __init__(self, lr):
        self.save_hyperparameters()

    def apply_gradients(self, grads_and_vars):
        for grad, param in grads_and_vars:
            param.assign_sub(self.lr * grad)


# ---------------------------------------------------------------------------------------
# data


def _take(tensors, indices):
    indices = tf.convert_to_tensor(indices)  # numpy indices, or a tensor inside a graph
    return tuple(tf.gather(t, indices) for t in tensors)


class DataModule(training.DataModule):
    take_batch = staticmethod(_take)
    to_tensor = staticmethod(tf.constant)
    channels_last = True  # images are (height, width, channels), as Keras layers expect
    label_dtype = np.int32
    gathers_in_step = True  # eager gathers cost more than in a graph: one call per minibatch


class FashionMNIST(training.FashionMNIST, DataModule):
    """Fashion-MNIST as TensorFlow tensors."""


# ---------------------------------------------------------------------------------------
# trainer


def _compiled(step):
    """``step(batch)`` as graphs for every batch (each given as one tuple: a graph is traced
    once per structure); a batch's gather goes inside the graph."""
    return training.gathered_or_not(
        tf.function(step), tf.function(lambda tensors, indices: step(_take(tensors, indices)))
    )


class Trainer(training.Trainer):
    """The book's ``tf.GradientTape`` loop, with the default steps run as ``tf.function`` graphs.

    Keras compiles the steps of its own ``fit`` the same way: an eager step costs several
    times its arithmetic here. A model that overrides ``training_step`` (or
    ``validation_step``) runs that step eagerly; ``d2l.run_eagerly()`` makes every step
    eager. TensorFlow places the work on a GPU by itself when it has one.
    """

    devices = _devices
    compiles_steps_of = Classifier

    def compile_train_step(self):
        """``Module.training_step`` (less its plot) and the update, as one graph."""
        return _compiled(partial(self._update, loss_of=partial(training.batch_loss, self.model)))

    def compile_val_step(self):
        """What ``Classifier.validation_step`` plots, computed in one graph."""
        return _compiled(partial(training.batch_loss_and_accuracy, self.model))

    def train_step(self, batch):
        self._update(batch, self.model.training_step)

    def _update(self, batch, loss_of):
        """One step of gradient descent on ``loss_of(batch)``."""
        with tf.GradientTape() as tape:
            loss = loss_of(batch)
        grads = tape.gradient(loss, self.model.trainable_variables)
        if self.gradient_clip_val > 0:
            grads = self.clip_gradients(self.gradient_clip_val, grads)
        self.optim.apply_gradients(zip(grads, self.model.trainable_variables))
        return loss

    def clip_gradients(self, grad_clip_val, grads):
        clipped, _ = tf.clip_by_global_norm(grads, grad_clip_val)
        return clipped
