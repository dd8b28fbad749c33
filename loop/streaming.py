"""Training data read by index from a random-access source, for data larger than the device.

Who owns what: :class:`RandomAccess` owns reading: it turns a source (a NumPy
array or memmap, a ``tfds.data_source(...)``, a ``grain``
``RandomAccessDataSource``, or anything with ``__len__`` and ``__getitem__``)
and an optional per-record ``decode`` function into batches of NumPy rows,
read by index.  :class:`StagedData` and :class:`Feeder` are the machinery of
the streaming path of ``Loop.fit``, which :class:`loop.data.StreamedData`
composes: the plan's indices drive a ``tf.data`` pipeline (a parallel map over
the mini-batches' index slices, prefetched) whose rows are staged on the
device one piece at a time, while the previous piece trains.

Memory is bounded in bytes: ``Loop(staging_bytes=...)`` (default
:data:`DEFAULT_STAGING_BYTES`) covers the staging buffer and the read-ahead
(reads in flight and prefetched mini-batches), whatever the row size, batch
size or ``steps_per_execution``.  :func:`read_ahead` splits the budget: a
staged piece holds as many mini-batches as fit (at most a compiled call's
chunk; a chunk larger than that is staged and trained in several pieces, with
the same steps in the same order, so the history does not change).  A
mini-batch too large for the budget still trains, one at a time, with a
warning.  The device-resident path reads the data with :func:`read_all` into
one preallocated, aligned array (a memmap in slices, by ``pread``) that
becomes the device tensor without a copy (:func:`host_tensor`), so it holds
about 1x the data's bytes.  ``python -m loop.bench throughput --memory``
measures both (see :mod:`loop.bench.streaming`).

The compiled train step does not change: it gathers rows by sample index, as
on the device-resident path (:class:`loop.data.ResidentData`), but from a
staging buffer that holds the rows of the current chunk (and the rows an
accumulating in-step filter has queued), through a device table that maps a
sample index to its row in the buffer (one int32 per sample).  The labels, the
loss table and the other per-sample tables stay on the device for the whole
training set: one number per sample.  So plans, weights, in-step filters,
``state.score``, checkpoints and ``tf.distribute`` work as on the resident path,
and for the same seed the history is the same.

Which path ``fit`` takes (decided once, in :func:`loop.data.training_data`):
data whose bytes exceed ``Loop(resident_limit_bytes=...)`` (default
:data:`DEFAULT_RESIDENT_LIMIT_BYTES`) streams; smaller data is read once onto
the device.  A ``tf.data.Dataset`` is refused: it cannot be read by
index.
"""

import collections
import mmap
import numbers
import os
import warnings

import numpy as np
import tensorflow as tf

#: Data larger than this (in bytes, inputs and targets) streams from its source by default.
DEFAULT_RESIDENT_LIMIT_BYTES = 2 * 2 ** 30

#: Reads in flight at once, and mini-batches read ahead of the one training (per fit), at most.
DEFAULT_PARALLEL_READS = 4

#: Bytes of host/device memory for the streamed rows: the staging buffer plus the read-ahead.
DEFAULT_STAGING_BYTES = 512 * 2 ** 20

#: Alignment of the arrays this module allocates (TensorFlow's CPU tensors need 64 bytes).
ALIGNMENT = 128

#: Arrays this module allocates of at least this many bytes get a memory map of their own (see aligned_empty).
MAPPED_BYTES = 2 ** 20


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
        parallel_reads: the most mini-batches read at once, and read ahead; fewer when
            ``Loop(staging_bytes=...)`` cannot hold them (see :func:`read_ahead`).

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
        self.input_row_nbytes = sum(int(a[0].nbytes) for a in tf.nest.flatten(first_x))
        self.row_nbytes = self.input_row_nbytes + int(first_y[0].nbytes)

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
    """Rows ``indices`` of an array; of a file-backed memmap by ``os.preadv``, so the pages are not mapped in.

    Reading a memmap through its mapping would leave every page read counted in
    the process's resident memory until the kernel reclaims it; ``preadv`` goes
    through the page cache, which is not, and reads straight into the
    (aligned) result: runs of consecutive indices in one call.
    """
    if _preadable(array) and len(indices) > 0:
        indices = np.asarray(indices, np.int64)
        row = _row_bytes(array)
        out = aligned_empty((len(indices), *array.shape[1:]), array.dtype)
        flat = out.reshape(len(indices), -1).view(np.uint8)
        order = np.argsort(indices, kind="stable")
        fd = os.open(array.filename, os.O_RDONLY)
        try:
            start = 0
            while start < len(order):  # in file order; a run is consecutive in the file and in out
                stop = start + 1
                while stop < len(order) and indices[order[stop]] == indices[order[stop - 1]] + 1 \
                        and order[stop] == order[stop - 1] + 1:
                    stop += 1
                first = int(order[start])
                _pread_into(fd, flat[first:first + stop - start].reshape(-1), _file_offset(array, indices[first]))
                start = stop
        finally:
            os.close(fd)
        return out
    return np.asarray(array[np.asarray(indices)])


