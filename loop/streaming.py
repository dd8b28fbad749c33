"""Training data read by index from a random-access source, for data larger than the device.

Who owns what: :class:`RandomAccess` owns reading: it turns a source (a NumPy
array or memmap, a ``tfds.data_source(...)``, a ``grain``
``RandomAccessDataSource``, or anything with ``__len__`` and ``__getitem__``)
and an optional per-record ``decode`` function into batches of NumPy rows,
read by index.  :class:`StagedData` and :class:`Feeder` own the streaming
path of ``Loop.fit``: the plan's indices drive a ``tf.data`` pipeline (a
parallel map over the mini-batches' index slices, prefetched) whose rows are
staged on the device one chunk (``steps_per_execution`` mini-batches) at a
time, while the previous chunk trains.

The compiled train step does not change: it gathers rows by sample index, as
on the device-resident path (:class:`loop.data.ResidentData`), but from a
staging buffer that holds the rows of the current chunk (and the rows an
accumulating in-step filter has queued), through a device table that maps a
sample index to its row in the buffer (one int32 per sample).  The labels, the
loss table and the other per-sample tables stay on the device for the whole
training set: one number per sample.  So plans, weights, in-step filters,
``state.score``, checkpoints and ``tf.distribute`` work as on the resident path,
and for the same seed the history is the same.

Which path ``fit`` takes: data whose bytes exceed ``Loop(resident_limit_bytes=...)``
(default :data:`DEFAULT_RESIDENT_LIMIT_BYTES`) streams; smaller data is read
once onto the device.  A ``tf.data.Dataset`` is refused: it cannot be read by
index.
"""

import numbers
import os

import numpy as np
import tensorflow as tf

#: Data larger than this (in bytes, inputs and targets) streams from its source by default.
DEFAULT_RESIDENT_LIMIT_BYTES = 2 * 2 ** 30

#: Reads in flight at once, and mini-batches read ahead of the one training (per fit).
DEFAULT_PARALLEL_READS = 4


def is_source(x):
    """True for a random-access source that is not an in-memory array: a memmap, a data source, a RandomAccess."""
    if isinstance(x, RandomAccess) or isinstance(x, np.memmap):
        return True
    if isinstance(x, (np.ndarray, list, tuple, dict, str, bytes)) or tf.is_tensor(x):
        return False
    return hasattr(x, "__len__") and hasattr(x, "__getitem__")


def _leaf_nbytes(leaf):
    if isinstance(leaf, np.ndarray):
        return int(leaf.nbytes)
    return 0


