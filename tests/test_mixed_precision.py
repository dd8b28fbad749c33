"""Mixed precision: Keras dtype policies in Loop, as model.fit honours them.

Under ``mixed_float16`` the loop trains with a ``LossScaleOptimizer`` (never
wrapped twice), scales the objective and lets the optimizer unscale the
gradients and skip non-finite steps; under both policies the per-sample losses,
the loss table, metrics, in-step filters and ``state.score`` stay float32.
Every test resets the global policy to float32 when it ends.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from loop import Loop
from loop.objective import computes_in_float16, float32, per_sample_loss, training_optimizer
from loop.selectors import OrderedSGD, SelectiveBackprop, Selector, Shuffle

POLICIES = ("mixed_float16", "mixed_bfloat16")
COMPUTE = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}
LSO = keras.optimizers.LossScaleOptimizer


@pytest.fixture(autouse=True)
def float32_afterwards():
    """Whatever a test sets, the next one starts under the float32 policy."""
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def set_policy(name):
    keras.mixed_precision.set_global_policy(name)


def images(n=96, seed=0):
    """``n`` 8x8 one-channel images; the label is the brightest of three image thirds."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 8, 8, 1), dtype=np.float32)
    y = np.argmax(np.stack([x[:, :, :3].mean((1, 2, 3)), x[:, :, 3:5].mean((1, 2, 3)),
                            x[:, :, 5:].mean((1, 2, 3))], 1), 1).astype("int32")
    return x, y


