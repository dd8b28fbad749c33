"""The training data of ``Loop.fit``: one object, resident on the device or streamed, behind one interface.

Who owns what: :func:`training_data` is the one place that decides where the
training data lives, as Keras' ``get_data_adapter`` chooses an adapter once.
Data of at most ``resident_limit_bytes`` becomes a :class:`ResidentData` (read
onto the device once, gathered by index); larger data, and a random-access
source larger than the limit, becomes a :class:`StreamedData` (read by index
from its :class:`loop.streaming.RandomAccess` a chunk at a time).  From then
on ``Loop``, the step (:class:`loop.step.TrainStep`), the compiled functions
(:class:`loop.step.Functions`) and the driver (:class:`loop.driver.EpochDriver`)
talk only to the :class:`TrainingData` interface, which owns:

* the number of samples, the labels (NumPy, and on the device as ``y``), the
  task and number of classes inferred from them, ``fit``'s per-sample weights
  (:meth:`TrainingData.plan_weights` multiplies them into each plan), and what
  a selector sees as ``state.inputs``;
* the streamed path's byte budget (``staging_bytes``), which bounds the
  training feeder, scoring and streamed evaluation alike;
* the head rows: :meth:`TrainingData.head` to build the model, and the first
  rows kept to check evaluation data against;
* :meth:`TrainingData.rows`, the rows the compiled step gathers by index, and
  :meth:`TrainingData.score_rows`, those the scoring pass gathers;
* :meth:`TrainingData.score`, fresh losses of training rows in batches;
* :meth:`TrainingData.feeder`, what the driver calls to have each chunk's rows
  ready (a no-op on the device, a :class:`loop.staging.Feeder` when streamed);
* :meth:`TrainingData.evaluation_data`: evaluation data checked against the
  training data (structure, per-sample shapes, labels) as an
  :class:`EvaluationData` (with its own optional sample weights), whose
  :meth:`EvaluationData.batches` are the same for validation data,
  ``Loop.evaluate`` and extra evaluations.

Reading by index stays in :mod:`loop.streaming`; the ``tf.data`` pipeline, the
staging buffer and the feeder machinery in :mod:`loop.staging` (whose names
:mod:`loop.streaming` re-exports, and this module reads from there); this
module composes them.  The checks themselves are :mod:`loop.validation`'s.
"""

import copy
import dataclasses
import typing

import numpy as np
import tensorflow as tf

from loop import objective as objective_lib
from loop import streaming as streaming_lib
from loop import validation

#: Rows of the training data kept to check the loss and evaluation data against.
HEAD_ROWS = 8


@dataclasses.dataclass(frozen=True)
class Task:
    """What the labels are: ``kind`` ("classification" or "regression"), ``num_classes`` and a sparse loss."""

    kind: str
    num_classes: typing.Optional[int]
    sparse: bool


def training_data(x, y, *, loss_name, loss_fn, model, resident_limit_bytes,
                  staging_bytes=streaming_lib.DEFAULT_STAGING_BYTES, sample_weight=None, class_weight=None,
                  previous=None):
    """The checked training data of a fit, resident or streamed: the one place that decides which.

    Args:
        x, y: ``fit``'s training data: arrays (x a dict or tuple of them for
            several inputs) with y, an ``(x, y)`` pair in x, a NumPy memmap with
            y, or a :class:`loop.streaming.RandomAccess` (or another random-access
            source) that carries its targets.
        loss_name, loss_fn: the per-sample loss (:func:`loop.objective.per_sample_loss`),
            tried on the head rows.
        model: the Keras model, called on the head rows.
        resident_limit_bytes: data of more bytes streams; 0 always streams,
            None never does.
        staging_bytes: the streamed path's byte budget (staging buffer plus read-ahead).
        sample_weight, class_weight: ``fit``'s per-sample weights, or its
            ``{class: weight}`` (see :func:`loop.validation.sample_weights`).
        previous: the last fit's :class:`TrainingData`; returned as it is
            (device tensors and compiled functions kept) when ``x`` and ``y``
            are the same objects and the weights are equal, and sharing its
            device tensors when only the weights differ.

    Returns:
        A :class:`ResidentData` or a :class:`StreamedData`.

    Raises:
        ValueError: empty, ragged, non-finite or mislabelled data, a
            ``tf.data.Dataset``, or targets the loss cannot take, naming the value.
    """
    if y is None and isinstance(x, (tuple, list)) and len(x) == 2:
        x, y = x
    key, owned = (x, y), False  # owned: x was read here, into arrays the device tensor may share
    source = validation.as_source(x, y, "training data")
    if source is None:
        x, y = validation.as_arrays(x, y, "training data")
        nbytes = sum(leaf.nbytes for leaf in tf.nest.flatten(x)) + y.nbytes
        if resident_limit_bytes is not None and nbytes > resident_limit_bytes:
            source = streaming_lib.RandomAccess(x, y)
    elif resident_limit_bytes is None or source.nbytes <= resident_limit_bytes:
        x, y = streaming_lib.read_all(source)  # it fits: read it once onto the device, in slices
        source, owned = None, True
    if source is not None:
        n = validation.check_source(source, "training data")
        y = source.labels
        head_x = source.take(np.arange(min(HEAD_ROWS, n)))[0]
    else:
        n = validation.check_arrays(x, y, "training data")
        head_x = tf.nest.map_structure(lambda t: t[:HEAD_ROWS], x)
    kind, num_classes = objective_lib.infer_task(loss_name, y, model)
    sparse = "sparse" in loss_name.lower()
    validation.check_labels(y, num_classes, sparse, "training data")
    validation.check_loss_applies(loss_name, loss_fn, y[:HEAD_ROWS], model(head_x, training=False))
    weights = validation.sample_weights(sample_weight, class_weight, y, num_classes, "training data")
    if previous is not None and previous.key[0] is key[0] and previous.key[1] is key[1] \
            and previous.staging_bytes == staging_bytes:
        return previous if _same_weights(weights, previous.sample_weight) else previous.with_sample_weight(weights)
    task = Task(kind, num_classes, sparse)
    if source is None:  # the tensor shares read_all's buffer; a user's array is copied once
        data = ResidentData(x, y, task=task, head_x=head_x, key=key, owned=owned)
    else:
        data = StreamedData(source, task=task, head_x=head_x, key=key, staging_bytes=staging_bytes)
    return data.with_sample_weight(weights, in_place=True)


