"""Selective backprop: backpropagate a sample with probability rising with its loss percentile."""

import numpy as np
import tensorflow as tf

from loop.selectors._common import check_number
from loop.selectors.base import Selector, register
from loop.selectors.baselines import chunk


def keep_probability(percentile, beta):
    """SB's selection probability ``percentile ** beta``."""
    return percentile ** beta


@register("selective_backprop")
class SelectiveBackprop(Selector):
    """Selective backprop as an in-step filter.

    Definition (Jiang et al., "Accelerating Deep Learning by Focusing on the
    Biggest Losers", arXiv 1910.00762, Sec. 3): every candidate sample's loss
    (from the forward pass of the candidate batch) is placed among the last
    ``history`` losses seen (percentile = fraction of them <= the loss; 1 while
    the history is empty), and the sample is kept for the backward pass with
    probability ``percentile ** beta``.  The candidate losses then enter the
    history ring buffer.  The kept samples are averaged (weight ``n / m`` for
    m kept of n), as SB backpropagates a plain mean over the selected batch; if
    none is kept, the highest-loss sample is.  The candidate batches are a
    seeded shuffle.  History and counters are ``tf.Variable`` objects created in
    :meth:`on_train_begin`; the draws are stateless, seeded by the loop's
    seed and the global step.

    Raises:
        ValueError: ``beta`` < 0 or ``history`` < 1.
    """

    def __init__(self, beta=3.0, history=1024):
        self.beta = check_number("SelectiveBackprop", "beta", beta, low=0)
        self.history = check_number("SelectiveBackprop", "history", history, low=1, integer=True)
        self.losses_ = None   # tf.Variable [history], the ring buffer
        self.seen_ = None     # tf.Variable int64, losses pushed so far
        self.seed_ = None

    def on_train_begin(self, state):
        if self.seed_ is None:
            self.seed_ = int(state.rng.integers(2 ** 31 - 1))
        if not isinstance(self.losses_, tf.Variable):
            init = np.zeros(self.history, np.float32) if self.losses_ is None else self.losses_
            self.losses_ = tf.Variable(np.asarray(init, np.float32), trainable=False, name="sb_history")
        if not isinstance(self.seen_, tf.Variable):
            self.seen_ = tf.Variable(np.int64(0 if self.seen_ is None else self.seen_), trainable=False,
                                     name="sb_seen")

    def __call__(self, state):
        return chunk(state.rng.permutation(state.num_samples), state.batch_size)

    def keep(self, batch):
        losses = tf.cast(tf.reshape(batch.losses, [-1]), tf.float32)
        n = tf.shape(losses)[0]
        size = self.history
        filled = tf.minimum(self.seen_, size)
        valid = tf.range(size, dtype=tf.int64) < filled
        below = tf.logical_and(valid[None, :], self.losses_[None, :] <= losses[:, None])
        count = tf.reduce_sum(tf.cast(below, tf.float32), axis=1)
        percentile = tf.where(filled > 0, count / tf.maximum(tf.cast(filled, tf.float32), 1.0), 1.0)
        prob = keep_probability(percentile, self.beta)
        seed = tf.stack([tf.constant(self.seed_, tf.int64), tf.cast(batch.step, tf.int64)])
        mask = tf.random.stateless_uniform([n], seed=seed) < prob
        mask = tf.cond(tf.reduce_any(mask), lambda: mask,
                       lambda: tf.one_hot(tf.argmax(losses), n, on_value=True, off_value=False))
        kept = tf.reduce_sum(tf.cast(mask, tf.float32))
        self._push(losses)
        return tf.cast(batch.weights, tf.float32) * tf.cast(mask, tf.float32) * tf.cast(n, tf.float32) / kept

    def _push(self, losses):
        losses = losses[-self.history:]
        m = tf.cast(tf.shape(losses)[0], tf.int64)
        slots = (self.seen_ + tf.range(m, dtype=tf.int64)) % self.history
        self.losses_.scatter_update(tf.IndexedSlices(losses, slots))  # also works on mirrored variables
        self.seen_.assign_add(m)


@register("stale_selective_backprop")
class StaleSelectiveBackprop(Selector):
    """Selective backprop on last-seen losses, decided at the start of the epoch.

    Definition (Jiang et al., arXiv 1910.00762, Sec. 4.3 "StaleSB", which
    reuses losses from earlier forward passes instead of a fresh one): every
    sample is kept for this epoch with probability ``percentile ** beta``,
    where the percentile is the fraction of all seen last-seen losses
    (``state.losses``) that are <= its own; never-seen samples are always kept.
    The kept samples are shuffled and cut into batches of ``batch_size``; no
    extra forward pass is made.  If none is kept, the highest-loss sample is.
    """

    def __init__(self, beta=3.0):
        self.beta = check_number("StaleSelectiveBackprop", "beta", beta, low=0)

    def __call__(self, state):
        losses = np.asarray(state.losses, dtype=np.float64)
        seen = np.isfinite(losses)
        prob = np.ones(len(losses))
        if seen.any():
            history = np.sort(losses[seen])
            prob[seen] = keep_probability(np.searchsorted(history, losses[seen], side="right") / len(history),
                                          self.beta)
        kept = np.flatnonzero(state.rng.random(len(losses)) < prob)
        if len(kept) == 0:
            kept = np.array([int(np.nanargmax(losses))])
        return chunk(state.rng.permutation(kept), state.batch_size)
