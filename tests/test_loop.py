"""Behaviour of loop.Loop: what is trained, what is timed, what is refused."""

import csv

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from loop import Loop
from loop.selectors import Freeze, Selector, Shuffle
from helpers import make_data, make_loop, make_model


def weights_of(model):
    return [w.copy() for w in model.get_weights()]


class Recorder(Selector):
    """Plays back a fixed list of plans and records what on_batch_end saw."""

    def __init__(self, plans):
        self.plans = plans
        self.seen = []

    def __call__(self, state):
        return self.plans[state.epoch % len(self.plans)]

    def on_batch_end(self, indices, losses):
        self.seen.append((np.array(indices), np.array(losses)))


def test_trains_exactly_the_plan():
    x, y = make_data()
    rng = np.random.default_rng(1)
    plan = [rng.choice(len(x), size=s, replace=False) for s in (5, 17, 1, 33, 8)]
    selector = Recorder([plan])
    loop = make_loop(selector, steps_per_execution=2)
    loop.fit((x, y), epochs=1, verbose=0)
    counts = np.bincount(np.concatenate(plan), minlength=len(x))
    np.testing.assert_array_equal(loop.trained_counts, counts)
    # The step that last saw each sample is the position of its batch in the plan.
    expected_step = np.full(len(x), -1)
    for step, batch in enumerate(plan):
        expected_step[batch] = step
    np.testing.assert_array_equal(loop.loss_step, expected_step)
    assert np.isnan(loop.losses[counts == 0]).all() and np.isfinite(loop.losses[counts > 0]).all()
    assert [list(i) for i, _ in loop.selector.seen] == [list(b) for b in plan]
    for step, (idx, losses) in enumerate(loop.selector.seen):
        last = loop.loss_step[idx] == step  # the table keeps the loss of each sample's last batch
        np.testing.assert_allclose(losses[last], loop.losses[idx][last])
    row = loop.history.rows[-1]
    assert row["step"] == len(plan) and row["samples_seen"] == counts.sum()


