"""Weighted random sampling of the epoch's order (Efraimidis–Spirakis keys)."""

import numpy as np

from loop.selectors._common import check_choice
from loop.selectors.base import Selector, register
from loop.selectors.baselines import chunk


def weighted_permutation(weights, rng):
    """A random order of ``range(len(weights))`` drawn as weighted sampling without replacement.

    Follows "Algorithm D" (sequential draws: in round k, item i not yet drawn is
    picked with probability ``w_i / sum of w_j over the items not yet drawn``)
    in O(n log n), by the keys of Efraimidis & Spirakis ("Weighted random
    sampling with a reservoir", IPL 2006): ``key_i = u_i ** (1 / w_i)`` with
    ``u_i ~ U(0, 1]``, sorted in decreasing order, computed as
    ``log(u_i) / w_i``.  Items of weight zero come after every positive one, in
    a uniformly random order.

    Raises:
        ValueError: a weight is negative or not finite.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be a 1-D array of finite numbers >= 0")
    u = 1.0 - rng.random(len(w))  # in (0, 1]
    keys = np.full(len(w), -np.inf)
    positive = w > 0
    keys[positive] = np.log(u[positive]) / w[positive]
    tiebreak = rng.random(len(w))
    return np.lexsort((tiebreak, -keys))


def loss_weights(losses, kind):
    """Sampling weights from last-seen losses.

    ``"loss"``: w = max(loss, 0); ``"inverse_loss"``: w = 1 / (max(loss, 0) + 1e-6);
    ``"uniform"``: w = 1.  Never-seen (NaN) samples get the largest weight of
    the seen ones (1 when none has been seen).
    """
    losses = np.asarray(losses, dtype=np.float64)
    seen = np.isfinite(losses)
    clipped = np.maximum(np.where(seen, losses, 0.0), 0.0)
    if kind == "uniform":
        return np.ones(len(losses))
    w = clipped if kind == "loss" else 1.0 / (clipped + 1e-6)
    fill = w[seen].max() if seen.any() else 1.0
    if not seen.any() or fill <= 0:
        fill = 1.0
    return np.where(seen, w, fill)


@register("weighted_random")
class WeightedRandom(Selector):
    """Weighted random order of all samples, weights from last-seen loss.

    Definition (the seed experiments of this project): every epoch, with
    ``replacement=False`` the epoch's order is a weighted random permutation
    drawn exactly as Algorithm D (see :func:`weighted_permutation`), so
    high-weight samples tend to come early and every sample is seen once; with
    ``replacement=True`` the epoch is N independent draws with probability
    ``w_i / sum(w)``.  The order is cut into batches of ``batch_size``.
    Weights come from :func:`loss_weights`; if all weights are zero, the order
    is uniform.
    """

    def __init__(self, weight="loss", replacement=False):
        self.weight = check_choice("WeightedRandom", "weight", weight, ("loss", "inverse_loss", "uniform"))
        self.replacement = replacement

    def __call__(self, state):
        w = loss_weights(state.losses, self.weight)
        n = state.num_samples
        if self.replacement:
            total = w.sum()
            p = w / total if total > 0 else None
            order = state.rng.choice(n, size=n, p=p)
        else:
            order = weighted_permutation(w, state.rng)
        return chunk(order, state.batch_size)
