"""Measure one framework for bench.py and print the results as one JSON object on stdout.

    python bench/worker.py FRAMEWORK [--epochs N] [--models scratch concise] [--profile N]

Run with the interpreter that has the framework (``.venv-mxnet/bin/python`` for mxnet).
Each chapter model (``scratch``: mlp-scratch's ``MLPScratch``; ``concise``: mlp-concise's
``MLP``; both built from the notebooks' own cells by ``chapter_models``) is trained three
ways, taking turns epoch by epoch on a machine whose load changes:

* ``shim``: ``d2l.Trainer.fit`` for ``--epochs`` + 1 epochs (the first is the warm-up);
  its epoch is ``fit_epoch`` + ``report_epoch`` (the summary converts the plotted values,
  so asynchronous frameworks have finished by then);
* ``fair``: the minimal loop of ``bench/loops_<framework>.py`` with the same per-epoch
  reshuffle and gather as real training;
* ``minimal``: the same loop over batches cut once, in order (no shuffle, no gather).

After every shim epoch one epoch of each minimal loop runs.
"""

import argparse
import contextlib
import cProfile
import importlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from chapter_models import CHAPTER_MODELS, accepted, model_class

from d2l_shim import FRAMEWORK_INFO, FRAMEWORKS

FRAMEWORK_MODULE = {fw.name: fw.package for fw in FRAMEWORK_INFO.values()}
MODELS = {name: CHAPTER_MODELS[name] for name in ("scratch", "concise")}  # what the bench times
# The chapter's setting.
BATCH_SIZE, LR, NUM_HIDDENS = 256, 0.1, 256
HYPERPARAMETERS = {"num_inputs": 784, "num_outputs": 10, "num_hiddens": NUM_HIDDENS, "lr": LR}
# The minimal loops, in the order they run after each shim epoch: side -> shuffled?
MINIMAL_SIDES = {"fair": True, "minimal": False}
# (m, k, n) -> repetitions: the chapter's first layer on a minibatch, and a larger square.
MATMUL_SHAPES = {(BATCH_SIZE, 784, NUM_HIDDENS): 50, (1024, 1024, 1024): 10}

# Imports the framework, then the shim on top of it, in a fresh interpreter; prints both times.
_IMPORT_SNIPPET = """
import importlib, sys, time
times = []
for module in sys.argv[1:]:
    start = time.perf_counter()
    importlib.import_module(module)
    times.append(time.perf_counter() - start)
print(*times)
"""


def measure_imports(framework, rounds):
    """Median seconds to import the framework, and then ``d2l_shim.<fw>`` on top of it."""
    times = []
    for _ in range(rounds):
        done = subprocess.run(
            [sys.executable, "-c", _IMPORT_SNIPPET, FRAMEWORK_MODULE[framework], FRAMEWORK_INFO[framework].shim_module],
            capture_output=True,
            text=True,
            check=True,
        )
        times.append([float(value) for value in done.stdout.split()])
    return {"framework": statistics.median(t[0] for t in times), "shim_own": statistics.median(t[1] for t in times)}


def matmul_gflops(loops):
    """Best float32 matmul rate in GFLOP/s over a few shapes and many short runs.

    The best, not the median: the floor is what the chip can do, and short runs are the
    ones that other processes on the machine are least likely to interrupt.
    """
    rates = []
    for (m, k, n), reps in MATMUL_SHAPES.items():
        multiply = loops.matmul(m, k, n)
        multiply()  # warm-up: allocation, thread pools, kernel choice
        rates.append(2 * m * k * n / min(seconds(multiply) for _ in range(reps)) / 1e9)
    return max(rates)


