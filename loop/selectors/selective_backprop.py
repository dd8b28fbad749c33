"""Selective backprop: backpropagate a sample with probability rising with its loss percentile."""

import math

import numpy as np
import tensorflow as tf

from loop.selectors._common import check_number
from loop.selectors.base import Selector, register
from loop.selectors.baselines import chunk


def keep_probability(percentile, beta):
    """SB's selection probability ``percentile ** beta``."""
    return percentile ** beta


class PrimedFilter(Selector):
    """What SelectiveBackprop and its RandomDrop control share: shuffled candidates, priming, seeded draws.

    Subclasses set ``prime_epochs`` and the learned ``seed_`` and ``active_``
    in ``__init__``, call :meth:`_prime` from ``on_train_begin``, and draw with
    :meth:`_uniform`, which seeds by candidate batch (``StepBatch.candidate``).
    """

    def _prime(self, state):
        if self.seed_ is None:
            self.seed_ = int(state.rng.integers(2 ** 31 - 1))
        self.active_ = _variable(self.active_, np.bool_(self.prime_epochs == 0), f"{type(self).__name__}_active")

    def __call__(self, state):
        if isinstance(self.active_, tf.Variable):
            self.active_.assign(state.epoch >= self.prime_epochs)
        return chunk(state.rng.permutation(state.num_samples), state.batch_size)

    def active(self, step):
        """False during the priming epochs: the batch trains with plain backprop."""
        return self.active_

    def _while_active(self, batch, select):
        """``select(batch)`` once primed; during priming the plan's weights, with no statistics updated."""
        weights = tf.cast(batch.weights, tf.float32)
        return tf.cond(tf.cast(self.active_, tf.bool), lambda: select(batch), lambda: weights)

    def expected_keep_rate(self):
        """The expected fraction of candidates kept once primed (1 when every candidate batch makes a step)."""
        raise NotImplementedError

    def epochs_for_budget(self, baseline_epochs, num_samples, batch_size):
        """Loop epochs that make, in expectation, at least the baseline's ``baseline_epochs * ceil(N / b)`` steps.

        The priming epochs make a baseline epoch's steps each; every later
        epoch about ``N * rate / b`` steps of ``b`` accumulated samples
        (:meth:`expected_keep_rate`), so the epoch count is
        ``prime + ceil((E - prime) * ceil(N / b) / (N * rate / b))``.
        """
        owner = f"{type(self).__name__}.epochs_for_budget"
        baseline_epochs = check_number(owner, "baseline_epochs", baseline_epochs, low=0, integer=True)
        num_samples = check_number(owner, "num_samples", num_samples, low=1, integer=True)
        batch_size = min(check_number(owner, "batch_size", batch_size, low=1, integer=True), num_samples)
        primed = min(baseline_epochs, self.prime_epochs)
        if self.filter_mode != "accumulate" or baseline_epochs == primed:
            return baseline_epochs
        steps = (baseline_epochs - primed) * math.ceil(num_samples / batch_size)
        return primed + math.ceil(steps * batch_size / (num_samples * self.expected_keep_rate()) - 1e-9)

    def expected_steps(self, epochs, num_samples, batch_size):
        """Optimizer steps, in expectation, of ``epochs`` loop epochs (for a schedule's horizon).

        A priming epoch steps once per candidate batch, ``ceil(N / b)``; once
        primed, the kept samples (``N * rate`` an epoch, :meth:`expected_keep_rate`)
        queue across epochs and train in batches of exactly ``b``, so the rest
        make ``floor((epochs - prime) * N * rate / b)`` steps.  Without
        accumulation (``"compact"``) every candidate batch is a step.
        """
        owner = f"{type(self).__name__}.expected_steps"
        epochs = check_number(owner, "epochs", epochs, low=0, integer=True)
        num_samples = check_number(owner, "num_samples", num_samples, low=1, integer=True)
        batch_size = min(check_number(owner, "batch_size", batch_size, low=1, integer=True), num_samples)
        per_epoch = math.ceil(num_samples / batch_size)
        primed = min(epochs, self.prime_epochs)
        if self.filter_mode != "accumulate":
            return epochs * per_epoch
        kept = (epochs - primed) * num_samples * self.expected_keep_rate()
        return primed * per_epoch + int(math.floor(kept / batch_size + 1e-9))

    def _uniform(self, n, batch):
        """``n`` stateless uniforms, seeded by the run's seed and the candidate batch's number.

        Every candidate batch draws afresh, as the reference does, also when no
        optimizer step came between two of them (``"accumulate"`` mode).

        Raises:
            ValueError: ``batch.candidate`` is None (a ``StepBatch`` built by hand without it).
        """
        if batch.candidate is None:
            raise ValueError(f"{type(self).__name__}.keep got a StepBatch with candidate=None; its draws are seeded "
                             "by the candidate batch's number: pass candidate=<int64 scalar> (the loop's step does)")
        seed = tf.stack([tf.constant(self.seed_, tf.int64), tf.cast(batch.candidate, tf.int64)])
        return tf.random.stateless_uniform([n], seed=seed)