def test_repeated_indices_and_weights_scale_the_loss():
    x, y = make_data()
    # Zero weights on every sample with SGD: nothing moves, nothing counts as trained.
    zero = [(np.arange(0, 16), np.zeros(16)), (np.arange(16, 32), np.zeros(16))]
    loop = make_loop(lambda state: zero, optimizer=keras.optimizers.SGD(0.1))
    before = weights_of(loop.model)
    loop.fit((x, y), epochs=1, verbose=0)
    for a, b in zip(before, loop.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert loop.trained_counts.sum() == 0 and loop.history.rows[-1]["samples_backpropagated"] == 0
    # A weight of 2 on one copy equals two copies with weight 1 (objective sum(w*l)/n).
    idx = np.array([3, 7, 9, 11])
    m1, m2 = make_model(), make_model()
    Loop(m1, loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.SGD(0.1), batch_size=4,
         selector=lambda s: [(idx, np.array([2.0, 1.0, 1.0, 0.0]))]).fit((x, y), epochs=1, verbose=0)
    Loop(m2, loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.SGD(0.1), batch_size=4,
         selector=lambda s: [(np.array([3, 3, 7, 9]), np.array([1.0, 1.0, 1.0, 1.0]))]).fit((x, y), epochs=1,
                                                                                            verbose=0)
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


BAD_PLANS = [
    ("non-integer", lambda n: [np.array([0.0, 1.5])], "integers"),
    ("out of range", lambda n: [np.array([0, 1]), np.array([2, n])], "outside"),
    ("negative", lambda n: [np.array([-1, 2])], "outside"),
    ("empty batch", lambda n: [np.array([0, 1]), np.array([], dtype=int)], "empty"),
    ("empty plan", lambda n: [], "empty plan"),
    ("nan weight", lambda n: [(np.array([0, 1]), np.array([1.0, np.nan]))], "finite"),
    ("negative weight", lambda n: [(np.array([0, 1]), np.array([1.0, -1.0]))], "non-negative"),
    ("short weights", lambda n: [(np.array([0, 1, 2]), np.array([1.0, 1.0]))], "2 weights for 3"),
    ("none", lambda n: None, "None"),
]


@pytest.mark.parametrize("name,make_plan,message", BAD_PLANS, ids=[p[0] for p in BAD_PLANS])
def test_bad_plan_raises_and_trains_nothing(name, make_plan, message):
    x, y = make_data()

    def bad_selector(state):
        return make_plan(state.num_samples)

    loop = make_loop(bad_selector)
    before = weights_of(loop.model)
    with pytest.raises(ValueError, match=message) as err:
        loop.fit((x, y), epochs=1, verbose=0)
    assert "bad_selector" in str(err.value)
    for a, b in zip(before, loop.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert loop.trained_counts.sum() == 0


def test_bad_plan_names_the_batch():
    x, y = make_data()
    loop = make_loop(lambda s: [np.arange(4), np.arange(4), np.array([1, 10_000])])
    with pytest.raises(ValueError, match=r"batch 2: indices \[10000\]"):
        loop.fit((x, y), epochs=1, verbose=0)


def test_selector_errors_keep_their_traceback():
    x, y = make_data()

    def broken(state):
        raise KeyError("no such thing")

    with pytest.raises(KeyError, match="no such thing") as err:
        make_loop(broken).fit((x, y), epochs=1, verbose=0)
    # The selector's own exception, with its own traceback, and a note naming the selector and the epoch.
    assert err.value.__notes__ == ["raised by selector broken (__call__) at epoch 0"]
    assert err.traceback[-1].name == "broken"
    with pytest.raises(ValueError, match="not callable"):
        make_loop(42)


@pytest.mark.parametrize("kwargs,message", [
    ({"epochs": -1}, "epochs must be a non-negative integer"),
    ({"epochs": 1.5}, "epochs must be a non-negative integer"),
    ({"epochs": 1, "target": {"val_f1": 0.5}}, "not tracked"),
    ({"epochs": 1, "target": {"accuracy": "high"}}, "not a number"),
    ({"epochs": 1, "stop_at_target": True}, "needs a target"),
])
def test_fit_argument_errors(kwargs, message):
    x, y = make_data()
    with pytest.raises(ValueError, match=message):
        make_loop().fit((x, y), verbose=0, **kwargs)


@pytest.mark.parametrize("mutate,message", [
    (lambda x, y: (x, y[:-1]), "same length"),
    (lambda x, y: (np.where(np.arange(len(x))[:, None] == 3, np.nan, x), y), r"NaN or Inf at sample\(s\) \[3\]"),
    (lambda x, y: (x, np.where(np.arange(len(y)) == 5, 7, y)), "outside"),
    (lambda x, y: (x, np.array(["a"] * len(y))), "integer class ids"),
    (lambda x, y: (x[:0], y[:0]), "empty"),
])
def test_data_errors(mutate, message):
    x, y = make_data()
    with pytest.raises(ValueError, match=message):
        make_loop().fit(mutate(x, y), epochs=1, verbose=0)


def test_validation_shape_and_batch_size_errors():
    x, y = make_data()
    with pytest.raises(ValueError, match="sample shape"):
        make_loop().fit((x, y), epochs=1, verbose=0, validation_data=(x[:, :3], y))
    # As in Keras, a batch size larger than the data trains one batch of all of it.
    loop = make_loop(batch_size=10_000)
    hist = loop.fit((x, y), epochs=2, verbose=0)
    assert hist.frame["step"].tolist() == [1, 2] and loop.trained_counts.tolist() == [2] * len(x)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        make_loop(batch_size=0)


def test_trace_count_constant_with_varying_batch_sizes():
    x, y = make_data()

    def varying(state):
        order = state.rng.permutation(state.num_samples)
        cuts = np.sort(state.rng.choice(np.arange(1, state.num_samples), size=9, replace=False))
        return np.split(order, cuts)

    loop = make_loop(varying, steps_per_execution=3)
    loop.fit((x, y), epochs=4, verbose=0)
    assert loop.trace_count == 1
    loop.fit((x, y), epochs=2, verbose=0)
    assert loop.trace_count == 1


class OrderRecorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(f"epoch_begin{epoch}")

    def on_train_batch_begin(self, batch, logs=None):
        self.calls.append(f"batch_begin{batch}")

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(f"batch_end{batch}")
        assert "loss" in logs and "accuracy" in logs

    def on_test_begin(self, logs=None):
        self.calls.append("test_begin")

    def on_test_end(self, logs=None):
        self.calls.append("test_end")

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(f"epoch_end{epoch}")
        assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(logs)

    def on_train_end(self, logs=None):
        self.calls.append("train_end")


def test_callbacks_fire_in_keras_order():
    x, y = make_data(n=64)
    rec = OrderRecorder()
    make_loop(Freeze(shuffle=False), steps_per_execution=2).fit(
        (x, y), epochs=2, validation_data=(x, y), callbacks=[rec], verbose=0)
    epoch = ["batch_begin0", "batch_end1", "batch_begin2", "batch_end3", "test_begin", "test_end"]
    assert rec.calls == (["train_begin", "epoch_begin0"] + epoch + ["epoch_end0", "epoch_begin1"] + epoch
                         + ["epoch_end1", "train_end"])


def test_keras_callbacks_work(tmp_path):
    x, y = make_data()
    path = tmp_path / "log.csv"
    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=0, min_delta=10.0)
    hist = make_loop().fit((x, y), epochs=10, validation_data=(x, y), verbose=0,
                           callbacks=[stopper, keras.callbacks.CSVLogger(str(path))])
    assert len(hist.rows) == 2  # min_delta is unreachable: stops after patience + 1 epochs
    rows = list(csv.DictReader(open(path)))
    assert len(rows) == 2 and {"epoch", "loss", "val_accuracy"} <= set(rows[0])

    xb = x.copy()
    big = Loop(make_model(), loss="sparse_categorical_crossentropy", batch_size=16,
               optimizer=keras.optimizers.SGD(1e30))
    with pytest.raises(FloatingPointError, match=r"epoch 0, step \d+"):
        big.fit((xb * 1e30, y), epochs=3, verbose=0, callbacks=[keras.callbacks.TerminateOnNaN()])


def test_terminate_on_nan_callback_sees_nan_loss():
    seen = []

    class Spy(keras.callbacks.TerminateOnNaN):
        def on_batch_end(self, batch, logs=None):
            seen.append(logs["loss"])
            super().on_batch_end(batch, logs)

    x, y = make_data()
    loop = make_loop()
    loop.fit((x, y), epochs=1, verbose=0, callbacks=[Spy()])
    assert seen and all(np.isfinite(seen))


def test_tensorboard_callback_writes(tmp_path):
    x, y = make_data()
    make_loop().fit((x, y), epochs=2, validation_data=(x, y), verbose=0,
                    callbacks=[keras.callbacks.TensorBoard(log_dir=str(tmp_path))])
    assert list(tmp_path.rglob("events.out.tfevents*"))


def test_determinism_same_seed_same_history_and_weights():
    x, y = make_data()

    def run(seed):
        loop = Loop(make_model(seed=seed, dropout=0.2), loss="sparse_categorical_crossentropy",
                    metrics=["accuracy"], batch_size=16, seed=seed, deterministic=True)
        hist = loop.fit((x, y), epochs=3, validation_data=(x, y), verbose=0)
        columns = [c for c in hist.frame.columns if not c.endswith("_time_s")]
        return hist.frame[columns], loop.model.get_weights()

    (f1, w1), (f2, w2), (f3, _) = run(0), run(0), run(1)
    pd.testing.assert_frame_equal(f1, f2)
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    assert not f1.equals(f3)


def test_same_seed_same_plans():
    x, y = make_data()
    seen = {0: [], 1: []}
    for k in (0, 1):
        def spy(state, k=k):
            plan = Shuffle()(state)
            seen[k].append(np.concatenate(plan))
            return plan
        make_loop(spy, seed=5).fit((x, y), epochs=2, verbose=0)
    for a, b in zip(*seen.values()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(seen[0][0], seen[0][1])


def test_regression_with_mae_target():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0]) + 10).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    loop = Loop(model, optimizer=keras.optimizers.Adam(0.1), loss="mse", metrics=["mae"], batch_size=32)
    hist = loop.fit((x, y), epochs=40, validation_data=(x, y), target={"val_mae": 3.0}, stop_at_target=True,
                    verbose=0)
    assert loop.task == "regression" and loop.num_classes is None
    assert hist.target == {"val_mae": (3.0, "min")}
    assert hist.epochs_to_target == len(hist.rows) and hist.frame["val_mae"].iloc[-1] <= 3.0
    assert (hist.frame["val_mae"].iloc[:-1] > 3.0).all()


