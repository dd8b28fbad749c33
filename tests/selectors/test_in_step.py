"""The in-step filters (``keep``), called inside a tf.function on synthetic tensors."""

import numpy as np
import pytest
import tensorflow as tf

from loop.selectors import ImportanceSampling, OrderedSGD, SelectiveBackprop
from loop.selectors.importance import gradient_norm_bound
from helpers import StepBatch


def _batch(losses, step, y_true=None, y_pred=None):
    losses = tf.constant(losses, tf.float32)
    n = losses.shape[0]
    y_true = tf.zeros([n], tf.int32) if y_true is None else y_true
    y_pred = tf.fill([n, 2], 0.5) if y_pred is None else y_pred
    return StepBatch(tf.range(n), losses, tf.ones([n]), y_true, y_pred, tf.constant(step, tf.int64),
                     tf.constant(step, tf.int64))


def _compiled(selector, state):
    selector.on_train_begin(state)
    return tf.function(lambda b: selector.keep(b))


def test_selective_backprop_prefers_high_loss_and_fills_history(make_state):
    selector = SelectiveBackprop(beta=2.0, history=100, accumulate=False, prime_epochs=0)
    keep = _compiled(selector, make_state())
    losses = np.linspace(0, 1, 50).astype(np.float32)
    counts = np.zeros(50)
    for step in range(60):
        counts += keep(_batch(losses, step)).numpy() > 0
    assert counts[-10:].mean() > 5 * counts[:10].mean()
    assert int(selector.seen_.numpy()) == 3000
    state = selector.get_state()
    assert state["losses_"].shape == (100,)
    restored = SelectiveBackprop(beta=2.0, history=100)
    restored.set_state(state)
    restored.on_train_begin(make_state())
    assert np.array_equal(restored.losses_.numpy(), selector.losses_.numpy())


@pytest.mark.parametrize("divisor,accuracy", [(1, 0.5), (2, 0.85), (4, 0.92), (8, 0.96), (16, 0.999)])
def test_ordered_sgd_keeps_exactly_top_q(make_state, divisor, accuracy):
    selector = OrderedSGD()
    state = make_state(batch_size=64, logs={"accuracy": accuracy})
    selector.on_train_begin(state)
    selector(state)
    keep = tf.function(lambda b: selector.keep(b))
    losses = np.random.default_rng(0).permutation(64).astype(np.float32)
    w = keep(_batch(losses, 0)).numpy()
    q = 64 // divisor
    assert np.array_equal(np.flatnonzero(w), np.sort(np.argsort(-losses)[:q]))
    assert np.allclose(w[w > 0], 64 / q * (0.5 if divisor == 16 else 1.0))  # the last stage halves the weights


def test_ordered_sgd_fixed_q_and_regression(make_state):
    selector = OrderedSGD(q=5)
    selector.on_train_begin(make_state(task="regression"))
    w = tf.function(lambda b: selector.keep(b))(_batch(np.arange(8.0), 0)).numpy()
    assert np.array_equal(np.flatnonzero(w), [3, 4, 5, 6, 7])
    with pytest.raises(ValueError, match="regression"):
        OrderedSGD().on_train_begin(make_state(task="regression"))
    with pytest.raises(ValueError, match="q=0"):
        OrderedSGD(q=0)


def test_importance_sampling_is_unbiased(make_state):
    selector = ImportanceSampling(presample=4.0, tau_th=1.0)
    keep = _compiled(selector, make_state(batch_size=8))
    selector.tau_.assign(10.0)  # switched on
    rng = np.random.default_rng(0)
    losses = rng.gamma(1.0, size=32).astype(np.float32)
    quantity = rng.normal(size=32)
    estimates = []
    for step in range(3000):
        w = keep(_batch(losses, step)).numpy()
        assert np.count_nonzero(w) <= 8
        estimates.append(np.sum(w * quantity) / 32)
    se = np.std(estimates) / np.sqrt(len(estimates))
    assert abs(np.mean(estimates) - quantity.mean()) < 4 * se


@pytest.mark.parametrize("score", ["loss", "gnorm"])
def test_importance_sampling_is_unbiased_with_non_uniform_probabilities(score, make_state):
    """Scores differ, so p does: the ``count / (b p)`` weights make ``sum(w * loss) / B`` unbiased for the mean loss.

    The same draws without the weights (the plain mean of the b drawn losses)
    are biased towards high scores, by far more than the tolerance.  With
    ``score="loss"`` every draw's estimate is the mean loss itself (p is
    proportional to the loss: the zero-variance case), up to float32 rounding.
    """
    big, b = 32, 8
    selector = ImportanceSampling(presample=big / b, score=score, tau_th=1.0)
    keep = _compiled(selector, make_state(batch_size=b))
    selector.tau_.assign(10.0)  # switched on
    rng = np.random.default_rng(1)
    y_pred = rng.dirichlet(np.full(3, 0.5), size=big).astype(np.float32)
    y_true = rng.integers(0, 3, size=big).astype(np.int32)
    losses = -np.log(y_pred[np.arange(big), y_true] + 1e-7).astype(np.float32)  # cross-entropy of the outputs
    scores = losses if score == "loss" else np.linalg.norm(y_pred - np.eye(3)[y_true], axis=1)
    p = scores / scores.sum()
    assert p.max() > 5 * p.min()  # far from uniform
    batch = lambda step: _batch(losses, step, tf.constant(y_true), tf.constant(y_pred))  # noqa: E731
    weights = np.array([keep(batch(step)).numpy() for step in range(4000)])
    weighted = weights @ losses / big
    truth = losses.mean()
    se = np.std(weighted) / np.sqrt(len(weighted))
    assert abs(np.mean(weighted) - truth) < 4 * se + 1e-5 * truth  # statistical plus float32 tolerance
    counts = weights * b * p  # w = count / (b p): whole draws, b of them per step
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-3)
    assert (np.round(counts).sum(axis=1) == b).all()
    unweighted = np.round(counts) @ losses / b
    assert np.mean(unweighted) - truth > 20 * np.std(unweighted) / np.sqrt(len(unweighted))


