"""DyBAT: train repeatedly on the fixed mini-batches with the highest recorded loss."""

import math

import numpy as np

from loop.selectors._common import check_choice, check_number
from loop.selectors.base import Selector, register
from loop.selectors.baselines import chunk


@register("dybat")
class DyBAT(Selector):
    """Dynamic selection of the hardest mini-batches.

    Definition: the mini-batches are formed once (the dataset order cut with
    ``drop_last``, or one seeded permutation with ``shuffle=True``), giving b
    batches.  Round 0 trains on all b of them in order and records each
    batch's loss.  Every later round takes the ``m = max(1, int(delta * b))``
    batches with the highest recorded loss, trains them in dataset (batch)
    order (``order="dataset"``, default; ``order="loss"`` trains them highest
    loss first instead), and updates their recorded loss.  ``delta=1`` is
    plain training on the fixed batches.  Ties in the ranking go to the
    earlier batch.

    Mapping to the loop's epochs: by default (``rounds_per_call=1``) every
    call, i.e. every loop epoch, is one round, exactly as in the paper: b
    steps at epoch 0 and m after, with every round ranking the batches by the
    losses its predecessor recorded.  To give DyBAT the baseline's budget of
    E * ceil(n / batch_size) gradient steps, run :meth:`epochs_for_budget` loop
    epochs (the benchmark does); its epochs-to-target then count rounds.  A
    batch's recorded loss is the mean of the per-sample losses the train step
    recorded when it last trained that batch, read from ``state.losses`` at
    every call.  ``rounds_per_call=None`` instead returns b steps per call (a
    continuous stream of rounds cut into epochs of b steps); because the loop
    validates a whole plan before training on it, rounds that start inside
    such an epoch rank batches by the losses known at the epoch's start (with
    ``delta=0.5`` an epoch then trains the same top half twice).

    Reference: Sahayam, Zakkam and Jayaraman, "Can we learn better with hard
    samples?", arXiv 2304.03486 (2023), Algorithm 1; code
    ``imjohnzakkam/DyBAT``, file ``run.py``: the loader is built with
    ``shuffle=False, drop_last=True`` (``__main__``); ``turbo_train`` trains
    round 0 over all ``b = len(train_loader)`` batches storing ``(i,
    loss.item())``, then each round sorts those by loss (descending), keeps
    the first ``int(args.delta * b)``, sorts their ids (``retrain_ids =
    sorted(...)``) and trains them while iterating the loader in order, so in
    dataset order.  Their names: ``-delta`` is our ``delta``; their
    ``delta`` (a count) is our m; ``retrain_batches`` is our ``batch_loss_``;
    a zeta iteration is our round; the recorded loss is the batch-mean loss of
    the training forward pass, which is the mean of the per-sample losses our
    train step records.  Remaining deviations:

    * budget: the reference stops at exactly ``epochs * b`` steps, possibly
      inside a round; here rounds are whole, and :meth:`epochs_for_budget`
      rounds the steps up to whole rounds and counts the baseline's partial
      batch.
    * m is at least 1 (the reference's ``int(delta * b)`` can be 0).
    * ties: the reference's stable sort keeps the previous round's ranking
      among equal losses; here the earlier batch comes first.
    * ``shuffle=True`` (one seeded permutation before cutting) is an option of
      ours; the reference keeps the dataset's order.

    Args:
        delta: the fraction of the b batches trained in each round after the
            first, in (0, 1].
        shuffle: form the fixed batches from one seeded permutation instead of
            the dataset order.
        rounds_per_call: rounds per loop epoch, or ``None`` for b steps per
            epoch.
        order: ``"dataset"`` (the reference) or ``"loss"`` (highest recorded
            loss first) for the batches within a round.

    Raises:
        ValueError: ``delta`` outside (0, 1], ``rounds_per_call`` < 1, or an
            unknown ``order``.
    """

    def __init__(self, delta=0.5, shuffle=False, rounds_per_call=1, order="dataset"):
        self.delta = check_number("DyBAT", "delta", delta, low=0, high=1, low_open=True)
        self.shuffle = shuffle
        if rounds_per_call is not None:
            check_number("DyBAT", "rounds_per_call", rounds_per_call, low=1, integer=True)
        self.rounds_per_call = rounds_per_call
        self.order = check_choice("DyBAT", "order", order, ("dataset", "loss"))
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
        hardest = np.argsort(-keys, kind="stable")[:m]
        return np.sort(hardest) if self.order == "dataset" else hardest

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

    def expected_steps(self, epochs, num_samples, batch_size):
        """Optimizer steps of ``epochs`` loop epochs (exact): ``N // b`` in round 0, ``m`` in every later round."""
        epochs = check_number("DyBAT.expected_steps", "epochs", epochs, low=0, integer=True)
        num_samples = check_number("DyBAT.expected_steps", "num_samples", num_samples, low=1, integer=True)
        batch_size = check_number("DyBAT.expected_steps", "batch_size", batch_size, low=1, integer=True)
        own = num_samples // min(batch_size, num_samples)
        if self.rounds_per_call is None or epochs == 0:
            return epochs * own
        rounds = epochs * self.rounds_per_call
        return own + (rounds - 1) * max(1, int(self.delta * own))

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
