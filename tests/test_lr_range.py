"""``loop.lr_range_test``: the exponential sweep, divergence, suggestions, the plot, and a model left as it was."""

import math

import keras
import numpy as np
import pandas as pd
import pytest
from helpers import make_data, make_model

import loop
from loop.lr_range import ExponentialRange, suggest

LOSS = "sparse_categorical_crossentropy"


@pytest.fixture(scope="module")
def data():
    return make_data(n=480)


def variables_of(model):
    return [v.numpy().copy() for v in model.variables]


def same(before, after):
    return len(before) == len(after) and all(np.array_equal(a, b) for a, b in zip(before, after))


def test_learning_rates_are_exactly_exponential_and_applied_by_the_optimizer(data):
    x, y = data
    result = loop.lr_range_test(make_model(), x, y, loss=LOSS, batch_size=16, min_lr=1e-4, max_lr=1.0,
                                divergence=math.inf)
    frame = result.frame
    assert list(frame.columns) == ["step", "learning_rate", "loss", "smoothed_loss"]
    assert result.num_steps == 30 and len(frame) == 30 and not result.diverged  # one pass: ceil(480 / 16)
    np.testing.assert_allclose(frame["learning_rate"], np.geomspace(1e-4, 1.0, 30), rtol=1e-12)
    assert list(frame["step"]) == list(range(30))
    assert np.isfinite(frame["loss"]).all() and (frame["loss"] > 0).all()
    # the schedule the compiled step reads: the same values from the optimizer's iteration count
    schedule = ExponentialRange(1e-4, 1.0, 30)
    on_device = np.array([float(schedule(keras.ops.convert_to_tensor(i))) for i in range(30)])
    np.testing.assert_allclose(on_device, np.geomspace(1e-4, 1.0, 30), rtol=1e-5)
    assert float(schedule(100)) == pytest.approx(1.0, rel=1e-6)  # held at max_lr past the end
    assert result.trace_count == 1  # one trace for the whole sweep: the rate changes on the device


def test_smoothing_is_a_bias_corrected_moving_average(data):
    x, y = data
    result = loop.lr_range_test(make_model(), x, y, loss=LOSS, batch_size=32, max_lr=1e-2, smoothing=0.9)
    loss, smooth = result.frame["loss"].to_numpy(), result.frame["smoothed_loss"].to_numpy()
    avg, expected = 0.0, []
    for i, value in enumerate(loss):
        avg = 0.9 * avg + 0.1 * value
        expected.append(avg / (1 - 0.9 ** (i + 1)))
    np.testing.assert_allclose(smooth, expected, rtol=1e-12)
    assert smooth[0] == loss[0]
    raw = loop.lr_range_test(make_model(), x, y, loss=LOSS, batch_size=32, max_lr=1e-2, smoothing=0.0)
    np.testing.assert_array_equal(raw.frame["loss"], raw.frame["smoothed_loss"])


def test_the_model_and_a_given_optimizer_are_left_as_they_were(data):
    x, y = data
    model = make_model(dropout=0.2)
    before = variables_of(model)  # weights and the dropout seed state
    result = loop.lr_range_test(model, x, y, loss=LOSS, batch_size=16, max_lr=10.0)
    assert len(result.frame) > 5
    assert same(before, variables_of(model))
    # an uncompiled model is uncompiled again: a plain model.fit still asks for compile()
    assert not model.compiled and getattr(model, "optimizer", None) is None
    assert not getattr(model, "stop_training", False)
    with pytest.raises(ValueError, match="compile"):
        model.fit(x, y, epochs=1, verbose=0)
    model.compile(optimizer="sgd", loss=LOSS, metrics=["accuracy"])
    assert model.fit(x, y, epochs=1, verbose=0).history["loss"]

    compiled = make_model()
    optimizer = keras.optimizers.SGD(learning_rate=0.05, momentum=0.9)
    compiled.compile(optimizer=optimizer, loss=LOSS)
    compiled.fit(x, y, epochs=1, verbose=0)  # the optimizer has state: iterations and momentum slots
    before, slots = variables_of(compiled), [v.numpy().copy() for v in optimizer.variables]
    result = loop.lr_range_test(compiled, x, y, optimizer=None, batch_size=16)  # the compiled loss and optimizer
    assert np.isfinite(result.suggested_lr)
    assert same(before, variables_of(compiled))
    assert same(slots, [v.numpy() for v in optimizer.variables])
    assert compiled.optimizer is optimizer and float(optimizer.learning_rate) == pytest.approx(0.05)
    loop.lr_range_test(compiled, x, y, optimizer=optimizer, batch_size=16)  # an object passed in: copied, not stepped
    assert same(slots, [v.numpy() for v in optimizer.variables])


def test_the_model_is_restored_when_the_sweep_fails(data):
    x, y = data
    model = make_model()
    before = variables_of(model)

    def bad_loss(y_true, y_pred):
        raise RuntimeError("boom")

    with pytest.raises(Exception):
        loop.lr_range_test(model, x, y, loss=bad_loss)
    assert same(before, variables_of(model)) and not model.compiled


def test_a_huge_max_lr_diverges_and_stops_early(data):
    x, y = data
    result = loop.lr_range_test(make_model(), x, y, loss=LOSS, optimizer="sgd", batch_size=8, min_lr=1e-3,
                                max_lr=1e6, steps_per_execution=2)
    frame = result.frame
    assert result.diverged and result.num_steps == 60
    assert len(frame) == result.diverged_step + 1 < result.num_steps  # the frame ends at the diverging step
    last = frame["smoothed_loss"].iloc[-1]
    assert not np.isfinite(last) or last > 4.0 * frame["smoothed_loss"].iloc[:-1].min()
    assert result.min_lr <= result.suggested_lr <= frame["learning_rate"].iloc[-1]


