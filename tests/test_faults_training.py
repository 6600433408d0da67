"""Bad arguments to the reader's training API are refused at construction, with one line
that names the argument and what it must be, before any data is read or model touched."""

import pytest

from d2l_shim import training


@pytest.mark.parametrize(
    "value, error, says",
    [
        (-1, ValueError, "Trainer(max_epochs=-1): max_epochs must be >= 0"),
        (2.5, TypeError, "Trainer(max_epochs=2.5): max_epochs must be a whole number >= 0, not float"),
        ("10", TypeError, "Trainer(max_epochs='10'): max_epochs must be a whole number >= 0, not str"),
        (True, TypeError, "Trainer(max_epochs=True): max_epochs must be a whole number >= 0, not bool"),
        (None, TypeError, "Trainer(max_epochs=None): max_epochs must be a whole number >= 0, not NoneType"),
    ],
)
def test_trainer_refuses_a_bad_max_epochs(value, error, says):
    with pytest.raises(error) as raised:
        training.Trainer(max_epochs=value)
    assert str(raised.value) == says
    assert "\n" not in str(raised.value)


def test_trainer_refuses_a_negative_num_gpus():
    with pytest.raises(ValueError, match=r"^Trainer\(num_gpus=-2\): num_gpus must be >= 0$"):
        training.Trainer(max_epochs=1, num_gpus=-2)


def test_zero_epochs_is_allowed_as_in_d2l_and_trains_nothing(capsys):
    """d2l's loop is ``for epoch in range(max_epochs)``: 0 prepares the model and trains nothing."""
    import numpy as np
    from test_core import ToyData, ToyModel, ToyTrainer

    model = ToyModel()
    ToyTrainer(max_epochs=np.int64(0)).fit(model, ToyData(value=1.0))
    assert model.steps == [] and model.board.lines == {}
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "value, error, says",
    [
        (0, ValueError, "FashionMNIST(batch_size=0): batch_size must be >= 1"),
        (-3, ValueError, "FashionMNIST(batch_size=-3): batch_size must be >= 1"),
        (32.0, TypeError, "FashionMNIST(batch_size=32.0): batch_size must be a whole number >= 1, not float"),
    ],
)
def test_fashion_mnist_refuses_a_bad_batch_size_before_reading_data(value, error, says, tmp_path):
    root = tmp_path / "no-data-here"
    with pytest.raises(error) as raised:
        training.FashionMNIST(batch_size=value, root=root)
    assert str(raised.value) == says
    assert not root.exists(), "nothing was fetched or written"


def test_a_bad_d2l_eager_value_is_refused_before_training(monkeypatch):
    from test_core import ToyData, ToyModel, ToyTrainer

    monkeypatch.setattr(training, "_eager", None)
    monkeypatch.setenv(training.EAGER_VARIABLE, "yes")
    model = ToyModel()
    with pytest.raises(ValueError) as raised:
        ToyTrainer(max_epochs=1).fit(model, ToyData(value=1.0))
    assert str(raised.value) == (
        "D2L_EAGER='yes' is not understood: set it to 1 (run the training "
        "steps eagerly) or 0 (compile them), or unset it"
    )
    assert model.steps == [], "no step ran"
