"""The train step and the compiled functions around it.

Who owns what:

* :class:`TrainStep` owns the training of one mini-batch of the plan: gather
  the rows by index from the training data (:mod:`loop.data`), forward, backward, apply,
  and the bookkeeping (the loss table, counters and train metrics).  Its
  variant is chosen once, from the selector's in-step filter (see
  :mod:`loop.protocol`): ``"plain"`` (no filter), ``"compact"`` (a forward
  pass without gradient for the filter, then forward and backward on the kept
  rows), ``"mask"`` (the filter masks the training forward pass) or
  ``"accumulate"`` (kept rows queue on the device until a full batch trains).
  A filter's ``active`` switch picks, per mini-batch and inside the compiled
  step, between its variant and :meth:`TrainStep.inactive` (the first
  ``batch_size`` rows in ``"mask"`` mode: no extra forward pass).  All variants minimize
  :func:`objective`, and take their train metrics from the training forward
  pass.
* :class:`Functions` owns the compiled functions: the chunk function that runs
  mini-batches ``[first, last)`` of an epoch's flat plan in one call (a
  ``tf.function`` with an input signature, looping with ``tf.range``, traced
  once whatever the batch sizes), the scoring pass behind ``State.score`` and
  the evaluation step.

:mod:`loop.distribute` wraps a :class:`TrainStep` for a ``tf.distribute``
strategy through its public attributes.

Mixed precision (``keras.mixed_precision``): every variant differentiates
:meth:`TrainStep.scaled` (the objective times the optimizer's loss scale,
``optimizer.scale_loss``) and hands the scaled gradients to ``apply``, which
unscales them, as Keras' ``train_step`` does.  With a
``keras.optimizers.LossScaleOptimizer`` (the loop's optimizer under
``"mixed_float16"``, see :func:`loop.objective.training_optimizer`) a step
whose scaled gradients are not finite is skipped and the scale halved; the
loss table and its NaN check see the per-sample losses, which are always
float32, so a skipped step with finite losses is not an error.  Other
optimizers have no loss scale (``scale_loss`` returns the objective as is,
unless the optimizer was given a static ``loss_scale_factor``).  The model's
outputs are cast to float32 (:func:`loop.objective.float32`) before the
losses, the metrics and an in-step filter see them.
"""

import contextlib
import time

import numpy as np
import tensorflow as tf
from tensorflow.python.framework import ops as tf_ops

from loop.objective import float32
from loop.protocol import StepBatch
from loop.quantities import Forward


def objective(weights, losses, n, model, replicas=1):
    """The step's objective ``sum(w * loss) / n`` plus the model's regularization losses (split over replicas).

    Float32 throughout: the regularization losses are cast (a layer computing
    in float16 or bfloat16 may add its activity regularization in that dtype).
    """
    value = tf.reduce_sum(weights * losses) / n
    if model.losses:
        regularization = tf.add_n([tf.cast(loss, tf.float32) for loss in model.losses])
        value += regularization if replicas == 1 else regularization / replicas
    return value


