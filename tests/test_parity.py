"""The four tabs teach the same model: same weights + same minibatches = same losses.

Every framework trains the chapter's own MLPs (784-256-10, ReLU), the classes its notebooks
define: mlp-scratch's ``MLPScratch`` (hand-written loss and SGD), mlp-concise's ``MLP``
(framework layers, loss and optimizer) and mlp-concise's raw-parameter ``MLPScratch``. Each
is trained with ``d2l.Trainer`` from one set of numpy weights on the same real Fashion-MNIST
minibatches (tests/parity_worker.py, run in each framework's own environment). Their
per-step losses must agree with each other and with a float64 numpy implementation of the
same SGD steps (forward pass and gradients written out by hand below) to ATOL.
"""

import itertools
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, frameworks_checked, python_for
from parity_worker import MODELS, WEIGHT_NAMES, initial_weights

STEPS, BATCH_SIZE, LR = 40, 64, 0.1
ATOL = 1e-4
WORKER = REPO / "tests" / "parity_worker.py"
WORKER_TIMEOUT_S = 300


def reference_losses(weights, X, y, batch_size, lr):
    """Per-step losses of minibatch SGD on the MLP, in float64 with hand-written gradients."""
    W1, b1, W2, b2 = (weights[name].astype(np.float64) for name in WEIGHT_NAMES)
    losses = []
    for start in range(0, len(X), batch_size):
        Xb, yb = X[start : start + batch_size].astype(np.float64), y[start : start + batch_size]
        rows = np.arange(len(yb))
        Z = Xb @ W1 + b1
        H = np.maximum(Z, 0)
        logits = H @ W2 + b2
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        losses.append(-log_probs[rows, yb].mean())
        # Gradient of the mean cross-entropy: (softmax - one_hot) / batch size, then back.
        dO = np.exp(log_probs)
        dO[rows, yb] -= 1
        dO /= len(yb)
        dZ = (dO @ W2.T) * (Z > 0)
        W2 -= lr * (H.T @ dO)
        b2 -= lr * dO.sum(axis=0)
        W1 -= lr * (Xb.T @ dZ)
        b1 -= lr * dZ.sum(axis=0)
    return np.array(losses)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Weights and the first STEPS * BATCH_SIZE real training examples, flat float32."""
    from d2l_shim import data

    try:
        arrays = data.load_fashion_mnist()
    except data.DataError as err:
        pytest.fail(f"the parity test needs the real Fashion-MNIST cache: {err}")
    count = STEPS * BATCH_SIZE
    X = (arrays.train_images[:count].reshape(count, -1) / np.float32(255)).astype(np.float32)
    y = np.asarray(arrays.train_labels[:count])
    # Larger than the book's 0.01 and with non-zero biases, so that every weight matters from
    # the first step (a layout mistake shows at once) and the loss moves a lot in 40 steps.
    weights = initial_weights(np.random.default_rng(2024), sigma=0.05, bias_sigma=0.05)
    path = tmp_path_factory.mktemp("parity") / "in.npz"
    np.savez(path, X=X, y=y, batch_size=BATCH_SIZE, lr=LR, **weights)
    return {"path": path, "X": X, "y": y, "weights": weights}


@pytest.fixture(scope="module")
def losses(inputs):
    """(framework, model) -> per-step losses, from one worker per framework run in parallel."""
    folder = inputs["path"].parent
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "D2L_FIGURE_DIR": str(folder / "figures")}
    env.pop("D2L_TEST_FRAMEWORKS", None)
    running = {}
    for framework in frameworks_checked():
        command = [
            python_for(framework),
            str(WORKER),
            framework,
            ",".join(MODELS),
            str(inputs["path"]),
            str(folder / f"{framework}.npz"),
        ]
        running[framework] = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    results, failures = {}, []
    for framework, process in running.items():
        try:
            output, _ = process.communicate(timeout=WORKER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        if process.returncode != 0:
            tail = "\n".join(output.strip().splitlines()[-15:])
            failures.append(f"{framework} worker ({process.args[0]}) exited with {process.returncode}:\n{tail}")
            continue
        with np.load(folder / f"{framework}.npz") as saved:
            results.update({(framework, kind): saved[kind] for kind in MODELS})
    if failures:
        pytest.fail("\n\n".join(failures))
    return results


@pytest.fixture(scope="module")
def reference(inputs):
    return reference_losses(inputs["weights"], inputs["X"], inputs["y"], BATCH_SIZE, LR)


def test_the_reference_run_learns_so_the_comparison_means_something(reference):
    assert len(reference) == STEPS
    assert reference[0] > 2.0 and reference[-5:].mean() < reference[0] - 0.8


@pytest.mark.parametrize("kind", MODELS)
@pytest.mark.parametrize("framework", frameworks_checked())
def test_each_framework_takes_the_reference_sgd_steps(losses, reference, framework, kind):
    got = losses[(framework, kind)]
    assert got.shape == reference.shape, f"{framework} {kind} ran {len(got)} steps, not {STEPS}"
    worst = np.abs(got - reference).max()
    assert worst <= ATOL, (
        f"{framework} {kind} MLP drifts from the reference by {worst:.2e} "
        f"(first step {np.argmax(np.abs(got - reference) > ATOL)})"
    )


def test_all_frameworks_and_both_models_agree_pairwise(losses, reference, capsys):
    differences = {
        (a, b): float(np.abs(losses[a] - losses[b]).max()) for a, b in itertools.combinations(sorted(losses), 2)
    }
    (a, b), worst = max(differences.items(), key=lambda item: item[1])
    from_reference = max(float(np.abs(run - reference).max()) for run in losses.values())
    with capsys.disabled():  # printed in every run: the numbers worth reporting
        print(
            f"\n[parity] {len(losses)} runs x {STEPS} steps: largest pairwise loss difference "
            f"{worst:.2e} ({' '.join(a)} vs {' '.join(b)}); largest difference from the "
            f"float64 reference {from_reference:.2e}",
            file=sys.stderr,
        )
    assert worst <= ATOL, f"{' '.join(a)} and {' '.join(b)} differ by {worst:.2e}"
