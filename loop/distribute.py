"""Data-parallel training for :class:`loop.Loop` under a ``tf.distribute`` strategy.

Who owns what: the selector still plans *global* mini-batches that index the
whole training set; this module owns how one global mini-batch is split over
the replicas and how the results come back into the loop's single, global
accounting.  ``Loop(..., strategy=...)`` wraps the single-device
:class:`loop.step.TrainStep` in a :class:`DistributedStep`, through the train
step's public attributes; the eager epoch driver, the plan validation, the loss table
and the metrics stay what they are.

One global step, inside the compiled chunk loop (cross-replica context):

1. The batch of ``n`` indices is padded to ``R * ceil(n / R)`` rows for ``R``
   replicas with index 0 and weight 0; replica ``r`` takes rows
   ``[r * per, (r + 1) * per)``.  Padding rows train nothing and are counted
   nowhere (not in the metrics, the trained counts or the loss table).
2. ``strategy.run`` runs the forward and backward pass on every replica with
   the objective ``sum(w * loss) / n`` (``n`` global, not per replica), so the
   optimizer's all-reduced (summed) gradient equals the single-device one.
   Regularization losses are divided by ``R`` for the same reason.
3. The per-replica losses and predictions (``n`` floats, and ``n * outputs``
   for the predictions the metrics need) come back: on one machine by copying
   the replicas' local results, across workers by one all-reduce of the rows
   placed at each replica's offset (a collective inside the compiled chunk loop
   must keep one shape for the whole call, so the rows are padded to the
   chunk's largest batch).  The step then records them in the global loss
   table, counters and metrics exactly as on one device.

An in-step filter (``selector.keep``) sees the *global* candidate batch: a
forward pass without gradient runs per replica, its losses are gathered, the
filter runs once in cross-replica context (so a stateful filter updates its
variables once, as on one device), and the filtered weights go back to the
replicas for the backward pass.  Here the train metrics come from that
candidate forward pass (on one device they come from the training forward
pass of the kept rows).  Filters in ``"accumulate"`` mode or with an
``active`` switch do not run under a strategy yet: :class:`DistributedStep`
refuses them with a ``ValueError``.  A filter that drops every candidate skips the
optimizer step on all replicas, as on one device.

Across workers, every worker calls the selector and trains its own copy of the
plan, so the plans must agree: :func:`plan_check` compares a digest of each
epoch's plan over all workers (one small all-reduce per epoch) and raises a
``ValueError`` on every worker when they differ, instead of letting replicas
train different batches or hang in a collective.

Mixed precision: each replica differentiates the train step's ``scaled``
objective (times the optimizer's loss scale) and its ``apply`` unscales the
gradients, as on one device.  With a ``keras.optimizers.LossScaleOptimizer``
the replicas first agree whether the step is skipped: one all-reduce of a
non-finite flag, before the gradient all-reduce; if any replica's gradients
are not finite, every replica hands non-finite gradients to the optimizer, so
all skip the step and halve the scale together (the optimizer decides from
each replica's local, not yet all-reduced, gradients, and replicas that
disagreed would diverge or wait in different collectives).  The predictions
come back in float32.

Every variable (model, optimizer, metrics, tables, a filter's variables) must
be created under ``strategy.scope()``: the loop does so for its own; build the
model (and pass the optimizer by name, or create it) under the scope yourself.
"""

import contextlib
import hashlib

import keras
import tensorflow as tf

from loop.objective import float32
from loop.protocol import describe
from loop.step import objective


def scope(strategy):
    """``strategy.scope()``, or a no-op context without a strategy.

    Raises:
        ValueError: ``strategy`` is not a ``tf.distribute.Strategy``.
    """
    if strategy is None:
        return contextlib.nullcontext()
    if not isinstance(strategy, tf.distribute.Strategy):
        raise ValueError(f"strategy must be a tf.distribute.Strategy (e.g. tf.distribute.MirroredStrategy()), "
                         f"got {strategy!r}")
    return strategy.scope()


