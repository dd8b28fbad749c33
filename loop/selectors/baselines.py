"""The reference selectors: seeded random shuffling and one frozen order."""

import numpy as np

from loop.selectors.base import Selector, register


def chunk(order, batch_size, drop_last=False):
    """Splits an index order into consecutive mini-batches of ``batch_size``.

    The last batch is smaller when ``batch_size`` does not divide the order,
    unless ``drop_last`` is set.
    """
    order = np.asarray(order)
    stop = len(order) - len(order) % batch_size if drop_last else len(order)
    return [order[i:i + batch_size] for i in range(0, stop, batch_size)]


@register("shuffle")
class Shuffle(Selector):
    """Seeded random shuffling: a fresh permutation of all samples every epoch.

    The permutation is drawn from ``state.rng``, which the loop derives from its
    seed and the epoch, so two loops with the same seed see the same batches.
    This is the reference every benchmark compares against.
    """

    def __init__(self, drop_last=False):
        self.drop_last = drop_last

    def __call__(self, state):
        return chunk(state.rng.permutation(state.num_samples), state.batch_size, self.drop_last)


@register("freeze")
class Freeze(Selector):
    """One fixed order: a single seeded permutation, reused every epoch.

    The order is drawn on the first epoch and kept in ``order_`` (checkpointed).
    With ``shuffle=False`` it is the dataset's own order.
    """

    def __init__(self, shuffle=True, drop_last=False):
        self.shuffle = shuffle
        self.drop_last = drop_last

    def __call__(self, state):
        order = getattr(self, "order_", None)
        if order is None or len(order) != state.num_samples:
            order = state.rng.permutation(state.num_samples) if self.shuffle else np.arange(state.num_samples)
            self.order_ = order
        return chunk(order, state.batch_size, self.drop_last)
