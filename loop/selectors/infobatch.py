"""InfoBatch: unbiased random pruning of well-learned samples with loss rescaling."""

import math

import numpy as np

from loop.selectors._common import check_choice, check_number
from loop.selectors.base import Selector, register
from loop.selectors.baselines import chunk

#: The reference clamps the keep ratio ``1 - prune_ratio`` to at least this.
MIN_KEEP_RATIO = 0.1


@register("infobatch")
class InfoBatch(Selector):
    """Soft pruning of low-loss samples, rescaled to keep the loss unbiased.

    Definition (as the reference code runs it): at every pruning epoch ``e``,
    i.e. while ``e + 1 <= delta * epochs``, the samples whose last-seen loss is
    below the mean of the last-seen losses form the well-learned set W.  The
    keep ratio is ``keep = min(1, max(0.1, 1 - prune_ratio))``, so a
    ``prune_ratio`` above 0.9 acts as 0.9.  With ``pruning="exact"`` (default)
    exactly ``k = int(keep * |W|)`` samples of W are kept, drawn at random
    without replacement, and the other ``|W| - k`` are dropped for the epoch.
    The kept well-learned samples get weight ``|W| / k`` and every other sample
    weight 1, so every sample of W is kept with probability ``k / |W|`` and the
    expected weighted loss sum equals the full sum.  Never-seen samples (NaN
    loss) are never well-learned and are left out of the mean.  In the other
    epochs (annealing) all samples are used with weight 1.  The kept samples
    are shuffled and cut into ``(indices, weights)`` batches.

    ``pruning="bernoulli"`` instead drops each sample of W independently with
    probability ``1 - keep`` and gives the kept ones weight ``1 / keep``: the
    paper's description of soft pruning (each sample of W pruned with
    probability r), unbiased too, with a number of kept samples that varies
    from epoch to epoch.

    Reference: Qin, Wang, Zheng, Gu, Peng, Xu, Zhou, Shang, Sun, Xie and You,
    "InfoBatch: Lossless Training Speed Up by Unbiased Dynamic Data Pruning",
    ICLR 2024 (arXiv 2303.04947); code ``NUS-HPC-AI-Lab/InfoBatch``, file
    ``infobatch/infobatch.py`` (class ``InfoBatch``: ``keep_ratio`` clamp in
    ``__init__``, ``prune``; class ``IBSampler.reset``: the pruning epochs).
    Their names: ``prune_ratio`` and ``delta`` are ours; ``num_epochs`` is the
    loop's ``epochs``; their ``scores`` (the loss of each sample's last
    training forward pass, set by ``update``) is our ``state.losses``; their
    ``weights`` are our plan weights (their ``update`` returns the batch mean
    of ``weights * loss``, which is the step's objective here).  Their
    ``IBSampler`` counts its resets from 1 in the first epoch and prunes while
    that count is at most ``delta * num_epochs``; hence ``e + 1 <= delta *
    epochs`` above.  Remaining deviations:

    * weights: the reference gives the kept well-learned samples ``1 / keep``,
      which is unbiased only when ``keep * |W|`` is whole (the ``int`` rounds
      the count down); ``|W| / k`` is the same number in that case and keeps
      the loss unbiased in every case (it is at most a factor ``1 + 1 / k``
      larger).  With ``k = 0`` (a tiny W) W is dropped entirely, as in the
      reference, and that epoch's loss is not unbiased.
    * annealing weights: the reference resets the weights to 1 only when
      ``delta * num_epochs`` is a whole number; otherwise the last pruning
      epoch's ``1 / keep`` weights stay on during annealing, which the paper
      does not describe.  Here annealing always uses weight 1.
    * the mean: the reference starts every score at 3 and takes the mean over
      all samples; here never-seen samples are left out of it.  In a plain fit
      every sample is seen in epoch 0 (which prunes nothing in both), so the
      two agree from then on.
    * randomness comes from ``state.rng``, not the reference's global
      ``np.random.seed(epoch)``.

    Args:
        prune_ratio: r, the fraction of W to drop, in [0, 1).
        delta: the fraction of the epochs that prune, in [0, 1].
        pruning: ``"exact"`` (the reference code) or ``"bernoulli"`` (the
            paper's per-sample description).

    Raises:
        ValueError: ``prune_ratio`` outside [0, 1), ``delta`` outside [0, 1],
            or an unknown ``pruning``.
    """

    #: The tunable knob for ``--tune``: the reference's default r = 0.5, give or take 0.2 (above 0.9 the keep ratio's
    #: floor of 0.1 makes r inert).
    tune_space = {"prune_ratio": ("uniform", 0.3, 0.7)}

    def __init__(self, prune_ratio=0.5, delta=0.875, pruning="exact"):
        self.prune_ratio = check_number("InfoBatch", "prune_ratio", prune_ratio, low=0, high=1, high_open=True)
        self.delta = check_number("InfoBatch", "delta", delta, low=0, high=1)
        self.pruning = check_choice("InfoBatch", "pruning", pruning, ("exact", "bernoulli"))

    @property
    def keep_ratio(self):
        """``1 - prune_ratio``, clamped to [0.1, 1] as in the reference."""
        return min(1.0, max(MIN_KEEP_RATIO, 1.0 - self.prune_ratio))

    def prunes(self, epoch, epochs):
        """Whether ``epoch`` (0-based) of ``epochs`` prunes: ``epoch + 1 <= delta * epochs``."""
        return epoch + 1 <= self.delta * epochs

    def expected_steps(self, epochs, num_samples, batch_size):
        """Optimizer steps of ``epochs`` loop epochs, estimated (for a schedule's horizon).

        An epoch that does not prune, and epoch 0 (no loss is known yet, so
        nothing is well-learned), makes ``ceil(N / b)`` steps.  A later pruning
        epoch drops ``|W| - int(keep_ratio * |W|)`` samples; the estimate takes
        ``|W| = N / 2`` (the loss median splits the samples in halves; losses
        skewed to the right put more than half below their mean, so a real
        run may step somewhat less and reach a schedule's end value a little
        before its last step).
        """
        owner = "InfoBatch.expected_steps"
        epochs = check_number(owner, "epochs", epochs, low=0, integer=True)
        num_samples = check_number(owner, "num_samples", num_samples, low=1, integer=True)
        batch_size = min(check_number(owner, "batch_size", batch_size, low=1, integer=True), num_samples)
        well_learned = num_samples // 2
        pruned_epoch = math.ceil((num_samples - well_learned + int(self.keep_ratio * well_learned)) / batch_size)
        full_epoch = math.ceil(num_samples / batch_size)
        return sum(pruned_epoch if epoch > 0 and self.prunes(epoch, epochs) else full_epoch
                   for epoch in range(epochs))

    def well_learned(self, losses):
        """The mask of samples whose last-seen loss is below the mean of the seen losses."""
        losses = np.asarray(losses, dtype=np.float64)
        seen = np.isfinite(losses)
        mask = np.zeros(len(losses), bool)
        if seen.any():
            mask[seen] = losses[seen] < losses[seen].mean()
        return mask

    def prune(self, losses, rng):
        """Returns ``(kept indices, their weights)`` for one pruning epoch."""
        well_learned = self.well_learned(losses)
        keep = self.keep_ratio
        weight = np.ones(len(well_learned))
        if self.pruning == "bernoulli":
            dropped = well_learned & (rng.random(len(well_learned)) < 1.0 - keep)
            weight[well_learned] = 1.0 / keep
        else:
            candidates = np.flatnonzero(well_learned)
            k = int(keep * len(candidates))
            chosen = rng.choice(candidates, size=k, replace=False)
            dropped = well_learned.copy()
            dropped[chosen] = False
            if k:
                weight[chosen] = len(candidates) / k
        kept = np.flatnonzero(~dropped)
        return kept, weight[kept].astype(np.float32)

    def __call__(self, state):
        if not self.prunes(state.epoch, state.epochs):
            return chunk(state.rng.permutation(state.num_samples), state.batch_size)
        kept, weights = self.prune(state.losses, state.rng)
        order = state.rng.permutation(len(kept))
        return list(zip(chunk(kept[order], state.batch_size), chunk(weights[order], state.batch_size)))