def test_importance_sampling_observes_until_variance_reduction(make_state):
    selector = ImportanceSampling(presample=4.0, score="loss")
    state = make_state(batch_size=8, num_samples=1000)
    keep = _compiled(selector, state)
    assert np.isclose(selector.threshold(8, 1000), (32 + 24) / 24)
    assert not bool(selector.active(0))
    # Before the switch the loop hands over the b trained samples: their weights stay, tau learns from them.
    flat = np.ones(8, np.float32)
    np.testing.assert_array_equal(keep(_batch(flat, 0)).numpy(), np.ones(8))
    assert np.isclose(selector.tau_.numpy(), 0.1)  # EMA of a reduction of 1 from 0
    skewed = np.r_[100.0, np.full(7, 1e-3)].astype(np.float32)  # reduction -> sqrt(8) > tau_th
    for step in range(1, 100):
        keep(_batch(skewed, step))
    assert bool(selector.active(100))  # the switch, read inside the step before every step
    big = np.r_[np.full(4, 100.0), np.full(28, 1e-3)].astype(np.float32)
    w = keep(_batch(big, 100)).numpy()
    assert set(np.flatnonzero(w)) <= {0, 1, 2, 3}


def test_importance_plan_always_presamples(make_state):
    selector = ImportanceSampling(presample=3.0)
    state = make_state(num_samples=100, batch_size=10)
    selector.on_train_begin(state)
    plan = selector(state)
    assert len(plan) == 10 and all(len(b) == 30 for b in plan)


def test_importance_sampling_trains_b_uniform_samples_before_its_switch():
    from helpers import make_data, make_loop

    x, y = make_data(n=96)
    loop = make_loop(ImportanceSampling(tau_th=1e9), batch_size=16)
    frame = loop.fit((x, y), epochs=2, verbose=0).frame
    assert loop.step.variant == "compact" and loop.step.active is not None
    # No presampling and no extra forward pass: every forwarded sample is a trained one, b per step.
    assert frame["samples_seen"].tolist() == frame["samples_backpropagated"].tolist() == [96, 192]
    assert frame["step"].tolist() == [6, 12]
    switched = make_loop(ImportanceSampling(tau_th=1.0, momentum=0.0), batch_size=16)  # on after one step
    frame = switched.fit((x, y), epochs=3, verbose=0).frame
    assert frame["samples_seen"].iloc[-1] > frame["samples_backpropagated"].iloc[-1]  # it presampled B = 48


def test_gradient_norm_bound():
    y_pred = tf.constant([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    g = gradient_norm_bound(tf.constant([0, 1]), y_pred).numpy()
    assert np.allclose(g, [np.linalg.norm([-0.3, 0.2, 0.1]), np.linalg.norm([0.1, -0.9, 0.8])])
    g = gradient_norm_bound(tf.constant([[1.0], [2.0]]), tf.constant([[1.5], [0.0]])).numpy()
    assert np.allclose(g, [0.5, 2.0])  # a linear output with squared error: |y_pred - y|


def test_gradient_norm_bound_for_logits():
    logits = tf.constant([[2.0, -1.0, 0.5], [0.3, 0.2, -2.0]])
    probs = tf.nn.softmax(logits)
    expected = gradient_norm_bound(tf.constant([0, 1]), probs, "probabilities").numpy()
    for outputs in ("logits", "auto"):  # auto: rows outside [0, 1] or not summing to 1 are logits
        np.testing.assert_allclose(gradient_norm_bound(tf.constant([0, 1]), logits, outputs).numpy(), expected,
                                   rtol=1e-6)
    np.testing.assert_allclose(gradient_norm_bound(tf.constant([0, 1]), probs).numpy(), expected, rtol=1e-6)
    # One sigmoid output: a logit of 3 for label 1 is p = sigmoid(3).
    g = gradient_norm_bound(tf.constant([[1.0]]), tf.constant([[3.0]])).numpy()
    np.testing.assert_allclose(g, [1 - 1 / (1 + np.exp(-3.0))], rtol=1e-6)
    assert ImportanceSampling().score == "gnorm"
