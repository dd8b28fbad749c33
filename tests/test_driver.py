"""loop.driver: the timer, selector errors, callback dispatch, and what each phase of an epoch is charged to."""

import time

import keras
import numpy as np
import pytest

from helpers import make_data, make_loop
from loop.driver import FitOptions, Timer, callback_list, selector_error


def test_timer_adds_a_block_to_each_named_phase():
    timer = Timer({"eval": 1.0})
    with timer.measure("train", "selection"):
        time.sleep(0.01)
    with pytest.raises(KeyError):
        with timer.measure("eval"):
            raise KeyError("still timed")
    assert timer.seconds["train"] == timer.seconds["selection"] >= 0.01 and timer.seconds["eval"] > 1.0
    assert set(timer.row()) == {"train_time_s", "selection_time_s", "setup_time_s", "eval_time_s"}


def test_selector_error_keeps_the_exception_and_adds_a_note():
    err = KeyError("k")
    assert selector_error(err, "sel", 4, "on_batch_end") is err
    assert err.__notes__ == ["raised by selector 'sel' (on_batch_end) at epoch 4"]


class BatchEnd(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        pass


def test_batch_hooks_are_dispatched_only_when_overridden():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    options = FitOptions(epochs=1, target={}, verbose=0)
    assert callback_list([keras.callbacks.History()], model, options)[1] is False
    assert callback_list([BatchEnd()], model, options)[1] is True


def test_slow_selection_is_charged_to_selection_and_training_not_evaluation():
    x, y = make_data(n=64)

    def slow(state):
        time.sleep(0.2)
        return [state.rng.permutation(state.num_samples)]

    hist = make_loop(slow).fit((x, y), epochs=2, validation_data=(x, y), verbose=0)
    frame = hist.frame
    assert frame["selection_time_s"].iloc[-1] >= 0.4
    assert frame["train_time_s"].iloc[-1] >= frame["selection_time_s"].iloc[-1]
    # The second evaluation (the first one also traces the evaluation step) takes far less than the 0.2 s sleep.
    assert np.diff(frame["eval_time_s"].to_numpy())[0] < 0.15


def test_on_batch_end_errors_name_the_hook():
    class Bad:
        def __call__(self, state):
            return [np.arange(8)]

        def on_batch_end(self, indices, losses):
            raise ZeroDivisionError("hook")

    x, y = make_data(n=16)
    with pytest.raises(ZeroDivisionError) as err:
        make_loop(Bad()).fit((x, y), epochs=1, verbose=0)
    assert "(on_batch_end) at epoch 0" in err.value.__notes__[0]
