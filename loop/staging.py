"""The streaming path's read-ahead and staging buffer: streamed rows reach the device within a byte budget.

Who owns what: :func:`batch_pipeline` (with :func:`read_inputs_fn`,
:func:`budget_pipeline` and :func:`sequential_batches`) owns the read-ahead:
the plan's indices drive a ``tf.data`` pipeline (a parallel map over the
mini-batches' index slices, reading through a
:class:`loop.streaming.RandomAccess`, prefetched), sized by
:func:`read_ahead`.  :class:`StagedData` owns the staging buffer on the
device, and :class:`Feeder` feeds one epoch's plan through the pipeline into
it, one piece at a time, while the previous piece trains.
:class:`loop.data.StreamedData` composes them.  Reading by index belongs to
:mod:`loop.streaming`, which re-exports this module's names.

Memory is bounded in bytes: ``Loop(staging_bytes=...)`` (default
:data:`DEFAULT_STAGING_BYTES`) covers the staging buffer and the read-ahead
(reads in flight and prefetched mini-batches), whatever the row size, batch
size or ``steps_per_execution``.  :func:`read_ahead` splits the budget: a
staged piece holds as many mini-batches as fit (at most a compiled call's
chunk; a chunk larger than that is staged and trained in several pieces, with
the same steps in the same order, so the history does not change).  A
mini-batch too large for the budget still trains, one at a time, with a
warning.  ``python -m loop.bench throughput --memory`` measures the streamed
and the device-resident path (see :mod:`loop.bench.perf.streaming`).

The compiled train step does not change: it gathers rows by sample index, as
on the device-resident path (:class:`loop.data.ResidentData`), but from a
staging buffer that holds the rows of the current chunk (and the rows an
accumulating in-step filter has queued), through a device table that maps a
sample index to its row in the buffer (one int32 per sample).  The labels, the
loss table and the other per-sample tables stay on the device for the whole
training set: one number per sample.  So plans, weights, in-step filters,
``state.score``, checkpoints and ``tf.distribute`` work as on the resident path,
and for the same seed the history is the same.
"""

import collections
import warnings

import numpy as np
import tensorflow as tf

#: Reads in flight at once, and mini-batches read ahead of the one training (per fit), at most.
DEFAULT_PARALLEL_READS = 4

#: Bytes of host/device memory for the streamed rows: the staging buffer plus the read-ahead.
DEFAULT_STAGING_BYTES = 512 * 2 ** 20

#: How :func:`read_ahead` splits a budget: reads in flight, mini-batches prefetched, mini-batches staged.
ReadAhead = collections.namedtuple("ReadAhead", ["reads", "prefetch", "staged_batches"])


