"""Stale selective backprop (StaleSB): an epoch's keep decisions made at its start from cached losses."""

import math

import numpy as np

from loop.selectors._common import check_number
from loop.selectors.base import Selector, register
from loop.selectors.baselines import chunk
from loop.selectors.selective_backprop import keep_probability


def window_percentiles(losses, window, history, batch_size):
    """Percentiles of a stream of candidate losses against a sliding window, as selective backprop computes them.

    The candidates arrive in batches of ``batch_size``.  Each batch's losses
    first join the window of the last ``history`` losses (which starts as
    ``window``, the losses carried over from earlier batches); then each
    candidate's percentile is the fraction of the window's losses strictly
    below its own.

    Returns:
        ``(percentiles, window)``: one percentile in [0, 1) per candidate, and
        the last ``history`` losses of the stream, to carry over.
    """
    losses = np.asarray(losses, dtype=np.float32)
    stream = np.concatenate([np.asarray(window, dtype=np.float32)[-history:], losses])
    offset = len(stream) - len(losses)
    percentiles = np.empty(len(losses))
    for start in range(0, len(losses), batch_size):
        stop = min(start + batch_size, len(losses))
        end = offset + stop
        current = np.sort(stream[max(0, end - history):end])
        percentiles[start:stop] = np.searchsorted(current, losses[start:stop], side="left") / len(current)
    return percentiles, stream[-history:].copy()


