"""A fake loop state and plan helpers for testing selectors without the Loop."""

import collections

import numpy as np

StepBatch = collections.namedtuple("StepBatch", ["indices", "losses", "weights", "y_true", "y_pred", "step"])


class FakeState:
    """The fields of the loop's state; ``score`` returns a fixed synthetic loss and records it."""

    def __init__(self, num_samples=120, num_classes=3, batch_size=10, epoch=0, epochs=5, seed=0, losses=None,
                 task="classification", logs=None, true_losses=None):
        self.num_samples, self.num_classes, self.batch_size = num_samples, num_classes, batch_size
        self.epoch, self.epochs, self.step, self.task = epoch, epochs, 0, task
        if task == "classification":
            self.labels = np.random.default_rng(123).permutation(np.arange(num_samples) % num_classes)
        else:
            self.labels = np.random.default_rng(123).normal(size=num_samples).astype(np.float32)
            self.num_classes = None
        self.losses = (np.full(num_samples, np.nan, np.float32) if losses is None
                       else np.asarray(losses, np.float32).copy())
        self.loss_step = np.where(np.isnan(self.losses), -1, 0).astype(np.int64)
        self.rng = np.random.default_rng([seed, epoch])
        self.logs = dict(logs or {})
        self.true_losses = (np.linspace(0.1, 2.0, num_samples).astype(np.float32) if true_losses is None
                            else np.asarray(true_losses, np.float32))
        self.scored = []

    def score(self, indices):
        indices = np.asarray(indices)
        self.scored.append(indices)
        self.losses[indices] = self.true_losses[indices]
        return self.true_losses[indices]


def flatten(plan):
    """``(indices, weights)`` of a whole plan, weights 1 where a batch gives none."""
    idx, w = [], []
    for batch in plan:
        if isinstance(batch, tuple):
            i, bw = batch
        else:
            i, bw = batch, np.ones(len(batch))
        idx.append(np.asarray(i))
        w.append(np.asarray(bw, float))
    return np.concatenate(idx), np.concatenate(w)


def batches_of(plan):
    return [np.asarray(b[0] if isinstance(b, tuple) else b) for b in plan]
