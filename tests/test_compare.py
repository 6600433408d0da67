"""d2l_tools.compare: floating-point noise passes, real changes fail with a message that says what moved.

The figures here are drawn by matplotlib with the settings the chapter uses (d2l_shim.plotting),
so the SVG ids, glyph comments and coordinate formats are the real ones.
"""

import base64
import io

import matplotlib
import nbformat
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from d2l_shim import plotting  # noqa: E402
from d2l_tools.compare import (  # noqa: E402
    Policy,
    PolicyError,
    compare_outputs,
    compare_raster,
    compare_svg,
    compare_text,
    last_digit_unit,
    split_numbers,
)

LOG = "epoch  1/10: train loss 1.0434, val loss 0.7069, val acc 0.7327\n"
TRAINING = Policy(numbers={"loss": 0.03, "acc": 0.015})


def test_numbers_are_split_from_words_and_units():
    texts, numbers = split_numbers("dense0_weight (256, 784) float32 -8.0 5.18e+21 12.5pt t-shirt 0.849.")
    assert numbers == ["256", "784", "-8.0", "5.18e+21", "12.5", "0.849"]
    assert texts[0] == "dense0_weight (" and "float32" in texts[2] and texts[-1] == "."


@pytest.mark.parametrize("token, unit", [("0.8469", 1e-4), ("3.", 1.0), ("5.18e+21", 1e19), ("1.0e-3", 1e-4)])
def test_last_digit_unit(token, unit):
    assert last_digit_unit(token) == pytest.approx(unit)


def test_text_default_allows_a_rounding_flip_in_the_last_digit_only():
    assert compare_text("val acc 0.8469", "val acc 0.8470") == []
    [problem] = compare_text("val acc 0.8469", "val acc 0.8471")
    assert "0.8469 became 0.8471" in problem


def test_integers_are_exact_by_default_so_a_changed_shape_fails():
    [problem] = compare_text("X: torch.Size([256, 1, 28, 28])", "X: torch.Size([128, 1, 28, 28])")
    assert "256 became 128" in problem and "torch.Size([[256], 1, 28, 28])" in problem


def test_declared_tolerances_apply_by_label():
    noisy = LOG.replace("1.0434", "1.0601").replace("0.7327", "0.7241")  # loss +0.017, acc -0.009
    assert compare_text(LOG, noisy, TRAINING) == []
    moved = LOG.replace("0.7327", "0.7127")  # acc -0.02: past 0.015
    [problem] = compare_text(LOG, moved, TRAINING)
    assert "0.7327 became 0.7127" in problem and "tolerance 0.015" in problem and "val acc" in problem
    # The epoch counter has no declared label: still exact.
    assert compare_text(LOG, LOG.replace("1/10", "2/10"), TRAINING)


def test_star_applies_to_every_other_number():
    policy = Policy(numbers={"*": 5, "acc": 0.01})
    assert compare_text("shirt 640 12\nacc 0.80", "shirt 644 9\nacc 0.805", policy) == []
    assert compare_text("shirt 640 12", "shirt 650 12", policy)


def test_column_padding_follows_the_width_of_the_numbers():
    stored = "   pullover     6     2   877     9    82\n"
    rerun = "   pullover     5     2   880    10    79\n"
    assert compare_text(stored, rerun, Policy(numbers={"*": 40})) == []
    assert compare_text(stored, rerun.replace("pullover", "pull over"), Policy(numbers={"*": 40}))


def test_text_changes_beyond_numbers_fail():
    [problem] = compare_text(LOG, LOG.replace("val acc", "val accuracy"), TRAINING)
    assert "text differs beyond its numbers" in problem
    [problem] = compare_text(LOG, LOG + LOG, TRAINING)
    assert "1 more line(s)" in problem


def test_nan_never_matches_a_number():
    assert compare_text("loss 0.5", "loss nan", Policy(numbers={"*": 100}))


def test_policy_from_metadata():
    assert not Policy.from_metadata({}).loosened
    policy = Policy.from_metadata(
        {
            "d2l": {
                "compare": {"numbers": {"Loss": 0.03}, "png": {"max_changed": 0.05}, "reason": "SGD amplifies rounding"}
            }
        }
    )
    assert policy.numbers == {"loss": 0.03} and policy.png_max_changed == 0.05 and policy.loosened
    for bad in (
        {"numbers": {"loss": -1}},
        {"numbers": [0.1]},
        {"svg_atol": "big"},
        {"colour": 1},
        {"png": {"max": 1}},
        "loose",
    ):
        with pytest.raises(PolicyError):
            Policy.from_metadata({"d2l": {"compare": bad}})


# ---------------------------------------------------------------------------------------------
# Figures


@pytest.fixture(autouse=True)
def fixed_svg_date(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")  # as notebook runs set it: no timestamp in SVGs


def svg_of(function, noise=0.0):
    plotting.use_svg_display()  # the chapter's rcParams (hash salt, fonts as paths)
    x = np.arange(-8.0, 8.0, 0.1)
    fig, ax = plt.subplots(figsize=(3.5, 2.5))
    ax.plot(x, function(x) + noise, "o-", markevery=20)  # markers: ids hashed from path data
    ax.set_xlabel("x")
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    return buffer.getvalue()


def tanh(x):
    return np.tanh(x)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_svg_noise_in_the_last_digits_passes():
    stored, rerun = svg_of(tanh), svg_of(tanh, noise=1e-6)
    assert stored != rerun  # the noise does reach the file: ids and coordinates differ
    assert compare_svg(stored, rerun) == []


def test_svg_of_another_function_fails_naming_the_axes():
    [problem] = compare_svg(svg_of(tanh), svg_of(sigmoid))  # other y ticks: another structure
    assert "g[axes_1]" in problem and "child element(s)" in problem


def test_svg_visible_shift_fails_naming_the_coordinate():
    [problem] = compare_svg(svg_of(tanh), svg_of(tanh, noise=0.01))
    assert "g[axes_1]" in problem and "became" in problem and "tolerance 0.01" in problem


def png_of(function, noise=0.0, size=(3.5, 2.5)):
    x = np.arange(-8.0, 8.0, 0.1)
    fig, ax = plt.subplots(figsize=size)
    ax.plot(x, function(x) + noise)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=72)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def test_png_noise_passes_and_another_picture_fails():
    assert compare_raster(png_of(tanh), png_of(tanh, noise=1e-7)) == []
    [problem] = compare_raster(png_of(tanh), png_of(sigmoid))
    assert "of the pixels changed" in problem
    [problem] = compare_raster(png_of(tanh), png_of(tanh, size=(4, 2.5)))
    assert "size 252x180 px became 288x180 px" in problem


def display(data):
    return nbformat.v4.new_output("display_data", data=data)


def test_cell_outputs_missing_image_or_stream_fail():
    figure = display({"image/png": png_of(tanh), "text/plain": "<Figure size 252x180 with 1 Axes>"})
    text = nbformat.v4.new_output("stream", name="stdout", text=LOG)
    assert compare_outputs([text, figure], [text, figure]) == []
    [problem] = compare_outputs([text, figure], [text, display({"text/plain": figure.data["text/plain"]})])
    assert "no image/png output" in problem
    [problem] = compare_outputs([text], [text, nbformat.v4.new_output("stream", name="stderr", text="warning\n")])
    assert "stderr" in problem


def test_stream_chunks_are_joined_before_comparing():
    one = [nbformat.v4.new_output("stream", name="stdout", text=LOG + LOG)]
    two = [nbformat.v4.new_output("stream", name="stdout", text=LOG)] * 2
    assert compare_outputs(one, two) == []
