"""Data-parallel training for :class:`loop.Loop` under a ``tf.distribute`` strategy.

Who owns what: the selector still plans *global* mini-batches that index the
whole training set; this module owns how one global mini-batch is split over
the replicas and how the results come back into the loop's single, global
accounting.  ``Loop(..., strategy=...)`` swaps the single-device train step for
:func:`train_step`; the eager epoch driver, the plan validation, the loss table
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
replicas for the backward pass.  A filter that drops every candidate skips the
optimizer step on all replicas, as on one device.

Across workers, every worker calls the selector and trains its own copy of the
plan, so the plans must agree: :func:`plan_check` compares a digest of each
epoch's plan over all workers (one small all-reduce per epoch) and raises a
``ValueError`` on every worker when they differ, instead of letting replicas
train different batches or hang in a collective.

Every variable (model, optimizer, metrics, tables, a filter's variables) must
be created under ``strategy.scope()``: the loop does so for its own; build the
model (and pass the optimizer by name, or create it) under the scope yourself.
"""

import contextlib
import hashlib

import tensorflow as tf


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
    if getattr(optimizer, "_distribution_strategy", strategy) is not strategy:
        raise ValueError(f"the optimizer {type(optimizer).__name__} was created outside strategy.scope(); "
                         "pass its name (optimizer='adam') or create it inside `with strategy.scope():`")


def _replica_rows(tensor, per):
    replica = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.int32)
    return tensor[replica * per:(replica + 1) * per]


