"""Ordered SGD: average only the q largest losses of each mini-batch."""

import numpy as np
import tensorflow as tf

from loop.selectors._common import check_number
from loop.selectors.base import Selector, register
from loop.selectors.baselines import chunk

ACCURACY_KEYS = ("accuracy", "sparse_categorical_accuracy", "categorical_accuracy", "binary_accuracy", "acc")
SCHEDULE = ((0.995, 16), (0.95, 8), (0.9, 4), (0.8, 2))


def paper_divisor(accuracy):
    """The divisor d of ``q = s / d`` for a train accuracy, per the paper's schedule."""
    if accuracy is None or not np.isfinite(accuracy):
        return 1
    for threshold, divisor in SCHEDULE:
        if accuracy >= threshold:
            return divisor
    return 1


@register("ordered_sgd")
class OrderedSGD(Selector):
    """Ordered SGD as an in-step filter.

    Definition (Kawaguchi & Lu, "Ordered SGD: A New Stochastic Optimization
    Framework for Empirical Risk Minimization", AISTATS 2020, Algorithm 1 and
    Sec. 6): each mini-batch of s samples (a seeded shuffle) is forwarded, and
    only the q largest losses are averaged and backpropagated (weight ``s / q``
    on each, exactly q kept; ties by position).  With ``q=None`` q follows the
    paper's schedule on the train accuracy of the previous epoch (read from
    ``state.logs`` at the start of each epoch): ``q = s`` at first, ``s/2`` at
    accuracy >= 80%, ``s/4`` at >= 90%, ``s/8`` at >= 95%, ``s/16`` at >=
    99.5% (``q = max(1, s // d)``).  With an integer ``q`` it is fixed
    (``min(q, s)``).  The divisor is a ``tf.Variable`` assigned at epoch start.
    As in the paper, the top-q choice uses the losses of the training forward
    pass itself (``filter_mode = "mask"``): one forward pass, no extra scoring
    pass.

    Raises:
        ValueError: ``q`` < 1; or, with ``q=None``, a task without an accuracy.
    """

    filter_mode = "mask"

    def __init__(self, q=None):
        if q is not None:
            check_number("OrderedSGD", "q", q, low=1, integer=True)
        self.q = q
        self.divisor_ = None   # tf.Variable int32

    def _ensure_variable(self):
        if not isinstance(self.divisor_, tf.Variable):
            self.divisor_ = tf.Variable(np.int32(1 if self.divisor_ is None else self.divisor_), trainable=False,
                                        name="osgd_divisor")

    def on_train_begin(self, state):
        if self.q is None and (state.num_classes is None or getattr(state, "task", "") == "regression"):
            raise ValueError("OrderedSGD(q=None) follows the train accuracy, which a regression task lacks; "
                             "pass a fixed q, e.g. OrderedSGD(q=16)")
        self._ensure_variable()

    def __call__(self, state):
        self._ensure_variable()
        if self.q is None:
            logs = state.logs or {}
            accuracy = next((logs[k] for k in ACCURACY_KEYS if k in logs), None)
            self.divisor_.assign(paper_divisor(None if accuracy is None else float(accuracy)))
        return chunk(state.rng.permutation(state.num_samples), state.batch_size)

    def keep(self, batch):
        losses = tf.cast(tf.reshape(batch.losses, [-1]), tf.float32)
        n = tf.shape(losses)[0]
        if self.q is None:
            q = tf.maximum(1, n // self.divisor_)
        else:
            q = tf.minimum(tf.constant(self.q, tf.int32), n)
        top = tf.math.top_k(losses, q).indices
        mask = tf.reduce_sum(tf.one_hot(top, n, dtype=tf.float32), axis=0)
        return tf.cast(batch.weights, tf.float32) * mask * tf.cast(n, tf.float32) / tf.cast(q, tf.float32)
