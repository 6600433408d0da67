"""``make bench``: how fast d2l_shim trains the chapter's MLPs, next to minimal loops.

    .venv/bin/python bench/bench.py [--epochs 10] [--frameworks pytorch,jax] [--no-notebooks]
                                    [--no-variants]

For each framework a worker (``bench/worker.py``, run with the interpreter that has the
framework) trains the chapter's scratch and concise MLPs (784-256-10, batch 256, lr 0.1; the
notebooks' own classes) through ``d2l.Trainer.fit`` and through two hand-written loops, a
fair one (the same per-epoch reshuffle and gather) and one over pre-batched tensors, epoch
by epoch in turn, and times imports. Every framework runs with the notebooks' settings (the
kernels' environment, one compute thread), and once more with each setting in ``VARIANTS``
(TensorFlow with oneDNN on, MXNet with two OpenMP threads). This
script adds the compute floor (FLOPs per epoch over the measured float32 matmul rate) and
the wall time of every split notebook under every kernel, prints one markdown report and
writes it to ``build/bench.md``.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from d2l_shim import FRAMEWORKS  # noqa: E402 (after the path set-up, for a fresh clone)
from d2l_tools import chapter  # noqa: E402
from d2l_tools.envs import environment_of  # noqa: E402
from d2l_tools.files import write_atomic  # noqa: E402
from d2l_tools.kernels import ONE_THREAD_ENV, QUIET_ENV, kernel_name  # noqa: E402

PYTHON = {fw: environment_of(fw).python for fw in FRAMEWORKS}
SPLIT_DIR = REPO / "build" / "notebooks"
OUTPUT = REPO / "build" / "bench.md"
# The chapter's network and data: 60,000 training images, 784-256-10.
TRAIN_EXAMPLES, LAYERS = 60_000, (784, 256, 10)
# Forward (2 FLOPs per multiply-add) plus backward (twice the forward) for every weight.
EPOCH_FLOPS = 3 * 2 * TRAIN_EXAMPLES * sum(a * b for a, b in zip(LAYERS, LAYERS[1:]))
WORKER_TIMEOUT_S = 3600
# Settings measured once more beside the kernels' own: framework -> [(row label, environment)].
VARIANTS = {
    "mxnet": [("mxnet, 2 OpenMP threads", {"OMP_NUM_THREADS": "2", "MXNET_CPU_WORKER_NTHREADS": "2"})],
    "tensorflow": [("tensorflow, oneDNN on", {"TF_ENABLE_ONEDNN_OPTS": "1"})],
}
NOTEBOOK_TIMEOUT_S = 1800


def log(message):
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def ratio(x):
    return f"{x:.2f}x"


# ---------------------------------------------------------------------------------------------
# Measurements


def run_worker(framework, epochs, settings=None, import_rounds=3):
    """Run ``bench/worker.py`` for one framework; its JSON result (or an error dict).

    ``settings`` (environment variables) go on top of the kernels' environment.
    """
    python = PYTHON[framework]
    if not python.exists():
        return {"error": f"{python} does not exist: run `make setup`"}
    # The kernels' environment (TensorFlow's oneDNN setting included) and one compute thread,
    # as the notebooks run under `make notebooks` and `make test`, so that timings match them
    # whatever the caller's shell sets; a static board and an off-screen matplotlib backend.
    env = {
        **os.environ,
        **QUIET_ENV,
        **ONE_THREAD_ENV,
        **(settings or {}),
        "D2L_PROGRESS": "static",
        "MPLBACKEND": "Agg",
    }
    command = [
        str(python),
        str(REPO / "bench" / "worker.py"),
        framework,
        "--epochs",
        str(epochs),
        "--import-rounds",
        str(import_rounds),
    ]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=WORKER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"worker ran past {WORKER_TIMEOUT_S} s"}
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-5:]
        return {"error": f"worker exited with {done.returncode}: " + " | ".join(tail)}
    log(f"{framework}: done in {time.perf_counter() - start:.0f} s")
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"error": f"worker printed no JSON result: {done.stdout[-200:]!r}"}


def split_notebooks(frameworks):
    """{framework: [split notebook, ...]}, splitting first when one is missing or older than its source."""
    sources = chapter.notebooks()
    splits = {fw: [SPLIT_DIR / fw / "chapter_mlp" / source.name for source in sources] for fw in frameworks}
    if any(
        not split.exists() or split.stat().st_mtime < source.stat().st_mtime
        for paths in splits.values()
        for source, split in zip(sources, paths)
    ):
        log("splitting the chapter's notebooks (python -m d2l_tools split)")
        subprocess.run([str(PYTHON["pytorch"]), "-m", "d2l_tools", "split"], cwd=REPO, check=True)
    return splits


def notebook_seconds(path, framework):
    """Wall seconds to run one split notebook under ``d2l-<framework>``, kernel start included."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="d2l-bench-figures-") as figures:
        env = {**os.environ, "D2L_PROGRESS": "static", "D2L_FIGURE_DIR": figures}
        client = NotebookClient(
            nb,
            kernel_name=kernel_name(framework),
            timeout=NOTEBOOK_TIMEOUT_S,
            resources={"metadata": {"path": str(path.parent)}},
        )
        start = time.perf_counter()
        # The kernel's own stderr (a warning about its TCP transport) would bury the log; a
        # failing cell still raises, with its traceback, and the table says so.
        client.execute(env=env, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start


def time_notebooks(frameworks):
    """{notebook name: {framework: seconds or an error string}}."""
    times = {}
    for framework, paths in split_notebooks(frameworks).items():
        for path in paths:
            log(f"notebook {path.name} under d2l-{framework}")
            try:
                result = notebook_seconds(path, framework)
            except Exception as err:  # a broken notebook is reported in the table, not fatal
                result = f"failed ({type(err).__name__})"
                log(f"  {path.name} under d2l-{framework} failed: {err}".splitlines()[0])
            times.setdefault(path.stem, {})[framework] = result
    return times


def machine():
    """One line: CPU model, cores, memory, load, OS, Python."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cpu}, {cores} cores, {memory:.0f} GiB, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def load_average():
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


# ---------------------------------------------------------------------------------------------
# Report


SIDES = ("shim", "fair", "minimal")


def training_table(results, floor_s):
    rows = [
        "| run | model | d2l_shim s/epoch | fair minimal | pre-batched minimal | shim/fair | shim/floor | "
        "fair/floor | 1st epoch s shim / fair / pre-batched | val acc shim / fair / pre-batched |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, result in results.items():
        if "error" in result:
            rows.append(f"| {label} | - | failed: see the log | | | | | | | |")
            continue
        for name, model in result["models"].items():
            median = {side: statistics.median(model["epoch_s"][side]) for side in SIDES}
            first = " / ".join(f"{model['first_epoch_s'][side]:.2f}" for side in SIDES)
            accs = " / ".join(f"{model['metrics'][side]['val_acc']:.3f}" for side in SIDES)
            rows.append(
                f"| {label} | {name} | {median['shim']:.3f} | {median['fair']:.3f} | {median['minimal']:.3f} | "
                f"{ratio(median['shim'] / median['fair'])} | {ratio(median['shim'] / floor_s)} | "
                f"{ratio(median['fair'] / floor_s)} | {first} | {accs} |"
            )
    return rows


def import_table(results):
    rows = ["| run | import framework s | then import d2l_shim.&lt;fw&gt; s |", "|---|---:|---:|"]
    for framework, result in results.items():
        imports = result.get("imports")
        if imports:
            rows.append(f"| {framework} | {imports['framework']:.2f} | {imports['shim_own']:.2f} |")
    return rows


def notebook_table(times, frameworks):
    rows = ["| notebook | " + " | ".join(frameworks) + " |", "|---|" + "---:|" * len(frameworks)]
    for name, per_framework in times.items():  # the chapter's order: split_notebooks follows its toctree
        cells = [per_framework.get(fw, "-") for fw in frameworks]
        rows.append(f"| {name} | " + " | ".join(f"{c:.1f}" if isinstance(c, float) else c for c in cells) + " |")
    return rows


def report(results, notebooks, frameworks, epochs, started, load_before, load_after):
    ok = {label: r for label, r in results.items() if "error" not in r}
    rates = {label: r["matmul_gflops"] for label, r in ok.items()}
    best = max(rates, key=rates.get) if rates else None
    floor_s = EPOCH_FLOPS / (rates[best] * 1e9) if best else float("nan")
    versions = "; ".join(
        dict.fromkeys(  # one entry per distinct set (a variant repeats its framework's)
            ", ".join(f"{k} {v}" for k, v in r["versions"].items() if isinstance(v, str) and v) for r in ok.values()
        )
    )
    lines = [
        "# d2l_shim training speed",
        "",
        f"Run {started:%Y-%m-%d %H:%M} UTC on {machine()}; load average {load_before:.1f} before, "
        f"{load_after:.1f} after. {versions}.",
        "",
        f"Compute floor: {EPOCH_FLOPS / 1e9:.1f} GFLOP per epoch "
        f"(3 x 2 x {TRAIN_EXAMPLES} x ({LAYERS[0]}x{LAYERS[1]} + {LAYERS[1]}x{LAYERS[2]})) / "
        + (
            f"{rates[best]:.0f} GFLOP/s (best float32 matmul rate, {best}) = {floor_s:.3f} s/epoch. "
            if best
            else "no matmul rate measured. "
        )
        + "Float32 matmul GFLOP/s per run: "
        + ", ".join(f"{label} {rate:.0f}" for label, rate in rates.items())
        + ". A reader's machine gives its own floor: its matmul rate in place of this one.",
        "",
        f"## Training: median seconds per epoch over {epochs} epochs",
        "",
        *training_table(results, floor_s),
        "",
        "How it is measured: the three sides train each model in the same process, taking turns epoch "
        "by epoch (shim, then fair, then pre-batched). `Trainer.fit` runs one epoch more than the median "
        "covers and one epoch of each minimal loop follows each of its epochs; the first epoch of each "
        "side (lazy layers, tracing, compilation) is the warm-up, shown as *1st epoch* and left out of "
        "the median. The model is the chapter's own class on every side (read from the notebook's "
        "cells), with its own loss and optimizer. Every run has one compute thread per framework, as "
        "the notebooks under `make notebooks` and `make test`, unless its label says otherwise.",
        "",
        "- **d2l_shim** epoch = `fit_epoch` + `report_epoch` with a static board: 235 minibatches of 256 "
        "gathered from the in-memory tensors in a fresh shuffle, forward, loss, backward, SGD update, "
        "loss sent to the progress board; the 40 validation minibatches: forward, loss and accuracy sent "
        "to the board; the epoch's means printed.",
        "- **fair minimal** epoch = a hand-written loop with the same per-epoch reshuffle and gather, in "
        "the framework's fastest idiom (PyTorch `index_select` per batch and eager steps; MXNet `take` per "
        "batch and imperative steps; TensorFlow a `tf.function` step that gathers its batch inside the "
        "graph; JAX a jitted step that gathers its batch inside the compiled call); 40 validation "
        "batches (loss and accuracy, compiled where the training step is); the three means converted "
        "to floats at the end. The shim is judged against it (*shim/fair*).",
        "- **pre-batched minimal** epoch = the same loop over batches cut once, in order: no shuffle and "
        "no gather, so it is faster than any real training; shown for reference.",
        "- **floor** = FLOPs of one training epoch (forward and backward matmuls; the validation "
        "forward pass, 4% more, is not counted) over the best matmul rate measured.",
        "",
        "## Import time (fresh interpreter, median; d2l_shim.jax also brings flax and optax)",
        "",
        *import_table(results),
        "",
    ]
    if notebooks:
        lines += [
            "## Notebook wall time, seconds (kernel start to last cell, `D2L_PROGRESS=static`)",
            "",
            *notebook_table(notebooks, frameworks),
            "",
        ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="timed epochs per model and side (default 10)")
    parser.add_argument(
        "--frameworks", default=",".join(FRAMEWORKS), help="comma list (default: " + ",".join(FRAMEWORKS) + ")"
    )
    parser.add_argument("--no-notebooks", action="store_true", help="skip the notebook wall times")
    parser.add_argument("--import-rounds", type=int, default=3, help="fresh interpreters per import time (0: none)")
    parser.add_argument(
        "--no-variants", action="store_true", help="measure the kernels' settings only, not the VARIANTS beside them"
    )
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"default {OUTPUT.relative_to(REPO)}")
    args = parser.parse_args(argv)
    asked = [fw.strip() for fw in args.frameworks.split(",") if fw.strip()]
    unknown = [fw for fw in asked if fw not in FRAMEWORKS]
    if unknown or not asked:
        parser.error(f"unknown framework(s) {unknown or asked}; choose from {', '.join(FRAMEWORKS)}")
    frameworks = [fw for fw in FRAMEWORKS if fw in asked]  # the book's order in every table
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    from d2l_tools import fetch

    problems = fetch.verify()
    if problems:
        parser.exit(2, f"bench: the Fashion-MNIST cache is not ready ({problems[0]}); run `make data`\n")

    started, load_before = datetime.now(timezone.utc), load_average()
    if load_before > (os.cpu_count() or 1):
        log(f"warning: load average {load_before:.1f} on {os.cpu_count()} cores: timings will be noisy")
    results = {}
    for framework in frameworks:
        runs = [(framework, None)] + ([] if args.no_variants else VARIANTS.get(framework, []))
        for label, settings in runs:
            log(
                f"{label}: {args.epochs} epochs x 2 models x (d2l_shim, fair minimal, pre-batched minimal)"
                + ("" if settings else ", plus imports")
            )
            # Import times once per framework: a variant's settings do not change them.
            results[label] = run_worker(
                framework, args.epochs, settings, import_rounds=0 if settings else args.import_rounds
            )
            if "error" in results[label]:
                log(f"{label}: {results[label]['error']}")
    notebooks = {} if args.no_notebooks else time_notebooks(frameworks)
    text = report(results, notebooks, frameworks, args.epochs, started, load_before, load_average())
    write_atomic(args.output, text)
    print(text)
    log(f"wrote {args.output}")
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
