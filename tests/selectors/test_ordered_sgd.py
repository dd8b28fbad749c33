"""OrderedSGD: the authors' rule for q (it only shrinks) and the last stage's halving, on synthetic tensors."""

import numpy as np
import pytest
import tensorflow as tf

from loop.selectors import OrderedSGD
from helpers import StepBatch, flatten


def _batch(losses):
    losses = tf.constant(losses, tf.float32)
    n = losses.shape[0]
    return StepBatch(tf.range(n), losses, tf.ones([n]), tf.zeros([n], tf.int32), tf.fill([n, 2], 0.5),
                     tf.constant(0, tf.int64))


def _epochs(selector, make_state, accuracies, batch_size=64):
    """Calls the selector once per epoch with each accuracy as the previous epoch's; yields the keep function."""
    selector.on_train_begin(make_state(batch_size=batch_size))
    keep = tf.function(lambda b: selector.keep(b))
    for epoch, accuracy in enumerate(accuracies):
        logs = {} if accuracy is None else {"accuracy": accuracy, "val_accuracy": 0.0}
        plan = selector(make_state(num_samples=640, batch_size=batch_size, epoch=epoch, logs=logs))
        assert np.array_equal(np.sort(flatten(plan)[0]), np.arange(640))  # a plain shuffle of everything
        yield keep


def test_q_only_shrinks_as_the_train_accuracy_rises_and_falls(make_state):
    selector = OrderedSGD()
    accuracies = [None, 0.5, 0.85, 0.93, 0.7, 0.2, 0.96, 0.81, 0.999, 0.3]
    expected_q = [64, 64, 32, 16, 16, 16, 8, 8, 4, 4]
    losses = np.random.default_rng(0).permutation(64).astype(np.float32)
    for keep, q in zip(_epochs(selector, make_state, accuracies), expected_q):
        assert int(selector.q_.numpy()) == q
        w = keep(_batch(losses)).numpy()
        assert np.array_equal(np.flatnonzero(w), np.sort(np.argsort(-losses)[:q]))  # exactly the top q
    assert selector.divisor_ == 16


def test_last_stage_halves_the_loss_weights_once(make_state):
    selector = OrderedSGD()
    losses = np.arange(64, dtype=np.float32)
    weights = [keep(_batch(losses)).numpy() for keep in
               _epochs(selector, make_state, [0.9, 0.99, 0.996, 0.999, 0.5])]
    # 90%: q = 16, weight 64 / 16; 99%: q = 8; from 99.5% on: q = 4 and the weights halved, once.
    scales = [w[w > 0].max() for w in weights]
    assert scales == [4.0, 8.0, 8.0, 8.0, 8.0]
    assert [np.count_nonzero(w) for w in weights] == [16, 8, 4, 4, 4]
    assert float(selector.scale_.numpy()) == 0.5


def test_last_stage_scale_option_and_fixed_q(make_state):
    losses = np.arange(64, dtype=np.float32)
    plain = OrderedSGD(last_stage_scale=1.0)
    w = [keep(_batch(losses)).numpy() for keep in _epochs(plain, make_state, [0.999])][-1]
    assert np.count_nonzero(w) == 4 and np.all(w[w > 0] == 16.0)
    fixed = OrderedSGD(q=4)  # no rule, no scale, whatever the accuracy
    w = [keep(_batch(losses)).numpy() for keep in _epochs(fixed, make_state, [0.999, 0.999])][-1]
    assert np.array_equal(np.flatnonzero(w), [60, 61, 62, 63]) and np.all(w[w > 0] == 16.0)
    with pytest.raises(ValueError, match="last_stage_scale=0"):
        OrderedSGD(last_stage_scale=0)
    with pytest.raises(ValueError, match="last_stage_scale=1.5"):
        OrderedSGD(last_stage_scale=1.5)


def test_partial_batch_keeps_min_q_and_small_batches_keep_one(make_state):
    selector = OrderedSGD()
    keep = list(_epochs(selector, make_state, [0.85]))[-1]  # q = 32
    w = keep(_batch(np.arange(20, dtype=np.float32))).numpy()  # a last batch of 20 < q: all of it, as min(q, s)
    assert np.all(w == 1.0)
    tiny = OrderedSGD()
    list(_epochs(tiny, make_state, [0.999], batch_size=8))
    assert int(tiny.q_.numpy()) == 1  # int(8 / 16) = 0 in the reference; at least one row here


def test_state_round_trip_keeps_the_stage_and_scale(make_state):
    selector = OrderedSGD()
    list(_epochs(selector, make_state, [0.999]))
    state = selector.get_state()
    restored = OrderedSGD()
    restored.set_state(state)
    restored.on_train_begin(make_state(batch_size=64))
    assert restored.divisor_ == 16 and float(restored.scale_.numpy()) == 0.5
    restored(make_state(num_samples=640, batch_size=64, epoch=1, logs={"accuracy": 0.5}))
    assert int(restored.q_.numpy()) == 4 and float(restored.scale_.numpy()) == 0.5  # no growth, no second halving


def test_the_accuracy_rule_is_for_classification_and_a_fixed_q_for_both_tasks():
    assert OrderedSGD().tasks == ("classification",)
    assert OrderedSGD(q=16).tasks == ("classification", "regression")
    assert OrderedSGD().clone().tasks == ("classification",)
