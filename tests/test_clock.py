"""The training clock: ``fit(eval_every_seconds=...)``'s evaluation grid, ``time_budget_s``, ``ClockSchedule`` and
``TrainClock``, a resumed fit keeping the grid, and evaluation never changing training.

Most cases replace the timer's clock with a fake one (each timed block lasts exactly one second), so the chunk
boundaries fall at known training seconds and the grid is deterministic.
"""

import itertools
import math
import os
import signal

import keras
import numpy as np
import pytest

from helpers import make_data, make_loop, make_model
from loop import schedules, validation
from loop.driver import EvalGrid, Timer
from loop.schedules import ClockSchedule, TrainClock, WarmupDecay
from loop.selectors import SelectiveBackprop

TINY = 2.0 ** -20  # a period every chunk boundary crosses: a row at every boundary


@pytest.fixture
def fake_clock(monkeypatch):
    """Each ``Timer.measure`` block lasts exactly 1 s: the training clock counts timed blocks."""
    ticks = itertools.count()
    monkeypatch.setattr(Timer, "now", staticmethod(lambda: float(next(ticks))))


def _fit(period=None, epochs=3, n=96, loop=None, **kwargs):
    x, y = make_data(n=n)
    loop = loop or make_loop(steps_per_execution=2)  # 6 batches of 16: 3 chunks an epoch
    return loop.fit((x, y), epochs=epochs, validation_data=(x[:32], y[:32]), verbose=0,
                    eval_every_seconds=period, **kwargs)


def _grid(history):
    """``[(train_time_s, k or None, step)]`` of the rows."""
    return [(r["train_time_s"], None if math.isnan(r["eval_grid_k"]) else r["eval_grid_k"], r["step"])
            for r in history.rows]


def _expected(boundaries, period, budget=None):
    """The grid rule applied to the chunk boundaries ``[(train_time_s, step)]``: a row at the first boundary at
    or after each ``k * period`` (once, for the latest k), the fit stopping at the first boundary past ``budget``,
    and a final, off-grid row unless the last boundary has one."""
    rows, next_k = [], 1
    for t, step in boundaries:
        if t >= next_k * period:
            k = math.floor(t / period)
            rows.append((t, k, step))
            next_k = k + 1
        if budget is not None and t >= budget:
            break
    if not rows or rows[-1][0] != t:
        rows.append((t, None, step))
    return rows


def _boundaries(**kwargs):
    """Every chunk boundary's ``(train_time_s, step)``, from a fit whose grid has a point in every chunk."""
    return [(t, step) for t, _, step in _grid(_fit(TINY, **kwargs))]


def test_the_grid_evaluates_at_the_first_boundary_past_each_point(fake_clock):
    boundaries = _boundaries()
    assert len(boundaries) == 9 and boundaries[0][0] == 3.0  # feeder start, plan, first chunk: 3 timed blocks
    history = _fit(2.5)
    assert _grid(history) == _expected(boundaries, 2.5)
    assert 1 < len(history.rows) < len(boundaries)  # some boundaries cross no grid point: no evaluation there
    frame = history.frame
    on_grid = frame["eval_grid_k"].notna()
    overshoot = frame.loc[on_grid, "eval_overshoot_s"]
    np.testing.assert_array_equal(overshoot, frame.loc[on_grid, "train_time_s"] - 2.5 * frame.loc[on_grid,
                                                                                                   "eval_grid_k"])
    assert (overshoot >= 0).all() and (overshoot < 1.0).all()  # within one chunk of its grid point
    assert "val_accuracy" in frame and frame["train_time_s"].is_monotonic_increasing


def test_a_chunk_crossing_several_points_evaluates_once_for_the_latest(fake_clock):
    boundaries = _boundaries()
    history = _fit(0.375)
    assert _grid(history) == _expected(boundaries, 0.375)
    ks = [k for _, k, _ in _grid(history)]
    assert len(ks) == len(boundaries) and ks[0] == 8  # 3 s crossed 8 points: one evaluation, k = 8
    assert all(b - a >= 2 for a, b in zip(ks, ks[1:]))  # every 1 s chunk crosses 2 or 3 points
    assert (history.frame["eval_overshoot_s"].between(0, 0.375, inclusive="left")).all()