def _same_weights(a, b):
    return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))


class TrainingData:
    """The interface of the training data (see the module docstring); :func:`training_data` makes one.

    Attributes:
        streaming: True when the rows stream from a source.
        num_samples: the number of training samples.
        labels: every sample's target, NumPy.
        y: every sample's target on the device.
        inputs: what ``state.inputs`` gives a selector (the arrays, or the source).
        task: the :class:`Task`.
        sample_weight: ``fit``'s per-sample weights (float32 ``[num_samples]``) or None.
        device_sample_weight: the same on the device (they weight the train loss metric), or None.
        staging_bytes: the streamed path's byte budget (for streamed evaluation data too).
        key: the ``(x, y)`` objects it was made from.
    """

    streaming = False

    def __init__(self, *, labels, inputs, task, head_x, key, staging_bytes=streaming_lib.DEFAULT_STAGING_BYTES):
        self.labels, self.inputs, self.task, self.key = labels, inputs, task, key
        self.num_samples = len(labels)
        self.staging_bytes = staging_bytes
        self.sample_weight = self.device_sample_weight = None
        self._head_x = head_x

    def with_sample_weight(self, weights, in_place=False):
        """This data weighted by ``weights`` (float32 ``[num_samples]`` or None): a shallow copy, or itself.

        The copy shares the device tensors (and staging buffers); only the weights differ.
        """
        data = self if in_place else copy.copy(self)
        data.sample_weight = weights
        data.device_sample_weight = None if weights is None else tf.constant(weights)
        return data

    def plan_weights(self, plan):
        """A :class:`loop.protocol.FlatPlan`'s weights times ``fit``'s sample weights of its indices (NumPy)."""
        if self.sample_weight is None:
            return plan.weights
        return plan.weights * self.sample_weight[plan.indices]

    @property
    def num_classes(self):
        """The number of classes (None for regression)."""
        return None if self.task is None else self.task.num_classes

    def head(self, n=1):
        """The first ``n`` rows of x on the device, e.g. to build the model."""
        raise NotImplementedError

    def rows(self, indices):
        """``(x, y)`` of the rows ``indices``, inside the compiled step (streamed: staged by the feeder)."""
        raise NotImplementedError

    def score_rows(self, indices):
        """``(x, y)`` of the rows ``indices`` for the scoring pass (streamed: staged by :meth:`score`)."""
        return self.rows(indices)

    def score(self, indices, score_batch, batch_size):
        """Fresh per-sample losses of rows ``indices``: ``score_batch(int32 indices)`` per batch of ``batch_size``.

        Args:
            indices: checked int sample indices (NumPy).
            score_batch: the compiled scoring function (:class:`loop.step.Functions`): per-sample losses, or a
                dict of per-sample arrays (the quantities pass).
            batch_size: rows per forward pass.

        Returns:
            float32 NumPy losses, one per index (or a dict of arrays, one row per index).
        """
        raise NotImplementedError

    def feeder(self, tables, *, carry_queue=False, worker=None, steps_per_execution=None, batch_size=None):
        """What the driver calls around each chunk: ``start(plan, first_batch)``, ``pieces(first, last)``, ``stop()``.

        ``pieces(first, last)`` makes the rows of mini-batches ``[first, last)``
        ready and yields the ``(first, last)`` of each piece to train in turn:
        the whole range at once on the device, pieces that fit the byte
        budget when streamed.

        Args:
            tables: the fit's :class:`loop.tables.Tables`.
            carry_queue: the step's filter accumulates (its queued rows are carried).
            worker: :func:`loop.distribute.worker_slice` of the strategy, or None.
            steps_per_execution: mini-batches per compiled call (the largest piece).
            batch_size: the loop's batch size (an accumulating filter carries fewer queued rows).
        """
        raise NotImplementedError

    def evaluation_set(self, data, what):
        """``fit``'s ``validation_data`` (or an extra evaluation): ``(x, y)``, ``(x, y, sample_weight)`` or a source.

        Returns:
            The :class:`EvaluationData` of :meth:`evaluation_data`.
        """
        if isinstance(data, (tuple, list)) and len(data) in (2, 3):
            return self.evaluation_data(*data[:2], what, sample_weight=data[2] if len(data) == 3 else None)
        return self.evaluation_data(data, None, what)

    def evaluation_data(self, x, y, what, sample_weight=None):
        """Evaluation data checked against the training data, as an :class:`EvaluationData`.

        Args:
            x, y: arrays with their targets, or a random-access source (y None).
            what: names the data in errors (``"validation_data"``).
            sample_weight: None, or one non-negative weight per sample, which
                weights the loss as in Keras' ``Model.evaluate``.

        Returns:
            A :class:`ResidentEvaluation` (device tensors) or a :class:`StreamedEvaluation`
            (read in order, within the byte budget).

        Raises:
            ValueError: data of another structure, per-sample shape or labels than the training
                data, or bad weights, naming the value.
        """
        source = validation.as_source(x, y, what)
        if source is not None:
            head_x, head_y = source.take(np.arange(min(HEAD_ROWS, len(source))))
            self._check_like(head_x, head_y, what)
            validation.check_source(source, what)
            validation.check_labels(source.labels, self.num_classes, self.task.sparse, what)
            return StreamedEvaluation(source, _eval_weights(sample_weight, len(source), what), self.staging_bytes)
        x, y = validation.as_arrays(x, y, what)
        self._check_like(x, y, what)
        return ResidentEvaluation(x, y, _eval_weights(sample_weight, len(y), what))

    def _check_like(self, x, y, what):
        validation.check_arrays(x, y, what)
        validation.check_like(x, y, self._head_x, self.labels, what)
        validation.check_labels(y, self.num_classes, self.task.sparse, what)


