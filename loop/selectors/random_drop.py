"""RandomDrop: the uniform control for selective backprop and importance sampling."""

import tensorflow as tf

from loop.selectors._common import check_number
from loop.selectors.base import register
from loop.selectors.selective_backprop import PrimedFilter


@register("random_drop")
class RandomDrop(PrimedFilter):
    """Keeps candidates uniformly at random, whatever their loss, and backpropagates full batches of them.

    Definition: the candidates are a seeded shuffle cut into batches of
    ``batch_size``; each candidate is kept with probability ``keep``
    (``exact=False``), or exactly ``round(keep * n)`` of the ``n`` candidates of
    a batch are kept, chosen uniformly without replacement (``exact=True``).
    The kept samples queue on the device and train in backward batches of
    exactly ``batch_size`` (``filter_mode = "accumulate"``), after
    ``prime_epochs`` epochs of plain backprop: SelectiveBackprop's machinery
    with the loss taken out.  A selective-backprop or importance-sampling
    speedup means something only against this control at the same keep rate.

    Reference: the ``random`` probability calculator of ``angelajiang/SelectiveBackprop``
    (``lib/calculators.py``, ``BatchedRandomProbabilityCalculator``), which keeps a
    sample with probability ``u ** prob_pow`` for a fresh uniform ``u``: a keep rate
    of ``E[u^β] = 1 / (β + 1)``.  The default ``keep=0.25`` is that rate at
    SelectiveBackprop's default ``β = 3``.  Deviations: the reference draws a
    random probability per sample and then a second uniform against it; one
    Bernoulli draw with the same mean is the same distribution of kept sets.
    The draws are stateless uniforms seeded by a seed drawn from ``state.rng``
    and the candidate batch's number (``StepBatch.candidate``): fresh for every
    candidate batch, as the reference's, though several share an optimizer step.

    Raises:
        ValueError: ``keep`` outside (0, 1] or ``prime_epochs`` < 0.
    """

    filter_mode = "accumulate"

    #: The tunable knob for ``--tune``: 0.25-0.5, SelectiveBackprop's keep rates ``1 / (β + 1)`` over its tuned range
    #: β in [1, 3], so the control is tuned over the rates the method it controls for can reach (was 0.2-0.5).
    tune_space = {"keep": ("uniform", 0.25, 0.5)}

    def __init__(self, keep=0.25, exact=False, prime_epochs=1):
        self.keep = check_number("RandomDrop", "keep", keep, low=0, high=1, low_open=True)
        self.exact = bool(exact)
        self.prime_epochs = check_number("RandomDrop", "prime_epochs", prime_epochs, low=0, integer=True)
        self.active_ = None
        self.seed_ = None

    # The hyper-parameter ``keep`` shares its name with the protocol's in-step filter ``keep(batch)``: the rate is
    # stored as ``keep_rate``, and ``self.keep`` is the filter.
    def __getattribute__(self, name):
        if name == "keep":
            return type(self)._keep_filter.__get__(self)
        return super().__getattribute__(name)

    def __setattr__(self, name, value):
        super().__setattr__("keep_rate" if name == "keep" else name, value)

    def get_params(self):
        return {"keep": self.keep_rate, "exact": self.exact, "prime_epochs": self.prime_epochs}

    def __repr__(self):
        parts = [f"keep={self.keep_rate!r}"] if self.keep_rate != 0.25 else []
        parts += [f"exact={self.exact!r}"] if self.exact else []
        parts += [f"prime_epochs={self.prime_epochs!r}"] if self.prime_epochs != 1 else []
        return f"RandomDrop({', '.join(parts)})"

    def expected_keep_rate(self):
        """``keep``."""
        return self.keep_rate

    def on_train_begin(self, state):
        self._prime(state)

    def _keep_filter(self, batch):
        return self._while_active(batch, self._select)

    def _select(self, batch):
        n = tf.shape(batch.losses)[0]
        draws = self._uniform(n, batch)
        if self.exact:
            count = tf.cast(tf.round(self.keep_rate * tf.cast(n, tf.float32)), tf.int32)
            threshold_rank = tf.argsort(tf.argsort(draws))  # the rank of each draw: a uniform random order
            mask = threshold_rank < count
        else:
            mask = draws < self.keep_rate
        return tf.cast(batch.weights, tf.float32) * tf.cast(mask, tf.float32)