def _preadable(array):
    return isinstance(array, np.memmap) and array.flags.c_contiguous and bool(getattr(array, "filename", None)) \
        and array.ndim >= 1


def _row_bytes(array):
    return int(np.prod(array.shape[1:], dtype=np.int64)) * array.itemsize


def _file_offset(array, index):
    return int(array.offset) + _view_offset(array) + int(index) * _row_bytes(array)


def _pread_into(fd, buffer, offset):
    """Fills the uint8 array ``buffer`` from ``fd`` at ``offset`` (``preadv`` may return short counts)."""
    view = memoryview(buffer)
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset + done)
        if got <= 0:
            raise OSError(f"could not read {len(view) - done} bytes at offset {offset + done}: the file is shorter "
                          "than the memmap")
        done += got


def aligned_empty(shape, dtype):
    """An uninitialized C-contiguous array whose data is aligned to :data:`ALIGNMENT` bytes.

    TensorFlow can only use an aligned buffer without copying it (:func:`host_tensor`).  Arrays of at least
    :data:`MAPPED_BYTES` are anonymous memory maps of their own: ``malloc`` would serve such sizes from its
    arenas once its adaptive threshold has risen, and arenas keep freed memory (about 100 MiB more at the
    peak of a streamed fit, measured).
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes >= MAPPED_BYTES:  # page-aligned, and returned to the system when freed
        private = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)  # counted in RssAnon
        return np.frombuffer(private, np.uint8).view(dtype).reshape(shape)
    raw = np.empty(nbytes + ALIGNMENT, np.uint8)
    skip = (-raw.ctypes.data) % ALIGNMENT
    return raw[skip:skip + nbytes].view(dtype).reshape(shape)


def host_tensor(array, copy=True):
    """``array`` as a tensor with at most one copy of its bytes (``tf.convert_to_tensor`` makes two).

    On a machine without GPU the tensor shares an aligned NumPy buffer through
    DLPack: with ``copy=False`` an aligned, C-contiguous, writeable ``array``
    itself (the caller hands it over and must not change it), otherwise an
    aligned copy of it.  With a GPU, or a dtype DLPack cannot carry, it is
    ``tf.convert_to_tensor(array)`` (the device gets its own copy anyway).

    Args:
        array: a NumPy array, or a tensor (returned as it is).
        copy: False to let the tensor share ``array``'s buffer when it can.

    Returns:
        A ``tf.Tensor`` with ``array``'s shape, dtype and values.
    """
    if tf.is_tensor(array):
        return array
    array = np.asarray(array)
    if array.dtype.kind not in "biuf" or array.ndim == 0 or array.size == 0 or tf.config.list_logical_devices("GPU"):
        return tf.convert_to_tensor(array)
    if copy or not (array.flags.c_contiguous and array.flags.writeable and array.ctypes.data % ALIGNMENT == 0):
        source, array = array, aligned_empty(array.shape, array.dtype)
        np.copyto(array, source)
    return tf.experimental.dlpack.from_dlpack(array.__dlpack__())


def read_all(source, block_bytes=64 * 2 ** 20):
    """Every row of a :class:`RandomAccess`, as ``(inputs, targets)`` in fresh aligned arrays.

    Each input leaf is allocated once and filled in slices of about
    ``block_bytes`` (a memmap by ``preadv`` straight into it), so reading holds
    the data's bytes once plus one slice; hand the result to
    :func:`host_tensor` with ``copy=False``.

    Args:
        source: a :class:`RandomAccess`.
        block_bytes: the bytes read per slice.

    Returns:
        ``(x, y)``: the inputs (a nest for several inputs) and the targets.
    """
    n = len(source)
    step = max(1, int(block_bytes) // max(1, source.row_nbytes))
    x = tf.nest.map_structure(lambda spec: aligned_empty((n, *spec.shape[1:]), spec.dtype.as_numpy_dtype),
                              source.x_spec)
    leaves = tf.nest.flatten(x)
    arrays = source.decode is None and source.y is not None and _all_arrays(source.x)
    sources = tf.nest.flatten(source.x) if arrays else None
    targets = []
    for start in range(0, n, step):
        stop = min(start + step, n)
        if arrays:
            for leaf, src in zip(leaves, sources):
                if _preadable(src):
                    fd = os.open(src.filename, os.O_RDONLY)
                    try:
                        _pread_into(fd, leaf[start:stop].reshape(-1).view(np.uint8), _file_offset(src, start))
                    finally:
                        os.close(fd)
                else:
                    leaf[start:stop] = src[start:stop]
        else:
            part_x, part_y = source.take(np.arange(start, stop))
            for leaf, part in zip(leaves, tf.nest.flatten(part_x)):
                leaf[start:stop] = part
            targets.append(part_y)
    y = source.y if arrays else np.concatenate(targets)
    return x, y


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