def test_a_huge_period_evaluates_once_at_the_end_and_callbacks_still_see_every_epoch():
    ends = []

    class Ends(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            ends.append((epoch, dict(logs)))

    history = _fit(1e9, callbacks=[Ends()])
    assert len(history.rows) == 1 and history.rows[0]["epoch"] == 3.0 and history.rows[0]["step"] == 18
    assert math.isnan(history.rows[0]["eval_grid_k"]) and math.isnan(history.rows[0]["eval_overshoot_s"])
    assert [e for e, _ in ends] == [0, 1, 2]
    assert "val_accuracy" not in ends[0][1] and ends[-1][1]["val_accuracy"] == history.rows[0]["val_accuracy"]


def test_fits_without_the_option_keep_their_columns():
    row = _fit(None, epochs=1).rows[0]
    assert "eval_grid_k" not in row and "eval_overshoot_s" not in row


def test_eval_every_seconds_and_eval_every_exclude_each_other():
    with pytest.raises(ValueError, match=r"pass eval_every=4 \(optimizer steps\) or eval_every_seconds=2.0"):
        _fit(2.0, eval_every=4)


@pytest.mark.parametrize("name", ["eval_every_seconds", "time_budget_s"])
@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), "5", True])
def test_bad_seconds_are_refused(name, value):
    with pytest.raises(ValueError, match=f"{name} must be a positive number of training seconds"):
        make_loop().fit(make_data(n=32), epochs=1, verbose=0, **{name: value})


def test_bad_train_clock_and_multi_worker_are_refused():
    with pytest.raises(ValueError, match="train_clock must be a loop.schedules.TrainClock"):
        make_loop().fit(make_data(n=32), epochs=1, verbose=0, train_clock=0.0)
    common = dict(epochs=1, eval_every=None, verbose=0, target=None, stop_at_target=False, extra=None,
                  metric_names=[], validated=False, loss_name="mse", selector=None, filter_mode=None)
    with pytest.raises(ValueError, match="eval_every_seconds, time_budget_s follow this worker's measured clock"):
        validation.fit_options(**common, eval_every_seconds=1.0, time_budget_s=5.0, multi_worker=True)
    settings, _ = validation.fit_options(**common, eval_every_seconds=1, time_budget_s=np.float32(5))
    assert settings["eval_every_seconds"] == 1.0 and type(settings["time_budget_s"]) is float


def test_an_accumulating_filter_takes_eval_every_seconds():
    x, y = make_data(n=96)
    history = make_loop(SelectiveBackprop(beta=1.0)).fit((x, y), epochs=2, verbose=0, eval_every_seconds=TINY)
    assert len(history.rows) >= 2 and history.frame["eval_grid_k"].notna().all()


def test_the_time_budget_stops_at_the_first_boundary_past_it(fake_clock):
    boundaries = _boundaries(epochs=4)
    history = _fit(2.5, epochs=4, time_budget_s=9.5)
    assert _grid(history) == _expected(boundaries, 2.5, budget=9.5)
    last = history.rows[-1]
    assert last["train_time_s"] == min(t for t, _ in boundaries if t >= 9.5)
    # Without a grid: the epoch's evaluations, and a final one where the budget stopped the fit mid-epoch.
    plain = _fit(None, epochs=4, time_budget_s=8.5)
    assert [(r["epoch"], r["train_time_s"]) for r in plain.rows] == [(1.0, 5.0), (round(5 / 3, 6), 9.0)]


def test_stop_at_target_stops_at_a_grid_evaluation(fake_clock):
    x, y = make_data(n=320)
    loop = make_loop(batch_size=32, optimizer=keras.optimizers.Adam(0.05), steps_per_execution=2)
    history = loop.fit((x, y), epochs=30, validation_data=(x, y), target={"val_accuracy": 0.8},
                       stop_at_target=True, eval_every_seconds=2.5, verbose=0)
    frame = history.frame
    assert frame["val_accuracy"].iloc[-1] >= 0.8 and (frame["val_accuracy"].iloc[:-1] < 0.8).all()
    assert frame["eval_grid_k"].notna().all()  # the target was met at a grid evaluation: no extra final row
    assert history.time_to_target == frame["train_time_s"].iloc[-1] and frame["epoch"].iloc[-1] < 30


