"""Learning-rate schedules: values at chosen steps, warm-up, the horizon, serialization, step budgets, and a
schedule through ``Loop.fit`` including a checkpoint resume."""

import math
import os
import signal

import keras
import numpy as np
import pytest

from loop import schedules
from loop.schedules import WarmupDecay, make_schedule, step_budget


def test_cosine_and_linear_values_at_chosen_steps():
    cosine = WarmupDecay(0.1, horizon=10, shape="cosine")
    # Step t of 10: 0.1 * (1 + cos(pi * t / 10)) / 2.
    expected = {0: 0.1, 5: 0.05, 9: 0.1 * (1 + math.cos(math.pi * 0.9)) / 2, 10: 0.0, 50: 0.0}
    for step, value in expected.items():
        assert float(cosine(step)) == pytest.approx(value, abs=1e-7)
        assert cosine.values([step])[0] == pytest.approx(value, abs=1e-12)
    linear = WarmupDecay(0.2, horizon=4, shape="linear")
    np.testing.assert_allclose([float(linear(t)) for t in range(6)], [0.2, 0.15, 0.1, 0.05, 0.0, 0.0], atol=1e-7)


def test_warmup_ramps_linearly_then_decays_over_the_rest_of_the_horizon():
    sched = WarmupDecay(1.0, horizon=12, shape="linear", warmup=4)
    values = [float(sched(t)) for t in range(14)]
    np.testing.assert_allclose(values[:4], [0.25, 0.5, 0.75, 1.0], atol=1e-7)  # no step trains at rate 0
    np.testing.assert_allclose(values[4:12], 1.0 - np.arange(8) / 8, atol=1e-7)
    assert values[12] == values[13] == 0.0
    constant = WarmupDecay(0.5, horizon=10, shape="constant", warmup=2)
    np.testing.assert_allclose([float(constant(t)) for t in (0, 1, 2, 9, 100)], [0.25, 0.5, 0.5, 0.5, 0.5],
                               atol=1e-7)


def test_after_the_horizon_the_rate_stays_at_its_floor():
    sched = WarmupDecay(0.1, horizon=5, shape="cosine", alpha=0.1)
    assert sched.final == pytest.approx(0.01)
    np.testing.assert_allclose([float(sched(t)) for t in (5, 6, 1000)], [0.01] * 3, rtol=1e-6)
    np.testing.assert_allclose(sched.values(8), [float(sched(t)) for t in range(8)], rtol=1e-6)


def test_make_schedule_counts_fractions_in_steps_and_keeps_a_plain_rate_for_constant():
    assert make_schedule(0.01, "constant", 100) == 0.01
    sched = make_schedule(0.01, "cosine", 200, horizon=0.5, warmup=0.1)
    assert (sched.horizon, sched.warmup, sched.shape) == (100, 10, "cosine")
    warm_constant = make_schedule(0.01, "constant", 200, warmup=0.05)
    assert isinstance(warm_constant, WarmupDecay) and warm_constant.warmup == 10
    tiny = make_schedule(0.01, "linear", 1, warmup=0.5)
    assert (tiny.horizon, tiny.warmup) == (1, 0)