def test_a_nan_loss_is_divergence_not_an_error(data):
    x, y = data
    result = loop.lr_range_test(make_model(), x, y, loss=LOSS, optimizer="sgd", batch_size=8, min_lr=1.0,
                                max_lr=1e30, steps_per_execution=8, divergence=math.inf)
    assert result.diverged
    assert not np.isfinite(result.frame["loss"].iloc[-1]) and np.isfinite(result.frame["loss"].iloc[:-1]).all()
    assert 1.0 <= result.suggested_lr <= 1e30


def test_the_suggestion_on_an_easy_problem_is_sensible(data):
    x, y = data
    result = loop.lr_range_test(make_model(), x, y, loss=LOSS, batch_size=8, num_steps=120, smoothing=0.9)
    assert result.min_lr <= result.suggested_lr <= result.max_lr
    assert 1e-4 <= result.suggested_lr <= 1.0
    assert result.conservative_lr == pytest.approx(result.min_loss_lr / 10)
    assert 1e-5 <= result.conservative_lr <= 1.0
    assert "suggested_lr=" in repr(result)


def test_suggest_takes_the_steepest_descent_before_the_minimum():
    lr = np.geomspace(1e-4, 1.0, 9)
    smoothed = np.array([2.0, 1.99, 1.9, 1.5, 1.3, 1.2, 1.1, 3.0, 1.0])
    steep, at_min = suggest(lr, smoothed, diverged_step=7)  # step 7 diverged: steps 7 and 8 are not considered
    assert at_min == lr[6] and steep == lr[3]
    assert suggest(lr, np.linspace(1, 2, 9)) == (lr[0], lr[0])  # only rising: the first rate


def test_plot_returns_log_scaled_axes_with_the_suggestion(data):
    x, y = data
    result = loop.lr_range_test(make_model(), x, y, loss=LOSS, batch_size=16, max_lr=1.0)
    ax = result.plot()
    assert ax.get_xscale() == "log" and ax.get_xlabel().startswith("learning rate")
    marker = [line for line in ax.get_lines() if line.get_label().startswith("suggested")]
    assert marker and marker[0].get_xdata()[0] == pytest.approx(result.suggested_lr)
    from matplotlib.figure import Figure

    mine = Figure().subplots()
    assert result.plot(ax=mine) is mine


def test_dict_and_tuple_data_and_num_steps_beyond_one_pass(data):
    x, y = data
    result = loop.lr_range_test(make_model(), (x, y), loss=LOSS, batch_size=64, num_steps=20, max_lr=1e-1)
    assert len(result.frame) == 20  # 8 batches a pass (the last short): 2.5 passes, reshuffled each pass
    assert isinstance(result.frame, pd.DataFrame)


@pytest.mark.parametrize("kwargs, message", [
    ({"min_lr": 1.0, "max_lr": 0.1}, "min_lr=1.0 must be below max_lr=0.1"),
    ({"min_lr": 1e-3, "max_lr": 1e-3}, "min_lr=0.001 must be below max_lr=0.001"),
    ({"min_lr": 0.0}, "min_lr must be a positive, finite learning rate, got 0.0"),
    ({"min_lr": -1e-3}, "min_lr must be a positive, finite learning rate, got -0.001"),
    ({"max_lr": math.inf}, "max_lr must be a positive, finite learning rate, got inf"),
    ({"max_lr": "big"}, "max_lr must be a number, got 'big'"),
    ({"num_steps": 1}, "num_steps must be an integer of at least 2, got 1"),
    ({"num_steps": 10.0}, "num_steps must be an integer of at least 2, got 10.0"),
    ({"smoothing": 1.0}, "smoothing must be in [0, 1), got 1.0"),
    ({"smoothing": -0.1}, "smoothing must be in [0, 1), got -0.1"),
    ({"divergence": 1.0}, "divergence must be greater than 1, got 1.0"),
    ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
    ({"optimizer": "nope"}, "optimizer='nope' is not a Keras optimizer"),
    ({"optimizer": 3}, "optimizer must be a keras.optimizers.Optimizer"),
    ({"selector": "shuffle"}, "takes no selector"),
])
def test_bad_arguments_raise_naming_the_value(data, kwargs, message):
    x, y = data
    model = make_model()
    before = variables_of(model)
    with pytest.raises(ValueError) as err:
        loop.lr_range_test(model, x, y, **{"loss": LOSS, **kwargs})
    assert message in str(err.value)
    assert same(before, variables_of(model)) and not model.compiled


def test_suggest_skips_the_noisy_start_when_asked():
    lr = np.geomspace(1e-4, 1.0, 10)
    smoothed = np.array([2.0, 1.0, 0.99, 0.9, 0.7, 0.6, 0.5, 0.45, 0.4, 0.8])  # a noisy drop at step 1
    assert suggest(lr, smoothed)[0] == lr[0] or suggest(lr, smoothed)[0] == lr[1]
    assert suggest(lr, smoothed, skip_start=2) == (lr[4], lr[8])
    assert suggest(lr, smoothed, skip_start=9)[0] in lr[:9]  # a skip past the minimum is dropped
