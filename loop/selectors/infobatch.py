"""InfoBatch: unbiased random pruning of well-learned samples with loss rescaling."""

import numpy as np

from loop.selectors._common import check_number
from loop.selectors.base import Selector, register
from loop.selectors.baselines import chunk


@register("infobatch")
class InfoBatch(Selector):
    """Soft pruning of low-loss samples, rescaled to keep the gradient unbiased.

    Definition (Qin et al., "InfoBatch: Lossless Training Speed Up by Unbiased
    Dynamic Data Pruning", ICLR 2024, Sec. 2): at every epoch
    ``e < delta * epochs``, the samples whose last-seen loss is below the mean
    of the last-seen losses ("well learned") are each dropped at random with
    probability ``prune_ratio`` (r); the kept well-learned samples get weight
    ``1 / (1 - r)`` and every other sample weight 1, so the expected weighted
    loss sum equals the full sum.  Never-seen samples are always kept.  In the
    last ``(1 - delta)`` of the epochs (annealing) all samples are used with
    weight 1.  The kept samples are shuffled and cut into ``(indices, weights)``
    batches.

    Raises:
        ValueError: ``prune_ratio`` outside [0, 1) or ``delta`` outside [0, 1].
    """

    def __init__(self, prune_ratio=0.5, delta=0.875):
        self.prune_ratio = check_number("InfoBatch", "prune_ratio", prune_ratio, low=0, high=1, high_open=True)
        self.delta = check_number("InfoBatch", "delta", delta, low=0, high=1)

    def prune(self, losses, rng):
        """Returns ``(kept indices, their weights)`` for one pruning epoch."""
        losses = np.asarray(losses, dtype=np.float64)
        seen = np.isfinite(losses)
        well_learned = np.zeros(len(losses), bool)
        if seen.any():
            well_learned[seen] = losses[seen] < losses[seen].mean()
        dropped = well_learned & (rng.random(len(losses)) < self.prune_ratio)
        kept = np.flatnonzero(~dropped)
        weights = np.where(well_learned[kept], 1.0 / (1.0 - self.prune_ratio), 1.0).astype(np.float32)
        return kept, weights

    def __call__(self, state):
        if state.epoch >= self.delta * state.epochs:
            return chunk(state.rng.permutation(state.num_samples), state.batch_size)
        kept, weights = self.prune(state.losses, state.rng)
        order = state.rng.permutation(len(kept))
        return list(zip(chunk(kept[order], state.batch_size), chunk(weights[order], state.batch_size)))