@register("selective_backprop")
class SelectiveBackprop(PrimedFilter):
    """Selective backprop: forward candidates, keep each with probability percentile^β, backpropagate full batches.

    Definition (Jiang et al., "Accelerating Deep Learning by Focusing on the
    Biggest Losers", arXiv 1910.00762, Algorithm 1): the candidates are a seeded
    shuffle cut into batches of ``batch_size``.  Each candidate batch is
    forwarded without gradient (``training=False``); its losses join a window
    of the last ``history`` losses, and each candidate is kept with probability
    ``percentile ** beta``, where the percentile is the fraction of the window's
    losses strictly below its own.  Kept samples queue on the device until
    exactly ``batch_size`` are queued; then one forward and backward pass over
    those ``batch_size`` rows (the plain mean of their losses) makes one
    optimizer step (``filter_mode = "accumulate"``, see :mod:`loop.protocol`).
    The first ``prime_epochs`` epochs train every batch with plain backprop and
    no extra forward pass (the ``active`` switch), as the reference primes with
    one epoch of the whole training set.

    Reference: code ``angelajiang/SelectiveBackprop``: ``lib/calculators.py``
    (``BatchedRelativeProbabilityCalculator``: the window is updated with the
    batch's losses before their probabilities are computed), ``lib/hist.py``
    (``UnboundedHistogram.percentile_of_score``: the count of strictly lower
    losses over the window's length), ``lib/selectors.py`` (``SamplingSelector``:
    keep if a uniform draw < the probability; ``PrimedSelector`` with
    ``num_images_to_prime`` = the training-set size in ``SelectiveBackpropper.py``),
    ``lib/trainer.py`` (``Trainer.get_batch``: backpropagate once ``batch_size``
    selected samples are queued) and ``lib/backproppers.py``
    (``SamplingBackpropper``: the mean loss of the chosen samples).  Their names
    → ours: ``prob_pow`` → ``beta``; ``max_history_len`` (1024) → ``history``;
    ``num_images_to_prime`` (one epoch) → ``prime_epochs=1``; ``batch_size`` is
    the loop's; ``sampling_min`` is 0 in the reference and fixed at 0 here.

    Deviations: the reference backpropagates the partial queue left at the end
    of each epoch; here the queue carries over into the next epoch, so every
    optimizer step after priming backpropagates exactly ``batch_size`` samples.
    The draws are stateless uniforms seeded by a seed drawn from ``state.rng`` and
    the candidate batch's number (``StepBatch.candidate``), not a global
    generator: fresh for every candidate batch, as the reference's.

    ``accumulate=False`` is this project's earlier variant: each candidate batch
    makes one optimizer step on its kept rows only (weight ``n / m`` for ``m`` of
    ``n`` kept; the highest-loss row if none is), in ``"compact"`` mode.  It makes
    about ``β + 1`` times more optimizer steps per backpropagated sample.

    Raises:
        ValueError: ``beta`` < 0, ``history`` < 1 or ``prime_epochs`` < 0.
    """

    #: The tunable knob for ``--tune``: the paper runs β = 1, 2 and 3 (keeping about 1/2, 1/3 and 1/4 of the samples).
    tune_space = {"beta": ("uniform", 1.0, 3.0)}

    def __init__(self, beta=3.0, history=1024, accumulate=True, prime_epochs=1):
        self.beta = check_number("SelectiveBackprop", "beta", beta, low=0)
        self.history = check_number("SelectiveBackprop", "history", history, low=1, integer=True)
        self.accumulate = bool(accumulate)
        self.prime_epochs = check_number("SelectiveBackprop", "prime_epochs", prime_epochs, low=0, integer=True)
        self.losses_ = None   # tf.Variable [history], the ring buffer of recent candidate losses
        self.seen_ = None     # tf.Variable int64, losses pushed so far
        self.active_ = None   # tf.Variable bool, False while priming
        self.seed_ = None

    @property
    def filter_mode(self):
        """``"accumulate"`` (the reference), or ``"compact"`` with ``accumulate=False``."""
        return "accumulate" if self.accumulate else "compact"

    def expected_keep_rate(self):
        """``E[u ** beta] = 1 / (beta + 1)`` for a percentile ``u`` uniform on [0, 1]."""
        return 1.0 / (self.beta + 1.0)

    def on_train_begin(self, state):
        self._prime(state)
        self.losses_ = _variable(self.losses_, np.zeros(self.history, np.float32), "sb_history")
        self.seen_ = _variable(self.seen_, np.int64(0), "sb_seen")

    def percentiles(self, losses):
        """Pushes ``losses`` into the window, then returns each one's fraction of window losses strictly below it."""
        self._push(losses)
        filled = tf.minimum(self.seen_, self.history)
        valid = tf.range(self.history, dtype=tf.int64) < filled
        below = tf.logical_and(valid[None, :], self.losses_[None, :] < losses[:, None])
        return tf.reduce_sum(tf.cast(below, tf.float32), axis=1) / tf.cast(filled, tf.float32)

    def keep(self, batch):
        return self._while_active(batch, self._select)

    def _select(self, batch):
        losses = tf.cast(tf.reshape(batch.losses, [-1]), tf.float32)
        n = tf.shape(losses)[0]
        prob = keep_probability(self.percentiles(losses), self.beta)
        mask = self._uniform(n, batch) < prob
        weights = tf.cast(batch.weights, tf.float32)
        if self.accumulate:
            return weights * tf.cast(mask, tf.float32)
        mask = tf.cond(tf.reduce_any(mask), lambda: mask,
                       lambda: tf.one_hot(tf.argmax(losses), n, on_value=True, off_value=False))
        kept = tf.reduce_sum(tf.cast(mask, tf.float32))
        return weights * tf.cast(mask, tf.float32) * tf.cast(n, tf.float32) / kept

    def _push(self, losses):
        losses = losses[-self.history:]
        m = tf.cast(tf.shape(losses)[0], tf.int64)
        slots = (self.seen_ + tf.range(m, dtype=tf.int64)) % self.history
        self.losses_.scatter_update(tf.IndexedSlices(losses, slots))  # also works on mirrored variables
        self.seen_.assign_add(m)


def _variable(current, initial, name):
    """A ``tf.Variable`` holding ``current`` (restored state) or ``initial``; an existing variable is kept."""
    if isinstance(current, tf.Variable):
        return current
    value = initial if current is None else np.asarray(current, dtype=np.asarray(initial).dtype)
    return tf.Variable(value, trainable=False, name=name)
