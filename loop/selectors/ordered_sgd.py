"""Ordered SGD: average only the q largest losses of each mini-batch."""

import numpy as np
import tensorflow as tf

from loop.selectors._common import check_number
from loop.selectors.base import Selector, register
from loop.selectors.baselines import chunk

ACCURACY_KEYS = ("accuracy", "sparse_categorical_accuracy", "categorical_accuracy", "binary_accuracy", "acc")
#: (train accuracy, divisor d): once the accuracy reaches the threshold, q shrinks to int(s / d).
SCHEDULE = ((0.995, 16), (0.95, 8), (0.9, 4), (0.8, 2))
#: The last stage's divisor, on entering which the reference halves the learning rate.
LAST_DIVISOR = SCHEDULE[0][1]


def paper_divisor(accuracy):
    """The divisor d of ``q = s / d`` that a train accuracy reaches on the schedule (1 below 80%)."""
    if accuracy is None or not np.isfinite(accuracy):
        return 1
    for threshold, divisor in SCHEDULE:
        if accuracy >= threshold:
            return divisor
    return 1


@register("ordered_sgd")
class OrderedSGD(Selector):
    """Ordered SGD as an in-step filter.

    Definition: each mini-batch of n samples (a seeded shuffle cut into
    batches of s = ``batch_size``) is forwarded, and only its ``min(q, n)``
    largest losses are averaged and backpropagated (weight ``n / min(q, n)`` on
    each, exactly that many kept; ties by position).  With an integer ``q`` it
    is fixed.  With ``q=None`` (default) q follows the authors' rule on the
    train accuracy of the previous epoch (read from ``state.logs`` at the start
    of each epoch): ``q = s`` at first; ``int(s / 2)`` once the accuracy is >=
    80%, ``int(s / 4)`` once >= 90%, ``int(s / 8)`` once >= 95%, ``int(s /
    16)`` once >= 99.5% (at least 1).  q only ever shrinks: a later drop in
    accuracy does not raise it again.  On entering the last stage the
    reference halves the SGD learning rate; a selector cannot reach the
    optimizer, so from then on the kept rows' weights are multiplied by
    ``last_stage_scale`` (0.5), which is the same update for plain SGD (see
    the deviations).  The stage (``divisor_``) moves at epoch starts; q and
    the scale reach the compiled step as ``tf.Variable`` objects (``q_``,
    ``scale_``).  As in the reference, the top-q choice uses the losses of
    the training forward pass itself (``filter_mode = "mask"``): one forward
    pass, no extra scoring pass.

    Reference: Kawaguchi and Lu, "Ordered SGD: A New Stochastic Optimization
    Framework for Empirical Risk Minimization", AISTATS 2020 (PMLR 108,
    669-679), Algorithm 1; code ``kenjikawaguchi/qSGD``: the rule for q is in
    its ``README.md`` and in ``cifar10_WideResNet/cifar.py`` (``train``: the
    ``if/elif`` chain on ``train_acc_prev``, each branch guarded by ``ssize >
    int(batch_size / d)`` so q never grows; ``decay_learning_rate(optimizer)``
    with ``lr_decay=0.5`` in the last-stage branch) and ``main.py``
    (``train``).  Their names: ``s`` / ``batch_size`` is the loop's
    ``batch_size``; ``q`` / ``ssize`` is our ``q``, and with ``q=None`` our
    ``q_``; ``train_acc`` (in percent) is the previous epoch's train accuracy
    in ``state.logs`` (a fraction); their objective ``mean(topk(loss,
    min(q, s)))`` is our weights ``n / min(q, n)`` on the top rows.
    Remaining deviations:

    * ``last_stage_scale`` scales the loss instead of the learning rate.  This
      equals halving the learning rate only for plain SGD: with momentum the
      velocity built before the switch is not rescaled (a transient of about
      ``1 / (1 - momentum)`` steps); the model's regularization losses (the
      reference's ``weight_decay``) are not scaled; with Adam or RMSprop,
      which normalize the gradient's scale, it has almost no effect.  Pass
      ``last_stage_scale=1.0`` to leave the loss alone (and halve the learning
      rate yourself, e.g. with a callback, to match the reference exactly).
      The reference's ``main.py`` passes ``lr_decay=0.5`` to a
      ``lr_decay_func`` that ignores it and multiplies by 0.1; we follow the
      stated 0.5 of both files (``cifar.py`` really applies it).
    * the reference's ``--ssize`` is the *initial* q of the rule (its default
      equals the batch size); here an integer ``q`` fixes q for the whole fit
      and turns the rule (and the scale) off, as the paper's Algorithm 1
      with a constant q; this also serves regression, which has no accuracy.
      With ``q=None``, ``tasks`` is classification only, so the benchmark
      stores a regression run as not applicable instead of failing it.
    * q is at least 1 (the reference's ``int(s / 16)`` is 0 for s < 16).
    * ``main.py`` measures the accuracy in a separate pass over the training
      set after each epoch; ``cifar.py`` (followed here) uses the running
      accuracy of the epoch's training batches.

    Args:
        q: ``None`` for the authors' rule, or a fixed positive number of rows.
        last_stage_scale: the factor, in (0, 1], on the loss weights from the
            last stage of the rule on (``q=None`` only).

    Raises:
        ValueError: ``q`` < 1 or ``last_stage_scale`` outside (0, 1]; or, with
            ``q=None``, a task without an accuracy.
    """

    filter_mode = "mask"

    def __init__(self, q=None, last_stage_scale=0.5):
        if q is not None:
            check_number("OrderedSGD", "q", q, low=1, integer=True)
        self.q = q
        self.last_stage_scale = check_number("OrderedSGD", "last_stage_scale", last_stage_scale, low=0, high=1,
                                             low_open=True)
        self.divisor_ = 1       # the rule's stage: q_ = int(s / divisor_); only grows
        self.q_ = None          # tf.Variable int32, the q of this epoch (q=None)
        self.scale_ = None      # tf.Variable float32, the factor on the kept rows' weights

    @property
    def tasks(self):
        """The authors' rule for q follows the train accuracy: classification only, unless ``q`` is fixed."""
        return ("classification",) if self.q is None else Selector.tasks

    def _ensure_variables(self):
        if not isinstance(self.q_, tf.Variable):
            self.q_ = tf.Variable(np.int32(np.iinfo(np.int32).max if self.q_ is None else self.q_),
                                  trainable=False, name="osgd_q")
        if not isinstance(self.scale_, tf.Variable):
            self.scale_ = tf.Variable(np.float32(1.0 if self.scale_ is None else self.scale_), trainable=False,
                                      name="osgd_scale")

    def on_train_begin(self, state):
        if self.q is None and (state.num_classes is None or getattr(state, "task", "") == "regression"):
            raise ValueError("OrderedSGD(q=None) follows the train accuracy, which a regression task lacks; "
                             "pass a fixed q, e.g. OrderedSGD(q=16)")
        self._ensure_variables()

    def advance(self, accuracy, batch_size):
        """Moves the rule on by one epoch's train accuracy; returns q for the next epoch.

        The stage only advances (q only shrinks), and entering the last stage
        multiplies the weight scale by ``last_stage_scale`` once.
        """
        self._ensure_variables()
        divisor = max(int(self.divisor_), paper_divisor(accuracy))
        if divisor == LAST_DIVISOR and int(self.divisor_) != LAST_DIVISOR:
            self.scale_.assign(self.scale_ * np.float32(self.last_stage_scale))
        self.divisor_ = divisor
        q = max(1, int(batch_size / divisor))
        self.q_.assign(q)
        return q

    def __call__(self, state):
        self._ensure_variables()
        if self.q is None:
            logs = state.logs or {}
            accuracy = next((logs[k] for k in ACCURACY_KEYS if k in logs), None)
            self.advance(None if accuracy is None else float(accuracy), state.batch_size)
        return chunk(state.rng.permutation(state.num_samples), state.batch_size)

    def keep(self, batch):
        losses = tf.cast(tf.reshape(batch.losses, [-1]), tf.float32)
        n = tf.shape(losses)[0]
        limit = self.q_ if self.q is None else tf.constant(self.q, tf.int32)
        q = tf.minimum(limit, n)
        top = tf.math.top_k(losses, q).indices
        mask = tf.reduce_sum(tf.one_hot(top, n, dtype=tf.float32), axis=0)
        weights = tf.cast(batch.weights, tf.float32) * mask * tf.cast(n, tf.float32) / tf.cast(q, tf.float32)
        return weights if self.q is not None else weights * self.scale_
