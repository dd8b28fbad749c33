"""Bad inputs a probe found, and Keras parity: selector classes, fractional labels, damaged checkpoints,
impossible targets, ``fit(epochs=0)``, ``sample_weight``, ``class_weight`` and weighted validation data.

The error messages themselves are pinned in the catalogue (tests/test_error_catalogue.py); here the behaviour
around them: what is used instead, what is left untouched, and what the weights do to training and metrics.
"""

import glob
import hashlib
import os

import keras
import numpy as np
import pytest

from helpers import make_data, make_loop, make_model
from loop import Loop, RandomAccess
from loop.selectors import SelectiveBackprop, Shuffle


def _digest(directory):
    return {p: hashlib.sha256(open(os.path.join(directory, p), "rb").read()).hexdigest()
            for p in sorted(os.listdir(directory))}


# ------------------------------------------------------------------ selector class
def test_a_selector_class_without_arguments_is_instantiated():
    loop = make_loop(Shuffle)
    assert isinstance(loop.selector, Shuffle)
    x, y = make_data(n=64)
    hist = loop.fit(x, y, epochs=1, verbose=0)
    assert hist.selector == "Shuffle()" and int(loop.trained_counts.sum()) == 64


def test_a_selector_class_that_needs_arguments_is_refused_and_functions_still_work():
    class Top:
        def __init__(self, k, *, reverse=False):
            self.k = k

        def __call__(self, state):
            return [np.arange(self.k)]

    with pytest.raises(ValueError, match=r"selector Top is a class whose constructor needs k; "
                                         r".*selector=Top\(k=\.\.\.\)"):
        make_loop(Top)

    def first_half(state):
        return [np.arange(state.num_samples // 2)]

    loop = make_loop(first_half)
    assert loop.selector is first_half
    x, y = make_data(n=64)
    loop.fit(x, y, epochs=1, verbose=0)
    assert loop.trained_counts[:32].tolist() == [1] * 32 and loop.trained_counts[32:].sum() == 0


# ------------------------------------------------------------------ labels
def test_fractional_labels_are_refused_with_a_sparse_loss_and_integral_floats_train():
    x, y = make_data(n=64)
    fractional = y.astype("float32")
    fractional[10] = 1.5
    with pytest.raises(ValueError, match=r"label \[1.5\] at sample 10 is not a whole number"):
        make_loop().fit(x, fractional, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"validation_data: label \[1.5\] at sample 10 is not a whole number"):
        make_loop().fit(x, y, epochs=1, verbose=0, validation_data=(x, fractional))
    integral = make_loop().fit(x, y.astype("float32"), epochs=1, verbose=0)  # Keras accepts 1.0 as class 1
    ints = make_loop().fit(x, y, epochs=1, verbose=0)
    assert integral.rows[-1]["loss"] == pytest.approx(ints.rows[-1]["loss"], rel=1e-5)


# ------------------------------------------------------------------ targets
@pytest.mark.parametrize("target,message", [
    ({"val_accuracy": 1.5}, r"val_accuracy lies in \[0, 1\]; give it as a fraction"),
    ({"accuracy": -0.1}, r"accuracy lies in \[0, 1\]"),
    ({"val_loss": -0.5}, "val_loss is never negative"),
    ({"val_mae": (-1, "min")}, "val_mae is never negative"),
])
def test_targets_outside_their_metric_range_are_refused(target, message):
    x, y = make_data(n=32)
    loop = make_loop(metrics=["accuracy", "mae"])
    with pytest.raises(ValueError, match=message):
        loop.fit(x, y, epochs=1, verbose=0, validation_data=(x, y), target=target)


def test_targets_at_the_range_ends_and_of_unknown_metrics_are_accepted():
    x, y = make_data(n=32)

    def margin(y_true, y_pred):  # an unknown metric: any value may be a target
        return y_pred[:, 0] - 2.0

    loop = make_loop(metrics=["accuracy", margin])
    hist = loop.fit(x, y, epochs=1, verbose=0, validation_data=(x, y),
                    target={"val_accuracy": 1.0, "loss": 0.0, "val_margin": -3.0})
    assert hist.target["val_accuracy"] == (1.0, "max")
    # A loss that can be negative (cosine similarity) leaves a negative loss target alone.
    cosine = Loop(make_model(), loss="cosine_similarity", batch_size=16)
    onehot = np.eye(3, dtype="float32")[y]
    assert cosine.fit(x, onehot, epochs=1, verbose=0, target={"loss": -0.5}).target == {"loss": (-0.5, "min")}


# ------------------------------------------------------------------ epochs=0
def test_fit_with_zero_epochs_trains_nothing_and_returns_an_empty_history(tmp_path):
    calls = []

    def selector(state):
        calls.append(state.epoch)
        return [np.arange(state.num_samples)]

    class Events(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.events = []

        def on_train_begin(self, logs=None):
            self.events.append("begin")

        def on_epoch_begin(self, epoch, logs=None):
            self.events.append("epoch")

        def on_train_end(self, logs=None):
            self.events.append("end")

    x, y = make_data(n=32)
    loop = make_loop(selector)
    before = [w.copy() for w in loop.model.get_weights()]
    events = Events()
    hist = loop.fit(x, y, epochs=0, verbose=0, validation_data=(x, y), callbacks=[events],
                    checkpoint_dir=tmp_path / "never")
    assert len(hist) == 0 and hist.history == {} and hist.time_to_target is None
    assert calls == [] and events.events == ["begin", "end"]  # as Keras: train begin and end, no epoch
    assert all(np.array_equal(a, b) for a, b in zip(before, loop.model.get_weights()))
    assert int(loop.tables.steps.numpy()) == 0 and not (tmp_path / "never").exists()
    assert set(loop.evaluate(x, y)) == {"loss", "accuracy"}  # built: evaluate works, as after Keras' fit
    with pytest.raises(ValueError, match="x has 32 samples but y has 31"):  # the data is still checked
        loop.fit(x, y[:-1], epochs=0, verbose=0)


def test_keras_fit_with_zero_epochs_also_trains_nothing():
    x, y = make_data(n=32)
    model = make_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    assert model.fit(x, y, epochs=0, verbose=0).history == {}
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


# ------------------------------------------------------------------ checkpoints
def _ckpt_loop(model=None):
    return make_loop(Shuffle(), model=model, batch_size=16, seed=1)


def _two_checkpoints(directory):
    x, y = make_data(n=64)
    loop = _ckpt_loop()
    loop.fit(x, y, epochs=2, verbose=0, checkpoint_dir=directory)
    return loop, (x, y)


def _data_file(directory, number):
    return glob.glob(os.path.join(directory, f"ckpt-{number}.data-*"))[0]


def test_a_truncated_latest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    _, (x, y) = _two_checkpoints(tmp_path)
    path = _data_file(tmp_path, 2)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    resumed = _ckpt_loop()
    with pytest.warns(UserWarning, match=r"ckpt-2: it is truncated or corrupt.*resumed from the previous "
                                         r"checkpoint ckpt-1"):
        hist = resumed.fit(x, y, epochs=3, verbose=0, checkpoint_dir=tmp_path)
    assert [row["epoch"] for row in hist.rows] == [1.0, 2.0, 3.0]  # epoch 1 from ckpt-1, epochs 2-3 trained now
    assert int(resumed.tables.steps.numpy()) == 12
    again = _ckpt_loop()  # the directory is healthy again: the newest checkpoint resumes without a warning
    assert again.fit(x, y, epochs=3, verbose=0, checkpoint_dir=tmp_path).rows == hist.rows


def test_a_garbage_index_file_falls_back_to_the_checkpoints_in_the_directory(tmp_path):
    first, (x, y) = _two_checkpoints(tmp_path)
    with open(tmp_path / "checkpoint", "w") as f:
        f.write("garbage \x00\x01")
    resumed = _ckpt_loop()
    with pytest.warns(UserWarning, match="the index file is unreadable.*resumed from the previous checkpoint ckpt-2"):
        hist = resumed.fit(x, y, epochs=2, verbose=0, checkpoint_dir=tmp_path)
    assert len(hist.rows) == 2 and int(resumed.tables.steps.numpy()) == 8  # restored, not trained again
    for a, b in zip(first.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=0)  # restored exactly


def test_a_garbage_index_file_without_readable_checkpoints_leaves_the_directory_alone(tmp_path):
    _, (x, y) = _two_checkpoints(tmp_path)
    for number in (1, 2):
        with open(_data_file(tmp_path, number), "r+b") as f:
            f.truncate(10)
    with open(tmp_path / "checkpoint", "w") as f:
        f.write("garbage")
    before = _digest(tmp_path)
    with pytest.raises(ValueError, match="holds no checkpoint this fit can read .*pass a fresh checkpoint_dir"):
        _ckpt_loop().fit(x, y, epochs=3, verbose=0, checkpoint_dir=tmp_path)
    assert _digest(tmp_path) == before


def test_a_checkpoint_of_another_architecture_is_refused_and_left_alone(tmp_path):
    _, (x, y) = _two_checkpoints(tmp_path)
    before = _digest(tmp_path)
    for other in (make_model(hidden=8), make_model(hidden=0)):  # another width; another depth
        with pytest.raises(ValueError, match="ckpt-2: it holds (another model|other variables)"):
            _ckpt_loop(other).fit(x, y, epochs=3, verbose=0, checkpoint_dir=tmp_path)
        assert _digest(tmp_path) == before


def test_a_file_as_checkpoint_dir_is_refused(tmp_path):
    path = tmp_path / "weights.h5"
    path.write_bytes(b"not a directory")
    x, y = make_data(n=32)
    with pytest.raises(ValueError, match="weights.h5' is a file, not a directory"):
        _ckpt_loop().fit(x, y, epochs=1, verbose=0, checkpoint_dir=path)
    assert path.read_bytes() == b"not a directory"


def test_a_checkpoint_of_other_sample_weights_is_another_run(tmp_path):
    x, y = make_data(n=64)
    _ckpt_loop().fit(x, y, epochs=1, verbose=0, checkpoint_dir=tmp_path, sample_weight=np.ones(64))
    with pytest.raises(ValueError, match="a different run .*sample_weight"):
        _ckpt_loop().fit(x, y, epochs=2, verbose=0, checkpoint_dir=tmp_path, sample_weight=np.full(64, 2.0))
    hist = _ckpt_loop().fit(x, y, epochs=2, verbose=0, checkpoint_dir=tmp_path, sample_weight=np.ones(64))
    assert [row["epoch"] for row in hist.rows] == [1.0, 2.0]


# ------------------------------------------------------------------ sample and class weights
def _weights_after(x, y, selector=None, **fit_kwargs):
    loop = make_loop(selector, optimizer=keras.optimizers.SGD(0.1), batch_size=16, seed=2)
    hist = loop.fit(x, y, epochs=2, verbose=0, **fit_kwargs)
    return loop, hist, loop.model.get_weights()


@pytest.mark.parametrize("selector", [None, SelectiveBackprop(beta=1.0, history=32, prime_epochs=0)],
                         ids=["shuffle", "in_step_filter"])
def test_samples_of_weight_zero_never_change_the_model(selector):
    x, y = make_data(n=96)
    weights = np.ones(96, np.float32)
    weights[::3] = 0.0
    loop, _, trained = _weights_after(x, y, selector, sample_weight=weights)
    rng = np.random.default_rng(5)
    noisy_x, noisy_y = x.copy(), y.copy()
    noisy_x[::3] = rng.normal(size=noisy_x[::3].shape) * 100  # the zero-weight rows: garbage inputs, other labels
    noisy_y[::3] = (noisy_y[::3] + 1) % 3
    _, _, noisy = _weights_after(noisy_x, noisy_y, selector, sample_weight=weights)
    if selector is None:  # an in-step filter may rank by the garbage losses and so keep other rows
        for a, b in zip(trained, noisy):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert loop.trained_counts[::3].sum() == 0  # never contributed to a gradient
    _, _, plain = _weights_after(x, y, selector)
    assert not all(np.allclose(a, b) for a, b in zip(trained, plain))


def test_sample_weights_multiply_the_plan_weights():
    x, y = make_data(n=64)
    weights = np.random.default_rng(3).uniform(0.0, 2.0, 64).astype("float32")

    def planned(state):  # the same batches every epoch, with plan weights
        return [(np.arange(i, i + 16), np.full(16, 0.5)) for i in range(0, 64, 16)]

    def folded(state):  # the product folded into the plan by hand
        return [(np.arange(i, i + 16), 0.5 * weights[i:i + 16]) for i in range(0, 64, 16)]

    _, _, both = _weights_after(x, y, planned, sample_weight=weights)
    _, _, by_hand = _weights_after(x, y, folded)
    for a, b in zip(both, by_hand):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_class_weight_equals_the_equivalent_sample_weight():
    x, y = make_data(n=96)
    class_weight = {0: 0.5, 2: 3.0}  # class 1 left out: weight 1, as in Keras
    _, hist_c, by_class = _weights_after(x, y, class_weight=class_weight)
    _, hist_s, by_sample = _weights_after(x, y, sample_weight=np.array([class_weight.get(c, 1.0) for c in y]))
    for a, b in zip(by_class, by_sample):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert hist_c.rows[-1]["loss"] == pytest.approx(hist_s.rows[-1]["loss"], rel=1e-6)
    onehot = np.eye(3, dtype="float32")[y]  # one-hot targets: the class is the argmax, as in Keras
    from loop import validation
    np.testing.assert_array_equal(validation.sample_weights(None, class_weight, onehot, 3, "t"),
                                  validation.sample_weights(None, class_weight, y, 3, "t"))


@pytest.mark.parametrize("kwargs,message", [
    ({"class_weight": {3: 1.0}}, r"class_weight key 3 is not a class id of this model; .*\[0, 3\)"),
    ({"class_weight": {0: -1.0}}, r"class_weight\[0\] = -1.0; class weights must be finite"),
    ({"class_weight": [1.0, 2.0, 3.0]}, "class_weight must be a dict"),
    ({"sample_weight": np.full(32, np.nan)}, "sample_weight must be finite and non-negative, got \\[nan"),
    ({"sample_weight": np.ones((32, 2))}, r"sample_weight has shape \(32, 2\)"),
])
def test_bad_weights_are_refused(kwargs, message):
    x, y = make_data(n=32)
    with pytest.raises(ValueError, match=message):
        make_loop().fit(x, y, epochs=1, verbose=0, **kwargs)


def test_class_weight_on_a_regression_is_refused():
    x, y = make_data(n=32)
    loop = Loop(keras.Sequential([keras.Input((6,)), keras.layers.Dense(1)]), loss="mse", batch_size=16)
    with pytest.raises(ValueError, match="needs class labels, but training data is a regression"):
        loop.fit(x, y.astype("float32"), epochs=1, verbose=0, class_weight={0: 2.0})
    loop.fit(x, y.astype("float32"), epochs=1, verbose=0, sample_weight=np.linspace(0, 1, 32))


def test_weighted_losses_match_keras_and_a_manual_weighted_mean():
    x, y = make_data(n=80)
    vx, vy = make_data(n=50, seed=1)
    weights = np.random.default_rng(0).uniform(0.0, 3.0, 50).astype("float32")
    loop = make_loop(eval_batch_size=16)
    hist = loop.fit(x, y, epochs=1, verbose=0, validation_data=(vx, vy, weights))
    row = hist.rows[-1]
    losses = keras.losses.sparse_categorical_crossentropy(vy, loop.model.predict(vx, verbose=0)).numpy()
    correct = (loop.model.predict(vx, verbose=0).argmax(-1) == vy).astype("float64")
    # As Keras: the loss is the mean of weight * loss; metrics=[...] stay unweighted.
    assert row["val_loss"] == pytest.approx(float(np.mean(weights * losses)), rel=1e-5)
    assert row["val_accuracy"] == pytest.approx(correct.mean(), abs=1e-6)
    keras_model = loop.model
    keras_model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    expected = keras_model.evaluate(vx, vy, sample_weight=weights, verbose=0, return_dict=True)
    got = loop.evaluate(vx, vy, sample_weight=weights)
    assert got["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    assert got["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-6)
    assert loop.evaluate(vx, vy, sample_weight=None)["loss"] == pytest.approx(float(losses.mean()), rel=1e-5)


def test_train_loss_is_weighted_and_the_chunk_function_is_traced_once():
    x, y = make_data(n=64)
    weights = np.where(y == 0, 0.0, 2.0).astype("float32")
    loop = make_loop(optimizer=keras.optimizers.SGD(0.0), steps_per_execution=2)  # no update: fixed losses
    hist = loop.fit(x, y, epochs=2, verbose=0, sample_weight=weights)
    losses = loop.evaluate(x, y, sample_weight=weights)["loss"]
    assert hist.rows[-1]["loss"] == pytest.approx(losses, rel=1e-5)
    assert loop.trace_count == 1
    hist2 = loop.fit(x, y, epochs=1, verbose=0, sample_weight=weights)  # the same weights: nothing rebuilt
    assert loop.trace_count == 1 and hist2.rows[-1]["loss"] == pytest.approx(losses, rel=1e-5)


def test_sample_weight_works_with_streamed_data(tmp_path):
    x, y = make_data(n=64)
    np.save(tmp_path / "x.npy", x)
    weights = np.random.default_rng(1).uniform(0.0, 2.0, 64).astype("float32")
    resident, _, on_device = _weights_after(x, y, sample_weight=weights,
                                            validation_data=(x[:32], y[:32], weights[:32]))
    loop = make_loop(optimizer=keras.optimizers.SGD(0.1), batch_size=16, seed=2, resident_limit_bytes=0)
    hist = loop.fit(np.load(tmp_path / "x.npy", mmap_mode="r"), y, epochs=2, verbose=0, sample_weight=weights,
                    validation_data=(RandomAccess(x[:32], y[:32]), None, weights[:32]))
    assert loop.streaming
    for a, b in zip(on_device, loop.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert hist.rows[-1]["val_loss"] == pytest.approx(resident.history.rows[-1]["val_loss"], rel=1e-5)


def test_sample_weight_under_a_strategy_matches_one_device():
    import tensorflow as tf

    x, y = make_data(n=64)
    weights = np.random.default_rng(1).uniform(0.0, 2.0, 64).astype("float32")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model, optimizer = make_model(), keras.optimizers.SGD(0.1)
    loop = make_loop(model=model, optimizer=optimizer, strategy=strategy, seed=2)
    hist = loop.fit(x, y, epochs=2, verbose=0, sample_weight=weights, validation_data=(x, y, weights))
    _, single_hist, single_weights = _weights_after(x, y, sample_weight=weights, validation_data=(x, y, weights))
    for a, b in zip(loop.model.get_weights(), single_weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert hist.rows[-1]["loss"] == pytest.approx(single_hist.rows[-1]["loss"], rel=1e-5)
    assert hist.rows[-1]["val_loss"] == pytest.approx(single_hist.rows[-1]["val_loss"], rel=1e-5)
