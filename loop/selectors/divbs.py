"""DivBS: from each larger candidate batch, train the samples whose last-layer gradients are most diverse."""

import math

import tensorflow as tf

from loop.selectors._common import check_number
from loop.selectors.base import Selector, register
from loop.selectors.baselines import chunk


@register("divbs")
class DivBS(Selector):
    """Diversified batch selection: from each candidate batch of ``B = round(batch_size / ratio)`` samples, the
    ``int(ratio * B)`` whose gradients best span the batch's mean gradient, chosen greedily, train.

    Definition, per candidate batch (an in-step filter, ``filter_mode = "compact"``):

    1. A forward pass without gradient (``training=False``) gives each candidate's last-layer gradient
       ``g_i = (p_i - y_i) outer h_i`` flattened, from the loss gradient at the last layer's pre-activation and the
       last layer's input (``needs``: ``"last_layer_gradients"``, ``"features"``).
    2. Greedy selection, ``k = max(1, int(ratio * n))`` rounds: the residual starts as the candidates' mean
       gradient ``r = mean_i g_i``; each round draws a candidate with probability proportional to ``|g_i . r|``,
       orthogonalizes its gradient against those chosen before (Gram-Schmidt), normalizes it to ``d`` and removes
       it from the residual, ``r = r - (d . r) d``.  If every correlation is zero the rest are drawn uniformly from
       the candidates not chosen (the reference's random fill).
    3. The chosen rows train, as a plain mean of their losses (their weights are ``n / k``, since the step divides
       by the ``n`` candidates).

    An epoch is a seeded shuffle cut into candidate batches of ``B``, so it makes ``ceil(N / B)`` steps of about
    ``batch_size`` samples each; :meth:`epochs_for_budget` gives the loop epochs that match a baseline's steps.

    Reference: Hong, Lyu, Yao, Zhang, Tsang and Wang, "Diversified Batch Selection for Training Acceleration",
    ICML 2024; code ``Feng-Hong/DivBS``, ``methods/DivBS.py`` (``calc_grad``: ``grad_out.unsqueeze(-1) *
    features.unsqueeze(1)`` from ``model.eval()``; ``greedy_selection``: ``torch.multinomial`` on the absolute
    correlations, the Gram-Schmidt step, the residual update and the random fill; ``before_batch``:
    ``int(inputs.shape[0] * ratio)`` chosen) and ``cfg/cifar10_DivBS_01.yaml`` (``ratio: 0.1`` of candidate batches
    of 320, against a full-data baseline with batches of 32).  Deviations: the draws are seeded by the run's seed
    and the candidate batch's number (``StepBatch.candidate``), not a global generator, and are made by inverse CDF
    from one uniform per round; a candidate already chosen has its (numerically tiny) correlation set to zero, so
    no sample is chosen twice; a round whose orthogonalized gradient is zero ends the greedy part, as a zero
    correlation does (the reference would divide by its zero norm); at least one sample is chosen from a small
    last candidate batch (the reference's ``int`` can give none).  Its options ``balance``, ``reduce_dim``,
    ``warmup_epochs``, the ratio schedules and epoch-level selection are not offered (the configuration's
    defaults: off, off, 0, constant, per batch).

    Args:
        ratio: the share of each candidate batch that trains, in (0, 1].
    """

    #: The main knob for ``--tune``: the paper's budget ratios are 10%, 20% and 30%.
    tune_space = {"ratio": ("uniform", 0.1, 0.3)}
    needs = ("last_layer_gradients", "features")
    filter_mode = "compact"

    def __init__(self, ratio=0.1):
        self.ratio = check_number("DivBS", "ratio", ratio, low=0, high=1, low_open=True)
        self.seed_ = None

    def candidate_size(self, batch_size, num_samples):
        """``B``: the candidate batch for a trained batch of ``batch_size``, at most the training set."""
        return int(min(num_samples, max(batch_size, round(batch_size / self.ratio))))

    def on_train_begin(self, state):
        if self.seed_ is None:
            self.seed_ = int(state.rng.integers(2 ** 31 - 1))

    def __call__(self, state):
        return chunk(state.rng.permutation(state.num_samples), self.candidate_size(state.batch_size,
                                                                                   state.num_samples))

    def expected_steps(self, epochs, num_samples, batch_size):
        """Optimizer steps of ``epochs`` loop epochs: ``ceil(N / B)`` each, one per candidate batch."""
        owner = "DivBS.expected_steps"
        epochs = check_number(owner, "epochs", epochs, low=0, integer=True)
        num_samples = check_number(owner, "num_samples", num_samples, low=1, integer=True)
        batch_size = check_number(owner, "batch_size", batch_size, low=1, integer=True)
        return epochs * math.ceil(num_samples / self.candidate_size(batch_size, num_samples))

    def epochs_for_budget(self, baseline_epochs, num_samples, batch_size):
        """Loop epochs that make at least the baseline's ``E * ceil(N / b)`` steps: ``ceil(that / ceil(N / B))``."""
        owner = "DivBS.epochs_for_budget"
        baseline_epochs = check_number(owner, "baseline_epochs", baseline_epochs, low=0, integer=True)
        num_samples = check_number(owner, "num_samples", num_samples, low=1, integer=True)
        batch_size = min(check_number(owner, "batch_size", batch_size, low=1, integer=True), num_samples)
        steps = baseline_epochs * math.ceil(num_samples / batch_size)
        return math.ceil(steps / math.ceil(num_samples / self.candidate_size(batch_size, num_samples)))

    def choose(self, gradients, seed):
        """The greedy picks of step 2: a boolean mask over the rows of ``gradients`` ``[n, F]`` (a tensor).

        ``seed`` is a stateless seed (``[2]`` int64); traced into the step, also callable eagerly.
        """
        gradients = tf.convert_to_tensor(gradients, tf.float32)
        n = tf.shape(gradients)[0]
        k = tf.minimum(n, tf.maximum(1, tf.cast(tf.floor(tf.cast(n, tf.float32) * self.ratio), tf.int32)))
        uniforms = tf.random.stateless_uniform([k], seed=seed)
        width = tf.shape(gradients)[1]

        def body(i, residual, basis, chosen, going):
            correlations = tf.where(chosen, 0.0, tf.abs(tf.linalg.matvec(gradients, residual)))
            total = tf.reduce_sum(correlations)
            cdf = tf.cumsum(correlations) / tf.where(total > 0, total, 1.0)
            pick = tf.minimum(tf.searchsorted(cdf, uniforms[i:i + 1] * tf.reduce_max(cdf), side="right")[0], n - 1)
            direction = gradients[pick] - tf.linalg.matvec(basis, tf.linalg.matvec(basis, gradients[pick]),
                                                           transpose_a=True)
            norm = tf.norm(direction)
            going = going & (total > 0) & tf.math.is_finite(total) & (norm > 0)
            direction = direction / tf.where(norm > 0, norm, 1.0)
            basis = tf.where(going, tf.tensor_scatter_nd_update(basis, [[i]], direction[None]), basis)
            residual = tf.where(going, residual - tf.tensordot(direction, residual, 1) * direction, residual)
            chosen = chosen | (going & tf.equal(tf.range(n), pick))
            return i + 1, residual, basis, chosen, going

        _, _, _, chosen, _ = tf.while_loop(
            lambda i, residual, basis, chosen, going: (i < k) & going, body,
            [tf.constant(0), tf.reduce_mean(gradients, axis=0), tf.zeros([k, width]), tf.zeros([n], tf.bool),
             tf.constant(True)])
        missing = k - tf.reduce_sum(tf.cast(chosen, tf.int32))  # the random fill
        keys = tf.where(chosen, -1.0, tf.random.stateless_uniform([n], seed=seed + tf.constant([0, 1], seed.dtype)))
        fill = tf.math.top_k(keys, k=missing).indices
        return chosen | tf.scatter_nd(fill[:, None], tf.ones_like(fill, tf.bool), [n])

    def keep(self, batch):
        if batch.candidate is None or batch.last_layer_gradients is None or batch.features is None:
            raise ValueError("DivBS.keep needs a StepBatch with candidate, last_layer_gradients and features; the "
                             "loop's step sets them for a selector whose needs declare them")
        g = tf.cast(batch.last_layer_gradients, tf.float32)
        h = tf.cast(batch.features, tf.float32)
        n = tf.shape(g)[0]
        gradients = tf.reshape(tf.reshape(g, [n, -1, 1]) * tf.reshape(h, [n, 1, -1]), [n, -1])
        seed = tf.stack([tf.constant(self.seed_ or 0, tf.int64), tf.cast(batch.candidate, tf.int64)])
        chosen = self.choose(gradients, seed)
        k = tf.cast(tf.reduce_sum(tf.cast(chosen, tf.int32)), tf.float32)
        return tf.cast(batch.weights, tf.float32) * tf.cast(chosen, tf.float32) * tf.cast(n, tf.float32) / k


__all__ = ["DivBS"]
