"""DyBAT: train repeatedly on the fixed mini-batches with the highest recorded loss."""

import math

import numpy as np

from loop.selectors._common import check_number
from loop.selectors.base import Selector, register
from loop.selectors.baselines import chunk


@register("dybat")
class DyBAT(Selector):
    """Dynamic selection of the hardest mini-batches.

    Definition (Sahayam, Zakkam & Jayaraman, "Can we learn better with hard
    samples?", arXiv 2304.03486, Algorithm 1): the mini-batches are formed once
    (their code: ``shuffle=False, drop_last=True``; here the dataset order,
    or one seeded permutation with ``shuffle=True``), giving b batches.  Round
    0 trains on all b of them and records each batch's loss.  Every later round
    trains only on the ``m = max(1, int(delta * b))`` batches with the highest
    recorded loss (highest first; ties by batch position) and updates their
    recorded loss.  ``delta=1`` is plain training on the fixed batches.

    Mapping to the loop's epochs: by default (``rounds_per_call=1``) every
    call, i.e. every loop epoch, is one round, exactly as in the paper: b
    steps at epoch 0 and m after, with every round ranking the batches by the
    losses its predecessor recorded.  To give DyBAT the baseline's budget of
    E * ceil(n / batch_size) gradient steps, run :meth:`epochs_for_budget` loop epochs (the
    benchmark does); its epochs-to-target then count rounds.  A batch's
    recorded loss is the mean of the per-sample losses the train step recorded
    when it last trained that batch, read from ``state.losses`` at every call.
    ``rounds_per_call=None`` instead returns b steps per call (a continuous
    stream of rounds cut into epochs of b steps); because the loop validates a
    whole plan before training on it, rounds that start inside such an epoch
    rank batches by the losses known at the epoch's start (with ``delta=0.5``
    an epoch then trains the same top half twice).

    Raises:
        ValueError: ``delta`` outside (0, 1].
    """

    def __init__(self, delta=0.5, shuffle=False, rounds_per_call=1):
        self.delta = check_number("DyBAT", "delta", delta, low=0, high=1, low_open=True)
        self.shuffle = shuffle
        if rounds_per_call is not None:
            check_number("DyBAT", "rounds_per_call", rounds_per_call, low=1, integer=True)
        self.rounds_per_call = rounds_per_call
        self.batches_ = None      # [b, batch_size] sample ids of the fixed batches
        self.batch_loss_ = None   # [b] recorded loss, NaN until trained
        self.round_ = 0           # rounds started so far
        self.pending_ = None      # batch ids left in the current round

    def _form(self, state):
        order = state.rng.permutation(state.num_samples) if self.shuffle else np.arange(state.num_samples)
        batches = chunk(order, state.batch_size, drop_last=True)
        if not batches:
            raise ValueError(f"DyBAT: batch_size={state.batch_size} is larger than the {state.num_samples} "
                             "samples, so drop_last leaves no batch")
        self.batches_ = np.stack(batches).astype(np.int64)
        self.batch_loss_ = np.full(len(batches), np.nan)
        self.round_ = 0
        self.pending_ = np.zeros(0, np.int64)

    @property
    def rounds_size(self):
        """``m``, the number of batches in a round after the first (needs the batches formed)."""
        return max(1, int(self.delta * len(self.batches_)))

    def next_round(self):
        """The batch ids of the next round, given the recorded losses."""
        b = len(self.batches_)
        m = self.rounds_size
        if self.round_ == 0 or m == b:
            return np.arange(b)
        keys = np.where(np.isnan(self.batch_loss_), np.inf, self.batch_loss_)
        return np.argsort(-keys, kind="stable")[:m]

    def epochs_for_budget(self, baseline_epochs, num_samples, batch_size):
        """Loop epochs that make at least the baseline's gradient steps.

        The baseline (``Shuffle``) trains ``ceil(num_samples / batch_size)``
        batches per epoch, the last one partial.  DyBAT's fixed batches drop
        that partial batch, so a round 0 has ``num_samples // batch_size``
        steps and every later round ``max(1, int(delta * num_samples //
        batch_size))``.  With ``rounds_per_call=None`` every epoch is a full
        set of fixed batches.
        """
        baseline_epochs = check_number("DyBAT.epochs_for_budget", "baseline_epochs", baseline_epochs, low=0,
                                       integer=True)
        num_samples = check_number("DyBAT.epochs_for_budget", "num_samples", num_samples, low=1, integer=True)
        batch_size = check_number("DyBAT.epochs_for_budget", "batch_size", batch_size, low=1, integer=True)
        if batch_size > num_samples:
            raise ValueError(f"DyBAT.epochs_for_budget: batch_size={batch_size} is larger than the {num_samples} "
                             "samples, so drop_last leaves no batch")
        budget = baseline_epochs * math.ceil(num_samples / batch_size)
        own = num_samples // batch_size
        if budget == 0:
            return 0
        if self.rounds_per_call is None:
            return math.ceil(budget / own)
        m = max(1, int(self.delta * own))
        rounds = 1 + math.ceil(max(0, budget - own) / m)
        return math.ceil(rounds / self.rounds_per_call)

    def __call__(self, state):
        if self.batches_ is None or self.batches_.max() >= state.num_samples:
            self._form(state)
        self._read_table(state)
        if self.rounds_per_call is None:
            return self._take(len(self.batches_))
        plan = []
        for _ in range(self.rounds_per_call):
            plan += self._take(len(self.pending_) if len(self.pending_) else len(self.next_round()))
        return plan

    def _read_table(self, state):
        losses = np.asarray(state.losses, dtype=np.float64)[self.batches_]
        seen = np.all(np.isfinite(losses), axis=1)
        self.batch_loss_ = np.where(seen, losses.mean(axis=1), self.batch_loss_)

    def _take(self, steps):
        plan = []
        for _ in range(steps):
            if self.pending_ is None or len(self.pending_) == 0:
                self.pending_ = self.next_round()
                self.round_ += 1
            batch_id, self.pending_ = self.pending_[0], self.pending_[1:]
            plan.append(self.batches_[batch_id])
        return plan