def test_stop_at_target_and_eval_every():
    x, y = make_data(n=320)
    loop = make_loop(batch_size=32, optimizer=keras.optimizers.Adam(0.05))
    hist = loop.fit((x, y), epochs=30, validation_data=(x, y), target={"val_accuracy": 0.8},
                    stop_at_target=True, eval_every=4, verbose=0)
    frame = hist.frame
    assert list(frame["step"]) == list(range(4, 4 * len(frame) + 1, 4))
    assert frame["val_accuracy"].iloc[-1] >= 0.8 and (frame["val_accuracy"].iloc[:-1] < 0.8).all()
    assert hist.steps_to_target == frame["step"].iloc[-1]
    assert hist.epochs_to_target == pytest.approx(frame["step"].iloc[-1] / 10)
    # Time columns are cumulative and evaluation is not training time.
    assert frame["train_time_s"].is_monotonic_increasing and frame["eval_time_s"].is_monotonic_increasing
    assert (frame["selection_time_s"] <= frame["train_time_s"]).all()


def test_state_fields_and_score():
    x, y = make_data()
    captured = []

    def spy(state):
        captured.append(state)
        if state.epoch == 1:
            fresh = state.score(np.arange(10))
            assert fresh.shape == (10,) and np.isfinite(fresh).all()
            with pytest.raises(ValueError):
                state.losses[0] = 1.0
            with pytest.raises(AttributeError):
                state.epoch = 3
        return Shuffle()(state)

    loop = make_loop(spy)
    loop.fit((x, y), epochs=2, validation_data=(x, y), verbose=0)
    first, second = captured
    assert first.epoch == 0 and first.epochs == 2 and first.num_samples == len(x) and first.num_classes == 3
    assert np.isnan(first.losses).all() and (first.loss_step == -1).all() and first.logs == {}
    assert np.isfinite(second.losses).all() and second.step == 15 and "val_accuracy" in second.logs
    assert first.task == "classification" and first.batch_size == 16
    np.testing.assert_array_equal(first.labels, y)
    probs = loop.model(x[:10], training=False)
    expected = keras.losses.sparse_categorical_crossentropy(y[:10], probs).numpy()
    np.testing.assert_allclose(loop.score(np.arange(10)), expected, rtol=1e-5)


