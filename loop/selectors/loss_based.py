"""Selectors that order or sample the epoch by each sample's last-seen loss.

All read the free, stale loss table ``state.losses`` (written by the train
step) and re-score with ``state.score`` only when asked (``refresh_every`` /
``recompute_every``).  A never-seen sample (NaN loss) counts as the hardest.
"""

import math

import numpy as np

from loop.selectors._common import (check_choice, check_number, check_refresh, class_labels, interleave,
                                    latest_losses, progress, sort_by_loss)
from loop.selectors.base import Selector, register
from loop.selectors.baselines import chunk


@register("loss_sorted")
class LossSorted(Selector):
    """Mini-batches of samples sorted by their last-seen loss.

    Definition (the seed experiments of this project): every epoch, sort the
    samples by last-seen loss (``order="desc"``: highest first; ``"asc"``:
    lowest first), never-seen samples counting as the highest and ties broken
    at random, and cut the order into batches of ``batch_size`` in that order.
    With ``per_class=True`` each class is sorted on its own and the classes'
    sorted queues are interleaved round-robin (classes in a random order), so
    every batch is also class-balanced.  With ``refresh_every=k`` all losses
    are re-scored with ``state.score`` on epochs 0, k, 2k, ...

    Args:
        order: ``"desc"`` or ``"asc"``.
        per_class: sort within each class (classification only).
        refresh_every: ``None`` or a positive number of epochs.
    """

    def __init__(self, order="desc", per_class=False, refresh_every=None):
        self.order = check_choice("LossSorted", "order", order, ("desc", "asc"))
        self.per_class = per_class
        self.refresh_every = check_refresh("LossSorted", refresh_every)

    @property
    def tasks(self):
        return ("classification",) if self.per_class else Selector.tasks

    def __call__(self, state):
        labels = class_labels(state, "LossSorted(per_class=True)") if self.per_class else None
        losses = latest_losses(state, self.refresh_every)
        descending = self.order == "desc"
        if labels is None:
            order = sort_by_loss(np.arange(state.num_samples), losses, state.rng, descending)
        else:
            classes = state.rng.permutation(np.unique(labels))
            order = interleave([sort_by_loss(np.flatnonzero(labels == c), losses, state.rng, descending)
                                for c in classes])
        return chunk(order, state.batch_size)


@register("curriculum")
class Curriculum(Selector):
    """Curriculum / self-paced ordering by last-seen loss with a pacing function.

    Definition (Bengio et al., ICML 2009; Kumar et al., NeurIPS 2010 for the
    self-paced, loss-based scoring; pacing functions as in Hacohen & Weinshall,
    ICML 2019 and Platanios et al., NAACL 2019): every epoch the samples are
    ranked by last-seen loss (``order="easy"``: lowest first; ``"hard"``:
    highest first; never-seen counts as the highest) and the training pool is
    the first ``ceil(f(t) * N)`` of them, shuffled and cut into batches.
    ``t = min(1, epoch / (ramp * epochs))`` and

    * ``"linear"``:    f = start + (1 - start) * t
    * ``"root"``:      f = sqrt(start**2 + (1 - start**2) * t)
    * ``"geometric"``: f = start * (1 / start) ** t

    so the pool grows from ``start`` of the data to all of it after ``ramp`` of
    the epochs.  Note that with ``order="easy"`` and no re-scoring, samples
    never seen stay at the end of the ranking until the pool reaches them.
    """

    def __init__(self, order="easy", pacing="linear", start=0.2, ramp=0.5, refresh_every=None):
        self.order = check_choice("Curriculum", "order", order, ("easy", "hard"))
        self.pacing = check_choice("Curriculum", "pacing", pacing, ("linear", "root", "geometric"))
        self.start = check_number("Curriculum", "start", start, low=0, high=1, low_open=True)
        self.ramp = check_number("Curriculum", "ramp", ramp, low=0, high=1, low_open=True)
        self.refresh_every = check_refresh("Curriculum", refresh_every)

    def fraction(self, epoch, epochs):
        """The fraction of the data in the pool at ``epoch`` of ``epochs``."""
        t = min(1.0, epoch / max(1e-12, self.ramp * epochs))
        if self.pacing == "linear":
            f = self.start + (1 - self.start) * t
        elif self.pacing == "root":
            f = math.sqrt(self.start ** 2 + (1 - self.start ** 2) * t)
        else:
            f = self.start * (1 / self.start) ** t
        return min(1.0, f)

    def __call__(self, state):
        losses = latest_losses(state, self.refresh_every)
        ranked = sort_by_loss(np.arange(state.num_samples), losses, state.rng, self.order == "hard")
        size = max(1, math.ceil(self.fraction(state.epoch, state.epochs) * state.num_samples - 1e-9))
        return chunk(state.rng.permutation(ranked[:size]), state.batch_size)


@register("online_batch")
class OnlineBatchSelection(Selector):
    """Online batch selection: rank-based sampling by last-seen loss.

    Definition (Loshchilov & Hutter, "Online Batch Selection for Faster
    Training of Neural Networks", arXiv 1511.06343, Sec. 3): rank the samples
    by last-seen loss, highest first (rank r = 0 .. N-1; never-seen first, ties
    at random); sample r is drawn with probability
    ``p(r) ∝ exp(-log(s_e) * r / N)``, so the top-ranked sample is ``s_e``
    times as likely as the last.  ``s_e`` is annealed exponentially from
    ``s_e0`` at the first epoch to ``s_e_end`` at the last:
    ``s_e = s_e0 * (s_e_end / s_e0) ** (epoch / (epochs - 1))``.  Every epoch
    draws ``N`` samples with replacement and cuts them into batches, so an
    epoch has as many steps as the baseline's.  The ranking uses the losses the
    train step recorded; with ``recompute_every=k`` all losses are re-scored on
    epochs 0, k, 2k, ... (the paper's periodic recomputation).  The paper's
    default pressure is ``s_e0 = s_e_end = 100``.
    """

    def __init__(self, s_e0=100.0, s_e_end=100.0, recompute_every=None):
        self.s_e0 = check_number("OnlineBatchSelection", "s_e0", s_e0, low=1)
        self.s_e_end = check_number("OnlineBatchSelection", "s_e_end", s_e_end, low=1)
        self.recompute_every = check_refresh("OnlineBatchSelection", recompute_every)

    def selection_pressure(self, epoch, epochs):
        """``s_e`` at ``epoch`` of ``epochs``."""
        return self.s_e0 * (self.s_e_end / self.s_e0) ** progress(epoch, epochs)

    def probabilities(self, n, s_e):
        """The sampling probability of each rank 0 .. n-1."""
        logits = -math.log(s_e) * np.arange(n) / n
        p = np.exp(logits - logits.max())
        return p / p.sum()

    def __call__(self, state):
        n = state.num_samples
        losses = latest_losses(state, self.recompute_every)
        ranked = sort_by_loss(np.arange(n), losses, state.rng, descending=True)
        p = self.probabilities(n, self.selection_pressure(state.epoch, state.epochs))
        return chunk(ranked[state.rng.choice(n, size=n, p=p)], state.batch_size)
