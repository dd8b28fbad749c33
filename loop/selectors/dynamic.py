"""A wrapper that changes the batch size of any selector over the epochs."""

import numpy as np

from loop.protocol import HOOKS
from loop.selectors._common import StateView, check_choice, check_number, progress
from loop.selectors.base import Selector, from_string, register
from loop.selectors.baselines import chunk

#: The protocol members forwarded from the base (``tasks``, ``get_state`` and ``set_state`` are defined here).
_FORWARDED = tuple(h for h in HOOKS if h not in ("tasks", "get_state", "set_state"))


@register("dynamic")
class DynamicBatchSize(Selector):
    """Grows or shrinks the batch size k of a base selector over the epochs.

    Definition (the seed experiments of this project; cf. Smith et al.,
    "Don't Decay the Learning Rate, Increase the Batch Size", ICLR 2018): at
    epoch e of E, with ``t = e / (E - 1)``,

    * ``"linear"``:    k = round(k0 + (k1 - k0) * t)
    * ``"geometric"``: k = round(k0 * (k1 / k0) ** t)

    The base selector is called with a state whose ``batch_size`` is k; its
    plan is flattened (in order, keeping per-sample weights if it gives any)
    and re-chunked into batches of exactly k (the last may be smaller).  The
    base is a selector object or a spec string (``base="dybat:delta=0.5"``);
    every protocol member it defines (:data:`loop.protocol.HOOKS`: the hooks,
    an in-step filter with its ``filter_mode``, and ``tasks``) is forwarded,
    and its state is nested under ``"base"`` in the wrapper's checkpointed state.
    """

    def __init__(self, base="shuffle", k0=32, k1=256, schedule="linear"):
        self.base = base
        self.k0 = check_number("DynamicBatchSize", "k0", k0, low=1, integer=True)
        self.k1 = check_number("DynamicBatchSize", "k1", k1, low=1, integer=True)
        self.schedule = check_choice("DynamicBatchSize", "schedule", schedule, ("linear", "geometric"))
        self._base = from_string(base) if isinstance(base, str) else base
        if not callable(self._base):
            raise ValueError(f"DynamicBatchSize: base={base!r} is not a selector (a callable or a spec string)")

    def batch_size_at(self, epoch, epochs):
        """The batch size k at ``epoch`` of ``epochs``."""
        t = progress(epoch, epochs)
        if self.schedule == "linear":
            k = self.k0 + (self.k1 - self.k0) * t
        else:
            k = self.k0 * (self.k1 / self.k0) ** t
        return max(1, int(round(k)))

    @property
    def tasks(self):
        """The base selector's tasks: a wrapped class-based selector is still classification-only."""
        return getattr(self._base, "tasks", None) or Selector.tasks

    def __getattr__(self, name):
        if name in _FORWARDED:
            base = self.__dict__.get("_base")
            if base is not None and hasattr(base, name):
                return getattr(base, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __call__(self, state):
        k = self.batch_size_at(state.epoch, state.epochs)
        indices, weights = [], []
        for batch in self._base(StateView(state, batch_size=k)):
            if isinstance(batch, tuple):
                idx, w = batch
            else:
                idx, w = batch, None
            idx = np.asarray(idx).reshape(-1)
            indices.append(idx)
            weights.append(np.ones(len(idx), np.float32) if w is None else np.asarray(w, np.float32).reshape(-1))
        if not indices:
            return []
        order = np.concatenate(indices)
        batches = chunk(order, k)
        if all(w is None for w in weights) or all(np.all(w == 1) for w in weights):
            return batches
        return list(zip(batches, chunk(np.concatenate(weights), k)))

    def get_state(self):
        state = super().get_state()
        if hasattr(self._base, "get_state"):
            state["base"] = self._base.get_state()
        return state

    def set_state(self, state):
        state = dict(state)
        base_state = state.pop("base", None)
        if base_state is not None:
            self._base.set_state(base_state)
        super().set_state(state)