def seconds(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


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


def chapter_model(framework, name):
    """A fresh instance of the chapter's model ``name``, with the chapter's hyperparameters."""
    notebook, class_name = MODELS[name]
    cls = model_class(notebook, framework, class_name)
    return cls(**accepted(cls, HYPERPARAMETERS))


def top_of_profile(profiler, top):
    """The ``top`` entries of a cProfile run by own time, as text."""
    import pstats

    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    return text.getvalue()


def run_model(loops, d2l, data, arrays, framework, name, epochs, profile_top=0):
    """Time the shim and the minimal loops on one model, taking turns epoch by epoch.

    ``Trainer.fit`` runs ``epochs + 1`` epochs and each minimal loop runs one epoch after
    each of them. The first epoch of each side is its warm-up (lazy layers, tracing and
    compilation, thread pools): reported on its own, left out of the median.
    """
    minimal = {
        side: loops.Minimal(chapter_model(framework, name), arrays, BATCH_SIZE, shuffle, np.random.default_rng(index))
        for index, (side, shuffle) in enumerate(MINIMAL_SIDES.items())
    }
    seconds, metrics = {side: [] for side in ("shim", *minimal)}, {}
    # With profile_top, the shim's epochs run under cProfile (which slows Python-heavy code:
    # its shares, not its seconds, are what to read); the minimal loops run outside it.
    profiler = cProfile.Profile() if profile_top else None

    def minimal_epochs():
        if profiler:
            profiler.disable()
        for side, loop in minimal.items():
            start = time.perf_counter()
            metrics[side] = loop.epoch()
            seconds[side].append(time.perf_counter() - start)
        if profiler:
            profiler.enable()

    trainer = timed_trainer_class(d2l)(max_epochs=epochs + 1)
    trainer.epoch_seconds, trainer.between_epochs = seconds["shim"], minimal_epochs
    printed = io.StringIO()
    model = chapter_model(framework, name)
    with contextlib.redirect_stdout(printed):
        if profiler:
            profiler.runcall(trainer.fit, model, data)
        else:
            trainer.fit(model, data)
    metrics["shim"] = last_metrics(printed.getvalue())
    if profiler:
        print(
            f"===== profile of {framework} {name}, d2l_shim side =====\n{top_of_profile(profiler, profile_top)}",
            file=sys.stderr,
        )
    return {
        "epoch_s": {side: times[1:] for side, times in seconds.items()},
        "first_epoch_s": {side: times[0] for side, times in seconds.items()},
        "metrics": metrics,
    }


def load_arrays(channels_last):
    """Fashion-MNIST as numpy: float32 images in [0, 1] with a channel axis, int labels."""
    from d2l_shim import data as d2l_data

    raw = d2l_data.load_fashion_mnist()
    arrays = {}
    for split, images, labels in (
        ("train", raw.train_images, raw.train_labels),
        ("val", raw.test_images, raw.test_labels),
    ):
        images = images.astype(np.float32) / 255
        images = images[..., None] if channels_last else images[:, None]
        arrays[split] = (images, labels.astype(np.int64))
    return arrays


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("framework", choices=FRAMEWORKS)
    parser.add_argument("--epochs", type=int, default=10, help="timed epochs per model and side")
    parser.add_argument("--import-rounds", type=int, default=3, help="fresh interpreters per import")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="profile the d2l_shim side; print its N costliest functions to stderr",
    )
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")

    # Figures that Trainer.fit draws at the end go to a temporary folder, not the repository.
    os.environ.setdefault("D2L_PROGRESS", "static")
    os.environ.setdefault("MPLBACKEND", "Agg")
    figure_dir = tempfile.TemporaryDirectory(prefix="d2l-bench-figures-")
    os.environ["D2L_FIGURE_DIR"] = figure_dir.name

    imports = measure_imports(args.framework, args.import_rounds) if args.import_rounds else {}
    loops = importlib.import_module(f"loops_{args.framework}")  # bench/ is on sys.path: this script's folder
    d2l = importlib.import_module(FRAMEWORK_INFO[args.framework].shim_module)
    with contextlib.redirect_stdout(io.StringIO()):
        data = d2l.FashionMNIST(batch_size=BATCH_SIZE)
    arrays = load_arrays(data.channels_last)
    matmul_before = matmul_gflops(loops)
    models = {
        name: run_model(loops, d2l, data, arrays, args.framework, name, args.epochs, args.profile)
        for name in args.models
    }
    result = {
        "framework": args.framework,
        "versions": loops.versions(),
        "matmul_gflops": max(matmul_before, matmul_gflops(loops)),  # measured before and after
        "imports": imports,
        "models": models,
    }
    figure_dir.cleanup()
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
