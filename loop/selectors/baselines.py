"""The reference selectors: seeded random shuffling, its A/A control on another random stream, and one frozen order."""

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


#: The constant :class:`ShuffleAA` mixes into its seed: its own random stream, never Shuffle's.
AA_STREAM = 0x5A5A_A0A0


@register("shuffle_aa")
class ShuffleAA(Selector):
    """Shuffle on another random stream: the benchmark's A/A control.

    Definition: a fresh permutation of all samples every epoch, cut into
    mini-batches of ``batch_size`` (the last one smaller unless
    ``drop_last``), exactly as :class:`Shuffle`; only the permutations come
    from another random stream.  Each epoch draws one integer ``s`` from
    ``state.rng`` (the loop's seed and the epoch) and permutes with
    ``np.random.default_rng(np.random.SeedSequence([s, AA_STREAM]))``, a
    generator that shares no draws with Shuffle's.  So for the same seed its
    plans are not Shuffle's, yet runs repeat by seed and resume from a
    checkpoint like Shuffle's: it keeps no state.

    Why it exists: an A/A test of the benchmark.  ``ShuffleAA`` draws like
    Shuffle, so its runs differ from Shuffle's only as two independent
    Shuffle runs would (the same model initialisation, independent batch
    orders); the benchmark tunes, stores and tables it as one more
    method, and must report "no difference" against Shuffle.  A speed-up or a
    significant difference found for it measures the noise and the bias of the
    pipeline (tuning, pairing of seeds, the statistics), not a method.

    Args:
        drop_last: drop the last, smaller batch of each epoch (as Shuffle's).
    """

    def __init__(self, drop_last=False):
        self.drop_last = drop_last

    def __call__(self, state):
        seed = int(state.rng.integers(2 ** 63 - 1))
        rng = np.random.default_rng(np.random.SeedSequence([seed, AA_STREAM]))
        return chunk(rng.permutation(state.num_samples), state.batch_size, self.drop_last)


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