class RandomAccess:
    """Samples read by index from a random-access source, decoded per record.

    Pass it to ``Loop.fit`` (or as ``validation_data``) where you would pass
    ``(x, y)`` arrays::

        source = tfds.data_source("mnist", split="train")
        train = loop.RandomAccess(source, decode=lambda r: (r["image"] / 255.0, r["label"]))
        Loop(model, ...).fit(train, epochs=5)

    Args:
        x: the source of the inputs, or of whole records when ``y`` is None: a
            NumPy array or ``np.memmap`` (or a tuple or dict of them), a
            ``tfds.data_source(...)``, a ``grain`` ``RandomAccessDataSource``, or
            any object with ``__len__`` and ``__getitem__(int)``; one with
            ``__getitems__(list)`` is read a batch at a time.
        y: the targets as an in-memory array, or None when each record holds its
            own target.
        decode: ``decode(record) -> inputs`` (when ``y`` is given) or
            ``-> (inputs, target)`` (when ``y`` is None): NumPy per-record
            decoding and augmentation, run in the reading threads.  Without
            it a record must already be the inputs, or an ``(inputs, target)``
            pair.  Augmentation here draws its own randomness: seed it from the
            record if runs must repeat.
        parallel_reads: mini-batches read at once and read ahead.

    Raises:
        ValueError: an empty source, ``y`` of another length, or records that
            do not decode to arrays of one shape, naming the value.
    """

    def __init__(self, x, y=None, *, decode=None, parallel_reads=DEFAULT_PARALLEL_READS):
        if isinstance(x, RandomAccess):
            raise ValueError("x is already a RandomAccess; pass it as it is")
        if isinstance(x, tf.data.Dataset):
            raise ValueError("a tf.data.Dataset cannot be read by index; pass a random-access source instead "
                             "(a NumPy memmap, tfds.data_source(...), a grain RandomAccessDataSource)")
        if decode is not None and not callable(decode):
            raise ValueError(f"decode must be a function record -> inputs (or -> (inputs, target)), got {decode!r}")
        if isinstance(parallel_reads, bool) or not isinstance(parallel_reads, numbers.Integral) or \
                parallel_reads < 1:
            raise ValueError(f"parallel_reads must be a positive integer, got {parallel_reads!r}")
        self.x, self.decode, self.parallel_reads = x, decode, int(parallel_reads)
        leaves = tf.nest.flatten(x) if isinstance(x, (tuple, dict)) else [x]
        sizes = {len(leaf) for leaf in leaves}
        if len(sizes) != 1:
            raise ValueError(f"the inputs in x have different lengths {sorted(sizes)}")
        self.num_samples = sizes.pop()
        if self.num_samples == 0:
            raise ValueError("the source is empty (0 records); pass at least one")
        self.y = None if y is None else np.asarray(y)
        if self.y is not None and len(self.y) != self.num_samples:
            raise ValueError(f"x has {self.num_samples} records but y has {len(self.y)}; they must have the same "
                             "length")
        self._labels = self.y
        first_x, first_y = self._decode_rows([0])
        self.x_spec = tf.nest.map_structure(lambda a: tf.TensorSpec([None, *a.shape[1:]], tf.as_dtype(a.dtype)),
                                            first_x)
        self.y_spec = tf.TensorSpec([None, *first_y.shape[1:]], tf.as_dtype(first_y.dtype))
        self.row_nbytes = sum(int(a[0].nbytes) for a in tf.nest.flatten(first_x)) + int(first_y[0].nbytes)

    def __len__(self):
        return self.num_samples

    def __repr__(self):
        return f"RandomAccess({type(self.x).__name__}, {self.num_samples} records)"

    @property
    def nbytes(self):
        """Bytes of all inputs and targets once decoded (from the first record's size)."""
        return self.num_samples * self.row_nbytes

    @property
    def labels(self):
        """Every sample's target, in memory (read once from the records when ``y`` was not given)."""
        if self._labels is None:
            chunks = [self.take(np.arange(i, min(i + 1024, self.num_samples)))[1]
                      for i in range(0, self.num_samples, 1024)]
            self._labels = np.concatenate(chunks)
        return self._labels

    def take(self, indices):
        """``(inputs, targets)`` of the rows ``indices``, as NumPy arrays (a nest for several inputs)."""
        indices = np.asarray(indices, np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= self.num_samples):
            raise IndexError(f"indices must be in [0, {self.num_samples}), got {indices.min()}..{indices.max()}")
        return self._decode_rows(indices)

    def __getitem__(self, indices):
        """The inputs of the rows ``indices`` (what ``state.inputs[indices]`` gives a selector)."""
        return self.take(indices)[0]

    # ------------------------------------------------------------------ reads
    def _decode_rows(self, indices):
        if self.decode is None and self.y is not None and _all_arrays(self.x):
            x = tf.nest.map_structure(lambda leaf: _read_rows(leaf, indices), self.x)
            return x, self.y[indices]
        records = _read_records(self.x, indices)
        samples = [self.decode(r) for r in records] if self.decode is not None else records
        if self.y is None:
            bad = next((s for s in samples if not (isinstance(s, (tuple, list)) and len(s) == 2)), None)
            if bad is not None:
                raise ValueError("without y, each record (after decode) must be an (inputs, target) pair; got "
                                 f"{type(bad).__name__}: pass decode=lambda record: (inputs, target)")
            xs, ys = [s[0] for s in samples], [s[1] for s in samples]
        else:
            xs, ys = samples, self.y[indices]
        return _stack(xs), np.asarray(ys) if self.y is not None else _stack(ys)

    def read(self, indices):
        """``take`` as flat NumPy leaves (inputs..., target), for ``tf.numpy_function``."""
        x, y = self._decode_rows(np.asarray(indices, np.int64))
        return [*tf.nest.flatten(x), y]


def _all_arrays(x):
    return all(isinstance(leaf, np.ndarray) for leaf in (tf.nest.flatten(x) if isinstance(x, (tuple, dict)) else [x]))


