"""KAKURENBO: each epoch, hide the well-learned, confidently right samples with the lowest loss; move the rate."""

import math

import numpy as np

from loop.selectors._common import check_choice, check_number
from loop.selectors.base import Selector, register
from loop.selectors.baselines import chunk

#: The reference's milestones of its hiding fraction, as fractions of the run (its epochs 60, 120 and 160 of 200),
#: and the fraction of ``F`` hidden from each on (``adjust_fraction``: 1, 0.8, 0.6, 0.4).
FRACTION_MILESTONES = ((0.3, 1.0), (0.6, 0.8), (0.8, 0.6), (1.0, 0.4))

#: The rate adjustments: ``"auto"`` (the rate hook when the optimizer uses it, else loss weights for SGD),
#: ``"schedule"`` (the rate hook), ``"weights"`` (loss weights) or ``"none"``.
ADJUSTMENTS = ("auto", "schedule", "weights", "none")


@register("kakurenbo")
class KAKURENBO(Selector):
    """Adaptive hiding: each epoch, up to a fraction F of the samples, the lowest-loss ones among those predicted
    correctly with confidence at least ``threshold``, sit the epoch out; the learning rate moves by ``1 / (1 - F)``.

    Definition, per epoch ``e`` of ``E`` (the loop's ``epochs``):

    1. The hidden samples of epoch ``e - 1`` get a fresh forward pass (``state.score``, counted as selection
       time), as the reference's second loader does after each epoch; every other sample's loss is the one its
       training forward pass saw in epoch ``e - 1``.
    2. ``F_e = F * s(e / E)``, with ``s`` the reference's step schedule of the fraction (:data:`FRACTION_MILESTONES`:
       ``F`` for the first 30% of the run, then ``0.8 F``, ``0.6 F`` and ``0.4 F`` from 30%, 60% and 80%).
    3. Among the ``floor(F_e * n)`` samples with the lowest losses, those predicted correctly with confidence at
       least ``threshold`` are hidden; the others ("moved back") train.  Never-seen samples (NaN loss, e.g. all of
       epoch 0) are never hidden.
    4. The other samples are shuffled and cut into batches; from the end of the warm-up (``warmup_epochs``) the
       learning rate is multiplied by ``1 / (1 - F_e)`` (the reference uses the maximum fraction ``F_e``, not the
       fraction actually hidden).

    Confidence from the loss: for a cross-entropy loss a sample's probability of its label is ``p_y = exp(-loss)``,
    and with ``threshold >= 0.5`` "predicted correctly with confidence (the largest class probability) at least
    threshold" is the same as ``p_y >= threshold``: a correct prediction's confidence is ``p_y``, and ``p_y >= 0.5``
    exceeds every other class's probability.  So step 3 reads the loss table alone: hide iff
    ``loss <= -log(threshold)``.

    The learning-rate move (``lr_adjust``): the rate hook :meth:`scaled_learning_rate` wraps the optimizer's rate in
    a :class:`loop.schedules.ScaledRate` whose factor this selector sets each epoch; it is exact for any optimizer.
    Loss weights ``1 / (1 - F_e)`` on every trained sample move SGD's update exactly as the rate does (with
    momentum too), but not an adaptive optimizer's (Adam divides the scale out).  ``"auto"`` uses the hook when the
    optimizer's rate is this selector's :class:`~loop.schedules.ScaledRate`, loss weights for SGD otherwise, and
    refuses another optimizer without the hook, with the line that fixes it.

    Reference: Thao Nguyen, Gerofi, Martinez-Noriega, Trahay and Wahib, "KAKURENBO: Adaptively Hiding Samples in
    Deep Neural Network Training", NeurIPS 2023; code ``TruongThaoNguyen/kakurenbo``, file
    ``ImageNet/pytorch_cifar100_WRN-28-10_hs_lag_v3.1.py`` (``train``: the cut by loss rank, ``THRESHOLD = 0.7``,
    the move-back of wrong or unconfident samples; ``adjust_fraction``; ``adjust_learning_rate``: ``1 / (1 -
    fraction)`` after the warm-up epochs, 1 by default) and ``ImageNet/utils/weight_sampler.py``
    (``HiddenSamplerUniform``: the trained samples shuffled, the hidden ones forwarded by the second loader); its
    CIFAR-100 script runs ``--fraction 0.3``.  Names: their ``fraction`` is ``fraction``, ``THRESHOLD`` is
    ``threshold``, ``samples_impt`` our ``state.losses``, ``samples_fness`` and ``samples_prob`` follow from the
    loss as above.  Deviations:

    * Confidence: the reference takes ``softmax(output, dim=0)``, over the batch rather than the classes, so its
      "probability" depends on the other samples of the batch; here it is the class probability, ``exp(-loss)``.
      Hence a cross-entropy loss and ``threshold >= 0.5`` are required.
    * The fraction's schedule: its milestones are the reference's epochs 60, 120, 160 of its 200-epoch runs, as
      fractions of the run; the reference's warm-up epochs hide with ``F`` too (its first branch), and so here.
    * The rate: the reference edits the optimizer's rate each step, on top of its step decay; here a factor on
      whatever schedule the optimizer has (the hook), or loss weights for SGD.
    * Randomness from ``state.rng``; one process (the reference all-reduces its tables across Horovod ranks).

    Args:
        fraction: ``F``, the largest fraction of the samples hidden in an epoch, in [0, 1).
        threshold: the confidence a hidden sample needs, in [0.5, 1).
        warmup_epochs: epochs before the rate moves (the reference's ``--warmup-epochs``, 1).
        lr_adjust: one of :data:`ADJUSTMENTS`.

    Raises:
        ValueError: an argument out of range; in a fit, a loss that is not a cross-entropy, or (``"auto"``) an
            adaptive optimizer built without :meth:`scaled_learning_rate`.
    """

    #: The tunable knob for ``--tune``: the reference's fraction, 0.3 in its CIFAR-100 script; its paper sweeps
    #: 0.1 to 0.4.
    tune_space = {"fraction": ("uniform", 0.1, 0.4)}
    tasks = ("classification",)

    def __init__(self, fraction=0.3, threshold=0.7, warmup_epochs=1, lr_adjust="auto"):
        self.fraction = check_number("KAKURENBO", "fraction", fraction, low=0, high=1, high_open=True)
        self.threshold = check_number("KAKURENBO", "threshold", threshold, low=0.5, high=1, high_open=True)
        self.warmup_epochs = check_number("KAKURENBO", "warmup_epochs", warmup_epochs, low=0, integer=True)
        self.lr_adjust = check_choice("KAKURENBO", "lr_adjust", lr_adjust, ADJUSTMENTS)
        self.hidden_ = None    # the samples hidden in the last planned epoch
        self._scale = None     # the rate hook's factor (a tf.Variable), made by scaled_learning_rate

    # ------------------------------------------------------------------ the rule
    def fraction_at(self, epoch, epochs):
        """``F_e``: ``fraction`` times the reference's step schedule at ``epoch / epochs``."""
        progress = epoch / max(int(epochs), 1)
        for end, share in FRACTION_MILESTONES:
            if progress < end:
                return self.fraction * share
        return self.fraction * FRACTION_MILESTONES[-1][1]

    def rate_factor(self, epoch, epochs):
        """The learning rate's factor in ``epoch``: ``1 / (1 - F_e)`` from the end of the warm-up, else 1."""
        return 1.0 if epoch < self.warmup_epochs else 1.0 / (1.0 - self.fraction_at(epoch, epochs))

    def hide(self, losses, fraction):
        """The samples to hide given the losses: among the ``floor(fraction * n)`` lowest (NaN last), those with
        ``loss <= -log(threshold)``; sorted indices."""
        losses = np.asarray(losses, dtype=np.float64)
        cut = int(math.floor(fraction * len(losses) + 1e-9))
        if cut == 0:
            return np.zeros([0], np.int64)
        order = np.argsort(np.where(np.isfinite(losses), losses, np.inf), kind="stable")[:cut]
        confident = np.isfinite(losses[order]) & (losses[order] <= -math.log(self.threshold))
        return np.sort(order[confident])

    # ------------------------------------------------------------- the rate hook
    def scaled_learning_rate(self, base):
        """The optimizer's learning rate with this selector's factor: build the optimizer with it.

        ``keras.optimizers.Adam(learning_rate=selector.scaled_learning_rate(1e-3))``; ``base`` may be a schedule.
        Returns a :class:`loop.schedules.ScaledRate` whose factor the selector sets at every epoch.
        """
        import tensorflow as tf

        from loop.schedules import ScaledRate

        if self._scale is None:
            self._scale = tf.Variable(1.0, dtype=tf.float32, trainable=False, name="kakurenbo_rate_factor")
        return ScaledRate(base, self._scale)

    def clone(self):
        """A fresh copy that shares the rate hook's factor: the loop trains a clone, and the optimizer was built
        with the original's :meth:`scaled_learning_rate`."""
        fresh = super().clone()
        fresh._scale = self._scale
        return fresh

    def _mode(self, optimizer):
        from loop.schedules import ScaledRate

        inner = getattr(optimizer, "inner_optimizer", optimizer)
        rate = getattr(inner, "_learning_rate", None)
        hooked = isinstance(rate, ScaledRate) and self._scale is not None and rate.scale is self._scale
        if self.lr_adjust == "schedule" and not hooked or self.lr_adjust == "auto" and not hooked and \
                type(inner).__name__ != "SGD":
            raise ValueError(
                f"KAKURENBO moves the learning rate by 1 / (1 - F), which loss weights do only for SGD, and the "
                f"optimizer is {type(inner).__name__} without the rate hook: build it with "
                f"learning_rate=selector.scaled_learning_rate(<rate or schedule>), or pass lr_adjust='weights' "
                "or 'none'")
        if self.lr_adjust == "auto":
            return "schedule" if hooked else "weights"
        return self.lr_adjust

    def on_train_begin(self, state):
        """Checks the loss and the optimizer (the loop's, where the state has them); a resumed fit keeps the
        restored hidden set, whose fresh pass the next epoch makes."""
        given = getattr(state, "loss", None)
        if given is not None:
            loss = given if isinstance(given, str) else getattr(given, "name", None) or type(given).__name__
            if "crossentropy" not in str(loss).lower().replace("_", ""):
                raise ValueError(f"KAKURENBO reads a sample's confidence from its cross-entropy loss (exp(-loss)), "
                                 f"and this loss is {loss!r}; train with a cross-entropy loss")
        if getattr(state, "optimizer", None) is not None:
            self._mode(state.optimizer)

    # -------------------------------------------------------------------- plan
    def __call__(self, state):
        n = state.num_samples
        losses = np.array(state.losses, dtype=np.float64)
        if self.hidden_ is not None and 0 < len(self.hidden_) < n and self.hidden_.max() < n:  # the second loader
            losses[self.hidden_] = np.asarray(state.score(self.hidden_), dtype=np.float64)
        hidden = self.hide(losses, self.fraction_at(state.epoch, state.epochs)) if state.epoch > 0 else \
            np.zeros([0], np.int64)
        if len(hidden) == n:  # never an empty epoch: keep the highest-loss of them
            hidden = hidden[:-1]
        self.hidden_ = hidden
        trained = np.setdiff1d(np.arange(n), hidden)
        order = state.rng.permutation(trained)
        factor = self.rate_factor(state.epoch, state.epochs)
        optimizer = getattr(state, "optimizer", None)
        mode = self._mode(optimizer) if optimizer is not None else "weights"
        if mode == "schedule":
            self._scale.assign(factor)
        if mode == "weights" and factor != 1.0:
            return [(batch, np.full(len(batch), factor, np.float32)) for batch in chunk(order, state.batch_size)]
        return chunk(order, state.batch_size)


__all__ = ["ADJUSTMENTS", "FRACTION_MILESTONES", "KAKURENBO"]