def conv_model(seed=0):
    """A small Conv/Dense classifier, built under the current global policy."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                             keras.layers.Flatten(), keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(3, activation="softmax")])


def dense_model(d=6, outputs=3, activation="softmax", seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((d,)), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(outputs, activation=activation)])


def tabular(n=64, d=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    return x, np.argmax(x[:, :3], axis=1).astype("int32")


# --------------------------------------------------------------------------------------- the optimizer
def test_the_optimizer_is_loss_scaled_for_float16_only_and_never_twice():
    set_policy("mixed_float16")
    model = dense_model()
    assert computes_in_float16(model)
    wrapped = Loop(model, loss="sparse_categorical_crossentropy").optimizer
    assert isinstance(wrapped, LSO) and isinstance(wrapped.inner_optimizer, keras.optimizers.Adam)
    sgd = keras.optimizers.SGD(0.1)
    explicit = Loop(model, loss="sparse_categorical_crossentropy", optimizer=sgd).optimizer
    assert isinstance(explicit, LSO) and explicit.inner_optimizer is sgd
    own = LSO(keras.optimizers.SGD(), initial_scale=8.0)
    assert Loop(model, loss="sparse_categorical_crossentropy", optimizer=own).optimizer is own

    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")  # Keras compile wraps it
    assert isinstance(model.optimizer, LSO)
    loop = Loop(model)
    assert loop.optimizer is model.optimizer and not isinstance(loop.optimizer.inner_optimizer, LSO)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", auto_scale_loss=False)
    assert not isinstance(Loop(model).optimizer, LSO)  # the user's opt-out is honoured, as model.fit does

    set_policy("mixed_bfloat16")
    assert not computes_in_float16(dense_model())
    assert not isinstance(Loop(dense_model(), loss="sparse_categorical_crossentropy").optimizer, LSO)
    set_policy("float32")
    assert not isinstance(Loop(dense_model(), loss="sparse_categorical_crossentropy").optimizer, LSO)
    # A float32 model with one float16 layer computes in float16 too.
    keras.utils.set_random_seed(0)
    mixed_layer = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, dtype="mixed_float16"),
                                    keras.layers.Dense(3, activation="softmax")])
    assert computes_in_float16(mixed_layer)
    assert isinstance(training_optimizer("sgd", None, mixed_layer), LSO)


def test_losses_and_outputs_are_float32():
    half = tf.constant([[0.2, 0.8]], tf.float16)
    assert float32(half).dtype == tf.float32 and float32({"a": tf.cast(half, tf.bfloat16)})["a"].dtype == tf.float32
    same = tf.constant([1.0])
    assert float32(same) is same and float32(tf.constant([1], tf.int32)).dtype == tf.int32

    def custom(y_true, y_pred):  # a plain function sees float32 predictions, as a Keras Loss would
        assert y_pred.dtype == tf.float32
        return tf.reduce_sum(tf.square(y_pred), -1)

    for loss in ("sparse_categorical_crossentropy", custom, keras.losses.SparseCategoricalCrossentropy()):
        _, fn = per_sample_loss(loss)
        assert fn(tf.constant([1]), half).dtype == tf.float32


# ------------------------------------------------------------------------------------ training
class ScoringFilter(Selector):
    """Shuffles; from epoch 1 re-scores a few rows with ``state.score``; its filter keeps the top half."""

    filter_mode = "compact"

    def __init__(self):
        self.scores_ = []
        self.seen_dtypes_ = set()

    def __call__(self, state):
        if state.epoch:
            self.scores_.append(state.score(np.arange(10)))
        return Shuffle()(state)

    def keep(self, batch):
        self.seen_dtypes_.add((batch.y_pred.dtype.name, batch.losses.dtype.name))  # at trace time
        k = tf.maximum(tf.shape(batch.losses)[0] // 2, 1)
        threshold = tf.sort(batch.losses, direction="DESCENDING")[k - 1]
        return tf.where(batch.losses >= threshold, 2.0, 0.0)


SELECTORS = {  # name: (factory, the train step variant)
    "shuffle": (Shuffle, "plain"),
    # Epoch 0 primes (the inactive step, in mask mode), epoch 1 filters in compact mode.
    "selective_backprop": (lambda: SelectiveBackprop(accumulate=False, history=64), "compact"),
    "ordered_sgd": (OrderedSGD, "mask"),
    "scoring_filter": (ScoringFilter, "compact"),
}


@pytest.mark.parametrize("name", list(SELECTORS))
@pytest.mark.parametrize("policy", POLICIES)
def test_trains_under_the_policy_with_float32_tables(policy, name):
    set_policy(policy)
    make, variant = SELECTORS[name]
    x, y = images()
    model = conv_model()
    assert model.layers[0].compute_dtype == COMPUTE[policy]
    loop = Loop(model, loss="sparse_categorical_crossentropy", metrics=["accuracy"], selector=make(),
                batch_size=16, steps_per_execution=4)
    hist = loop.fit((x, y), epochs=2, validation_data=(x[:32], y[:32]), verbose=0)
    assert loop.step.variant == variant
    assert isinstance(loop.optimizer, LSO) == (policy == "mixed_float16")
    assert loop.losses.dtype == np.float32 and np.isfinite(loop.losses).all()  # every row was seen
    assert loop.tables.loss.dtype == tf.float32
    for column in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert np.isfinite(hist.frame[column]).all(), column
    assert all(v.dtype == "float32" for m in loop.train_metrics.objects for v in m.variables if v.dtype.startswith("f"))
    assert all(np.isfinite(w).all() and w.dtype == np.float32 for w in model.get_weights())
    assert int(loop.optimizer.iterations.numpy()) > 0
    scored = loop.score(np.arange(8))
    assert scored.dtype == np.float32 and np.isfinite(scored).all()
    assert np.isfinite(list(loop.evaluate(x, y).values())).all()
    if name == "scoring_filter":
        assert loop.selector.seen_dtypes_ == {("float32", "float32")}
        assert all(s.dtype == np.float32 and np.isfinite(s).all() for s in loop.selector.scores_)


def test_accumulating_filter_and_regularization_under_float16():
    set_policy("mixed_float16")
    x, y = tabular(n=96)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu",
                                                                     activity_regularizer=keras.regularizers.L2(1e-3)),
                              keras.layers.Dense(3, activation="softmax")])
    loop = Loop(model, loss="sparse_categorical_crossentropy", selector=SelectiveBackprop(history=64),
                batch_size=16)
    loop.fit((x, y), epochs=3, verbose=0)
    assert loop.step.variant == "accumulate" and isinstance(loop.optimizer, LSO)
    assert np.isfinite(loop.losses).all() and int(loop.optimizer.iterations.numpy()) > 0


# ------------------------------------------------------------------------------------ loss scaling
TINY = 1e-8


def tiny_mse(y_true, y_pred):
    """A loss so small that its gradient flushes to zero in float16 (smallest subnormal: 6e-8)."""
    return TINY * tf.reduce_mean(tf.square(tf.cast(y_true, y_pred.dtype) - y_pred), -1)


def test_loss_scaling_keeps_a_gradient_that_underflows_in_float16():
    set_policy("mixed_float16")
    x, _ = tabular(n=32)
    y = x.sum(axis=1, keepdims=True).astype("float32")

    # The control: the same gradient computed in float16 without a loss scale is zero everywhere.
    model = dense_model(outputs=1, activation=None)
    with tf.GradientTape() as tape:
        value = tf.reduce_mean(tiny_mse(y, float32(model(x, training=True))))
    grads = tape.gradient(value, model.trainable_variables)
    assert all(not np.any(g.numpy()) for g in grads), "the float16 gradient should flush to zero"
    with tf.GradientTape() as tape:
        scaled = 2.0 ** 15 * tf.reduce_mean(tiny_mse(y, float32(model(x, training=True))))
    assert all(np.any(g.numpy()) for g in tape.gradient(scaled, model.trainable_variables))

    def train(auto_scale_loss):
        model = dense_model(outputs=1, activation=None)
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss=tiny_mse, auto_scale_loss=auto_scale_loss)
        before = [w.copy() for w in model.get_weights()]
        loop = Loop(model, batch_size=8, steps_per_execution=2)
        loop.fit((x, y), epochs=1, verbose=0)
        changed = [not np.array_equal(a, b) for a, b in zip(before, model.get_weights())]
        return loop, changed

    loop, changed = train(auto_scale_loss=True)
    assert isinstance(loop.optimizer, LSO) and all(changed)  # every weight moved
    assert int(loop.optimizer.iterations.numpy()) == 4  # no step skipped
    assert float(loop.optimizer.dynamic_scale.numpy()) == 2.0 ** 15
    unscaled, changed = train(auto_scale_loss=False)  # the control through the loop: no scale, no update
    assert not isinstance(unscaled.optimizer, LSO) and not any(changed)


def test_a_skipped_step_is_not_reported_as_a_nan_loss():
    set_policy("mixed_float16")
    x, y = tabular(n=64)
    model = dense_model()
    before = [w.copy() for w in model.get_weights()]
    optimizer = LSO(keras.optimizers.Adam(), initial_scale=2.0 ** 60)  # every scaled float16 gradient overflows
    loop = Loop(model, loss="sparse_categorical_crossentropy", optimizer=optimizer, batch_size=16)
    hist = loop.fit((x, y), epochs=1, verbose=0)  # no FloatingPointError: the losses are finite
    assert int(optimizer.iterations.numpy()) == 0 and int(loop.tables.steps.numpy()) == 4
    assert float(optimizer.dynamic_scale.numpy()) == 2.0 ** 56  # halved at each skipped step
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert np.isfinite(loop.losses).all() and np.isfinite(hist.frame["loss"]).all()

    # A loss that is itself non-finite still is an error: float16 activations overflow (max 65504).
    loop = Loop(dense_model(), loss="sparse_categorical_crossentropy", batch_size=16)
    with pytest.raises(FloatingPointError, match="the loss became NaN or Inf at epoch 0, step 0"):
        loop.fit((x * 1e6, y), epochs=1, verbose=0)


# ------------------------------------------------------------------------------------ checkpoints
def _checkpointed(directory, epochs):
    x, y = tabular(n=64)
    model = dense_model()
    optimizer = LSO(keras.optimizers.Adam(0.01), dynamic_growth_steps=3)  # the scale moves within an epoch
    loop = Loop(model, loss="sparse_categorical_crossentropy", optimizer=optimizer, selector=Shuffle(),
                batch_size=8, seed=1)
    loop.fit((x, y), epochs=epochs, verbose=0, checkpoint_dir=directory)
    return loop


def test_checkpoint_restores_the_loss_scale_and_resumes_exactly(tmp_path):
    set_policy("mixed_float16")
    reference = _checkpointed(tmp_path / "reference", epochs=4)
    first = _checkpointed(tmp_path / "resumed", epochs=2)
    scale = float(first.optimizer.dynamic_scale.numpy())
    counter = int(first.optimizer.step_counter.numpy())
    assert scale != 2.0 ** 15, "the scale should have moved from its initial value"

    restored = _checkpointed(tmp_path / "resumed", epochs=2)  # restores epoch 2's checkpoint, trains nothing
    assert float(restored.optimizer.dynamic_scale.numpy()) == scale
    assert int(restored.optimizer.step_counter.numpy()) == counter
    resumed = _checkpointed(tmp_path / "resumed", epochs=4)
    for a, b in zip(reference.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(reference.losses, resumed.losses)
    assert float(reference.optimizer.dynamic_scale.numpy()) == float(resumed.optimizer.dynamic_scale.numpy())
    assert int(reference.optimizer.iterations.numpy()) == int(resumed.optimizer.iterations.numpy())

    set_policy("float32")  # a float32 fit refuses the mixed_float16 checkpoint, naming both
    x, y = tabular(n=64)
    loop = Loop(dense_model(), loss="sparse_categorical_crossentropy", selector=Shuffle(), batch_size=8, seed=1)
    with pytest.raises(ValueError, match="precision: 'mixed_float16' there, 'float32' here; loss_scale: True "
                                         "there, False here"):
        loop.fit((x, y), epochs=4, verbose=0, checkpoint_dir=tmp_path / "resumed")


# ------------------------------------------------------------------------------------ tf.distribute
def mirrored_worker():
    """Under MirroredStrategy on 2 CPUs: a step whose gradients overflow on replica 1 only is skipped by both."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    set_policy("mixed_float16")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    x = np.full((8, 6), 0.1, np.float32)
    x[[1, 5]] = 1000.0  # rows 1 and 5 go to replica 1; their scaled float16 kernel gradients overflow
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1], np.int32)

    def pairs(state):
        return [np.array([0, 1]), np.array([2, 3]), np.array([4, 5]), np.array([6, 7])]

    results = {}
    for name, strat in (("single", None), ("mirrored", strategy)):
        scope = strat.scope() if strat else tf.name_scope("single")
        with scope:
            keras.utils.set_random_seed(0)
            model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="softmax",
                                                                            kernel_initializer="zeros")])
        loop = Loop(model, loss="sparse_categorical_crossentropy", optimizer="sgd", selector=pairs, batch_size=2,
                    strategy=strat)
        loop.fit((x, y), epochs=1, verbose=0)
        copies = [[t.numpy().tolist() for t in strategy.experimental_local_results(v.value)] for v in model.weights
                  ] if strat else []
        results[name] = {"iterations": int(loop.optimizer.iterations.numpy()),
                         "scale": float(loop.optimizer.dynamic_scale.numpy()),
                         "weights": [w.tolist() for w in model.get_weights()], "copies": copies,
                         "losses": loop.losses.tolist()}
    print(json.dumps(results))


def test_mirrored_replicas_skip_a_loss_scaled_step_together():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0"}
    env.pop("TF_CONFIG", None)
    proc = subprocess.run([sys.executable, __file__, "mirrored"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    single, mirrored = result["single"], result["mirrored"]
    # Batches 0 and 2 overflow (on replica 1 only, under the strategy): skipped; batches 1 and 3 train.
    assert single["iterations"] == mirrored["iterations"] == 2
    assert single["scale"] == mirrored["scale"] == 2.0 ** 13
    for copy_a, copy_b in mirrored["copies"]:
        assert copy_a == copy_b, "the replicas' copies diverged"
    for a, b in zip(single["weights"], mirrored["weights"]):
        assert np.isfinite(b).all()
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(single["losses"], mirrored["losses"], rtol=1e-3, atol=1e-5)


if __name__ == "__main__":
    if sys.argv[1] == "mirrored":
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        mirrored_worker()
