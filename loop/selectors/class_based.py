"""Selectors that build mini-batches from class labels: single-class and class-balanced batches.

Both need a classification task and raise ``ValueError`` when ``state.num_classes`` is None.
"""

import numpy as np

from loop.selectors._common import class_labels, interleave
from loop.selectors.base import Selector, register
from loop.selectors.baselines import chunk


@register("homogeneous")
class Homogeneous(Selector):
    """Single-class mini-batches, in a shuffled order.

    Definition (the seed experiments of this project): every epoch, each class's
    samples are shuffled and cut into batches of ``batch_size`` (the last batch
    of a class is smaller unless ``drop_last``); every batch therefore holds one
    label.  The order of all these batches is then shuffled.  Randomness comes
    from ``state.rng``.
    """

    tasks = ("classification",)

    def __init__(self, drop_last=False):
        self.drop_last = drop_last

    def __call__(self, state):
        labels = class_labels(state, type(self).__name__)
        batches = []
        for c in np.unique(labels):
            members = np.flatnonzero(labels == c)
            batches += chunk(state.rng.permutation(members), state.batch_size, self.drop_last)
        return [batches[i] for i in state.rng.permutation(len(batches))]


@register("heterogeneous")
class Heterogeneous(Selector):
    """Class-balanced mini-batches: round-robin over shuffled per-class queues.

    Definition (the seed experiments of this project): every epoch each class's
    samples are shuffled into a queue and the classes are put in a random
    order; the epoch's order takes one sample from each non-empty queue in turn
    and is cut into batches of ``batch_size``.  While every class still has
    samples, the class counts of any batch differ by at most one; once a class
    runs out, the remaining classes share the batches.
    """

    tasks = ("classification",)

    def __init__(self, drop_last=False):
        self.drop_last = drop_last

    def __call__(self, state):
        labels = class_labels(state, type(self).__name__)
        classes = state.rng.permutation(np.unique(labels))
        queues = [state.rng.permutation(np.flatnonzero(labels == c)) for c in classes]
        return chunk(interleave(queues), state.batch_size, self.drop_last)
