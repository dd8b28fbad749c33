"""Helpers shared by the selector modules: argument checks, label and loss views, orderings."""

import math
import numbers

import numpy as np


def check_number(owner, name, value, low=None, high=None, low_open=False, high_open=False, integer=False):
    """Raises ``ValueError`` naming ``value`` unless it lies in the stated range.

    Returns the value unchanged so constructors can write ``self.x = check_number(...)``.
    """
    kind = numbers.Integral if integer else numbers.Real
    bad_type = not isinstance(value, kind) or isinstance(value, bool)
    bad = bad_type or (isinstance(value, float) and not math.isfinite(value))
    if not bad and low is not None:
        bad = value <= low if low_open else value < low
    if not bad and high is not None:
        bad = value >= high if high_open else value > high
    if bad:
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        interval = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
        what = "an integer" if integer else "a number"
        raise ValueError(f"{owner}: {name}={value!r} is out of range; it must be {what} in {interval}")
    return value


def check_choice(owner, name, value, choices):
    """Raises ``ValueError`` naming ``value`` unless it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{owner}: {name}={value!r} is not allowed; choose one of {', '.join(map(repr, choices))}")
    return value


def check_refresh(owner, value):
    """``refresh_every`` is ``None`` (never re-score) or a positive number of epochs."""
    if value is not None:
        check_number(owner, "refresh_every", value, low=1, integer=True)
    return value


def class_labels(state, owner):
    """The integer class id of every sample, or a ``ValueError`` on a regression task."""
    if state.num_classes is None or getattr(state, "task", "classification") != "classification":
        raise ValueError(
            f"{owner} groups samples by class, but this is a {getattr(state, 'task', 'regression')} task "
            "(num_classes is None); use a class-free selector such as Shuffle or LossSorted(per_class=False)")
    labels = np.asarray(state.labels)
    if labels.ndim > 1 and labels.shape[-1] > 1:
        labels = labels.argmax(axis=-1)
    return labels.reshape(len(labels)).astype(np.int64)


def latest_losses(state, refresh_every):
    """``state.losses``, re-scored with ``state.score`` on epochs that are multiples of ``refresh_every``."""
    if refresh_every and state.epoch % refresh_every == 0:
        return np.asarray(state.score(np.arange(state.num_samples)), dtype=np.float32)
    return np.asarray(state.losses, dtype=np.float32)


def sort_by_loss(indices, losses, rng, descending):
    """``indices`` sorted by their loss; never-seen (NaN) losses count as the highest; ties at random."""
    indices = np.asarray(indices)
    perm = rng.permutation(len(indices))
    keys = np.asarray(losses, dtype=np.float64)[indices[perm]]
    keys = np.where(np.isnan(keys), np.inf, keys)
    order = np.argsort(-keys if descending else keys, kind="stable")
    return indices[perm[order]]


def interleave(queues):
    """Round-robin over ``queues``: the first of each, then the second of each, and so on."""
    queues = [np.asarray(q, dtype=np.int64) for q in queues]
    if not queues:
        return np.zeros(0, dtype=np.int64)
    flat = np.concatenate(queues)
    position = np.concatenate([np.arange(len(q)) for q in queues])
    queue_id = np.concatenate([np.full(len(q), i) for i, q in enumerate(queues)])
    return flat[np.lexsort((queue_id, position))]


def progress(epoch, epochs):
    """Where ``epoch`` lies between the first (0.0) and the last (1.0) epoch of the fit."""
    return 1.0 if epochs <= 1 else min(1.0, epoch / (epochs - 1))


class StateView:
    """A read-only view of the loop's state with some fields replaced (e.g. ``batch_size``)."""

    def __init__(self, state, **overrides):
        self._state = state
        self._overrides = overrides

    def __getattr__(self, name):
        overrides = self.__dict__.get("_overrides", {})
        if name in overrides:
            return overrides[name]
        return getattr(self.__dict__["_state"], name)
