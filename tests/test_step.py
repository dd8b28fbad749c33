"""loop.step: the variant is chosen once, every variant minimizes the same objective, and the functions trace once."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import make_data, make_model
from loop import objective as objective_lib
from loop.data import ResidentData
from loop.step import Functions, TrainStep, objective
from loop.tables import Tables


def _step(keep=None, mode=None, model=None, n=32):
    x, y = make_data(n=n)
    model = model or make_model(hidden=0)
    optimizer = keras.optimizers.SGD(0.5)
    optimizer.build(model.trainable_variables)
    metrics = objective_lib.MetricSet(["accuracy"], (n,), (n, 3))
    _, loss_fn = objective_lib.per_sample_loss("sparse_categorical_crossentropy")
    return TrainStep(model, optimizer, loss_fn, ResidentData(x, y), Tables(n), metrics, keep, mode), x, y


def _first_half(batch):
    n = tf.shape(batch.losses)[0]
    return tf.where(tf.range(n) < n // 2, 2.0, 0.0)


def test_the_variant_is_chosen_once():
    assert _step()[0].variant == "plain"
    assert _step(_first_half, "compact")[0].variant == "compact"
    assert _step(_first_half, "mask")[0].variant == "mask"


def test_plain_step_minimizes_the_weighted_mean_loss():
    step, x, y = _step()
    model = step.model
    before = [w.copy() for w in model.get_weights()]
    indices, weights = tf.constant([0, 1, 2, 3]), tf.constant([1.0, 0.0, 2.0, 1.0])
    # The same update by hand: SGD on sum(w * loss) / n.
    with tf.GradientTape() as tape:
        losses = keras.losses.sparse_categorical_crossentropy(y[:4], model(x[:4], training=True))
        value = tf.reduce_sum(weights * losses) / 4.0
    grads = tape.gradient(value, model.trainable_variables)
    expected = [w - 0.5 * g.numpy() for w, g in zip(before, grads)]
    got_losses = step(indices, weights)
    for a, b in zip(model.get_weights(), expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_losses.numpy(), losses.numpy(), rtol=1e-6)
    assert step.tables.counts() == {"step": 1, "samples_seen": 4, "samples_forwarded": 4,
                                    "samples_backpropagated": 3}
    assert step.tables.trained.numpy()[:4].tolist() == [1, 0, 1, 1]


@pytest.mark.parametrize("mode", ["compact", "mask"])
def test_filter_variants_train_like_the_filtered_plain_step(mode):
    filtered, _, _ = _step(_first_half, mode)
    plain, _, _ = _step()
    indices = tf.constant([5, 6, 7, 8])
    filtered(indices, tf.ones([4]))
    plain(indices, tf.constant([2.0, 2.0, 0.0, 0.0]))
    for a, b in zip(filtered.model.get_weights(), plain.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert filtered.tables.counts()["samples_backpropagated"] == 2
    # compact forwards the 4 candidates, then the 2 kept rows again with gradient; mask forwards once
    assert filtered.tables.counts()["samples_forwarded"] == {"compact": 6, "mask": 4}[mode]


def test_a_filter_that_keeps_nothing_takes_no_step():
    step, _, _ = _step(lambda batch: tf.zeros_like(batch.losses), "compact")
    before = [w.copy() for w in step.model.get_weights()]
    step(tf.constant([0, 1]), tf.ones([2]))
    for a, b in zip(step.model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert step.tables.counts() == {"step": 1, "samples_seen": 2, "samples_forwarded": 2,
                                    "samples_backpropagated": 0}


def test_objective_adds_regularization_split_over_replicas():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, kernel_regularizer=keras.regularizers.L2(1.0),
                                                                     kernel_initializer="ones")])
    model(np.zeros((1, 2), np.float32))
    value = objective(tf.constant([1.0, 3.0]), tf.constant([2.0, 2.0]), 2.0, model)
    assert float(value) == pytest.approx(4.0 + 2.0)
    assert float(objective(tf.constant([1.0]), tf.constant([2.0]), 1.0, model, replicas=2)) == pytest.approx(3.0)


def test_chunk_function_traces_once_for_any_batch_sizes():
    step, _, _ = _step()
    functions = Functions(step, model=step.model, loss_fn=step.loss_fn, data=step.data, tables=step.tables,
                          val_metrics=step.metrics)
    functions.trace()
    assert functions.trace_count == 1 and functions.trace_time_s > 0
    for sizes in ([3, 5], [1, 1, 1, 8], [16]):
        bounds = np.r_[0, np.cumsum(sizes)].astype(np.int32)
        indices = np.arange(bounds[-1], dtype=np.int32)
        functions.train_chunk(indices, np.ones(len(indices), np.float32), bounds, 0, len(sizes))
    assert functions.trace_count == 1 and step.tables.counts()["step"] == 7


@pytest.mark.parametrize("optimizer", ["adam", "mixed"])
def test_a_finished_fit_releases_its_training_data(optimizer):
    """Nothing keeps the traced step's captured data alive after the fit.

    ``tf.custom_gradient`` (used by Keras' optimizers to all-reduce gradients, and
    by the loss-scale optimizer's) registers gradient functions globally, and
    they hold the traced graph with its captures (see
    :func:`loop.step.releasing_custom_gradients`).
    """
    import gc
    import weakref

    from loop import Loop
    from loop.selectors import Shuffle

    x, y = make_data(n=64)
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam()) if optimizer == "mixed" else optimizer
    loop = Loop(make_model(hidden=0), optimizer=optimizer, loss="sparse_categorical_crossentropy", selector=Shuffle(),
                batch_size=16, seed=0)
    loop.fit(x, y, epochs=1, verbose=0)
    captured = weakref.ref(loop.data.x)
    del loop
    gc.collect()
    assert captured() is None
