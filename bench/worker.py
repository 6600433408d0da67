"""Measure one framework for bench.py and print the results as one JSON object on stdout.

    python bench/worker.py FRAMEWORK [--epochs N]

Run with the interpreter that has the framework (``.venv-mxnet/bin/python`` for mxnet).
For each chapter model (``scratch``, ``concise``) it runs ``d2l.Trainer.fit`` once for
one warm-up epoch, then once for ``--epochs`` epochs; after every timed shim epoch it runs
one epoch of the minimal loop (``bench/loops_<framework>.py``), so the two sides take turns
on a machine whose load changes. Shim epoch = ``fit_epoch`` + ``report_epoch`` (the epoch
summary converts the plotted values, so asynchronous frameworks have finished by then).
"""

import argparse
import contextlib
import importlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FRAMEWORKS = ("pytorch", "mxnet", "tensorflow", "jax")
# The module name that `import` takes, for the framework and for the shim.
FRAMEWORK_MODULE = {"pytorch": "torch", "mxnet": "mxnet", "tensorflow": "tensorflow", "jax": "jax"}
SHIM_MODULE = {"pytorch": "d2l_shim.torch", "mxnet": "d2l_shim.mxnet",
               "tensorflow": "d2l_shim.tensorflow", "jax": "d2l_shim.jax"}
MODELS = ("scratch", "concise")
# The chapter's setting.
BATCH_SIZE, LR, NUM_HIDDENS = 256, 0.1, 256
MATMUL_N = 2048

_IMPORT_SNIPPET = ("import importlib, sys, time; start = time.perf_counter(); "
                   "importlib.import_module(sys.argv[1]); print(time.perf_counter() - start)")


def import_seconds(module):
    """Seconds to import ``module`` in a fresh interpreter (interpreter start not included)."""
    done = subprocess.run([sys.executable, "-c", _IMPORT_SNIPPET, module], capture_output=True,
                          text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def measure_imports(framework, rounds):
    """Median import seconds of the framework and of ``d2l_shim.<fw>``, alternating."""
    times = {"framework": [], "shim": []}
    for _ in range(rounds):
        times["framework"].append(import_seconds(FRAMEWORK_MODULE[framework]))
        times["shim"].append(import_seconds(SHIM_MODULE[framework]))
    return {side: statistics.median(values) for side, values in times.items()}


def matmul_gflops(loops, reps=7):
    """Best float32 rate of an n x n matmul, in GFLOP/s (best: the floor is what the chip can do)."""
    loops.matmul_seconds(MATMUL_N)  # warm-up: allocation, thread pools, kernel choice
    best = min(loops.matmul_seconds(MATMUL_N) for _ in range(reps))
    return 2 * MATMUL_N ** 3 / best / 1e9


def timed_trainer_class(d2l):
    """``d2l.Trainer`` that records each epoch's seconds and calls ``between_epochs`` after it."""

    class TimedTrainer(d2l.Trainer):
        def fit_epoch(self):
            self._epoch_start = time.perf_counter()
            super().fit_epoch()

        def report_epoch(self):
            super().report_epoch()
            self.epoch_seconds.append(time.perf_counter() - self._epoch_start)
            self.between_epochs()

    return TimedTrainer


def last_metrics(printed):
    """The numbers of the last ``epoch i/n: ...`` line that Trainer.fit printed."""
    line = [line for line in printed.splitlines() if line.startswith("epoch")][-1]
    metrics = {}
    for part in line.split(": ", 1)[1].split(", "):
        label, value = part.rsplit(" ", 1)
        metrics[label.replace(" ", "_")] = float(value)
    return metrics


def run_model(loops, d2l, data, arrays, name, epochs):
    """Time the shim and the minimal loop on one model, alternating epoch by epoch."""
    TimedTrainer = timed_trainer_class(d2l)
    minimal = loops.Minimal(name, arrays, BATCH_SIZE, LR, NUM_HIDDENS)
    minimal_seconds, minimal_metrics = [], {}

    def minimal_epoch():
        start = time.perf_counter()
        minimal_metrics.update(minimal.epoch())
        minimal_seconds.append(time.perf_counter() - start)

    # Warm-up: one epoch of each side (lazy layers, tracing and compilation caches, thread pools).
    warm = TimedTrainer(max_epochs=1)
    warm.epoch_seconds, warm.between_epochs = [], minimal_epoch
    with contextlib.redirect_stdout(io.StringIO()):
        warm.fit(loops.shim_model(name, LR, NUM_HIDDENS), data)
    minimal_seconds.clear()
    minimal.init_params()  # both sides start the timed run from fresh parameters

    trainer = TimedTrainer(max_epochs=epochs)
    trainer.epoch_seconds, trainer.between_epochs = [], minimal_epoch
    printed = io.StringIO()
    fit_start = time.perf_counter()
    with contextlib.redirect_stdout(printed):
        trainer.fit(loops.shim_model(name, LR, NUM_HIDDENS), data)
    fit_seconds = time.perf_counter() - fit_start - sum(minimal_seconds)
    return {
        "shim_epoch_s": trainer.epoch_seconds,
        "minimal_epoch_s": minimal_seconds,
        "shim_fit_s": fit_seconds,  # the whole fit: setup, every epoch, the final figure
        "shim_metrics": last_metrics(printed.getvalue()),
        "minimal_metrics": minimal_metrics,
    }


def load_arrays(channels_last):
    """Fashion-MNIST as numpy: float32 images in [0, 1] with a channel axis, int labels."""
    import numpy as np

    from d2l_shim import data as d2l_data

    raw = d2l_data.load_fashion_mnist()
    arrays = {}
    for split, images, labels in (("train", raw.train_images, raw.train_labels),
                                  ("val", raw.test_images, raw.test_labels)):
        images = images.astype(np.float32) / 255
        images = images[..., None] if channels_last else images[:, None]
        arrays[split] = (images, labels.astype(np.int64))
    return arrays


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("framework", choices=FRAMEWORKS)
    parser.add_argument("--epochs", type=int, default=10, help="timed epochs per model and side")
    parser.add_argument("--import-rounds", type=int, default=3, help="fresh interpreters per import")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")

    # Figures that Trainer.fit draws at the end go to a temporary folder, not the repository.
    os.environ.setdefault("D2L_PROGRESS", "static")
    os.environ.setdefault("MPLBACKEND", "Agg")
    figure_dir = tempfile.TemporaryDirectory(prefix="d2l-bench-figures-")
    os.environ["D2L_FIGURE_DIR"] = figure_dir.name

    imports = measure_imports(args.framework, args.import_rounds) if args.import_rounds else {}
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    loops = importlib.import_module(f"loops_{args.framework}")
    d2l = importlib.import_module(SHIM_MODULE[args.framework])
    with contextlib.redirect_stdout(io.StringIO()):
        data = d2l.FashionMNIST(batch_size=BATCH_SIZE)
    arrays = load_arrays(data.channels_last)
    result = {
        "framework": args.framework,
        "versions": loops.versions(),
        "matmul_gflops": matmul_gflops(loops),
        "imports": imports,
        "models": {name: run_model(loops, d2l, data, arrays, name, args.epochs) for name in args.models},
    }
    figure_dir.cleanup()
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
