"""TensorFlow side of the bench: the chapter's two models (trained by d2l_shim) and the minimal loop.

The models mirror ``chapter_mlp/mlp-scratch.ipynb`` (``MLPScratch``: hand-written ReLU,
log-softmax cross-entropy and ``d2l.SGD``) and ``chapter_mlp/mlp-concise.ipynb`` (``MLP``:
Keras layers, loss and optimizer). The minimal loop computes the same functions.
"""

import os
import time

import tensorflow as tf

from d2l_shim import tensorflow as d2l

NUM_INPUTS, NUM_OUTPUTS = 784, 10


def versions():
    threads = tf.config.threading
    return {"tensorflow": tf.__version__, "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
            "threads": {"intra_op": threads.get_intra_op_parallelism_threads(),
                        "inter_op": threads.get_inter_op_parallelism_threads()}}


def matmul_seconds(m, k, n):
    a, b = tf.random.uniform((m, k)), tf.random.uniform((k, n))
    start = time.perf_counter()
    tf.matmul(a, b).numpy()
    return time.perf_counter() - start


# The chapter's functions and models.

def relu(X):
    return tf.maximum(X, 0.0)


def log_softmax(O):
    O = O - tf.reduce_max(O, axis=1, keepdims=True)
    return O - tf.math.log(tf.reduce_sum(tf.exp(O), axis=1, keepdims=True))


def cross_entropy(O, y):
    return -tf.reduce_mean(tf.gather(log_softmax(O), y, axis=1, batch_dims=1))


def scratch_forward(X, W1, b1, W2, b2):
    return relu(tf.reshape(X, (-1, NUM_INPUTS)) @ W1 + b1) @ W2 + b2


class MLPScratch(d2l.Classifier):
    def __init__(self, num_inputs, num_outputs, num_hiddens, lr, sigma=0.01):
        super().__init__()
        self.save_hyperparameters()
        self.W1 = tf.Variable(tf.random.normal((num_inputs, num_hiddens)) * sigma)
        self.b1 = tf.Variable(tf.zeros(num_hiddens))
        self.W2 = tf.Variable(tf.random.normal((num_hiddens, num_outputs)) * sigma)
        self.b2 = tf.Variable(tf.zeros(num_outputs))

    def forward(self, X):
        return scratch_forward(X, self.W1, self.b1, self.W2, self.b2)

    def loss(self, Y_hat, Y):
        return cross_entropy(Y_hat, Y)

    def configure_optimizers(self):
        return d2l.SGD(self.lr)


def concise_net(num_hiddens):
    return tf.keras.models.Sequential([tf.keras.layers.Flatten(),
                                       tf.keras.layers.Dense(num_hiddens, activation="relu"),
                                       tf.keras.layers.Dense(NUM_OUTPUTS)])


def concise_loss(Y_hat, Y):
    return tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)(Y, Y_hat)


class MLP(d2l.Classifier):
    def __init__(self, num_outputs, num_hiddens, lr):
        super().__init__()
        self.save_hyperparameters()
        self.net = concise_net(num_hiddens)

    def loss(self, Y_hat, Y):
        return concise_loss(Y_hat, Y)

    def configure_optimizers(self):
        return tf.keras.optimizers.SGD(self.lr)


def shim_model(name, lr, num_hiddens):
    if name == "scratch":
        return MLPScratch(NUM_INPUTS, NUM_OUTPUTS, num_hiddens, lr)
    return MLP(NUM_OUTPUTS, num_hiddens, lr)


# The minimal loop.

class Minimal:
    """Pre-batched tensors; each training and validation step is a ``tf.function`` (the usual idiom)."""

    def __init__(self, name, arrays, batch_size, lr, num_hiddens):
        self.name, self.lr = name, lr
        self.train, self.val = ([(tf.constant(images[i:i + batch_size]), tf.constant(labels[i:i + batch_size], tf.int32))
                                 for i in range(0, len(images), batch_size)]
                                for images, labels in (arrays["train"], arrays["val"]))
        if name == "scratch":
            self.params = [tf.Variable(tf.random.normal((NUM_INPUTS, num_hiddens)) * 0.01),
                           tf.Variable(tf.zeros(num_hiddens)),
                           tf.Variable(tf.random.normal((num_hiddens, NUM_OUTPUTS)) * 0.01),
                           tf.Variable(tf.zeros(NUM_OUTPUTS))]
            self.net = lambda X: scratch_forward(X, *self.params)
            self.loss = cross_entropy
        else:
            self.net = concise_net(num_hiddens)
            self.net(self.train[0][0])  # build the layers
            self.params = self.net.trainable_variables
            self.loss = concise_loss
            self.optim = tf.keras.optimizers.SGD(lr)

    @tf.function
    def train_step(self, X, y):
        with tf.GradientTape() as tape:
            loss = self.loss(self.net(X), y)
        grads = tape.gradient(loss, self.params)
        if self.name == "scratch":  # the chapter's hand-written SGD
            for param, grad in zip(self.params, grads):
                param.assign_sub(self.lr * grad)
        else:
            self.optim.apply_gradients(zip(grads, self.params))
        return loss

    @tf.function
    def val_step(self, X, y):
        Y_hat = self.net(X)
        correct = tf.cast(tf.argmax(Y_hat, axis=1, output_type=tf.int32) == y, tf.float32)
        return self.loss(Y_hat, y), tf.reduce_mean(correct)

    def epoch(self):
        train_losses = [self.train_step(X, y) for X, y in self.train]
        val_losses, val_accs = zip(*(self.val_step(X, y) for X, y in self.val))
        return {name: float(tf.reduce_mean(tf.stack(values))) for name, values in
                (("train_loss", train_losses), ("val_loss", val_losses), ("val_acc", val_accs))}