class TrainStep:
    """One optimizer step over the mini-batch ``indices`` with per-sample ``weights``; returns its losses.

    Args:
        model: the Keras model.
        optimizer: its optimizer (built); a ``keras.optimizers.LossScaleOptimizer`` scales the
            objective and skips steps with non-finite gradients (see :meth:`scaled`).
        loss_fn: ``fn(y_true, y_pred) -> [n]`` per-sample losses (:func:`loop.objective.per_sample_loss`).
        data: the :class:`loop.data.TrainingData` (``rows(indices)`` in the step).
        tables: a :class:`loop.tables.Tables`.
        metrics: the training :class:`loop.objective.MetricSet`.
        keep: the selector's in-step filter (``keep(batch) -> weights``), or None.
        filter_mode: ``"compact"``, ``"mask"`` or ``"accumulate"`` when ``keep`` is given.
        active: the filter's optional switch ``active(step) -> bool``; while
            False the first ``batch_size`` rows of a batch train in ``"mask"``
            mode (:meth:`inactive`).
        batch_size: the loop's batch size: the backward batch of
            ``"accumulate"``, and the rows trained while ``active`` is False.
        sample_weight: None, or ``fit``'s per-sample weights on the device
            (float32 ``[num_samples]``), which weight the train loss metric
            (:meth:`metric_weights`).  They reach the objective through the
            plan's weights, which the driver multiplies by them once per epoch
            (:meth:`loop.data.TrainingData.plan_weights`).
        needs: the per-sample quantities the selector declares (:func:`loop.protocol.needs_of`); the forward
            pass that the filter sees computes them (:class:`loop.quantities.Forward`), the others run
            ``model(x)`` as it is.
    """

    def __init__(self, model, optimizer, loss_fn, data, tables, metrics, keep=None, filter_mode=None, active=None,
                 batch_size=None, sample_weight=None, needs=("losses",)):
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.forward = Forward(model, loss_fn, needs if keep is not None else ("losses",))
        self.data, self.tables, self.metrics = data, tables, metrics
        self.sample_weight = sample_weight
        self.keep, self.active, self.batch_size = keep, active, batch_size
        self.variant = "plain" if keep is None else filter_mode
        if (self.variant == "accumulate" or active is not None) and not batch_size:
            raise ValueError("an accumulating filter or an active() switch needs the batch size: pass batch_size")
        self._call = {"plain": self.plain, "compact": self.compact, "mask": self.mask,
                      "accumulate": self.accumulate}[self.variant]

    def __call__(self, indices, weights):
        if self.active is None or self.keep is None:
            return self._call(indices, weights)
        active = tf.reshape(tf.cast(self.active(self.tables.steps.read_value()), tf.bool), [])
        return tf.cond(active, lambda: self._call(indices, weights), lambda: self.inactive(indices, weights))

    def inactive(self, indices, weights):
        """While a filter's ``active`` switch is off: the first ``batch_size`` candidates train in mask mode.

        One training forward pass over those rows; the filter sees their losses
        and outputs (to update its statistics) and returns their weights.  The
        other candidates are not forwarded; their losses come back as NaN.
        """
        n = tf.shape(indices)[0]
        size = tf.minimum(n, tf.constant(self.batch_size, tf.int32))
        losses = self.mask(indices[:size], weights[:size])
        return tf.concat([losses, tf.fill([n - size], np.float32(np.nan))], 0)

    def filter_weights(self, indices, losses, weights, y, y_pred, quantities=None):
        """The in-step filter's weights for a candidate batch (no gradient flows into the filter).

        Each call is one candidate batch: it advances ``tables.candidates`` and
        hands the filter the batch's number as ``StepBatch.candidate``, and the
        declared ``quantities`` (:class:`loop.quantities.Forward`) as its fields.
        """
        batch = StepBatch(indices, tf.stop_gradient(losses), weights, y, tf.stop_gradient(float32(y_pred)),
                          self.tables.steps.read_value(), self.tables.next_candidate(), **(quantities or {}))
        return tf.stop_gradient(tf.cast(self.keep(batch), tf.float32))

    def scaled(self, value):
        """The objective as differentiated: times the optimizer's loss scale (``optimizer.scale_loss``).

        Call it inside the ``GradientTape``; :meth:`apply` divides the scale out
        of the gradients again (a ``LossScaleOptimizer`` also skips a step whose
        gradients are not finite and lowers its scale).  Without a loss scale
        it returns ``value`` itself.
        """
        return self.optimizer.scale_loss(value)

    def apply(self, gradients, variables):
        """Applies (scaled) gradients; a variable without one (unused in this step) gets zeros."""
        gradients = [tf.zeros_like(v) if g is None else g for g, v in zip(gradients, variables)]
        self.optimizer.apply_gradients(zip(gradients, variables))

    def metric_weights(self, indices):
        """The train loss metric's weights of the rows ``indices``: ``fit``'s sample weights, or None."""
        return None if self.sample_weight is None else tf.gather(self.sample_weight, indices)

    def account(self, indices, kept_indices, losses, y, y_pred):
        """The bookkeeping of one step: tables and counters, then the train metrics."""
        self.tables.account(indices, kept_indices, losses)
        self.metrics.update_state(losses, y, y_pred, self.metric_weights(indices))

    def plain(self, indices, weights):
        """One forward and backward pass over the batch."""
        return self._one_pass(indices, weights, filtered=False)

    def mask(self, indices, weights):
        """One forward pass; the filter's weights (from its losses) mask the backward pass."""
        return self._one_pass(indices, weights, filtered=True)

    def _one_pass(self, indices, weights, filtered):
        x, y = self.data.rows(indices)
        n = tf.cast(tf.shape(indices)[0], tf.float32)
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            y_pred, losses, quantities = self.forward(x, y, training=True)
            if filtered:
                weights = self.filter_weights(indices, losses, weights, y, y_pred, quantities)
            value = self.scaled(objective(weights, losses, n, self.model))
        self.apply(tape.gradient(value, variables), variables)
        self.account(indices, tf.boolean_mask(indices, weights > 0), losses, y, y_pred)
        return losses

    def compact(self, indices, weights):
        """A forward pass without gradient for the filter, then forward and backward on the kept rows only."""
        losses, weights = self._filter_candidates(indices, weights)
        kept = tf.boolean_mask(indices, weights > 0)
        n = tf.cast(tf.shape(indices)[0], tf.float32)

        def backprop_kept():
            self._train_rows(kept, tf.boolean_mask(weights, weights > 0), n)
            return tf.constant(0)

        # A filter may drop every candidate; then there is nothing to backpropagate.
        tf.cond(tf.size(kept) > 0, backprop_kept, lambda: tf.constant(0))
        self.tables.account(indices, kept, losses)
        return losses

    def accumulate(self, indices, weights):
        """A forward pass without gradient for the filter; kept rows queue; each full queued batch trains."""
        losses, weights = self._filter_candidates(indices, weights)
        self.tables.forwarded(indices, losses)
        self.tables.enqueue(tf.boolean_mask(indices, weights > 0), tf.boolean_mask(weights, weights > 0))
        size = tf.constant(self.batch_size, tf.int32)

        def train_one(count):
            queued, queued_weights = self.tables.dequeue(size)
            self._train_rows(queued, queued_weights, tf.cast(size, tf.float32))
            self.tables.stepped(queued)
            return [count + 1]  # a list like the loop variables: eager while_loop (run_eagerly) needs the structure

        tf.while_loop(lambda count: tf.shape(self.tables.queue_indices)[0] >= size, train_one, [tf.constant(0)])
        return losses

    def _filter_candidates(self, indices, weights):
        """The candidates' losses from a forward pass without gradient, and the filter's weights for them."""
        x, y = self.data.rows(indices)
        y_pred, losses, quantities = self.forward(x, y, training=False)
        return losses, self.filter_weights(indices, losses, weights, y, y_pred, quantities)

    def _train_rows(self, indices, weights, n):
        """Forward and backward over the rows ``indices`` with objective ``sum(w * loss) / n``; updates metrics."""
        x, y = self.data.rows(indices)
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            y_pred = float32(self.model(x, training=True))
            losses = self.loss_fn(y, y_pred)
            value = self.scaled(objective(weights, losses, n, self.model))
        self.apply(tape.gradient(value, variables), variables)
        self.tables.add_forwards(tf.size(indices))  # a second pass over rows already forwarded as candidates
        self.metrics.update_state(losses, y, y_pred, self.metric_weights(indices))