def check(strategy, model, optimizer):
    """Raises ``ValueError`` if the strategy is not one or the model/optimizer were made outside its scope."""
    if strategy is None:
        return
    outside = [v.name for v in model.weights
               if not strategy.extended.variable_created_in_scope(getattr(v, "value", v))]
    if outside:
        raise ValueError(f"{len(outside)} of the model's variables (such as {outside[:2]}) were created outside "
                         "strategy.scope(); build the model inside `with strategy.scope():` before passing it "
                         "to Loop(..., strategy=...)")
    iterations = getattr(optimizer, "iterations", None)
    if iterations is not None and not strategy.extended.variable_created_in_scope(getattr(iterations, "value",
                                                                                          iterations)):
        raise ValueError(f"the optimizer {type(optimizer).__name__} was created outside strategy.scope(); "
                         "pass its name (optimizer='adam') or create it inside `with strategy.scope():`")


def _replica_rows(tensor, per):
    replica = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.int32)
    return tensor[replica * per:(replica + 1) * per]


class DistributedStep:
    """One global step of a :class:`loop.step.TrainStep` over the replicas of ``strategy``.

    Called inside the compiled chunk function, in cross-replica context, as
    ``step(indices, weights, capacity)``: ``capacity`` is the chunk's largest
    batch size, so that the step's collectives keep one shape for the whole
    call (``needs_capacity`` tells :class:`loop.step.Functions` to pass it).
    It reads only the train step's public attributes: ``model``, ``data``,
    ``loss_fn``, ``optimizer``, ``scaled``, ``apply``, ``keep`` with
    ``filter_weights``, and ``account``.
    A mask-mode filter runs in compact mode here.

    Args:
        step: the single-device :class:`loop.step.TrainStep`.
        strategy: the ``tf.distribute.Strategy`` the variables were made under.
    """

    needs_capacity = True

    def __init__(self, step, strategy):
        if step.variant == "accumulate" or step.active is not None:
            raise ValueError(f"an in-step filter in {step.variant!r} mode or with an active() switch does not run "
                             "under a tf.distribute strategy yet; train it without strategy=..., or use a filter in "
                             "'compact' or 'mask' mode without active() (e.g. SelectiveBackprop(accumulate=False, "
                             "prime_epochs=0))")
        self.step, self.strategy = step, strategy
        self.replicas = strategy.num_replicas_in_sync
        self.local = len(strategy.extended.worker_devices) == self.replicas
        # The predictions' per-row shape (and float32 dtype), from one eager forward pass now (not per step).
        self.y_pred_spec = tf.TensorSpec.from_tensor(float32(step.model(step.data.head(), training=False)))
        self.loss_scaled = isinstance(step.optimizer, keras.optimizers.LossScaleOptimizer)

    def _rows(self, per, padded_indices):
        return self.step.data.rows(_replica_rows(padded_indices, per))

    def _objective(self, y, y_pred, weights, n):
        """The replica's part of the objective, times the loss scale (differentiate it inside the tape)."""
        return self.step.scaled(objective(weights, self.step.loss_fn(y, y_pred), n, self.step.model, self.replicas))

    def _apply(self, gradients, variables):
        """The train step's ``apply`` (in replica context), once the replicas agree on skipping a loss-scaled step."""
        if self.loss_scaled:
            gradients = _agree_on_finite(gradients)
        self.step.apply(gradients, variables)

    def _forward_backward(self, per, n, capacity, padded_indices, padded_weights):
        x, y = self._rows(per, padded_indices)
        weights = _replica_rows(padded_weights, per)
        model, variables = self.step.model, self.step.model.trainable_variables
        with tf.GradientTape() as tape:
            y_pred = float32(model(x, training=True))
            value = self._objective(y, y_pred, weights, n)
        self._apply(tape.gradient(value, variables), variables)
        # Every replica launches its collectives in the same order: the gradient all-reduce, then ours.
        with tf.control_dependencies([tf.convert_to_tensor(self.step.optimizer.iterations)]):
            return self._pack(self.step.loss_fn(y, y_pred), y_pred, capacity)

    def _forward(self, per, capacity, padded_indices):
        x, y = self._rows(per, padded_indices)
        y_pred = float32(self.step.model(x, training=False))
        return self._pack(self.step.loss_fn(y, y_pred), y_pred, capacity)

    def _backward_kept(self, per, n, padded_indices, padded_weights):
        x, y = self._rows(per, padded_indices)
        weights = _replica_rows(padded_weights, per)
        keep = tf.reshape(tf.where(weights > 0), [-1])
        kept_x = tf.nest.map_structure(lambda t: tf.gather(t, keep), x)
        variables = self.step.model.trainable_variables
        with tf.GradientTape() as tape:
            value = self._objective(tf.gather(y, keep), float32(self.step.model(kept_x, training=True)),
                                    tf.gather(weights, keep), n)
        self._apply(tape.gradient(value, variables), variables)
        return tf.constant(0)

    def _pack(self, losses, y_pred, capacity):
        """One tensor per replica: its losses and predictions, so one collective per step brings both back.

        Across workers the replicas' rows are placed at their offsets in a zero
        tensor of the padded global batch and all-reduced (summed): every
        worker then holds the global rows.
        """
        rows = tf.concat([losses[:, None], tf.reshape(tf.cast(y_pred, tf.float32), [tf.shape(y_pred)[0], -1])], 1)
        if self.local:
            return rows
        context = tf.distribute.get_replica_context()
        replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
        per = tf.shape(rows)[0]
        # A collective inside the chunk's loop keeps one shape for the whole call: pad to the chunk's largest batch.
        total = self.replicas * ((capacity + self.replicas - 1) // self.replicas)
        placed = tf.pad(rows, [[replica * per, total - (replica + 1) * per], [0, 0]])
        return context.all_reduce(tf.distribute.ReduceOp.SUM, placed)

    def _gather(self, packed, n):
        if self.local:  # every replica lives in this process: no collective, just copies
            rows = tf.concat(self.strategy.experimental_local_results(packed), 0)
        else:
            rows = self.strategy.experimental_local_results(packed)[0]
        rows = rows[:n]
        spec = self.y_pred_spec
        y_pred = tf.cast(tf.reshape(rows[:, 1:], tf.concat([[n], spec.shape[1:]], 0)), spec.dtype)
        return rows[:, 0], y_pred

    def __call__(self, indices, weights, capacity):
        strategy, replicas = self.strategy, self.replicas
        n = tf.shape(indices)[0]
        per = (n + replicas - 1) // replicas
        pad = per * replicas - n
        padded_indices = tf.concat([indices, tf.zeros([pad], indices.dtype)], 0)
        n_float = tf.cast(n, tf.float32)
        y = tf.gather(self.step.data.y, indices)
        if self.step.keep is None:
            padded_weights = tf.concat([weights, tf.zeros([pad], weights.dtype)], 0)
            packed = strategy.run(self._forward_backward,
                                  args=(per, n_float, capacity, padded_indices, padded_weights))
            losses, y_pred = self._gather(packed, n)
        else:
            losses, y_pred = self._gather(strategy.run(self._forward, args=(per, capacity, padded_indices)), n)
            weights = self.step.filter_weights(indices, losses, weights, y, y_pred)
            padded_weights = tf.concat([weights, tf.zeros([pad], tf.float32)], 0)

            def run_backward():
                strategy.run(self._backward_kept, args=(per, n_float, padded_indices, padded_weights))
                return tf.constant(0)

            tf.cond(tf.reduce_any(weights > 0), run_backward, lambda: tf.constant(0))
            self.step.tables.add_forwards(tf.reduce_sum(tf.cast(weights > 0, tf.int64)))  # the kept rows' pass
        self.step.account(indices, tf.boolean_mask(indices, weights > 0), losses, y, y_pred)
        return losses


def _agree_on_finite(gradients):
    """The replica's gradients, made non-finite on every replica when any replica's are (one all-reduce).

    A ``LossScaleOptimizer`` skips a step by testing the gradients it is given,
    which under a strategy are each replica's own; this makes the replicas
    decide alike.  Finite gradients pass unchanged (plus zero).
    """
    present = [g for g in gradients if g is not None]
    if not present:
        return gradients
    values = [g.values if isinstance(g, tf.IndexedSlices) else g for g in present]
    finite = tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(v)) for v in values]))
    bad = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM,
                                                         1.0 - tf.cast(finite, tf.float32))
    poison = tf.where(bad > 0, tf.constant(float("nan")), tf.constant(0.0))

    def poisoned(g):
        if g is None:
            return None
        if isinstance(g, tf.IndexedSlices):
            return tf.IndexedSlices(g.values + tf.cast(poison, g.values.dtype), g.indices, g.dense_shape)
        return g + tf.cast(poison, g.dtype)

    return [poisoned(g) for g in gradients]