def _read_records(source, indices):
    if isinstance(source, (tuple, dict)):
        parts = tf.nest.map_structure(lambda leaf: _read_records(leaf, indices), source)
        flat = tf.nest.flatten(parts)
        return [tf.nest.pack_sequence_as(source, [p[i] for p in flat]) for i in range(len(indices))]
    if isinstance(source, np.ndarray):
        return list(_read_rows(source, indices))
    getitems = getattr(source, "__getitems__", None)
    if getitems is not None:
        return list(getitems([int(i) for i in indices]))
    return [source[int(i)] for i in indices]


def _read_rows(array, indices):
    """Rows ``indices`` of an array; of a file-backed memmap by ``os.pread``, so the pages are not mapped in.

    Reading a memmap through its mapping would leave every page read counted in
    the process's resident memory until the kernel reclaims it; ``pread`` goes
    through the page cache, which is not.
    """
    if isinstance(array, np.memmap) and array.flags.c_contiguous and getattr(array, "filename", None) \
            and array.ndim >= 1 and len(indices) > 0:
        row = int(np.prod(array.shape[1:], dtype=np.int64)) * array.itemsize
        base = int(array.offset) + _view_offset(array)
        out = np.empty((len(indices), *array.shape[1:]), array.dtype)
        flat = out.reshape(len(indices), -1).view(np.uint8)
        order = np.argsort(indices, kind="stable")
        fd = os.open(array.filename, os.O_RDONLY)
        try:
            for k in order:  # in file order
                buffer = os.pread(fd, row, base + int(indices[k]) * row)
                flat[k] = np.frombuffer(buffer, np.uint8)
        finally:
            os.close(fd)
        return out
    return np.asarray(array[np.asarray(indices)])


def _view_offset(array):
    """Byte offset of a memmap view (e.g. ``mm[100:]``) from the start of its own mapping."""
    base = array
    while isinstance(base.base, np.memmap):
        base = base.base
    if base is array:
        return 0
    return int(array.__array_interface__["data"][0] - base.__array_interface__["data"][0])


def _stack(values):
    if not values:
        raise ValueError("no records read")
    first = values[0]
    if isinstance(first, (tuple, dict)):
        return tf.nest.map_structure(lambda *leaves: _stack(list(leaves)), *values)
    try:
        return np.stack([np.asarray(v) for v in values])
    except ValueError:
        shapes = sorted({np.shape(v) for v in values})
        raise ValueError(f"records decode to arrays of different shapes {shapes[:4]}; decode each record to one "
                         "fixed shape (resize or pad in decode)") from None


def read_inputs_fn(source, with_targets=False):
    """A ``tf.data`` map function ``indices -> (indices, *input_leaves[, target])`` that reads through ``source``."""
    specs = tf.nest.flatten(source.x_spec) + ([source.y_spec] if with_targets else [])

    def read(indices):
        x, y = source._decode_rows(np.asarray(indices, np.int64))
        return [*tf.nest.flatten(x), *([y] if with_targets else [])]

    def fn(indices):
        leaves = tf.numpy_function(read, [indices], [s.dtype for s in specs], stateful=False)
        for leaf, spec in zip(leaves, specs):
            leaf.set_shape(spec.shape)
        return (indices, *leaves)

    return fn


def batch_pipeline(source, index_batches, with_targets=False):
    """A ``tf.data.Dataset`` of ``(indices, *input_leaves[, target])``, one element per mini-batch.

    ``index_batches`` is a ``tf.data.Dataset`` of int32 index vectors (one per
    mini-batch, of any sizes).  The reads run ``source.parallel_reads`` at a
    time, in order, and as many mini-batches are read ahead.  Autotuning is
    off: with TensorFlow 2.21, destroying an iterator whose pipeline autotunes
    waits for the tuner's timed sleep (seconds of idle time at every early
    stop or epoch end; see docs/performance.md).
    """
    parallel = source.parallel_reads
    dataset = index_batches.map(read_inputs_fn(source, with_targets), num_parallel_calls=parallel,
                                deterministic=True).prefetch(parallel)
    options = tf.data.Options()
    options.autotune.enabled = False
    options.threading.private_threadpool_size = max(2, parallel)
    return dataset.with_options(options)


def sequential_batches(num_rows, batch_size):
    """Index vectors ``[0, b), [b, 2b), ...`` over ``num_rows`` rows, as a ``tf.data.Dataset``."""
    starts = tf.data.Dataset.range(0, num_rows, batch_size)
    return starts.map(lambda s: tf.range(tf.cast(s, tf.int32), tf.cast(tf.minimum(s + batch_size, num_rows),
                                                                        tf.int32)))


