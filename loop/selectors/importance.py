"""Importance sampling of each mini-batch from a uniformly presampled larger batch."""

import math

import numpy as np
import tensorflow as tf

from loop.selectors._common import check_choice, check_number
from loop.selectors.base import Selector, register


OUTPUTS = ("auto", "probabilities", "logits", "linear")


def gradient_norm_bound(y_true, y_pred, outputs="auto"):
    """Per-sample ``||p - target||_2``: the norm of the loss gradient at the last pre-activation.

    For softmax (or sigmoid) with cross-entropy, ``p`` is the predicted
    probability and the target ``onehot(y_true)`` (sparse labels are one-hot
    encoded, binary ones kept); for a linear output with squared error ``p`` is
    the output and the target ``y_true`` (up to a constant factor).  This is
    the ``gnorm`` score of Katharopoulos & Fleuret 2018 (their
    ``importance_sampling/layers/scores.py``, ``GradientNormLayer`` for the
    common losses).

    Args:
        outputs: what ``y_pred`` holds: ``"probabilities"`` (softmax or
            sigmoid outputs), ``"logits"`` (pre-activations: softmax, or a
            sigmoid for one output, is applied here), ``"linear"``
            (regression outputs), or ``"auto"``: several outputs are logits
            unless every row lies in [0, 1] and sums to 1; one output is a logit
            when the targets are 0/1 and an output lies outside [0, 1], else it
            is used as it is.
    """
    y_pred = tf.cast(y_pred, tf.float32)
    width = y_pred.shape[-1] if y_pred.shape.rank and y_pred.shape.rank > 1 else 1
    if y_pred.shape.rank != 2:
        y_pred = tf.reshape(y_pred, [tf.shape(y_pred)[0], -1 if width is None else width])
    y_true = tf.convert_to_tensor(y_true)
    if width is not None and width > 1 and (y_true.shape.rank == 1 or y_true.shape[-1] == 1):
        target = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), width, dtype=tf.float32)
    else:
        target = tf.reshape(tf.cast(y_true, tf.float32), tf.shape(y_pred))
    in_unit = tf.reduce_all((y_pred >= 0.0) & (y_pred <= 1.0))
    if width is not None and width > 1:
        activate = tf.nn.softmax
        looks_like_logits = tf.logical_not(in_unit & tf.reduce_all(tf.abs(tf.reduce_sum(y_pred, -1) - 1.0) < 1e-3))
    else:
        activate = tf.math.sigmoid
        binary = tf.reduce_all((target == 0.0) | (target == 1.0))
        looks_like_logits = binary & tf.logical_not(in_unit)
    if outputs == "logits":
        p = activate(y_pred)
    elif outputs == "auto":
        p = tf.where(looks_like_logits, activate(y_pred), y_pred)
    else:
        p = y_pred
    return tf.norm(p - target, axis=-1)


