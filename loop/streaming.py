"""Training data read by index from a random-access source, for data larger than the device.

Who owns what: :class:`RandomAccess` owns reading: it turns a source (a NumPy
array or memmap, a ``tfds.data_source(...)``, a ``grain``
``RandomAccessDataSource``, or anything with ``__len__`` and ``__getitem__``)
and an optional per-record ``decode`` function into batches of NumPy rows,
read by index (a memmap by ``preadv``, :func:`read_rows`, into arrays aligned for TensorFlow,
:func:`aligned_empty`).  The device-resident path reads the data with
:func:`read_all` into one preallocated, aligned array (a memmap in slices, by
``pread``) that becomes the device tensor without a copy (:func:`host_tensor`),
so it holds about 1x the data's bytes.

The streaming path of ``Loop.fit`` (:class:`loop.data.StreamedData`) reads
through :mod:`loop.staging`, which owns the read-ahead and the staging buffer:
the plan's indices drive a ``tf.data`` pipeline whose rows are staged on the
device one piece at a time, while the previous piece trains, within the byte
budget ``Loop(staging_bytes=...)``, and the compiled step gathers them by
sample index as on the resident path, so for the same seed the history is the
same.  Its names (:class:`~loop.staging.StagedData`,
:class:`~loop.staging.Feeder`, :func:`~loop.staging.read_ahead`,
:data:`~loop.staging.DEFAULT_STAGING_BYTES`, ...) are importable from here too.

Which path ``fit`` takes (decided once, in :func:`loop.data.training_data`):
data whose bytes exceed ``Loop(resident_limit_bytes=...)`` (default
:data:`DEFAULT_RESIDENT_LIMIT_BYTES`) streams; smaller data is read once onto
the device.  A ``tf.data.Dataset`` is refused: it cannot be read by
index.
"""

import mmap
import numbers
import os

import numpy as np
import tensorflow as tf

from loop.staging import (  # noqa: F401 - the streaming path's names, importable from loop.streaming as before
    DEFAULT_PARALLEL_READS, DEFAULT_STAGING_BYTES, Feeder, ReadAhead, StagedData, batch_pipeline, budget_pipeline,
    read_ahead, read_inputs_fn, sequential_batches)

#: Data larger than this (in bytes, inputs and targets) streams from its source by default.
DEFAULT_RESIDENT_LIMIT_BYTES = 2 * 2 ** 30

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
            ``Loop(staging_bytes=...)`` cannot hold them (see :func:`loop.staging.read_ahead`).

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
        first_x, first_y = self.decode_rows([0])
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
        return self.decode_rows(indices)

    def __getitem__(self, indices):
        """The inputs of the rows ``indices`` (what ``state.inputs[indices]`` gives a selector)."""
        return self.take(indices)[0]

    # ------------------------------------------------------------------ reads
    def decode_rows(self, indices):
        """``(inputs, targets)`` of the rows ``indices``, read and decoded, without :meth:`take`'s range check.

        For indices already known to be in range (a checked plan's), e.g. in
        the reading threads of :func:`loop.staging.read_inputs_fn`.

        Args:
            indices: int64 row indices (an array or list).

        Returns:
            ``(x, y)``: the inputs as NumPy arrays (a nest for several inputs) and the targets.

        Raises:
            ValueError: records that do not decode to ``(inputs, target)`` pairs (without ``y``) or to arrays
                of one shape.
        """
        if self.decode is None and self.y is not None and _all_arrays(self.x):
            x = tf.nest.map_structure(lambda leaf: read_rows(leaf, indices), self.x)
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
        x, y = self.decode_rows(np.asarray(indices, np.int64))
        return [*tf.nest.flatten(x), y]


def _all_arrays(x):
    return all(isinstance(leaf, np.ndarray) for leaf in (tf.nest.flatten(x) if isinstance(x, (tuple, dict)) else [x]))


def _read_records(source, indices):
    if isinstance(source, (tuple, dict)):
        parts = tf.nest.map_structure(lambda leaf: _read_records(leaf, indices), source)
        flat = tf.nest.flatten(parts)
        return [tf.nest.pack_sequence_as(source, [p[i] for p in flat]) for i in range(len(indices))]
    if isinstance(source, np.ndarray):
        return list(read_rows(source, indices))
    getitems = getattr(source, "__getitems__", None)
    if getitems is not None:
        return list(getitems([int(i) for i in indices]))
    return [source[int(i)] for i in indices]


def read_rows(array, indices):
    """Rows ``indices`` of an array; of a file-backed memmap by ``os.preadv``, so the pages are not mapped in.

    Reading a memmap through its mapping would leave every page read counted in
    the process's resident memory until the kernel reclaims it; ``preadv`` goes
    through the page cache, which is not, and reads straight into the
    (aligned) result: runs of consecutive indices in one call.  Any other array
    (a view with strides, an in-memory array) is indexed as NumPy does.

    Args:
        array: a NumPy array or memmap, rows along the first axis.
        indices: the rows to read, in the order wanted (repeats allowed).

    Returns:
        A NumPy array ``array[indices]``.
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