@contextlib.contextmanager
def releasing_custom_gradients():
    """Unregisters the gradient functions that ``tf.custom_gradient`` registers while the block traces.

    In graph mode ``tf.custom_gradient`` registers each call's gradient function
    under a fresh name (``CustomGradient-<uid>``) in TensorFlow's global gradient
    registry, which nothing ever clears; the function's closure holds the traced
    graph and, through it, every tensor the graph captured.  Keras' optimizers
    all-reduce the gradients through such a wrapper even on one device
    (``ReplicaContext.all_reduce``), so every traced train step pinned its
    training data for the life of the process: about 156 MB per ``fit`` on
    MNIST, which ``keras.backend.clear_session()`` did not release (TensorFlow
    issues #27492 and #97697; keras-team/tf-keras PR #898 purges the same
    entries in ``clear_session``).  The chunk function differentiates inside
    its own trace, so nothing looks these gradients up once tracing ends; the
    registrations made inside the block are dropped on the way out.  Entries
    registered before the block, and every other gradient, are left alone.
    Without TensorFlow's private registry the block does nothing.
    """
    registry = getattr(getattr(tf_ops, "gradient_registry", None), "_registry", None)
    before = set(registry) if isinstance(registry, dict) else None
    try:
        yield
    finally:
        if before is not None:
            for name in [name for name in registry if name not in before and name.startswith("CustomGradient-")]:
                del registry[name]


