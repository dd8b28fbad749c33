"""DivBS: the greedy diversity picks, their draws, the plan and the training through the loop."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import FakeState, flatten
from loop import Loop
from loop.protocol import StepBatch
from loop.selectors import DivBS, from_string


def choose(selector, gradients, seed=(1, 2)):
    return selector.choose(tf.constant(gradients, tf.float32), tf.constant(seed, tf.int64)).numpy()


def test_greedy_picks_span_the_mean_gradient_and_never_a_zero_row():
    # Rows e1 and e2 carry the mean gradient (0.25, 0.25, 0); after e1 is picked the residual is (0, 0.25, 0), so
    # e2 is the only row with a correlation left, whatever the draws.  Zero rows are never drawn.
    gradients = [[1, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0]]
    for seed in range(20):
        np.testing.assert_array_equal(choose(DivBS(ratio=0.5), gradients, (seed, 0)), [True, True, False, False])


def test_a_redundant_row_adds_nothing_after_its_twin():
    # Rows 0 and 1 are the same direction; row 2 is orthogonal.  Mean (2/3, 0, 1/3) * ...: whichever of 0 and 1
    # comes first, the other's orthogonalized gradient is zero, so the second pick is row 2.
    gradients = [[1, 0, 0], [1, 0, 0], [0, 0, 1]]
    for seed in range(20):
        picked = choose(DivBS(ratio=0.7), gradients, (seed, 3))  # k = int(3 * 0.7) = 2
        assert picked[2] and picked[:2].sum() == 1


def test_draws_are_proportional_to_the_absolute_correlation():
    # Two rows along one axis, (3, 0) and (1, 0): mean (2, 0), correlations 6 and 2; k = 1 draws row 0 with
    # probability 3/4 (the reference's torch.multinomial on |D^T r|).
    gradients = [[3.0, 0.0], [1.0, 0.0]]
    draws = np.array([choose(DivBS(ratio=0.5), gradients, (seed, 9))[0] for seed in range(400)])
    assert abs(draws.mean() - 0.75) < 0.07
    # A negative correlation counts by its size: (-3, 0) and (5, 0) have mean (1, 0), |corr| 3 and 5.
    draws = np.array([choose(DivBS(ratio=0.5), [[-3.0, 0.0], [5.0, 0.0]], (seed, 9))[0] for seed in range(400)])
    assert abs(draws.mean() - 3 / 8) < 0.07


def test_zero_gradients_fall_back_to_a_random_fill_of_k_rows():
    picked = choose(DivBS(ratio=0.5), np.zeros((6, 3)))
    assert picked.sum() == 3
    assert choose(DivBS(ratio=0.01), np.ones((5, 2))).sum() == 1  # at least one row


def test_keep_weights_give_the_mean_loss_of_the_chosen_rows():
    selector = DivBS(ratio=0.5)
    selector.seed_ = 0
    n = 4
    batch = StepBatch(indices=tf.range(n), losses=tf.ones([n]), weights=tf.ones([n]), y_true=tf.zeros([n]),
                      y_pred=tf.zeros([n, 2]), step=tf.constant(0, tf.int64), candidate=tf.constant(5, tf.int64),
                      features=tf.constant([[1.0], [1.0], [0.0], [0.0]]),
                      last_layer_gradients=tf.constant([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]]))
    weights = selector.keep(batch).numpy()
    np.testing.assert_array_equal(weights, [2, 2, 0, 0])  # rows 2, 3 have zero gradient (h = 0); n / k = 2
    with pytest.raises(ValueError, match="last_layer_gradients and features"):
        selector.keep(batch._replace(features=None))


def test_candidate_batches_and_the_step_budget():
    selector = DivBS(ratio=0.1)
    assert selector.candidate_size(32, 1000) == 320
    plan = selector(FakeState(num_samples=1000, batch_size=32))
    assert [len(b) for b in plan] == [320, 320, 320, 40]
    assert sorted(flatten(plan)[0].tolist()) == list(range(1000))
    assert selector.expected_steps(2, 1000, 32) == 8
    assert selector.epochs_for_budget(1, 1000, 32) == math.ceil(32 / 4)  # 32 baseline steps at 4 an epoch
    assert selector.candidate_size(32, 100) == 100
    with pytest.raises(ValueError, match=r"ratio=0 is out of range"):
        DivBS(ratio=0)
    assert repr(from_string("divbs:ratio=0.2")) == "DivBS(ratio=0.2)"


def test_trains_through_the_loop_on_the_chosen_rows():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 4)).astype("float32")
    y = (x[:, 0] * x[:, 1] > 0).astype("int64")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    loop = Loop(model, loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.SGD(0.1),
                selector=DivBS(ratio=0.25), batch_size=10, seed=0)
    history = loop.fit((x, y), epochs=3, verbose=0)
    counts = loop.tables.counts()
    assert counts["step"] == 3 * 6  # candidate batches of 40
    assert counts["samples_backpropagated"] == 3 * 240 // 4
    assert counts["samples_seen"] == 3 * 240
    assert np.isfinite(history.history["loss"]).all()
    trained = loop.tables.trained.numpy()
    assert trained.sum() == 180 and trained.max() <= 3