@register("importance")
class ImportanceSampling(Selector):
    """Importance sampling with a presampled batch and a variance-reduction switch.

    Definition (Katharopoulos & Fleuret, "Not All Samples Are Created Equal:
    Deep Learning with Importance Sampling", ICML 2018, Algorithm 1; threshold
    and EMA as in their code, idiap/importance-sampling): the plan gives
    candidate batches of ``B = round(presample * b)`` samples drawn uniformly
    (consecutive slices of fresh permutations), ``ceil(N / b)`` of them per
    epoch so an epoch has the baseline's number of steps.  Before every step
    the compiled step reads the switch :meth:`active`, ``tau > tau_th``.  While
    it is off, the loop trains the first b of the B candidates (a uniform
    sample) in one training pass and the filter updates ``tau`` from their
    scores: Algorithm 1's "else" branch, with no presampling and no extra
    forward pass.  Once it is on, all B candidates are forwarded without
    gradient and the filter scores them from that pass:
    ``score="gnorm"`` (the default, as in the reference) uses the
    gradient-norm upper bound :func:`gradient_norm_bound`, correct for
    softmax, sigmoid and logit outputs (``outputs``), and ``score="loss"`` the
    loss.  With ``g = score / sum(score)`` and
    ``u = 1 / B`` it updates ``tau <- m * tau + (1 - m) / sqrt(1 - sum((g - u)**2) / sum(g**2))``
    (``tau`` starts at 0; ``u = 1 / b`` before the switch, from the b trained
    samples' scores).  While the switch is on (default ``tau_th = (B + 3b) /
    (3b)``) it draws b of the B with replacement with ``p_i = g_i`` and gives
    sample i the weight ``count_i / (b * p_i)``, which makes the loop's
    ``sum(w * loss) / B`` an unbiased estimate of the candidates' mean loss (the
    paper's ``1 / (B p_i)``).  ``tau`` is a ``tf.Variable``; the draws are
    stateless, seeded by the loop's seed and the global step.

    Reference: code ``idiap/importance-sampling``: ``importance_sampling/training.py``
    (``ImportanceTraining``: ``presample=3.0``, ``score="gnorm"``, ``tau_th =
    (B + 3b) / (3b)``), ``importance_sampling/samplers.py``
    (``ConditionalStartSampler``: uniform sampling until the condition holds;
    ``VarianceReductionCondition``: the EMA with momentum 0.9).  Their names are
    ours.  Remaining deviations: the plan always presamples B candidates per
    step, and before the switch the last B - b of them are simply not
    forwarded (the reference draws only b); with ``score="gnorm"`` the bound is
    computed from the outputs (``outputs``), as the reference's layer does for
    the common losses.  Under a ``tf.distribute`` strategy the switch is not
    supported yet.

    Raises:
        ValueError: ``presample`` < 1, ``tau_th`` < 1, ``momentum`` outside [0, 1),
            or an unknown ``score`` or ``outputs``.
    """

    def __init__(self, presample=3.0, score="gnorm", tau_th=None, momentum=0.9, outputs="auto"):
        self.presample = check_number("ImportanceSampling", "presample", presample, low=1)
        self.score = check_choice("ImportanceSampling", "score", score, ("loss", "gnorm"))
        self.outputs = check_choice("ImportanceSampling", "outputs", outputs, OUTPUTS)
        if tau_th is not None:
            check_number("ImportanceSampling", "tau_th", tau_th, low=1)
        self.tau_th = tau_th
        self.momentum = check_number("ImportanceSampling", "momentum", momentum, low=0, high=1, high_open=True)
        self.tau_ = None          # tf.Variable, the EMA of the variance reduction
        self.batch_size_ = None   # b, fixed per fit
        self.seed_ = None

    def presample_size(self, batch_size, num_samples):
        """B for a batch size b."""
        return int(min(num_samples, max(batch_size, round(self.presample * batch_size))))

    def threshold(self, batch_size, num_samples):
        """The switch-on threshold ``tau_th`` (default ``(B + 3b) / (3b)``)."""
        if self.tau_th is not None:
            return float(self.tau_th)
        big = self.presample_size(batch_size, num_samples)
        return (big + 3 * batch_size) / (3 * batch_size)

    def on_train_begin(self, state):
        self.batch_size_ = int(state.batch_size)
        self._threshold = self.threshold(state.batch_size, state.num_samples)
        if self.seed_ is None:
            self.seed_ = int(state.rng.integers(2 ** 31 - 1))
        if not isinstance(self.tau_, tf.Variable):
            self.tau_ = tf.Variable(np.float32(0.0 if self.tau_ is None else self.tau_), trainable=False,
                                    name="is_tau")

    def __call__(self, state):
        n, b = state.num_samples, state.batch_size
        big = self.presample_size(b, n)
        steps = math.ceil(n / b)
        stream = np.concatenate([state.rng.permutation(n) for _ in range(math.ceil(steps * big / n))])
        return list(stream[:steps * big].reshape(steps, big))

    def active(self, step):
        """Whether this step importance-samples: the variance-reduction EMA ``tau`` exceeds ``tau_th``.

        Read inside the compiled step before every step, as the reference
        checks its condition before every batch.  While it is False the loop
        trains the first b of the B candidates (a uniform sample) in one
        training pass, and :meth:`keep` only updates ``tau`` from their scores.
        """
        return self.tau_ > self._threshold

    def scores(self, batch):
        """The per-candidate scores: the gradient-norm bound or the loss, finite and non-negative."""
        if self.score == "loss":
            scores = tf.cast(tf.reshape(batch.losses, [-1]), tf.float32)
        else:
            scores = gradient_norm_bound(batch.y_true, batch.y_pred, self.outputs)
        return tf.maximum(tf.where(tf.math.is_finite(scores), scores, 0.0), 0.0)

    def _update_tau(self, p):
        n_f = tf.cast(tf.shape(p)[0], tf.float32)
        reduction = tf.math.rsqrt(tf.maximum(1.0 - tf.reduce_sum((p - 1.0 / n_f) ** 2) / tf.reduce_sum(p ** 2),
                                             1e-12))
        self.tau_.assign(self.momentum * self.tau_ + (1.0 - self.momentum) * reduction)

    def keep(self, batch):
        scores = self.scores(batch)
        n = tf.shape(scores)[0]
        n_f = tf.cast(n, tf.float32)
        total = tf.reduce_sum(scores)
        p = tf.where(total > 0, scores / tf.maximum(total, 1e-30), tf.fill([n], 1.0 / n_f))
        weights = tf.cast(batch.weights, tf.float32)
        sampling = self.tau_ > self._threshold  # as active(): the switch is read before tau moves
        self._update_tau(p)

        def importance():
            b = tf.minimum(tf.constant(self.batch_size_, tf.int32), n)
            seed = tf.stack([tf.constant(self.seed_, tf.int64), tf.cast(batch.step, tf.int64)])
            draws = tf.random.stateless_categorical(tf.math.log(p)[None, :], b, seed=seed)[0]
            counts = tf.reduce_sum(tf.one_hot(draws, n, dtype=tf.float32), axis=0)
            return weights * tf.math.divide_no_nan(counts, tf.cast(b, tf.float32) * p)

        # Before the switch the loop hands over the b uniform samples it trains: their weights stay as planned.
        return tf.cond(sampling, importance, lambda: weights)