class Functions:
    """The compiled chunk, score and evaluation functions of one step, built once and cached.

    Args:
        step: a callable ``step(indices, weights) -> losses`` (a :class:`TrainStep`
            or a distributed wrapper with ``needs_capacity = True``, which also
            takes the chunk's largest batch size).
        model, loss_fn: the model and its per-sample loss (for scoring and evaluation).
        data: the :class:`loop.data.TrainingData`; scoring gathers ``data.score_rows(indices)``.
        tables: the step's :class:`loop.tables.Tables`.
        val_metrics: the evaluation :class:`loop.objective.MetricSet`.
        run_eagerly: do not compile (debugging).
        jit_compile: compile the step with XLA.
        needs: the per-sample quantities the selector declares; the quantities pass
            (:meth:`_quantities_batch`, behind ``State.quantities``) computes them.
    """

    def __init__(self, step, *, model, loss_fn, data, tables, val_metrics, run_eagerly=False, jit_compile=False,
                 needs=("losses",)):
        self.trace_count = 0
        self._needs = tuple(needs)
        self._forward = Forward(model, loss_fn, self._needs)
        self.trace_time_s = 0.0
        self._run_eagerly = run_eagerly
        self._model, self._loss_fn, self._data, self._tables = model, loss_fn, data, tables
        self._val_metrics = val_metrics
        needs_capacity = getattr(step, "needs_capacity", False)
        inner = self._compile(step, jit=True) if jit_compile and not needs_capacity else step
        positions = tables.positions

        def train_chunk(indices, weights, bounds, first, last):
            self.trace_count += 1  # Python side effect: runs once per trace, not per call.
            extra = ()
            if needs_capacity:  # collectives inside the loop keep one shape for the whole call
                extra = (tf.reduce_max(bounds[first + 1:last + 1] - bounds[first:last]),)
            for i in tf.range(first, last):
                start, stop = bounds[i], bounds[i + 1]
                losses = inner(indices[start:stop], weights[start:stop], *extra)
                if positions is not None:
                    positions[start:stop].assign(losses)
            return tf.stack([tables.steps.read_value(), tables.first_bad_step.read_value()])

        index = tf.TensorSpec([None], tf.int32)
        scalar = tf.TensorSpec([], tf.int32)
        self.train_chunk = self._compile(train_chunk, [index, tf.TensorSpec([None], tf.float32), index, scalar,
                                                       scalar])
        self.score_batch = self._compile(self._score_batch, [index])
        self.quantities_batch = self._compile(self._quantities_batch, [index])
        self.eval_batch = self._compile(self._eval_batch)

    def _compile(self, fn, signature=None, jit=False):
        if self._run_eagerly:
            return fn
        return tf.function(fn, input_signature=signature, reduce_retracing=signature is None, jit_compile=jit)

    def trace(self, warm=True):
        """Traces the chunk function once, before the clock runs, so tracing is not training time.

        With ``warm``, it then calls the function once on an empty range of mini-batches (``first == last``: no
        step runs, no variable changes), so the runtime's one-time work on a function's first call (graph
        optimization and instantiation, about 0.1 s for a small MLP on a CPU, many times a small workload's epoch)
        is not training time either.  Not under a distribution strategy, whose chunk takes per-replica plans.  The
        scoring pass is not warmed: a model call on zero rows fails in some kernels (oneDNN's convolutions).
        """
        if self._run_eagerly or self.trace_count:
            return
        start = time.perf_counter()
        with releasing_custom_gradients():
            self.train_chunk.get_concrete_function()
            if warm:
                empty = tf.zeros([0], tf.int32)
                self.train_chunk(empty, tf.zeros([0], tf.float32), tf.zeros([1], tf.int32), tf.constant(0),
                                 tf.constant(0)).numpy()
        self.trace_time_s = time.perf_counter() - start

    def _score_batch(self, indices):
        x, y = self._data.score_rows(indices)
        losses = self._loss_fn(y, self._model(x, training=False))
        self._tables.record(indices, losses)
        self._tables.add_forwards(tf.size(indices))
        return losses

    def _quantities_batch(self, indices):
        """The declared quantities of rows ``indices`` (a dict of tensors); the losses enter the loss table."""
        x, y = self._data.score_rows(indices)
        y_pred, losses, quantities = self._forward(x, y, training=False)
        self._tables.record(indices, losses)
        self._tables.add_forwards(tf.size(indices))
        out = {"losses": losses, **quantities}
        if "outputs" in self._needs:
            out["outputs"] = y_pred
        return out

    def _eval_batch(self, x, y, sample_weight=None):
        y_pred = float32(self._model(x, training=False))
        self._val_metrics.update_state(self._loss_fn(y, y_pred), y, y_pred, sample_weight)