@pytest.mark.parametrize("kwargs,match", [
    (dict(shape="step"), "'step' is not a schedule shape"),
    (dict(horizon=0.0), "horizon must be a number in \\(0, 1\\]"),
    (dict(horizon=1.5), "horizon must be"),
    (dict(warmup=1.0), "warmup must be a fraction of the horizon below 1"),
    (dict(budget_steps=0), "budget_steps must be a positive integer"),
])
def test_make_schedule_rejects_bad_arguments(kwargs, match):
    args = dict(learning_rate=0.1, shape="cosine", budget_steps=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        make_schedule(args.pop("learning_rate"), args.pop("shape"), args.pop("budget_steps"), **args)


def test_warmup_decay_rejects_a_warmup_as_long_as_the_horizon():
    with pytest.raises(ValueError, match="warmup=5 steps must be fewer than horizon=5"):
        WarmupDecay(0.1, horizon=5, warmup=5)
    with pytest.raises(ValueError, match="learning_rate must be a positive number"):
        WarmupDecay(0.0, horizon=5)


def test_schedule_round_trips_through_keras_serialization():
    sched = WarmupDecay(0.03, horizon=40, shape="linear", warmup=3, alpha=0.05)
    config = keras.optimizers.schedules.serialize(sched)
    back = keras.optimizers.schedules.deserialize(config)
    assert isinstance(back, WarmupDecay) and back.get_config() == sched.get_config()
    assert WarmupDecay.from_config(sched.get_config()).get_config() == sched.get_config()
    optimizer = keras.optimizers.Adam(learning_rate=sched)
    rebuilt = keras.optimizers.Adam.from_config(optimizer.get_config())
    assert rebuilt.get_config()["learning_rate"]["config"] == sched.get_config()
    assert schedules.describe_schedule(sched)["shape"] == "linear"
    assert schedules.describe_schedule(0.5) == {"shape": "constant", "learning_rate": 0.5}


def test_step_budget_counts_each_method_in_its_own_steps():
    from loop.selectors import DyBAT, InfoBatch, RandomDrop, RhoLoss, SelectiveBackprop, Shuffle

    assert step_budget(Shuffle(), 10, 1000, 32) == (10, 320)
    # Accumulating filters: one plain priming epoch, then N * rate / b steps per epoch, over more loop epochs.
    epochs, steps = step_budget(SelectiveBackprop(beta=3.0), 10, 1000, 32)
    assert epochs == 1 + math.ceil(9 * 32 * 32 / 250 - 1e-9)
    assert steps == 32 + math.floor((epochs - 1) * 250 / 32)
    assert 320 <= steps <= 320 + 8  # about the baseline's steps, as epochs_for_budget intends
    assert step_budget(RandomDrop(keep=0.5), 4, 100, 10) == (7, 10 + 30)
    # InfoBatch prunes in epochs 1 .. delta * E - 1: half the samples assumed well-learned, keep_ratio of them kept.
    assert step_budget(InfoBatch(prune_ratio=0.5, delta=0.5), 4, 100, 10) == (4, 10 + 8 + 10 + 10)
    dybat = DyBAT(delta=0.5)
    epochs, steps = step_budget(dybat, 3, 100, 10)
    assert steps == 10 + (epochs - 1) * 5 and steps >= 30
    rho = RhoLoss(presample=4.0)
    epochs, steps = step_budget(rho, 2, 200, 10)  # 100 non-holdout rows in candidate batches of 40: 3 steps
    assert steps == epochs * 3 and steps >= 40


def test_a_run_that_outlives_its_horizon_trains_no_further_at_the_default_floor():
    from helpers import make_data, make_loop

    x, y = make_data(n=64, d=6)
    sched = WarmupDecay(0.05, horizon=8, shape="linear")  # 2 epochs of 4 steps
    loop = make_loop(optimizer=keras.optimizers.Adam(learning_rate=sched), steps_per_execution=2)
    loop.fit(x, y, epochs=2, verbose=0)
    weights = [w.copy() for w in loop.model.get_weights()]
    loop.fit(x, y, epochs=1, verbose=0)
    assert int(loop.optimizer.iterations.numpy()) == 12
    for before, after in zip(weights, loop.model.get_weights()):
        np.testing.assert_allclose(before, after, atol=1e-7)


# ------------------------------------------------------------------------------------------- resume
def _schedule_loop():
    from helpers import make_loop, make_model

    sched = WarmupDecay(0.05, horizon=20, shape="cosine", warmup=3)
    return make_loop(model=make_model(d=4, hidden=8), optimizer=keras.optimizers.Adam(learning_rate=sched),
                     batch_size=8, steps_per_execution=1, deterministic=True, seed=2)


def test_a_schedule_continues_where_it_stopped_after_a_checkpoint_resume(tmp_path):
    """Interrupted mid-epoch (SIGTERM saves at a chunk boundary), resumed in a fresh loop: same rate and weights."""
    from helpers import make_data

    x, y = make_data(n=48, d=4)
    reference = _schedule_loop()
    reference.fit(x, y, epochs=3, verbose=0)

    class Send(keras.callbacks.Callback):
        epoch = -1

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == 1 and batch == 2:
                os.kill(os.getpid(), signal.SIGTERM)

    stopped = _schedule_loop()
    with pytest.raises(SystemExit):
        stopped.fit(x, y, epochs=3, verbose=0, checkpoint_dir=tmp_path, callbacks=[Send()])
    assert int(stopped.optimizer.iterations.numpy()) == 9  # 6 steps of epoch 0 and 3 of epoch 1
    resumed = _schedule_loop()
    resumed.fit(x, y, epochs=3, verbose=0, checkpoint_dir=tmp_path)
    assert int(resumed.optimizer.iterations.numpy()) == int(reference.optimizer.iterations.numpy()) == 18
    np.testing.assert_allclose(float(resumed.optimizer.learning_rate), float(reference.optimizer.learning_rate),
                               rtol=1e-6)
    assert float(resumed.optimizer.learning_rate) < 0.05 * 0.1  # near the end of the cosine, not restarted
    for got, want in zip(resumed.model.get_weights(), reference.model.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_the_benchmarks_shape_list_is_the_schedules_own():
    from loop.bench import suites, workloads

    assert workloads.SCHEDULE_SHAPES == schedules.SHAPES
    assert suites.SCHEDULE_SHAPES is workloads.SCHEDULE_SHAPES  # re-exported, not a second list


def test_scaled_rate_multiplies_any_rate_by_its_factor_and_round_trips():
    import keras
    import tensorflow as tf

    from loop.schedules import ScaledRate, WarmupDecay

    scale = tf.Variable(1.0)
    rate = ScaledRate(WarmupDecay(0.1, 10, shape="linear"), scale)
    assert float(rate(0)) == pytest.approx(0.1)
    scale.assign(2.0)
    assert float(rate(5)) == pytest.approx(0.1)  # linear decay to half at step 5, times 2
    assert float(ScaledRate(0.01, scale)(3)) == pytest.approx(0.02)
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(rate))
    assert isinstance(again, ScaledRate) and float(again(5)) == pytest.approx(0.05)  # a fresh factor of 1
    with pytest.raises(ValueError, match="scale must be a tf.Variable"):
        ScaledRate(0.1, 2.0)