def multi_worker(strategy):
    """True under a strategy whose replicas span other processes (each worker then measures its own clock)."""
    return strategy is not None and len(strategy.extended.worker_devices) != strategy.num_replicas_in_sync


def worker_slice(strategy):
    """``(first_replica, local_replicas, replicas)`` of this worker under a multi-worker strategy, else None.

    The streaming path (:class:`loop.staging.Feeder`) reads on each worker only
    the rows of its own replicas' slices of every global mini-batch.  The
    worker's replica ids come from the strategy itself (one ``strategy.run``,
    no collective); they are consecutive.
    """
    if strategy is None:
        return None
    replicas = strategy.num_replicas_in_sync
    local = len(strategy.extended.worker_devices)
    if local == replicas:
        return None
    ids = strategy.experimental_local_results(
        strategy.run(lambda: tf.constant(tf.distribute.get_replica_context().replica_id_in_sync_group)))
    ids = sorted(int(i) for i in ids)
    if ids != list(range(ids[0], ids[0] + local)):
        raise ValueError(f"this worker's replicas {ids} are not consecutive; the streaming path cannot split "
                         "global mini-batches over them")
    return ids[0], local, replicas


def plan_check(strategy, selector):
    """Returns ``check(plan, epoch)`` that raises ``ValueError`` on every worker when the workers' plans for an
    epoch differ, or None when all replicas live in this process (nothing to compare).

    Args:
        strategy: the ``tf.distribute.Strategy``, or None.
        selector: a zero-argument function returning the current selector (for the message).
    """
    if strategy is None or len(strategy.extended.worker_devices) == strategy.num_replicas_in_sync:
        return None

    replicas = strategy.num_replicas_in_sync

    @tf.function(input_signature=[tf.TensorSpec([6], tf.float64)])
    def total(value):
        def add(v):
            return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, tf.identity(v))
        return strategy.run(add, args=(value,))

    def check(plan, epoch):
        digest = hashlib.sha256(plan.indices.tobytes() + plan.weights.tobytes() + plan.bounds.tobytes()).digest()
        # Three 20-bit pieces of the digest and their squares: every sum stays an exact integer in float64, and
        # the pieces agree on all replicas exactly when replicas * sum(x^2) == sum(x)^2 for each piece.
        pieces = [float(int.from_bytes(digest[3 * k:3 * k + 3], "little") >> 4) for k in range(3)]
        sums = strategy.experimental_local_results(
            total(tf.constant(pieces + [p * p for p in pieces], tf.float64)))[0].numpy()
        if any(replicas * int(sums[3 + k]) != int(sums[k]) ** 2 for k in range(3)):
            raise ValueError(
                f"selector {describe(selector())} gave the workers different plans for epoch {epoch}; under a "
                "multi-worker strategy every worker calls the selector and must get the same plan. Draw "
                "randomness from state.rng (seeded by the loop seed and the epoch), never from np.random, "
                "time or the worker's task index")

    return check