@register("stale_selective_backprop")
class StaleSelectiveBackprop(Selector):
    """Selective backprop on cached losses that are refreshed every ``staleness`` epochs.

    Definition (Jiang et al., "Accelerating Deep Learning by Focusing on the
    Biggest Losers", arXiv 1910.00762, "StaleSB"): the first ``prime_epochs``
    epochs train every sample once, in a seeded shuffle.  After that, each
    epoch's candidates are a seeded shuffle of all samples, each with its
    latest known loss.  On refresh epochs (every ``staleness``-th epoch after
    the last priming epoch: with ``prime_epochs=1``, the epochs with
    ``epoch % staleness == 0``) every sample is re-scored first with
    ``state.score`` (a forward pass with ``training=False``, counted as
    training time); on the other epochs the cached losses ``state.losses``
    are used as they are (the losses of each sample's latest forward pass:
    the last refresh, or a later training step), and only never-seen samples
    are scored.  The candidates' losses enter, batch by batch
    (``batch_size``), a window of the last ``history`` losses, which carries
    over from epoch to epoch; each candidate's percentile is the fraction of
    the window's losses strictly below its own (its own batch included), and
    it is kept with probability ``percentile ** beta``.  The kept samples, in
    candidate order, are cut into batches of ``batch_size``, so every batch
    but the epoch's last backpropagates exactly ``batch_size`` samples.

    Reference: code ``angelajiang/SelectiveBackprop``, run as
    ``examples/train.py --strategy sb --fp_selector stale`` (``--staleness``
    defaults to 3 there).  ``lib/fp_selectors.py``: ``StaleSelector`` counts
    ``epochs_since_update`` per sample and forward-passes it again when the
    count reaches ``staleness`` (or when it has no loss yet), otherwise it
    reuses the cached loss; ``PrimedSelector`` forward-passes everything while
    the first ``num_images_to_prime`` samples (the training-set size, set in
    ``lib/SelectiveBackpropper.py``) are trained, i.e. during epoch 0.
    ``lib/forwardproppers.py`` (``CutoutForwardpropper``: the refresh forward
    pass runs in eval mode, stores the loss and resets the count), so every
    sample is refreshed at epochs 3, 6, 9, ... after the priming epoch 0.
    ``lib/backproppers.py`` (``SamplingBackpropper``: a trained sample's cached
    loss becomes its training-pass loss, as in our loss table).
    ``lib/calculators.py`` (``BatchedRelativeProbabilityCalculator``: a
    batch's losses join the window before their percentiles are taken),
    ``lib/hist.py`` (``UnboundedHistogram``: the count of strictly lower
    losses over the window's length), ``lib/selectors.py``
    (``SamplingSelector``: keep if a uniform draw < the probability;
    ``PrimedSelector``: nothing is filtered during epoch 0, which also pushes
    nothing into the window) and ``lib/trainer.py`` (``MemoizedTrainer``:
    backpropagate once ``batch_size`` kept samples are queued, the partial
    queue at the epoch's end).  Their names → ours: ``prob_pow`` → ``beta``
    (3), ``staleness`` → ``staleness`` (3), ``max_history_len`` (1024) →
    ``history``, ``num_images_to_prime`` (one epoch) → ``prime_epochs=1``;
    ``sampling_min`` is 0 there and here.

    Deviations: the reference's refresh forward passes run batch by batch
    during the refresh epoch, so each loss is as fresh as the model at that
    batch; here all samples are re-scored at the start of the refresh epoch.
    On the epochs in between, the reference pushes the cached losses into the
    window in chunks of five loader batches (its forward queue flushes when it
    holds more than four batches); here in chunks of ``batch_size``, as on
    refresh epochs.  If no sample is kept, the reference makes no step that
    epoch; a plan cannot be empty, so here the highest-loss candidate is
    trained.  Draws come from ``state.rng``, not a global generator.

    Variants: ``staleness=None`` never refreshes (this project's earlier
    behaviour): a sample's cached loss then changes only when it is trained,
    so a rarely kept sample is judged by a loss from long ago (at percentile
    0.3 and ``beta=3`` it is kept with probability 0.027 an epoch);
    ``history=None`` takes each percentile among the latest losses of the
    whole training set instead of the sliding window.

    Raises:
        ValueError: ``beta`` < 0, or ``staleness``, ``history`` < 1, or
            ``prime_epochs`` < 0, or any of them not an integer.
    """

    def __init__(self, beta=3.0, staleness=3, history=1024, prime_epochs=1):
        owner = "StaleSelectiveBackprop"
        self.beta = check_number(owner, "beta", beta, low=0)
        self.staleness = None if staleness is None else check_number(owner, "staleness", staleness, low=1,
                                                                      integer=True)
        self.history = None if history is None else check_number(owner, "history", history, low=1, integer=True)
        self.prime_epochs = check_number(owner, "prime_epochs", prime_epochs, low=0, integer=True)
        self.window_ = None   # the last ``history`` candidate losses, carried over between epochs

    def expected_steps(self, epochs, num_samples, batch_size):
        """Optimizer steps of ``epochs`` loop epochs, in expectation (for a schedule's horizon).

        ``ceil(N / b)`` per priming epoch; after it an epoch's kept samples,
        about ``N / (beta + 1)`` (the mean of ``percentile ** beta`` for
        uniform percentiles), are cut into ``ceil(N / ((beta + 1) b))`` batches.
        """
        owner = "StaleSelectiveBackprop.expected_steps"
        epochs = check_number(owner, "epochs", epochs, low=0, integer=True)
        num_samples = check_number(owner, "num_samples", num_samples, low=1, integer=True)
        batch_size = min(check_number(owner, "batch_size", batch_size, low=1, integer=True), num_samples)
        primed = min(epochs, self.prime_epochs)
        kept = max(1, math.ceil(num_samples / ((self.beta + 1.0) * batch_size)))
        return primed * math.ceil(num_samples / batch_size) + (epochs - primed) * kept

    def refreshes(self, epoch):
        """Whether every sample is re-scored at the start of ``epoch``."""
        if self.staleness is None or epoch < self.prime_epochs:
            return False
        return (epoch - max(self.prime_epochs - 1, 0)) % self.staleness == 0

    def __call__(self, state):
        n = state.num_samples
        order = state.rng.permutation(n)
        if state.epoch < self.prime_epochs:
            return chunk(order, state.batch_size)
        losses = np.array(state.losses, dtype=np.float32)
        rescore = np.arange(n) if self.refreshes(state.epoch) else np.flatnonzero(np.isnan(losses))
        if len(rescore):
            losses[rescore] = state.score(rescore)
        candidates = losses[order]
        if self.history is None:
            percentiles = np.searchsorted(np.sort(losses), candidates, side="left") / n
        else:
            window = np.zeros(0, np.float32) if self.window_ is None else self.window_
            percentiles, self.window_ = window_percentiles(candidates, window, self.history, state.batch_size)
        kept = order[state.rng.random(n) < keep_probability(percentiles, self.beta)]
        if len(kept) == 0:
            kept = order[[int(np.argmax(candidates))]]
        return chunk(kept, state.batch_size)