class HalfFilter(Selector):
    """An in-step filter that keeps the higher-loss half of each batch."""

    def __call__(self, state):
        return Freeze(shuffle=False)(state)

    def keep(self, batch):
        k = tf.shape(batch.losses)[0] // 2
        threshold = tf.sort(batch.losses, direction="DESCENDING")[k - 1]
        return tf.where(batch.losses >= threshold, 2.0, 0.0)


def test_in_step_filter_accounting():
    x, y = make_data(n=64)
    loop = make_loop(HalfFilter(), batch_size=16)
    hist = loop.fit((x, y), epochs=2, verbose=0)
    row = hist.rows[-1]
    assert row["samples_seen"] == 128 and row["samples_backpropagated"] == 64
    assert row["samples_forwarded"] == 128 + 64  # compact: the candidates, then the kept rows with gradient
    loop.score(np.arange(10))
    assert loop.tables.counts()["samples_forwarded"] == 128 + 64 + 10
    assert loop.trained_counts.sum() == 64 and loop.trace_count == 1
    # Every sample was forwarded, so every sample has a recorded loss.
    assert np.isfinite(loop.losses).all()


def test_jit_and_eager_switches_agree():
    x, y = make_data()
    finals = []
    for kwargs in ({}, {"jit_compile": True}, {"run_eagerly": True}):
        loop = Loop(make_model(), loss="sparse_categorical_crossentropy", batch_size=16,
                    optimizer=keras.optimizers.SGD(0.05), **kwargs)
        finals.append(loop.fit((x, y), epochs=2, verbose=0).rows[-1]["loss"])
    np.testing.assert_allclose(finals, finals[0], rtol=1e-4)


def test_progress_bar_verbose(capsys):
    x, y = make_data()
    make_loop().fit((x, y), epochs=1, verbose=1)
    assert "15/15" in capsys.readouterr().out
    make_loop().fit((x, y), epochs=1, verbose=0)
    assert capsys.readouterr().out == ""