def read_ahead(staging_bytes, batch_bytes, parallel_reads=DEFAULT_PARALLEL_READS, max_batches=None,
               what="a mini-batch", fix="lower batch_size"):
    """How a byte budget is split between reads in flight, prefetched mini-batches and the staging buffer.

    The budget counts, in mini-batches of ``batch_bytes``: ``reads`` in flight
    (the parallel map's buffer), ``prefetch`` read ahead, ``staged_batches`` in
    the staging buffer, and one more being copied into the buffer.  Reads
    take about a quarter of what the buffer leaves, up to ``parallel_reads``.

    Args:
        staging_bytes: the budget in bytes.
        batch_bytes: the bytes of the largest mini-batch's rows.
        parallel_reads: the most reads in flight (``RandomAccess(parallel_reads=...)``).
        max_batches: the most mini-batches a piece needs (a compiled call's chunk), or None.
        what, fix: name the mini-batch and the fix in the warning.

    Returns:
        A :class:`ReadAhead` ``(reads, prefetch, staged_batches)``; one mini-batch at a
        time (``(1, 0, 1)``) when even that does not fit, with a ``UserWarning``
        naming the numbers.
    """
    batch_bytes = max(1, int(batch_bytes))
    units = int(staging_bytes) // batch_bytes
    if units < 3:
        warnings.warn(f"{what} of {batch_bytes / 2 ** 20:.1f} MiB does not fit staging_bytes={int(staging_bytes)} "
                      f"({int(staging_bytes) / 2 ** 20:.1f} MiB) with its read-ahead (3 mini-batches: one staged, "
                      f"one read, one being copied, {3 * batch_bytes / 2 ** 20:.1f} MiB): reading one mini-batch at a "
                      f"time, which may hold more than the budget; raise Loop(staging_bytes=...) to at least "
                      f"{3 * batch_bytes} or {fix}", stacklevel=3)
        return ReadAhead(1, 0, 1)
    reads = min(int(parallel_reads), max(1, (units - 2) // 4))
    prefetch = min(reads, units - 2 - reads)
    staged = units - 1 - reads - prefetch
    if max_batches is not None:
        staged = min(staged, max(1, int(max_batches)))
    return ReadAhead(reads, prefetch, staged)


def read_inputs_fn(source, with_targets=False):
    """A ``tf.data`` map function ``indices -> (indices, *input_leaves[, target])`` that reads through ``source``."""
    specs = tf.nest.flatten(source.x_spec) + ([source.y_spec] if with_targets else [])

    def read(indices):
        x, y = source.decode_rows(np.asarray(indices, np.int64))
        return [*tf.nest.flatten(x), *([y] if with_targets else [])]

    def fn(indices):
        leaves = tf.numpy_function(read, [indices], [s.dtype for s in specs], stateful=False)
        for leaf, spec in zip(leaves, specs):
            leaf.set_shape(spec.shape)
        return (indices, *leaves)

    return fn


def batch_pipeline(source, index_batches, with_targets=False, *, reads=None, prefetch=None):
    """A ``tf.data.Dataset`` of ``(indices, *input_leaves[, target])``, one element per mini-batch.

    ``index_batches`` is a ``tf.data.Dataset`` of int32 index vectors (one per
    mini-batch, of any sizes).  The reads run ``reads`` at a time, in order,
    and ``prefetch`` more mini-batches are read ahead (both default to
    ``source.parallel_reads``; :func:`read_ahead` chooses them from a byte
    budget).  Autotuning is off: with TensorFlow 2.21, destroying an iterator
    whose pipeline autotunes waits for the tuner's timed sleep (seconds of idle
    time at every early stop or epoch end; see docs/performance.md).
    """
    reads = source.parallel_reads if reads is None else max(1, int(reads))
    prefetch = source.parallel_reads if prefetch is None else max(0, int(prefetch))
    dataset = index_batches.map(read_inputs_fn(source, with_targets), num_parallel_calls=reads, deterministic=True)
    if prefetch:
        dataset = dataset.prefetch(prefetch)
    options = tf.data.Options()
    options.autotune.enabled = False
    options.threading.private_threadpool_size = max(2, reads)
    return dataset.with_options(options)


def budget_pipeline(source, index_batches, batch_rows, staging_bytes, with_targets=False, what="a batch",
                    fix="lower eval_batch_size"):
    """:func:`batch_pipeline` with reads and prefetch chosen by :func:`read_ahead` for batches of ``batch_rows``.

    For evaluation and scoring, which stage one batch at a time.
    """
    row = source.row_nbytes if with_targets else source.input_row_nbytes
    plan = read_ahead(staging_bytes, batch_rows * row, source.parallel_reads, max_batches=1,
                      what=f"{what} ({batch_rows} rows x {row} bytes)", fix=fix)
    return batch_pipeline(source, index_batches, with_targets, reads=plan.reads, prefetch=plan.prefetch)


def sequential_batches(num_rows, batch_size):
    """Index vectors ``[0, b), [b, 2b), ...`` over ``num_rows`` rows, as a ``tf.data.Dataset``."""
    starts = tf.data.Dataset.range(0, num_rows, batch_size)
    return starts.map(lambda s: tf.range(tf.cast(s, tf.int32), tf.cast(tf.minimum(s + batch_size, num_rows),
                                                                        tf.int32)))


class StagedData:
    """The device side of the streaming path: rows gathered by sample index from a staging buffer.

    ``rows(indices)`` has :class:`loop.data.ResidentData`'s contract, so the
    compiled step is the same on both paths; it is valid for the indices of the
    last :meth:`stage` (or :meth:`put`) calls since :meth:`reserve`.  ``y``
    holds every sample's target on the device.  The buffer is allocated once
    per capacity (:meth:`reserve`) and filled in place, a mini-batch at a time,
    so staging holds no second copy of it.

    Args:
        source: the :class:`loop.streaming.RandomAccess` the rows come from.
        labels: every sample's target (NumPy), or a device tensor of them to share.
    """

    def __init__(self, source, labels):
        self.source = source
        self.y = tf.convert_to_tensor(labels)
        self.x = tf.nest.map_structure(
            lambda spec: tf.Variable(tf.zeros([0, *spec.shape[1:]], spec.dtype), shape=spec.shape, trainable=False,
                                     name="staged_inputs"),
            source.x_spec)
        self.lookup = tf.Variable(tf.zeros([len(source)], tf.int32), trainable=False, name="staged_rows")
        self.valid = False  # the buffer holds the rows of the last stage() (False after a resume)
        self.capacity = 0

    def rows(self, indices):
        """``(x, y)`` of the rows ``indices`` (staged by the last :meth:`stage`)."""
        positions = tf.gather(self.lookup, indices)
        return tf.nest.map_structure(lambda v: tf.gather(v, positions), self.x), tf.gather(self.y, indices)

    def head(self, n=1):
        """The first ``n`` rows of x, read from the source, e.g. to build a model."""
        x, _ = self.source.take(np.arange(min(n, len(self.source))))
        return tf.nest.map_structure(tf.convert_to_tensor, x)

    def reserve(self, rows):
        """Makes the buffer hold at least ``rows`` rows (the old buffer is freed first; its rows are lost)."""
        if rows <= self.capacity:
            return
        self.release()
        for variable in tf.nest.flatten(self.x):
            variable.assign(tf.zeros([rows, *variable.shape[1:]], variable.dtype), read_value=False)
        self.capacity = int(rows)

    def release(self):
        """Frees the buffer (the next :meth:`reserve` allocates it again)."""
        for variable in tf.nest.flatten(self.x):
            variable.assign(tf.zeros([0, *variable.shape[1:]], variable.dtype), read_value=False)
        self.capacity, self.valid = 0, False

    def put(self, offset, indices, x_leaves):
        """Writes the rows ``x_leaves`` (flat input leaves) of ``indices`` at buffer rows ``offset...`` in place."""
        count = int(indices.shape[0])
        for variable, rows in zip(tf.nest.flatten(self.x), x_leaves):
            # In place; variable[a:b].assign() would first read the variable, and the write would then copy it.
            tf.raw_ops.ResourceStridedSliceAssign(ref=variable.handle, begin=[offset], end=[offset + count],
                                                  strides=[1], value=tf.cast(rows, variable.dtype))
        self.lookup.scatter_update(tf.IndexedSlices(tf.range(offset, offset + count, dtype=tf.int32),
                                                    tf.cast(indices, tf.int32)))
        self.valid = True
        return offset + count

    def stage(self, indices, x_leaves):
        """Puts the rows ``x_leaves`` (flat input leaves) of ``indices`` in the buffer."""
        self.reserve(int(indices.shape[0]))
        self.put(0, indices, x_leaves)


class Feeder:
    """Feeds one epoch's plan through a :func:`batch_pipeline` into a :class:`StagedData`, a piece at a time.

    A piece is as many consecutive mini-batches of a compiled call's chunk as
    the byte budget leaves for the staging buffer (:func:`read_ahead`);
    :meth:`pieces` stages each piece before the driver trains it.

    Args:
        data: the training :class:`StagedData`.
        tables: the fit's :class:`loop.tables.Tables` (an accumulating filter's
            queued rows are kept in the buffer across chunks).
        carry_queue: the step's filter accumulates (``"accumulate"`` mode).
        worker: ``(first_replica, local_replicas, replicas)`` under a
            multi-worker strategy (:func:`loop.distribute.worker_slice`): this
            worker reads only the rows of its replicas' slices of each global
            mini-batch; None reads every row.
        staging_bytes: the byte budget of the staging buffer and the read-ahead.
        steps_per_execution: mini-batches per compiled call (the largest piece).
        batch_size: the loop's batch size (an accumulating filter carries fewer queued rows).
    """

    def __init__(self, data, tables, *, carry_queue=False, worker=None, staging_bytes=DEFAULT_STAGING_BYTES,
                 steps_per_execution=None, batch_size=None):
        self.data, self.tables = data, tables
        self.carry_queue, self.worker = carry_queue, worker
        self.staging_bytes, self.steps_per_execution = int(staging_bytes), steps_per_execution
        self.batch_size = batch_size
        self._iterator = None
        self.piece_rows = self.plan = None

    def _needed(self, indices):
        """The rows of one global mini-batch that this worker's replicas train (see :mod:`loop.distribute`)."""
        if self.worker is None:
            return indices
        first, local, replicas = self.worker
        n = tf.shape(indices)[0]
        per = (n + replicas - 1) // replicas
        padded = tf.concat([indices, tf.zeros([per * replicas - n], indices.dtype)], 0)
        return padded[first * per:(first + local) * per]

    def _rows(self, sizes):
        """Rows this worker reads of mini-batches of ``sizes`` rows."""
        if self.worker is None:
            return sizes
        _, local, replicas = self.worker
        return -(-sizes // replicas) * local

    def start(self, plan, first_batch):
        """Starts reading the plan's mini-batches from ``first_batch`` (reads run ahead from here on)."""
        self.plan = plan
        self._sizes = self._rows(np.diff(np.asarray(plan.bounds, np.int64)))
        largest = int(self._sizes.max()) if len(self._sizes) else 1
        carry = (self.batch_size or largest) if self.carry_queue else 0
        source = self.data.source
        layout = read_ahead(self.staging_bytes, largest * source.input_row_nbytes, source.parallel_reads,
                            max_batches=self.steps_per_execution,
                            what=f"a mini-batch ({largest} rows x {source.input_row_nbytes} bytes)")
        if carry and layout.staged_batches > 1:  # the queued rows carried across pieces (< one batch)
            layout = layout._replace(staged_batches=layout.staged_batches - 1)
        self.piece_rows = max(largest, layout.staged_batches * largest)
        self.data.reserve(self.piece_rows + carry)
        flat, bounds = tf.constant(plan.indices, tf.int32), tf.constant(plan.bounds, tf.int64)
        batches = tf.data.Dataset.range(first_batch, plan.num_batches).map(
            lambda b: self._needed(flat[bounds[b]:bounds[b + 1]]))
        self._iterator = iter(batch_pipeline(source, batches, reads=layout.reads, prefetch=layout.prefetch))

    def pieces(self, first, last):
        """Stages mini-batches ``[first, last)`` a piece at a time, yielding each piece's ``(first, last)``.

        The caller trains a piece before asking for the next one (its rows
        replace the piece's in the buffer).
        """
        while first < last:
            stop, rows = first + 1, int(self._sizes[first])
            while stop < last and rows + int(self._sizes[stop]) <= self.piece_rows:
                rows += int(self._sizes[stop])
                stop += 1
            self.stage(first, stop)
            yield first, stop
            first = stop

    def stage(self, first, last):
        """Stages the rows of mini-batches ``[first, last)`` (the next ones read) in the buffer, in place."""
        queued = carried = None
        if self.carry_queue:
            queued = self.tables.queue_indices.read_value()
            if int(tf.size(queued)) > 0:
                if self.data.valid:  # gathered out of the buffer before it is overwritten
                    carried = tf.nest.flatten(self.data.rows(queued)[0])
                else:  # after a resume: read them again
                    carried = [tf.convert_to_tensor(a) for a in
                               tf.nest.flatten(self.data.source.take(queued.numpy())[0])]
        self.data.reserve((0 if carried is None else int(tf.size(queued))) + int(self._sizes[first:last].sum()))
        offset = 0 if carried is None else self.data.put(0, queued, carried)
        for _ in range(last - first):
            indices, *leaves = next(self._iterator)
            offset = self.data.put(offset, indices, leaves)
            del indices, leaves

    def stop(self):
        """Drops the reader and frees the buffer (at the end of a fit or an early stop)."""
        self._iterator = None
        self.data.release()