def _eval_weights(sample_weight, n, what):
    """Evaluation data's ``sample_weight`` checked, on the device, or None."""
    if sample_weight is None:
        return None
    return tf.constant(validation.sample_weights(sample_weight, None, np.zeros([n]), None, what))


class _Resident:
    """The feeder of resident data: its rows are always on the device."""

    def start(self, plan, first_batch):
        """Nothing to read."""

    def pieces(self, first, last):
        """The whole range, in one piece."""
        yield first, last

    def stop(self):
        """Nothing to drop."""


class ResidentData(TrainingData):
    """Training data copied onto the device once and gathered by index.

    Args:
        x: the inputs (an array or a nest of them); y: the targets.
        task, head_x, key: see :class:`TrainingData` (optional outside a fit).
        owned: x was read by the loop (:func:`loop.streaming.read_all`): the
            device tensors share its buffers instead of copying them.
    """

    def __init__(self, x, y, *, task=None, head_x=None, key=None, owned=False):
        super().__init__(labels=y, inputs=x, task=task, head_x=head_x, key=key)
        self.x = tf.nest.map_structure(lambda a: streaming_lib.host_tensor(a, copy=not owned), x)
        self.y = tf.convert_to_tensor(y)

    def head(self, n=1):
        return tf.nest.map_structure(lambda t: t[:n], self.x)

    def feeder(self, tables, *, carry_queue=False, worker=None, steps_per_execution=None, batch_size=None):
        return _Resident()

    def rows(self, indices):
        return tf.nest.map_structure(lambda t: tf.gather(t, indices), self.x), tf.gather(self.y, indices)

    def score(self, indices, score_batch, batch_size):
        out = [score_batch(tf.constant(indices[i:i + batch_size], tf.int32))
               for i in range(0, len(indices), batch_size)]
        return _concatenate(out)