# ------------------------------------------------------------------------------------------- schedules
@pytest.mark.parametrize("shape", ["constant", "cosine", "linear"])
def test_clock_schedule_is_the_step_schedule_at_the_same_fraction(shape):
    clock = TrainClock()
    by_seconds = ClockSchedule(clock, 0.1, 8.0, shape=shape, alpha=0.1)
    by_steps = WarmupDecay(0.1, horizon=80, shape=shape, alpha=0.1)
    seconds = np.array([0.0, 1.0, 2.5, 4.0, 7.9, 8.0, 20.0])
    for t, step in zip(seconds, (10 * seconds).round().astype(int)):
        clock.seconds.assign(t)
        assert float(by_seconds(0)) == pytest.approx(float(by_steps(step)), abs=1e-7)
        assert float(by_seconds(123)) == float(by_seconds(0))  # the optimizer step is ignored
    np.testing.assert_allclose(by_seconds.values(seconds), by_steps.values(10 * seconds), atol=1e-12)
    final = 0.1 if shape == "constant" else 0.01
    assert by_seconds.values([8.0, 1e6]).tolist() == pytest.approx([final, final])


def test_clock_schedule_warms_up_from_zero_then_decays_over_the_rest():
    clock = TrainClock()
    sched = ClockSchedule(clock, 1.0, 10.0, shape="linear", warmup_s=2.0)
    np.testing.assert_allclose(sched.values([0.0, 0.5, 1.0, 2.0, 6.0, 10.0]), [0.0, 0.25, 0.5, 1.0, 0.5, 0.0])
    # The step schedule's ramp is (t + 1) / W: the same line, one step earlier.
    step = WarmupDecay(1.0, horizon=100, shape="linear", warmup=20)
    np.testing.assert_allclose(sched.values([0.5, 1.0, 1.5]), step.values([4, 9, 14]), atol=1e-12)
    clock.seconds.assign(1.0)
    assert float(sched(0)) == pytest.approx(0.5)


def test_clock_schedule_config_and_errors():
    sched = ClockSchedule(TrainClock(), 0.03, 40.0, shape="cosine", warmup_s=3.0, alpha=0.05)
    config = keras.optimizers.schedules.serialize(sched)
    back = keras.optimizers.schedules.deserialize(config)
    assert isinstance(back, ClockSchedule) and back.get_config() == sched.get_config()
    assert back.clock is not sched.clock  # a config holds no clock: a fresh one, to pass to fit
    assert schedules.describe_schedule(sched) == {"class_name": "ClockSchedule", "peak": 0.03, "horizon_s": 40.0,
                                                  "shape": "cosine", "warmup_s": 3.0, "alpha": 0.05}
    assert schedules.clock_of(keras.optimizers.Adam(sched)) is sched.clock
    assert schedules.clock_of(keras.optimizers.Adam(WarmupDecay(0.1, 10))) is None
    for kwargs, match in [(dict(horizon_s=0.0), "horizon_s must be a positive number"),
                          (dict(warmup_s=40.0), "warmup_s=40.0 must be shorter than horizon_s=40.0"),
                          (dict(shape="step"), "'step' is not a schedule shape"),
                          (dict(alpha=2.0), "alpha must be a number in"),
                          (dict(peak=-1.0), "peak must be a positive number")]:
        args = {"peak": 0.1, "horizon_s": 40.0, **kwargs}
        with pytest.raises(ValueError, match=match):
            ClockSchedule(TrainClock(), args.pop("peak"), args.pop("horizon_s"), **args)
    with pytest.raises(ValueError, match="clock must be a loop.schedules.TrainClock"):
        ClockSchedule(None, 0.1, 1.0)


class _Rates(keras.callbacks.Callback):
    """The optimizer's rate and the model's weights after every chunk."""

    def __init__(self):
        super().__init__()
        self.rates, self.weights = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))
        self.weights.append([w.copy() for w in self.model.get_weights()])


@pytest.mark.parametrize("pass_clock", [True, False])
def test_the_driver_sets_the_clock_before_every_chunk(fake_clock, pass_clock):
    """The rate of each chunk is the schedule at the training second the chunk began; at 0 it trains no more."""
    clock = TrainClock()
    sched = ClockSchedule(clock, 0.05, 8.0, shape="linear")
    rates = _Rates()
    loop = make_loop(optimizer=keras.optimizers.Adam(sched), steps_per_execution=2)
    history = _fit(TINY, loop=loop, callbacks=[rates], train_clock=clock if pass_clock else None)
    starts = [r["train_time_s"] - 1.0 for r in history.rows]  # each chunk is one timed block of 1 s
    np.testing.assert_allclose(rates.rates, sched.values(starts), rtol=1e-6)
    assert rates.rates[0] > rates.rates[1] > rates.rates[-1] == 0.0
    assert float(clock.seconds.numpy()) == starts[-1]
    zero = rates.rates.index(0.0)
    for before, after in zip(rates.weights[zero - 1], rates.weights[-1]):  # no chunk at rate 0 changed a weight
        np.testing.assert_array_equal(before, after)
    assert not all(np.array_equal(a, b) for a, b in zip(rates.weights[0], rates.weights[zero - 1]))