def train_step(loop):
    """Returns ``step(indices, weights) -> losses``: one global step over the replicas of ``loop.strategy``.

    The returned function is called inside the loop's compiled chunk function,
    in cross-replica context, in place of the single-device ``Loop._train_step``,
    with a third argument: the chunk's largest batch size, so that the step's
    collectives keep one shape for the whole call.
    """
    from loop.loop import StepBatch

    strategy = loop.strategy
    replicas = strategy.num_replicas_in_sync
    model = loop.model

    def rows(per, padded_indices):
        indices = _replica_rows(padded_indices, per)
        x = tf.nest.map_structure(lambda t: tf.gather(t, indices), loop._x)
        return x, tf.gather(loop._y, indices)

    def objective(y, y_pred, weights, n):
        value = tf.reduce_sum(weights * loop._loss(y, y_pred)) / n
        if model.losses:
            value += tf.add_n(model.losses) / replicas
        return value

    def forward_backward(per, n, capacity, padded_indices, padded_weights):
        x, y = rows(per, padded_indices)
        weights = _replica_rows(padded_weights, per)
        variables = model.trainable_variables
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            loss = objective(y, y_pred, weights, n)
        loop._apply(tape.gradient(loss, variables), variables)
        # Every replica launches its collectives in the same order: the gradient all-reduce, then ours.
        with tf.control_dependencies([tf.convert_to_tensor(loop.optimizer.iterations)]):
            return pack(loop._loss(y, y_pred), y_pred, capacity)

    def forward(per, capacity, padded_indices):
        x, y = rows(per, padded_indices)
        y_pred = model(x, training=False)
        return pack(loop._loss(y, y_pred), y_pred, capacity)

    def backward_kept(per, n, padded_indices, padded_weights):
        x, y = rows(per, padded_indices)
        weights = _replica_rows(padded_weights, per)
        keep = tf.reshape(tf.where(weights > 0), [-1])
        kept_x = tf.nest.map_structure(lambda t: tf.gather(t, keep), x)
        variables = model.trainable_variables
        with tf.GradientTape() as tape:
            loss = objective(tf.gather(y, keep), model(kept_x, training=True), tf.gather(weights, keep), n)
        loop._apply(tape.gradient(loss, variables), variables)
        return tf.constant(0)

    local = len(strategy.extended.worker_devices) == replicas
    # The predictions' per-row shape and dtype, from one eager forward pass now (not per step).
    y_pred_spec = tf.TensorSpec.from_tensor(model(tf.nest.map_structure(lambda t: t[:1], loop._x), training=False))

    def pack(losses, y_pred, capacity):
        """One tensor per replica: its losses and predictions, so one collective per step brings both back.

        Across workers the replicas' rows are placed at their offsets in a zero
        tensor of the padded global batch and all-reduced (summed): every
        worker then holds the global rows.
        """
        rows = tf.concat([losses[:, None], tf.reshape(tf.cast(y_pred, tf.float32), [tf.shape(y_pred)[0], -1])], 1)
        if local:
            return rows
        context = tf.distribute.get_replica_context()
        replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
        per = tf.shape(rows)[0]
        # A collective inside the chunk's loop keeps one shape for the whole call: pad to the chunk's largest batch.
        total = replicas * ((capacity + replicas - 1) // replicas)
        placed = tf.pad(rows, [[replica * per, total - (replica + 1) * per], [0, 0]])
        return context.all_reduce(tf.distribute.ReduceOp.SUM, placed)

    def gather(packed, n, y_pred_spec):
        if local:  # every replica lives in this process: no collective, just copies
            rows = tf.concat(strategy.experimental_local_results(packed), 0)
        else:
            rows = strategy.experimental_local_results(packed)[0]
        rows = rows[:n]
        y_pred = tf.cast(tf.reshape(rows[:, 1:], tf.concat([[n], y_pred_spec.shape[1:]], 0)), y_pred_spec.dtype)
        return rows[:, 0], y_pred

    def step(indices, weights, capacity):
        n = tf.shape(indices)[0]
        per = (n + replicas - 1) // replicas
        pad = per * replicas - n
        padded_indices = tf.concat([indices, tf.zeros([pad], indices.dtype)], 0)
        n_float = tf.cast(n, tf.float32)
        y = tf.gather(loop._y, indices)
        if loop._filter is None:
            padded_weights = tf.concat([weights, tf.zeros([pad], weights.dtype)], 0)
            packed = strategy.run(forward_backward, args=(per, n_float, capacity, padded_indices, padded_weights))
            losses, y_pred = gather(packed, n, y_pred_spec)
        else:
            losses, y_pred = gather(strategy.run(forward, args=(per, capacity, padded_indices)), n, y_pred_spec)
            weights = tf.cast(loop._filter(StepBatch(indices, tf.stop_gradient(losses), weights, y,
                                                     tf.stop_gradient(y_pred), loop._steps.read_value())),
                              tf.float32)
            padded_weights = tf.concat([weights, tf.zeros([pad], tf.float32)], 0)

            def run_backward():
                strategy.run(backward_kept, args=(per, n_float, padded_indices, padded_weights))
                return tf.constant(0)

            tf.cond(tf.reduce_any(weights > 0), run_backward, lambda: tf.constant(0))
        loop._account(indices, tf.boolean_mask(indices, weights > 0), losses, y, y_pred)
        return losses

    return step


def plan_check(loop):
    """Returns ``check(indices, weights, bounds, epoch)`` that raises ``ValueError`` on every worker when the
    workers' plans for an epoch differ, or None when all replicas live in this process (nothing to compare)."""
    from loop.selectors.base import describe

    strategy = loop.strategy
    if strategy is None or len(strategy.extended.worker_devices) == strategy.num_replicas_in_sync:
        return None

    replicas = strategy.num_replicas_in_sync

    @tf.function(input_signature=[tf.TensorSpec([6], tf.float64)])
    def total(value):
        def add(v):
            return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, tf.identity(v))
        return strategy.run(add, args=(value,))

    def check(indices, weights, bounds, epoch):
        digest = hashlib.sha256(indices.tobytes() + weights.tobytes() + bounds.tobytes()).digest()
        # Three 20-bit pieces of the digest and their squares: every sum stays an exact integer in float64, and
        # the pieces agree on all replicas exactly when replicas * sum(x^2) == sum(x)^2 for each piece.
        pieces = [float(int.from_bytes(digest[3 * k:3 * k + 3], "little") >> 4) for k in range(3)]
        sums = strategy.experimental_local_results(
            total(tf.constant(pieces + [p * p for p in pieces], tf.float64)))[0].numpy()
        if any(replicas * int(sums[3 + k]) != int(sums[k]) ** 2 for k in range(3)):
            raise ValueError(
                f"selector {describe(loop.selector)} gave the workers different plans for epoch {epoch}; under a "
                "multi-worker strategy every worker calls the selector and must get the same plan. Draw "
                "randomness from state.rng (seeded by the loop seed and the epoch), never from np.random, "
                "time or the worker's task index")

    return check