class StreamedData(TrainingData):
    """Training data read by index from a :class:`loop.streaming.RandomAccess`, staged a chunk at a time.

    The labels stay on the device for every sample; the inputs of the rows a
    chunk trains are staged by the feeder (:meth:`feeder`) in one
    :class:`loop.staging.StagedData`, and the rows :meth:`score` scores in
    another, so scoring mid-epoch leaves the training buffer alone.  Both
    stay within ``staging_bytes`` with their read-ahead.

    Args:
        source: the :class:`loop.streaming.RandomAccess`.
        task, head_x, key, staging_bytes: see :class:`TrainingData`.
    """

    streaming = True

    def __init__(self, source, *, task=None, head_x=None, key=None, staging_bytes=streaming_lib.DEFAULT_STAGING_BYTES):
        super().__init__(labels=source.labels, inputs=source, task=task, head_x=head_x, key=key,
                         staging_bytes=staging_bytes)
        self.source = source
        self.staged = streaming_lib.StagedData(source, self.labels)
        self.scoring = streaming_lib.StagedData(source, self.staged.y)
        self.y = self.staged.y

    def head(self, n=1):
        return self.staged.head(n)

    def rows(self, indices):
        return self.staged.rows(indices)

    def score_rows(self, indices):
        return self.scoring.rows(indices)

    def score(self, indices, score_batch, batch_size):
        if not len(indices):
            return np.zeros([0], np.float32)
        flat = tf.constant(indices, tf.int32)
        batches = streaming_lib.sequential_batches(len(indices), batch_size).map(
            lambda positions: tf.gather(flat, positions))
        out = []
        rows = min(batch_size, len(indices))
        for batch_indices, *leaves in streaming_lib.budget_pipeline(self.source, batches, rows, self.staging_bytes):
            self.scoring.stage(batch_indices, leaves)
            out.append(tf.nest.map_structure(lambda t: t.numpy(), score_batch(batch_indices)))
        self.scoring.release()
        return _concatenate(out)

    def feeder(self, tables, *, carry_queue=False, worker=None, steps_per_execution=None, batch_size=None):
        self.staged.valid = False  # a new fit (or a resumed one) re-reads the rows it needs
        return streaming_lib.Feeder(self.staged, tables, carry_queue=carry_queue, worker=worker,
                                    staging_bytes=self.staging_bytes, steps_per_execution=steps_per_execution,
                                    batch_size=batch_size)


def _concatenate(batches):
    """The per-batch outputs of a scoring function (tensors or arrays, or dicts of them) end to end, NumPy."""
    if not batches:
        return np.zeros([0], np.float32)
    batches = [tf.nest.map_structure(np.asarray, b) for b in batches]
    return tf.nest.map_structure(lambda *parts: np.concatenate(parts), *batches)


class EvaluationData:
    """Evaluation data checked against the training data (:meth:`TrainingData.evaluation_data`).

    Attributes:
        sample_weight: its per-sample weights on the device, or None.
    """

    sample_weight = None

    def batches(self, batch_size):
        """``(x, y)`` (or ``(x, y, sample_weight)``) batches of ``batch_size`` rows in order, for the eval step."""
        raise NotImplementedError


class ResidentEvaluation(EvaluationData):
    """Evaluation data held as device tensors, sliced in order."""

    def __init__(self, x, y, sample_weight=None):
        self.x = tf.nest.map_structure(streaming_lib.host_tensor, x)
        self.y = tf.convert_to_tensor(y)
        self.sample_weight = sample_weight

    def batches(self, batch_size):
        weighted = () if self.sample_weight is None else (self.sample_weight,)
        for i in range(0, int(self.y.shape[0]), batch_size):
            yield (tf.nest.map_structure(lambda t: t[i:i + batch_size], self.x), self.y[i:i + batch_size],
                   *(w[i:i + batch_size] for w in weighted))


class StreamedEvaluation(EvaluationData):
    """Evaluation data read in order from a :class:`loop.streaming.RandomAccess`, read ahead within a byte budget."""

    def __init__(self, source, sample_weight=None, staging_bytes=streaming_lib.DEFAULT_STAGING_BYTES):
        self.source, self.sample_weight, self.staging_bytes = source, sample_weight, staging_bytes

    def batches(self, batch_size):
        weighted = () if self.sample_weight is None else (self.sample_weight,)
        order = streaming_lib.sequential_batches(len(self.source), batch_size)
        rows = min(batch_size, len(self.source))
        for indices, *leaves in streaming_lib.budget_pipeline(self.source, order, rows, self.staging_bytes,
                                                              with_targets=True):
            yield (tf.nest.pack_sequence_as(self.source.x_spec, leaves[:-1]), leaves[-1],
                   *(tf.gather(w, indices) for w in weighted))