# ---------------------------------------------------------------------------------------------- resume
def _interrupted_then_resumed(period, directory):
    """A fit SIGTERMed after the third chunk of epoch 1 (its checkpoint taken there), then resumed to the end."""

    class Send(keras.callbacks.Callback):
        epoch = -1

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == 1 and batch == 3:
                os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(SystemExit):
        _fit(period, loop=make_loop(steps_per_execution=2), checkpoint_dir=directory, callbacks=[Send()])
    return _fit(period, loop=make_loop(steps_per_execution=2), checkpoint_dir=directory)


def test_a_resumed_fit_keeps_the_grid(fake_clock, tmp_path):
    """The next grid point comes from the restored clock: the rows are the grid rule over the boundaries of the
    interrupted and the resumed fit together (the resumed fit's first chunk also pays for restarting its epoch)."""
    every = _interrupted_then_resumed(TINY, tmp_path / "every")
    boundaries = [(t, step) for t, _, step in _grid(every)]
    resumed = _interrupted_then_resumed(2.5, tmp_path / "grid")
    assert _grid(resumed) == _expected(boundaries, 2.5)
    assert [s for _, _, s in _grid(every)][:5] == [2, 4, 6, 8, 10]  # rows of the interrupted fit were kept
    assert resumed.rows[-1]["step"] == 18


# ------------------------------------------------------------------------------------------ determinism
def _weights_after(selector, callbacks=None, **kwargs):
    x, y = make_data(n=200)
    loop = make_loop(selector, model=make_model(dropout=0.3), steps_per_execution=4, seed=3)
    history = loop.fit((x, y), epochs=4, validation_data=(x[:50], y[:50]), verbose=0, callbacks=callbacks,
                       **kwargs)
    return loop.model.get_weights(), int(loop.tables.steps.numpy()), len(history.rows)


def _same(a, b):
    return all(np.array_equal(p, q) for p, q in zip(a, b))


@pytest.mark.parametrize("selector,cadences", [
    (lambda: SelectiveBackprop(beta=1.0, accumulate=False), (dict(eval_every=3), dict(eval_every=7))),
    (lambda: SelectiveBackprop(beta=1.0), (dict(eval_every_seconds=TINY), dict(eval_every_seconds=1e9))),
], ids=["eval_every", "eval_every_seconds"])
def test_evaluating_does_not_change_training(selector, cadences):
    """Dropout and a learning in-step filter: however often a fit evaluates, it trains bit-identical weights.

    (An accumulating filter refuses ``eval_every``, so the step cadence runs SelectiveBackprop's in-batch variant;
    ``eval_every`` also changes where the chunks end.)
    """
    (w1, steps1, rows1), (w2, steps2, rows2) = (_weights_after(selector(), **c) for c in cadences)
    assert rows1 > rows2 and steps1 == steps2 and _same(w1, w2)


def test_the_determinism_check_would_see_an_evaluation_that_draws_randomness():
    """The control: an evaluation hook that calls the model in training mode draws Dropout's seed generator."""
    x, _ = make_data(n=4)

    class Draws(keras.callbacks.Callback):
        def on_test_begin(self, logs=None):
            self.model(x, training=True)

    base, _, _ = _weights_after(SelectiveBackprop(beta=1.0), eval_every_seconds=1e9)
    drawn, _, _ = _weights_after(SelectiveBackprop(beta=1.0), callbacks=[Draws()], eval_every_seconds=TINY)
    assert not _same(base, drawn)


def test_eval_grid_counts_points_exactly():
    grid = EvalGrid(0.1, 0.3)  # 3 * 0.1 > 0.3 in floating point: 0.3 s has crossed 2 points, not 3
    assert grid.next == 3 and grid.due(0.3) is None and grid.due(0.30000000000000004) == 3
    assert grid.due(0.35) is None and grid.due(0.95) == 9 and grid.next == 10
    assert EvalGrid(2.5).next == 1 and EvalGrid(2.5, 7.5).next == 4
