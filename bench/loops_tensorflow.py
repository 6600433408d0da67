"""TensorFlow's minimal loop for the bench: the chapter's model trained by a plain ``tf.function`` loop.

``Minimal`` trains a model of the chapter (built by worker.py from the notebook's own cells)
in the usual custom-loop idiom: the model's forward, loss and optimizer under a
``GradientTape`` in a ``tf.function``, a second one for validation, no ``d2l.Trainer``.
With ``shuffle`` each epoch draws a fresh permutation and every training step gathers its
minibatch inside the graph; without it the batches are cut once, in order.
"""

import os

import tensorflow as tf


def versions():
    threads = tf.config.threading
    return {
        "tensorflow": tf.__version__,
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
        "threads": {
            "intra_op": threads.get_intra_op_parallelism_threads(),
            "inter_op": threads.get_inter_op_parallelism_threads(),
        },
    }


def matmul(m, k, n):
    """A call that multiplies an (m, k) by a (k, n) float32 matrix and waits for the result."""
    a, b = tf.random.uniform((m, k)), tf.random.uniform((k, n))
    return lambda: tf.matmul(a, b).numpy()


class Minimal:
    def __init__(self, model, arrays, batch_size, shuffle, rng):
        self.model, self.batch_size, self.shuffle, self.rng = model, batch_size, shuffle, rng
        self.train, self.val = (
            (tf.constant(images), tf.constant(labels.astype("int32")))
            for images, labels in (arrays["train"], arrays["val"])
        )
        self.prebatched, self.val_batches = (
            [[t[i : i + batch_size] for t in tensors] for i in range(0, len(tensors[0]), batch_size)]
            for tensors in (self.train, self.val)
        )
        model(self.val_batches[0][0])  # builds the Keras layers, so trainable_variables lists them
        self.optim = model.configure_optimizers()
        self.params = model.trainable_variables

    def step(self, X, y):
        with tf.GradientTape() as tape:
            loss = self.model.loss(self.model(X), y)
        self.optim.apply_gradients(zip(tape.gradient(loss, self.params), self.params))
        return loss

    @tf.function
    def train_step(self, X, y):
        return self.step(X, y)

    @tf.function
    def gather_and_train_step(self, X_all, y_all, indices):
        return self.step(tf.gather(X_all, indices), tf.gather(y_all, indices))

    @tf.function
    def val_step(self, X, y):
        Y_hat = self.model(X)
        correct = tf.cast(tf.argmax(Y_hat, axis=1, output_type=tf.int32) == y, tf.float32)
        return self.model.loss(Y_hat, y), tf.reduce_mean(correct)

    def epoch(self):
        if self.shuffle:
            order = self.rng.permutation(len(self.train[0]))
            train_losses = [
                self.gather_and_train_step(*self.train, order[i : i + self.batch_size])
                for i in range(0, len(order), self.batch_size)
            ]
        else:
            train_losses = [self.train_step(X, y) for X, y in self.prebatched]
        val_losses, val_accs = zip(*(self.val_step(X, y) for X, y in self.val_batches))
        return {
            "train_loss": float(tf.reduce_mean(train_losses)),
            "val_loss": float(tf.reduce_mean(val_losses)),
            "val_acc": float(tf.reduce_mean(val_accs)),
        }
