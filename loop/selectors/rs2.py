"""RS2: repeated random sampling, a fresh random subset of the data every epoch, without or with replacement."""

import math

import numpy as np

from loop.selectors._common import check_number
from loop.selectors.base import Selector, register
from loop.selectors.baselines import chunk


@register("rs2")
class RS2(Selector):
    """Each epoch trains on the next ``ceil(ratio * n)`` samples of a seeded permutation, redrawn when it runs out.

    Definition: the selector keeps one random permutation of the ``n``
    training samples and a position in it.  Every loop epoch (an RS2
    "round") takes the next ``k = ceil(ratio * n)`` samples of the
    permutation, in permutation order, and cuts them into mini-batches of
    ``batch_size``.  When fewer than ``k`` samples remain, the round takes
    them all and fills up with samples of a fresh permutation, skipping
    those it already holds (they stay in the fresh permutation's queue for
    the next rounds).  So every sample is trained exactly once per pass
    through a permutation, no sample twice in one round, and when ``k``
    divides ``n`` every sample is seen exactly once in each block of
    ``n / k`` consecutive epochs.  Permutations come from ``state.rng``
    (the loop's seed and the epoch), so runs repeat by seed.  Trained on
    ``ratio`` of the data per epoch, an RS2 run gets the baseline's number
    of optimizer steps from :meth:`epochs_for_budget`.

    Reference: Okanovic, Waleffe, Mageirakos, Nikolakakis, Karbasi, Kalogerias,
    Gürel, Rekatsinas, "Repeated Random Sampling for Minimizing the
    Time-to-Accuracy of Learning", ICLR 2024 (arXiv 2305.18424), RS2 without
    replacement; code ``PatrikOkanovic/RS2``,
    ``src/DeepCore/deepcore/methods/uniform_no_replacement.py``
    (``UniformNoReplacement``).  Names: the paper's selection ratio ``r`` and
    the code's ``fraction`` are ``ratio``; its per-round subset size
    (``coreset_size``) is ``k``; its round is our epoch; its shuffled
    ``all_index`` with ``start``/``end`` are ``order_`` and ``position_``.

    Deviations:

    * The permutation's end.  The reference's round at the end of a
      permutation takes the remainder plus the head of the SAME permutation
      (``end = (end + k) % (n + 1)``, which also makes that round one sample
      short) and reshuffles at the next round, so a few samples are seen
      twice in a pass; here the round fills up from the NEXT permutation
      (skipping samples already in the round), so every round has exactly
      ``k`` distinct samples and every pass sees each sample once.
    * Randomness: the reference shuffles with the global NumPy generator
      seeded once; here each permutation is drawn from ``state.rng``.
    * The paper pairs RS2 with a learning-rate schedule over the total
      number of rounds (the code's ``CosineAnnealingLR(optimizer,
      len(train_loader) * epochs)`` decays over the subset loader's steps);
      the schedule is the loop's optimizer's business, not the selector's,
      but :meth:`expected_steps` counts a run's optimizer steps,
      ``epochs * ceil(k / b)``, so that ``loop.schedules.step_budget`` sizes
      the schedule's horizon to the steps the rounds make (about the
      baseline's ``E * ceil(n / b)``), not to ``epochs`` whole epochs of
      ``ceil(n / b)`` steps, which would leave the rate undecayed.

    With replacement (``replacement=True``, the paper's other variant, "RS2
    w/ replacement", Algorithm 1 with a fresh uniform subset per round): every
    round draws ``k`` distinct samples uniformly at random from all ``n``,
    independently of earlier rounds, so a sample may recur in consecutive
    rounds and another may wait many; no permutation is kept.  It is the
    random baseline of the data-pruning literature redrawn every epoch.  The
    reference (``RS2DataLoader(sampling_with_replacement=True)``) samples
    ``R%`` of the dataset every epoch with the previous epoch's data available
    again; here the ``k`` samples come in random order from
    ``state.rng.permutation(n)[:k]``.

    Args:
        ratio: the fraction of the training set per epoch, in (0, 1].
        replacement: False (default): rounds walk through permutations, each
            sample once per pass; True: an independent uniform subset every round.

    Raises:
        ValueError: ``ratio`` outside (0, 1], or ``replacement`` not a bool.
    """

    #: The tunable knob for ``--tune``: the authors' time-to-accuracy scripts sweep r from 0.01 to 0.9
    #: (``scripts/run_timeToAcc_cifar10.sh``); below 0.1 a round of our small datasets is about one batch, and above
    #: 0.5 a round saves little over Shuffle's epoch.
    tune_space = {"ratio": ("uniform", 0.1, 0.5)}

    def __init__(self, ratio=0.1, replacement=False):
        self.ratio = check_number("RS2", "ratio", ratio, low=0, high=1, low_open=True)
        if not isinstance(replacement, (bool, np.bool_)):
            raise ValueError(f"RS2: replacement={replacement!r} must be True (a fresh uniform subset every round) or "
                             "False (rounds walk through permutations)")
        self.replacement = bool(replacement)
        self.order_ = None     # the current permutation of the training samples
        self.position_ = 0     # how many of its samples earlier rounds took

    def round_size(self, num_samples):
        """``k = ceil(ratio * num_samples)``, the samples of one round (at least 1)."""
        return max(1, math.ceil(self.ratio * num_samples - 1e-9))

    def __call__(self, state):
        n = state.num_samples
        k = self.round_size(n)
        if self.replacement:  # an independent uniform subset of k distinct samples every round
            return chunk(state.rng.permutation(n)[:k], state.batch_size)
        if self.order_ is None or len(self.order_) != n:
            self.order_, self.position_ = state.rng.permutation(n), 0
        taken = self.order_[self.position_:self.position_ + k]
        self.position_ += len(taken)
        if len(taken) < k:  # the permutation ran out: fill up from a fresh one, skipping what this round holds
            fresh = state.rng.permutation(n)
            fill = fresh[~np.isin(fresh, taken)][:k - len(taken)]
            self.order_ = np.concatenate([fill, fresh[~np.isin(fresh, fill)]])  # the fill first: it is taken
            self.position_ = len(fill)
            taken = np.concatenate([taken, fill])
        return chunk(taken, state.batch_size)

    def epochs_for_budget(self, baseline_epochs, num_samples, batch_size):
        """Loop epochs that make at least the baseline's ``baseline_epochs * ceil(n / b)`` optimizer steps.

        A round makes ``ceil(k / b)`` steps, so the count is
        ``ceil(E * ceil(n / b) / ceil(k / b))``: ``ceil(E / ratio)`` when ``b``
        divides ``n`` and ``k``.
        """
        owner = "RS2.epochs_for_budget"
        baseline_epochs = check_number(owner, "baseline_epochs", baseline_epochs, low=0, integer=True)
        num_samples = check_number(owner, "num_samples", num_samples, low=1, integer=True)
        batch_size = min(check_number(owner, "batch_size", batch_size, low=1, integer=True), num_samples)
        steps = baseline_epochs * math.ceil(num_samples / batch_size)
        return math.ceil(steps / math.ceil(self.round_size(num_samples) / batch_size))

    def expected_steps(self, epochs, num_samples, batch_size):
        """Optimizer steps of ``epochs`` loop epochs (exact): ``epochs * ceil(k / b)``, one per batch of a round.

        ``k = round_size(num_samples)`` and ``b = min(batch_size, num_samples)``,
        as in :meth:`epochs_for_budget`; a schedule's horizon in steps
        (``loop.schedules.step_budget``) so ends within the run's rounds.
        """
        owner = "RS2.expected_steps"
        epochs = check_number(owner, "epochs", epochs, low=0, integer=True)
        num_samples = check_number(owner, "num_samples", num_samples, low=1, integer=True)
        batch_size = min(check_number(owner, "batch_size", batch_size, low=1, integer=True), num_samples)
        return epochs * math.ceil(self.round_size(num_samples) / batch_size)
