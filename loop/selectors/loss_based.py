"""Selectors that order or sample the epoch by each sample's last-seen loss.

All read the free, stale loss table ``state.losses`` (written by the train
step) and re-score with ``state.score`` only when asked (``refresh_every``,
or ``r_freq`` for online batch selection); ``Curriculum`` asks every epoch by
default.  A never-seen sample (NaN loss) counts as the hardest.
"""

import math

import numpy as np

from loop.selectors._common import (check_choice, check_number, check_refresh, class_labels, interleave,
                                    latest_losses, sort_by_loss)
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
    """Curriculum / self-paced ordering by the current model's loss, with a pacing function.

    Definition: every epoch the samples are ranked by loss (``order="easy"``:
    lowest first; ``"hard"``: highest first; never-seen counts as the highest;
    ties at random) and the training pool is the first ``ceil(f(t) * N)`` of
    them, shuffled and cut into batches.  ``t = min(1, epoch / (ramp *
    epochs))`` and

    * ``"linear"``:    f = start + (1 - start) * t
    * ``"root"``:      f = sqrt(start**2 + (1 - start**2) * t)
    * ``"geometric"``: f = start * (1 / start) ** t

    so the pool grows from ``start`` of the data to all of it after ``ramp`` of
    the epochs.  The losses are the current model's: by default
    (``refresh_every=1``) every sample is re-scored with ``state.score`` (a
    compiled forward pass with ``training=False``; its time counts as
    selection time) at the start of every epoch.  ``refresh_every=k`` re-scores
    on epochs 0, k, 2k, ... and reads the loss table in between;
    ``refresh_every=None`` never re-scores and ranks by the table alone, i.e.
    by each sample's loss when it was last trained on (free, but stale: the
    samples just trained on look easier than those left out of the pool, and
    with ``order="easy"`` never-seen samples stay at the end of the ranking
    until the pool reaches them).

    Reference: Bengio, Louradour, Collobert and Weston, "Curriculum
    learning", ICML 2009 (easy to hard, a growing training distribution);
    Kumar, Packer and Koller, "Self-Paced Learning for Latent Variable
    Models", NeurIPS 2010 (the easy samples are those whose loss under the
    current model is small, re-evaluated at every iteration; their threshold
    ``1/K`` is our pool size); Platanios, Stretcu, Neubig, Poczos and Mitchell,
    "Competence-based Curriculum Learning for Neural Machine Translation",
    NAACL 2019 (the linear and root competence functions, their ``c0`` and
    ``T`` being our ``start`` and ``ramp * epochs``); Hacohen and Weinshall,
    "On the Power of Curriculum Learning in Training Deep Networks", ICML 2019,
    code ``GuyHacohen/curriculum_learning``, ``main_train_networks.py``
    (``exponent_data_function_generator``: the pool is the first
    ``ceil(N * percent)`` of the ranking, ``percent`` growing geometrically
    from ``starting_percent``, our ``"geometric"``; ``order_by_loss``: the
    self-taught ranking by a fresh ``model.predict`` over the training set).
    No single reference implements this class; deviations from each:

    * pacing per epoch: the pool changes at epoch starts, not every
      ``batch_increase`` steps as in Hacohen and Weinshall, and an epoch is
      one pass over the pool (fewer steps while the pool is small) rather
      than a fixed number of batches sampled from it.
    * Hacohen and Weinshall rank once, before training, by a teacher (a
      transfer-learned network, or the model trained once without a
      curriculum); here the ranking is the current model's, re-scored every
      epoch, as in self-paced learning.
    * self-paced learning selects by a loss threshold that is annealed; here
      the pool is a fraction of the data that follows the pacing function.

    Args:
        order: ``"easy"`` or ``"hard"``.
        pacing: ``"linear"``, ``"root"`` or ``"geometric"``.
        start: the pool's fraction at epoch 0, in (0, 1].
        ramp: the fraction of the epochs after which the pool is all the data,
            in (0, 1].
        refresh_every: ``1`` (default) to re-score every epoch, ``k`` for every
            k-th epoch, or ``None`` for the stale loss table only.
    """

    def __init__(self, order="easy", pacing="linear", start=0.2, ramp=0.5, refresh_every=1):
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
    """Online batch selection: draw each epoch's samples by the rank of their latest known loss.

    Definition (Loshchilov & Hutter, "Online Batch Selection for Faster
    Training of Neural Networks", arXiv 1511.06343): epoch 0 trains every
    sample once, in a seeded shuffle, so that every sample has a loss.  From
    epoch 1 on, the samples are ranked by their latest known loss, highest
    first (rank ``r = 0 .. N-1``; a never-seen sample counts as the highest,
    ties at random), and the epoch is ``N`` draws with replacement in which
    rank ``r`` has probability ``p(r) ∝ exp(log(s_e) / N) ** -r``, so the top
    sample is ``s_e ** ((N - 1) / N)`` times as likely as the last.  The
    draws are cut into batches of ``batch_size``, and with ``weighted=True``
    (the default, as in the reference) each drawn sample of a batch gets the
    weight ``mean(p[batch's ranks]) / p(r)``: the batch's mean selection
    probability over the sample's own, so a rarely drawn low-loss sample counts
    for more and the top-ranked ones for less (the loop minimizes
    ``sum(w * loss) / n``, the script's ``mean(loss * ww)``).  The selection pressure is
    annealed exponentially, ``s_e = s_e0 * (s_e_end / s_e0) ** (epoch / epochs)``
    (``s_e_end`` is where it would be after the last epoch); an epoch with
    ``s_e == 1`` is a plain shuffle.  The latest known losses are the ones the
    train step records for every trained sample; in addition, at the start of
    every epoch in which ``epoch * r_freq`` passes an integer (``r_freq=0.5``:
    epochs 2, 4, 6, ...), the ``r_ratio * N`` top-ranked samples are
    re-scored with ``state.score`` (``training=False``, counted as training
    time) and the ranking is redone with the fresh losses.

    Reference: the authors' Lasagne MNIST script (``test()`` and its
    scenarios in ``main()``): ``bfs`` holds each datapoint's latest loss (1e10
    until seen) and is updated with the training pass's losses after every
    batch; epoch 0 walks through the data once in order; later epochs draw
    ranks by the inverse CDF of ``prob[i] ∝ mult ** -i``, ``mult =
    exp(log(fac) / ntraining)``; ``fac = fac_begin * mult_fac ** epoch`` with
    ``mult_fac = exp(log(fac_end / fac_begin) / num_epochs)``; once more
    than ``ntraining / pp1`` datapoints have been trained since the last
    recomputation, the losses of the ``pp2 * ntraining`` top-ranked ones are
    recomputed; before each training batch the script sets the per-sample
    loss weights ``ww`` (a Theano shared vector that multiplies the
    cross-entropy before ``.mean()`` in the training loss) to ``meanselprob /
    prob[rank]`` with ``meanselprob`` the mean of ``prob`` over the batch's
    drawn ranks, inside an ``if (1):`` block whose ``else`` (all ones) is dead
    code, so the weighting is on in every scenario.  Source: a copy of the
    Lasagne script in the code search index (found by the string
    ``meanselprob``; the index did not name its repository); the ports
    ``linhaojia13/tf_batch_selection`` (``tf_batch_select.py``) and a PyTorch
    one leave the weights out.  Their names → ours (the paper's in brackets): ``fac_begin``
    (``s_e0``) → ``s_e0``, ``fac_end`` (``s_e_end``) → ``s_e_end``, ``pp1``
    (``r_freq``) → ``r_freq``, ``pp2`` (``r_ratio``) → ``r_ratio``.  The
    defaults are the script's scenario 7: ``s_e0 = s_e_end = 100``, ``r_freq =
    0.5``, ``r_ratio = 1``; its scenarios without recomputation have
    ``r_freq = 0``.

    Deviations: the reference re-sorts the ranking every 100 trained
    datapoints (``sorting_evaluations_period``), so a sample's rank follows
    the losses of the current epoch's batches; a plan is made once per epoch,
    so here the ranking and the probabilities are fixed for the whole epoch
    (a high-loss sample keeps its rank even after being trained on), and the
    fresh losses of this epoch count from the next one.  The top-ranked sample
    is so drawn about ``log(s_e)`` times an epoch (4.6 at ``s_e = 100``)
    however fast its loss falls, which makes unweighted training on a small
    set oscillate; the weights damp it.  On the 400-sample spiral of
    ``tests/selectors/test_with_loop.py`` (12 epochs, full training loss 0.715
    before) the defaults end at 0.474, ``weighted=False`` above the start at
    1.266; with ``s_e0 = s_e_end = 10, r_freq = 1`` at 0.497 weighted and
    0.059 unweighted (that test's fit, run per setting).  The reference's
    recomputation falls when its datapoint counter passes ``N / r_freq``,
    which can be mid-epoch; here it is at the start of the first epoch at or
    after that point, so at most once per epoch (``r_freq`` is at most 1).
    The script recomputes with the non-deterministic output it trains on
    (dropout on); ``state.score`` uses ``training=False``.  Draws come from
    ``state.rng``, not a global generator.

    The script also sets the weights in its epoch 0, from ``prob`` at the
    positions it walks through in order (not drawn by ``prob``; within a
    batch of 64 of MNIST's 50,000 they differ by at most a factor
    ``100 ** (64 / 50000)``, about 1.006); here epoch 0 and every epoch with
    ``s_e == 1`` are unweighted.

    Variants: ``r_freq=0`` never recomputes: the ranking then uses only the
    losses recorded when samples were trained (this project's earlier
    behaviour, as in the reference's scenarios 1-6).  ``weighted=False``
    trains the drawn batches with unit weights (this project's earlier
    behaviour, and the ports').

    Raises:
        ValueError: ``s_e0`` or ``s_e_end`` < 1, ``r_freq`` or ``r_ratio``
            outside [0, 1], or ``weighted`` not a bool.
    """

    def __init__(self, s_e0=100.0, s_e_end=100.0, r_freq=0.5, r_ratio=1.0, weighted=True):
        self.s_e0 = check_number("OnlineBatchSelection", "s_e0", s_e0, low=1)
        self.s_e_end = check_number("OnlineBatchSelection", "s_e_end", s_e_end, low=1)
        if isinstance(r_freq, (int, float)) and not isinstance(r_freq, bool) and r_freq > 1:
            raise ValueError(f"OnlineBatchSelection: r_freq={r_freq!r} is out of range; it must be a number in "
                             "[0, 1]: a plan covers a whole epoch, so the losses can be recomputed at most once "
                             "per epoch (r_freq=1)")
        self.r_freq = check_number("OnlineBatchSelection", "r_freq", r_freq, low=0, high=1)
        self.r_ratio = check_number("OnlineBatchSelection", "r_ratio", r_ratio, low=0, high=1)
        if not isinstance(weighted, (bool, np.bool_)):
            raise ValueError(f"OnlineBatchSelection: weighted={weighted!r} must be True (the reference's "
                             "meanselprob / prob weights) or False (unit weights)")
        self.weighted = bool(weighted)

    def selection_pressure(self, epoch, epochs):
        """``s_e`` at ``epoch`` of ``epochs``: ``s_e0`` at epoch 0, ``s_e_end`` one epoch after the last."""
        return self.s_e0 * (self.s_e_end / self.s_e0) ** (epoch / max(1, epochs))

    def recomputes(self, epoch):
        """Whether the top ``r_ratio`` of the ranking is re-scored at the start of ``epoch``."""
        if epoch < 1 or self.r_freq == 0:
            return False
        return math.floor(epoch * self.r_freq + 1e-9) > math.floor((epoch - 1) * self.r_freq + 1e-9)

    def probabilities(self, n, s_e):
        """The sampling probability of each rank 0 .. n-1."""
        logits = -math.log(s_e) * np.arange(n) / n
        p = np.exp(logits - logits.max())
        return p / p.sum()

    def __call__(self, state):
        n = state.num_samples
        s_e = self.selection_pressure(state.epoch, state.epochs)
        if state.epoch == 0 or s_e == 1:
            return chunk(state.rng.permutation(n), state.batch_size)
        losses = np.array(state.losses, dtype=np.float32)
        ranked = sort_by_loss(np.arange(n), losses, state.rng, descending=True)
        top = np.sort(ranked[:int(self.r_ratio * n)]) if self.recomputes(state.epoch) else ranked[:0]
        if len(top):
            losses[top] = state.score(top)
            ranked = sort_by_loss(np.arange(n), losses, state.rng, descending=True)
        p = self.probabilities(n, s_e)
        ranks = state.rng.choice(n, size=n, p=p)
        if not self.weighted:
            return chunk(ranked[ranks], state.batch_size)
        return [(ranked[r], self.weights(p[r])) for r in chunk(ranks, state.batch_size)]

    @staticmethod
    def weights(selected):
        """The reference's loss weights of one batch: ``mean(selected) / selected``.

        Args:
            selected: the selection probabilities of the batch's drawn ranks.

        Returns:
            float32 weights, one per drawn sample.
        """
        selected = np.asarray(selected, np.float64)
        return (selected.mean() / selected).astype(np.float32)