def test_model_checkpoint_callback_saves_best(tmp_path):
    x, y = make_data()
    path = tmp_path / "best.keras"
    make_loop().fit((x, y), epochs=2, validation_data=(x, y), verbose=0,
                    callbacks=[keras.callbacks.ModelCheckpoint(str(path), monitor="val_accuracy",
                                                               save_best_only=True)])
    restored = keras.models.load_model(path)
    assert restored.output_shape == (None, 3)


def test_integer_targets_with_mse_are_regression():
    x, _ = make_data()
    y = np.arange(len(x)) % 7  # integer counts, not classes
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(1)])
    loop = Loop(model, loss="mse", metrics=["mae"], batch_size=16)
    loop.fit((x, y), epochs=1, verbose=0)
    assert loop.task == "regression" and loop.num_classes is None


class MaskHalfFilter(HalfFilter):
    filter_mode = "mask"


def test_mask_mode_filter_trains_like_compact_mode():
    x, y = make_data(n=64)
    weights = []
    for selector in (HalfFilter(), MaskHalfFilter()):
        loop = Loop(make_model(), loss="sparse_categorical_crossentropy", batch_size=16, selector=selector,
                    optimizer=keras.optimizers.SGD(0.1))
        row = loop.fit((x, y), epochs=2, verbose=0).rows[-1]
        assert row["samples_backpropagated"] == 64 and loop.trained_counts.sum() == 64
        weights.append(loop.model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="filter_mode='fast'"):
        bad = HalfFilter()
        bad.filter_mode = "fast"
        make_loop(bad)


# ------------------------------------------------------------------ the façade's contracts
def _comparable(frame):
    return frame[[c for c in frame.columns if not c.endswith("_time_s")]]


def test_a_selector_reused_across_loops_starts_fresh_each_time():
    """Documented in loop.protocol ("Reuse"): Loop clones a selector object; loop.selector is the copy that learns."""
    from loop.selectors import DyBAT

    x, y = make_data(n=96)
    shared = DyBAT(delta=0.5)
    first = make_loop(shared, deterministic=True)
    first.fit((x, y), epochs=3, verbose=0)
    assert first.selector is not shared and repr(first.selector) == repr(shared)
    assert shared.batches_ is None and first.selector.batches_ is not None  # the caller's object learned nothing
    second = make_loop(shared, deterministic=True)  # the same object again, e.g. for the next seed
    fresh = make_loop(DyBAT(delta=0.5), deterministic=True)
    frames = [_comparable(lp.fit((x, y), epochs=3, verbose=0).frame) for lp in (second, fresh)]
    pd.testing.assert_frame_equal(frames[0], frames[1])


def test_a_second_fit_on_the_same_loop_continues():
    x, y = make_data(n=64)
    loop = make_loop()
    loop.fit((x, y), epochs=2, verbose=0)
    selector = loop.selector
    hist = loop.fit((x, y), epochs=1, verbose=0)
    assert loop.selector is selector and hist.rows[-1]["step"] == 12  # 2 epochs of 4 steps, then 4 more
    assert loop.trace_count == 1  # the same data: nothing is rebuilt


def test_reassigning_the_selector_rebuilds_the_step():
    from loop.selectors import OrderedSGD

    x, y = make_data(n=64)
    loop = make_loop()
    loop.fit((x, y), epochs=1, verbose=0)
    assert loop.step.variant == "plain"
    loop.selector = OrderedSGD(q=4)
    loop.fit((x, y), epochs=1, verbose=0)
    assert loop.step.variant == "mask" and loop.history.rows[-1]["samples_backpropagated"] == 64 + 16


def test_a_compiled_model_keeps_its_compile_and_lends_its_settings():
    x, y = make_data(n=64)
    model = make_model()
    optimizer = keras.optimizers.SGD(0.05)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    config = model.get_compile_config()
    loop = Loop(model, batch_size=16)  # optimizer, loss and metrics come from the compile
    hist = loop.fit((x, y), epochs=1, verbose=0)
    assert loop.optimizer is optimizer and "accuracy" in hist.rows[-1]
    assert model.optimizer is optimizer and model.get_compile_config() == config
    with pytest.warns(UserWarning, match="leaves your compile alone"):
        other = Loop(model, optimizer="adam", batch_size=16)
    other.fit((x, y), epochs=1, verbose=0)
    assert model.optimizer is optimizer and model.get_compile_config() == config