class StagedData:
    """The device side of the streaming path: rows gathered by sample index from a staging buffer.

    ``rows(indices)`` has :class:`loop.data.ResidentData`'s contract, so the
    compiled step is the same on both paths; it is valid for the indices of the
    last :meth:`stage` call.  ``y`` holds every sample's target on the device.

    Args:
        source: the :class:`RandomAccess` the rows come from.
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

    def rows(self, indices):
        """``(x, y)`` of the rows ``indices`` (staged by the last :meth:`stage`)."""
        positions = tf.gather(self.lookup, indices)
        return tf.nest.map_structure(lambda v: tf.gather(v, positions), self.x), tf.gather(self.y, indices)

    def head(self, n=1):
        """The first ``n`` rows of x, read from the source, e.g. to build a model."""
        x, _ = self.source.take(np.arange(min(n, len(self.source))))
        return tf.nest.map_structure(tf.convert_to_tensor, x)

    def stage(self, indices, x_leaves):
        """Puts the rows ``x_leaves`` (flat input leaves) of ``indices`` in the buffer."""
        for variable, rows in zip(tf.nest.flatten(self.x), x_leaves):
            variable.assign(rows)
        indices = tf.cast(indices, tf.int32)
        self.lookup.scatter_update(tf.IndexedSlices(tf.range(tf.size(indices), dtype=tf.int32), indices))
        self.valid = True


class Feeder:
    """Feeds one epoch's plan through a :func:`batch_pipeline` into a :class:`StagedData`, a chunk at a time.

    Args:
        data: the training :class:`StagedData`.
        tables: the fit's :class:`loop.tables.Tables` (an accumulating filter's
            queued rows are kept in the buffer across chunks).
        carry_queue: the step's filter accumulates (``"accumulate"`` mode).
        worker: ``(first_replica, local_replicas, replicas)`` under a
            multi-worker strategy (:func:`loop.distribute.worker_slice`): this
            worker reads only the rows of its replicas' slices of each global
            mini-batch; None reads every row.
    """

    def __init__(self, data, tables, *, carry_queue=False, worker=None):
        self.data, self.tables = data, tables
        self.carry_queue, self.worker = carry_queue, worker
        self._iterator = None

    def _needed(self, indices):
        """The rows of one global mini-batch that this worker's replicas train (see :mod:`loop.distribute`)."""
        if self.worker is None:
            return indices
        first, local, replicas = self.worker
        n = tf.shape(indices)[0]
        per = (n + replicas - 1) // replicas
        padded = tf.concat([indices, tf.zeros([per * replicas - n], indices.dtype)], 0)
        return padded[first * per:(first + local) * per]

    def start(self, plan, first_batch):
        """Starts reading the plan's mini-batches from ``first_batch`` (reads run ahead from here on)."""
        flat, bounds = tf.constant(plan.indices, tf.int32), tf.constant(plan.bounds, tf.int64)
        batches = tf.data.Dataset.range(first_batch, plan.num_batches).map(
            lambda b: self._needed(flat[bounds[b]:bounds[b + 1]]))
        self._iterator = iter(batch_pipeline(self.data.source, batches))

    def stage(self, first, last):
        """Stages the rows of mini-batches ``[first, last)`` (the next ones read) for the compiled chunk."""
        parts = [next(self._iterator) for _ in range(last - first)]
        indices = tf.concat([p[0] for p in parts], 0)
        leaves = [tf.concat([p[k] for p in parts], 0) for k in range(1, len(parts[0]))]
        if self.carry_queue:
            queued = self.tables.queue_indices.read_value()
            if int(tf.size(queued)) > 0:
                if self.data.valid:
                    carried = tf.nest.flatten(self.data.rows(queued)[0])
                else:  # after a resume: read them again
                    carried = [tf.convert_to_tensor(a) for a in
                               tf.nest.flatten(self.data.source.take(queued.numpy())[0])]
                indices = tf.concat([queued, indices], 0)
                leaves = [tf.concat([c, leaf], 0) for c, leaf in zip(carried, leaves)]
        self.data.stage(indices, leaves)

    def stop(self):
        """Drops the reader (at the epoch's end or an early stop)."""
        self._iterator = None