def test_fit_sets_no_global_seed():
    x, y = make_data(n=64)
    loop = make_loop(seed=7)
    np.random.seed(123)
    expected = np.random.rand(2)[1]
    np.random.seed(123)
    np.random.rand()
    loop.fit((x, y), epochs=1, verbose=0)
    assert np.random.rand() == expected


def test_fit_and_evaluate_take_data_the_same_ways():
    x, y = make_data(n=64)
    histories = []
    for args in (((x, y),), (x, y)):
        loop = make_loop(deterministic=True)
        histories.append(_comparable(loop.fit(*args, epochs=1, verbose=0).frame))
        assert loop.evaluate(x, y) == loop.evaluate((x, y))
    pd.testing.assert_frame_equal(*histories)
    with pytest.raises(ValueError, match=r"validation_data: label \[5\] at sample 0"):
        make_loop().fit(x, y, epochs=1, verbose=0, validation_data=(x, np.r_[5, y[1:]]))
    with pytest.raises(ValueError, match=r"evaluation data: label \[5\] at sample 0"):
        loop.evaluate(x, np.r_[5, y[1:]])


def test_extra_evaluations_report_the_test_set_outside_the_fit():
    x, y = make_data(n=320)
    x_test, y_test = make_data(n=200, seed=7)
    seen_logs = []

    class Spy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen_logs.append(dict(logs))

    def run(extra):
        loop = make_loop(Shuffle(), model=make_model(seed=3), batch_size=32, optimizer=keras.optimizers.Adam(0.05))
        hist = loop.fit((x, y), epochs=8, validation_data=(x[:100], y[:100]), target={"val_accuracy": 0.85},
                        stop_at_target=True, verbose=0, extra_evaluations=extra, callbacks=[Spy()])
        return loop, hist

    plain_loop, plain = run(None)
    loop, hist = run({"test": (x_test, y_test)})
    frame = hist.frame
    assert {"test_loss", "test_accuracy"} <= set(frame.columns) and not {"test_loss"} & set(plain.frame.columns)
    # The test set changes nothing the fit reads: same evaluations, same stop, same validation metrics.
    assert list(frame["step"]) == list(plain.frame["step"]) and hist.steps_to_target == plain.steps_to_target
    np.testing.assert_allclose(frame["val_accuracy"], plain.frame["val_accuracy"], atol=1e-6)
    assert all(not any(k.startswith("test_") for k in logs) for logs in seen_logs)
    final = loop.evaluate(x_test, y_test)
    assert frame["test_accuracy"].iloc[-1] == pytest.approx(final["accuracy"], abs=1e-6)
    assert frame["test_loss"].iloc[-1] == pytest.approx(final["loss"], rel=1e-5)
    assert plain_loop.evaluate(x_test, y_test)["accuracy"] == pytest.approx(final["accuracy"], abs=1e-6)


def test_extra_evaluations_are_timed_as_evaluation():
    x, y = make_data(n=160)
    loop = make_loop(batch_size=32)
    inner = loop._evaluate

    def slow(data, prefix="val_"):
        if prefix == "test_":
            import time

            time.sleep(0.05)
        return inner(data, prefix=prefix)

    loop._evaluate = slow
    frame = loop.fit((x, y), epochs=3, verbose=0, extra_evaluations={"test": (x, y)}).frame
    assert list(frame.columns[-2:]) == ["test_loss", "test_accuracy"] and "val_loss" not in frame
    assert (frame["eval_time_s"] >= 0.05 * np.arange(1, 4) - 1e-3).all()


@pytest.mark.parametrize("extra,match", [
    ({"val": None}, "'val'"), ({"Test": None}, "'Test'"), ({"val_set": None}, "'val_set'"), ({"a b": None}, "'a b'"),
    ([("test", None)], "must be a dict"),
])
def test_extra_evaluations_bad_names(extra, match):
    x, y = make_data(n=64)
    with pytest.raises(ValueError, match=match):
        make_loop().fit((x, y), epochs=1, verbose=0, extra_evaluations=extra)


def test_extra_evaluations_cannot_be_a_target():
    x, y = make_data(n=64)
    with pytest.raises(ValueError, match="test_accuracy"):
        make_loop().fit((x, y), epochs=1, verbose=0, extra_evaluations={"test": (x, y)},
                        target={"test_accuracy": 0.9}, stop_at_target=True)
