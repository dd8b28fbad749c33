"""The training loop: an eager epoch driver around a compiled, cached train step.

Who owns what:

* :class:`Loop` owns the model's training: the device-resident training data,
  the per-sample loss table, the compiled train/eval/score functions, the
  metrics, callbacks and the timing of every phase.
* The *selector* owns which samples form each mini-batch.  It never touches the
  model or the data; it only reads a :class:`State`.
* :mod:`loop.history` owns the arithmetic of targets and time-to-target.

The selector protocol
---------------------
A selector is any callable ``selector(state) -> plan``.  The loop calls it at
the start of every epoch with a read-only :class:`State`:

``epoch``, ``epochs``, ``step``, ``num_samples``, ``batch_size``
    where the loop is (``epoch`` is 0-based, ``step`` counts optimizer steps).
``labels``, ``num_classes``, ``task``
    the training targets; ``num_classes`` is None for regression.
``losses``, ``loss_step``
    the last-seen loss of every training sample (NaN if never seen) and the
    global step that saw it (-1 if never).  The train step records them with a
    scatter into a device table; the host reads the table once per epoch.
``rng``
    a ``numpy.random.Generator`` derived from the loop's seed and the epoch.
``score(indices)``
    fresh per-sample losses from a compiled, batched forward pass
    (``training=False``).  Its time counts as training time.
``logs``
    the previous evaluation's train and validation metrics.

The *plan* is an iterable of mini-batches.  Each is an integer index array into
the training set, or an ``(indices, weights)`` pair whose non-negative weights
scale the per-sample losses (for unbiased importance sampling).  Sizes may vary
without retracing.  The step minimizes ``sum(w_i * loss_i) / n`` over the ``n``
rows of the batch, plus the model's regularization losses.  The loop validates
every plan before training on any of it; a bad plan raises ``ValueError`` naming
the selector, the batch and the values.

Object selectors may define optional hooks:

``on_train_begin(state)``
    once per ``fit``, before the train step is traced.
``on_batch_end(indices, losses)``
    after each mini-batch, with its fresh per-sample losses (NumPy).  Calls
    come once per execution chunk, which costs one host read per chunk.
``keep(batch) -> weights``
    an in-step filter, traced into the compiled step.  ``batch`` is a
    :class:`StepBatch` of tensors (``indices``, ``losses`` from a forward pass
    without gradient, ``weights``, ``y_true``, ``y_pred``, ``step``).  It
    returns new weights; the step then runs forward and backward only on the
    rows whose weight is positive, with the objective above (``n`` stays the
    number of candidate rows, so a filter normalizes its own weights).  A
    selector with ``filter_mode = "mask"`` instead gets the losses of the
    training forward pass and its weights mask that same pass: one forward
    pass, and a backward pass over every row (cheaper when most rows are kept).
``get_state()`` / ``set_state(state)``
    the selector's learned state, for checkpoints.
"""

import collections
import math
import time
import traceback

import keras
import numpy as np
import tensorflow as tf

from loop import checkpoint as checkpoint_lib
from loop import distribute as distribute_lib
from loop import history as history_lib
from loop.selectors.base import describe
from loop.selectors.baselines import Shuffle

#: The tensors an in-step filter (``selector.keep``) receives.
StepBatch = collections.namedtuple("StepBatch", ["indices", "losses", "weights", "y_true", "y_pred", "step"])

_ACCURACY_NAMES = ("accuracy", "acc")
_REGRESSION_LOSSES = ("mse", "mae", "mape", "msle", "mean_squared", "mean_absolute", "huber", "log_cosh",
                      "logcosh", "poisson", "cosine")


class State:
    """The read-only view of the loop that a selector receives each epoch.

    See the module docstring for the fields.  Arrays are read-only NumPy views.
    """

    __slots__ = ("epoch", "epochs", "step", "num_samples", "batch_size", "labels", "num_classes",
                 "task", "losses", "loss_step", "rng", "logs", "_score")

    def __init__(self, **fields):
        for name in self.__slots__:
            value = fields.get(name.lstrip("_") if name == "_score" else name)
            if isinstance(value, np.ndarray):
                value = value.view()
                value.flags.writeable = False
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError(f"State is read-only; a selector keeps its own state on itself (tried to set {name!r})")

    def score(self, indices):
        """Fresh per-sample losses of ``indices`` from a forward pass (``training=False``)."""
        return self._score(indices)

    def __repr__(self):
        return (f"State(epoch={self.epoch}, step={self.step}, num_samples={self.num_samples}, "
                f"batch_size={self.batch_size}, num_classes={self.num_classes})")


def _loss_fn(loss):
    """Returns ``(name, fn)`` where ``fn(y_true, y_pred)`` gives per-sample losses."""
    if isinstance(loss, str):
        name = loss
        fn = keras.losses.get(loss)
        if fn is None:
            raise ValueError(f"unknown loss {loss!r}; pass a Keras loss name, a keras.losses.Loss or a function")
    elif isinstance(loss, keras.losses.Loss):
        name, fn = loss.name, loss.call
    elif callable(loss):
        name, fn = getattr(loss, "__name__", "loss"), loss
    else:
        raise ValueError(f"loss must be a Keras loss name, a keras.losses.Loss or a function, got {loss!r}")
    if isinstance(fn, keras.losses.Loss):
        fn = fn.call

    def per_sample(y_true, y_pred):
        values = fn(y_true, y_pred)
        rank = len(values.shape)
        if rank > 1:
            values = tf.reduce_mean(values, axis=list(range(1, rank)))
        return tf.cast(values, tf.float32)

    return name, per_sample


def _metric_factory(metric, loss_name):
    """Returns a zero-argument function that builds a fresh metric object."""
    if isinstance(metric, str):
        key = metric.lower()
        if key in _ACCURACY_NAMES:
            lname = loss_name.lower()
            if "sparse" in lname:
                return lambda: keras.metrics.SparseCategoricalAccuracy(name=metric)
            if "binary" in lname:
                return lambda: keras.metrics.BinaryAccuracy(name=metric)
            if "categorical" in lname:
                return lambda: keras.metrics.CategoricalAccuracy(name=metric)
            return lambda: keras.metrics.Accuracy(name=metric)
        found = keras.metrics.get(metric)
        if isinstance(found, keras.metrics.Metric):
            return lambda: keras.metrics.get(metric).__class__.from_config({**found.get_config(), "name": metric})
        if callable(found):
            return lambda: keras.metrics.MeanMetricWrapper(found, name=metric)
        raise ValueError(f"unknown metric {metric!r}")
    if isinstance(metric, keras.metrics.Metric):
        return lambda: metric.__class__.from_config(metric.get_config())
    if callable(metric):
        return lambda: keras.metrics.MeanMetricWrapper(metric, name=getattr(metric, "__name__", "metric"))
    raise ValueError(f"metrics must be names, keras.metrics.Metric objects or functions, got {metric!r}")


def _validate_arrays(x, y, what):
    leaves = tf.nest.flatten(x)
    if not leaves:
        raise ValueError(f"{what}: x is empty")
    sizes = {len(leaf) for leaf in leaves}
    if len(sizes) != 1:
        raise ValueError(f"{what}: the inputs in x have different lengths {sorted(sizes)}")
    n = sizes.pop()
    if n == 0:
        raise ValueError(f"{what}: the dataset is empty (0 samples); pass at least one sample")
    if len(y) != n:
        raise ValueError(f"{what}: x has {n} samples but y has {len(y)}; they must have the same length")
    for leaf in leaves:
        if np.issubdtype(leaf.dtype, np.floating):
            bad = ~np.isfinite(leaf)
            if bad.any():
                where = np.argwhere(bad.reshape(len(leaf), -1).any(axis=1)).ravel()
                raise ValueError(f"{what}: x holds NaN or Inf at sample(s) {where[:5].tolist()}"
                                 f"{' ...' if len(where) > 5 else ''}; clean or impute the inputs first")
    if y.dtype.kind in "USO":
        raise ValueError(f"{what}: y holds {y.dtype} values such as {y.ravel()[:3].tolist()}; "
                         "encode labels as integer class ids (e.g. sklearn.preprocessing.LabelEncoder)")
    if np.issubdtype(y.dtype, np.floating) and not np.isfinite(y).all():
        raise ValueError(f"{what}: y holds NaN or Inf; clean the targets first")
    return n


def _as_arrays(data, what):
    if isinstance(data, tf.data.Dataset):
        raise ValueError(f"{what} is a tf.data.Dataset; the loop keeps the whole set on the device and gathers "
                         "mini-batches by index, so pass an (x, y) pair of arrays instead (for a tfds dataset: "
                         "tfds.as_numpy(tfds.load(name, split=..., batch_size=-1, as_supervised=True)))")
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(f"{what} must be an (x, y) pair of arrays, got {type(data).__name__}")
    x, y = data
    x = tf.nest.map_structure(np.asarray, x)
    return x, np.asarray(y)


class Loop:
    """A compiled Keras training loop that takes a batch-selection callable.

    Args:
        model: any Keras 3 model.
        optimizer: a Keras optimizer or its name.
        loss: a Keras loss name, ``keras.losses.Loss`` or function; the loop
            always evaluates it per sample.
        metrics: metric names, ``keras.metrics.Metric`` objects or functions.
            ``"accuracy"`` picks the accuracy matching the loss.
        selector: a selector (see the module docstring); ``Shuffle()`` if None.
        batch_size: the nominal mini-batch size handed to the selector.
        seed: seeds Keras, the selectors' ``state.rng`` and hence the plans.
        steps_per_execution: mini-batches per compiled call; batch-level
            callbacks and ``on_batch_end`` fire once per call.
        jit_compile: compile the step with XLA (each new batch size is then
            compiled once by XLA, without retracing).
        run_eagerly: run the step eagerly, for debugging.
        deterministic: enable TensorFlow op determinism.
        eval_batch_size: rows per forward pass when evaluating and scoring.
        strategy: a ``tf.distribute`` strategy (Mirrored, MultiWorkerMirrored)
            that splits every global mini-batch over its replicas; build the
            model under ``strategy.scope()``.  See :mod:`loop.distribute`.

    Raises:
        ValueError: an argument is out of range, naming it.
    """

    def __init__(self, model, *, optimizer="adam", loss, metrics=None, selector=None, batch_size=32, seed=0,
                 steps_per_execution=32, jit_compile=False, run_eagerly=False, deterministic=False,
                 eval_batch_size=1024, strategy=None):
        if not isinstance(model, keras.Model):
            raise ValueError(f"model must be a keras.Model, got {type(model).__name__}")
        selector = Shuffle() if selector is None else selector
        if isinstance(selector, str):
            from loop.selectors import from_string
            selector = from_string(selector)
        if not callable(selector):
            raise ValueError(f"selector {selector!r} is not callable; pass a function state -> plan, "
                             "a loop.selectors object such as Shuffle(), or a name such as 'shuffle'")
        for name, value in (("batch_size", batch_size), ("steps_per_execution", steps_per_execution),
                            ("eval_batch_size", eval_batch_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.model = model
        self.strategy = strategy
        with distribute_lib.scope(strategy):
            self.optimizer = keras.optimizers.get(optimizer)
        distribute_lib.check(strategy, model, self.optimizer)
        self.loss_name, self._loss = _loss_fn(loss)
        self.loss = loss
        self._metric_specs = list(metrics or [])
        self._metric_factories = [_metric_factory(m, self.loss_name) for m in self._metric_specs]
        self.selector = selector
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.steps_per_execution = int(steps_per_execution)
        self.jit_compile = bool(jit_compile)
        self.run_eagerly = bool(run_eagerly)
        self.deterministic = bool(deterministic)
        self.eval_batch_size = int(eval_batch_size)
        self._filter = getattr(selector, "keep", None)
        self._filter_mode = getattr(selector, "filter_mode", "compact")
        if self._filter_mode not in ("compact", "mask"):
            raise ValueError(f"selector {describe(selector)} has filter_mode={self._filter_mode!r}; "
                             "use 'compact' or 'mask'")
        self._train_fn = None
        self._data = None
        self._optimizer_built = False
        self.trace_count = 0
        self.trace_time_s = 0.0
        self.history = None

    # ------------------------------------------------------------------ data
    def _set_training_data(self, x, y):
        n = _validate_arrays(x, y, "training data")
        self.num_samples = n
        self.labels = y
        self.task, self.num_classes = self._infer_task(y)
        if self.num_classes is not None:
            labels = y.reshape(len(y), -1)
            if "sparse" in self.loss_name.lower() or labels.shape[1] == 1:
                bad = (labels < 0) | (labels >= self.num_classes)
                if bad.any():
                    i = int(np.argwhere(bad.any(axis=1))[0, 0])
                    raise ValueError(f"training data: label {labels[i].tolist()} at sample {i} is outside "
                                     f"[0, {self.num_classes}) for a model with {self.num_classes} outputs; "
                                     "labels must be integer class ids from 0 to num_classes-1")
        if self._data is None or self._data[0] is not x or self._data[1] is not y:
            self._x = tf.nest.map_structure(tf.convert_to_tensor, x)
            self._y = tf.convert_to_tensor(y)
            self._data = (x, y)
            self._train_fn = None

    def _infer_task(self, y):
        integral = np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_)
        lname = self.loss_name.lower()
        if any(part in lname for part in _REGRESSION_LOSSES):
            return "regression", None
        if "crossentropy" in lname or "hinge" in lname or integral:
            if y.ndim >= 2 and y.shape[-1] > 1:
                return "classification", int(y.shape[-1])
            outputs = None
            try:
                outputs = self.model.outputs[0].shape[-1] if self.model.outputs else None
            except (AttributeError, ValueError):
                outputs = None
            if outputs is None or outputs == 1:
                y_int = y.astype(np.int64)
                if not np.array_equal(y_int, y):
                    raise ValueError("training data: class labels must be integers, got non-integer values such as "
                                     f"{y.ravel()[~np.isclose(y.ravel(), np.round(y.ravel()))][:3].tolist()}")
                return "classification", max(int(y_int.max()) + 1, 2)
            return "classification", int(outputs)
        return "regression", None

    # -------------------------------------------------------------- compiled
    def _build(self):
        """Builds the model, optimizer, metrics (once) and the data-sized tables and functions."""
        if not self._optimizer_built:
            if not self.model.built:
                self.model(tf.nest.map_structure(lambda t: t[:1], self._x), training=False)
            if getattr(self.model, "optimizer", None) is not self.optimizer:
                # Lets Keras callbacks (TensorBoard, ModelCheckpoint) find the optimizer and loss.
                self.model.compile(optimizer=self.optimizer, loss=self.loss, jit_compile=False,
                                   metrics=self._metric_specs or None)
                self._build_compiled_metrics()
            self.optimizer.build(self.model.trainable_variables)
            self._loss_tracker = keras.metrics.Mean(name="loss")
            self._val_loss_tracker = keras.metrics.Mean(name="loss")
            self._train_metrics = [f() for f in self._metric_factories]
            self._val_metrics = [f() for f in self._metric_factories]
            self._steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="steps")
            self._backprop = tf.Variable(0, dtype=tf.int64, trainable=False, name="samples_backpropagated")
            self._seen = tf.Variable(0, dtype=tf.int64, trainable=False, name="samples_seen")
            self._first_bad_step = tf.Variable(-1, dtype=tf.int64, trainable=False, name="first_nonfinite_step")
            self._optimizer_built = True
        n = self.num_samples
        self._loss_table = tf.Variable(tf.fill([n], np.float32(np.nan)), trainable=False, name="loss_table")
        self._loss_step_table = tf.Variable(tf.fill([n], np.int64(-1)), trainable=False, name="loss_step_table")
        self._trained_table = tf.Variable(tf.zeros([n], tf.int32), trainable=False, name="trained_counts")
        # Per-plan-position losses, kept only for selectors with an on_batch_end hook.
        self._position_losses = None
        if getattr(self.selector, "on_batch_end", None) is not None:
            self._position_losses = tf.Variable(tf.zeros([0]), shape=tf.TensorShape([None]), trainable=False,
                                                name="position_losses")
        self._make_functions()

    def _make_functions(self):
        def compile_fn(fn, signature=None, jit=False):
            if self.run_eagerly:
                return fn
            return tf.function(fn, input_signature=signature, reduce_retracing=signature is None, jit_compile=jit)

        self._plan_check = distribute_lib.plan_check(self)  # None unless several workers must agree
        if self.strategy is not None:  # one global step over a strategy's replicas; see loop.distribute
            step = distribute_lib.train_step(self)
        else:
            step = compile_fn(self._train_step, jit=True) if self.jit_compile else self._train_step
        idx_spec = tf.TensorSpec([None], tf.int32)
        w_spec = tf.TensorSpec([None], tf.float32)
        scalar = tf.TensorSpec([], tf.int32)

        def train_chunk(indices, weights, bounds, first, last):
            self.trace_count += 1  # Python side effect: runs once per trace, not per call.
            extra = ()
            if self.strategy is not None:
                # The chunk's largest batch: collectives inside the loop keep one shape for the whole call.
                extra = (tf.reduce_max(bounds[first + 1:last + 1] - bounds[first:last]),)
            for i in tf.range(first, last):
                start, stop = bounds[i], bounds[i + 1]
                losses = step(indices[start:stop], weights[start:stop], *extra)
                if self._position_losses is not None:
                    self._position_losses[start:stop].assign(losses)
            return tf.stack([self._steps.read_value(), self._first_bad_step.read_value()])

        def score_batch(indices):
            x = tf.nest.map_structure(lambda t: tf.gather(t, indices), self._x)
            y = tf.gather(self._y, indices)
            losses = self._loss(y, self.model(x, training=False))
            self._record_losses(indices, losses)
            return losses

        self._train_fn = compile_fn(train_chunk, [idx_spec, w_spec, idx_spec, scalar, scalar])
        self._score_fn = compile_fn(score_batch, [idx_spec])
        self._eval_fn = compile_fn(self._eval_step)

    def _trace(self):
        """Traces the train function once, before the clock runs, so tracing is not training time."""
        if self.run_eagerly or self.trace_count:
            return
        t0 = time.perf_counter()
        self._train_fn.get_concrete_function()
        self.trace_time_s = time.perf_counter() - t0

    def _build_compiled_metrics(self):
        """Builds the model's compiled metrics so that Keras monitor callbacks (EarlyStopping,
        ModelCheckpoint, ReduceLROnPlateau) can infer whether a metric should rise or fall."""
        compiled = getattr(self.model, "_compile_metrics", None)
        if compiled is None or compiled.built:
            return
        sample = tf.nest.map_structure(lambda t: t[:1], self._x)
        try:
            compiled.build(self._y[:1], self.model(sample, training=False))
        except Exception:  # Only direction inference depends on it; training does not.
            pass

    def _record_losses(self, indices, losses):
        self._loss_table.scatter_update(tf.IndexedSlices(losses, indices))
        steps = tf.fill(tf.shape(indices), self._steps.read_value())
        self._loss_step_table.scatter_update(tf.IndexedSlices(steps, indices))

    def _train_step(self, indices, weights):
        x = tf.nest.map_structure(lambda t: tf.gather(t, indices), self._x)
        y = tf.gather(self._y, indices)
        n = tf.cast(tf.shape(indices)[0], tf.float32)
        variables = self.model.trainable_variables
        if self._filter is not None and self._filter_mode == "mask":
            with tf.GradientTape() as tape:
                y_pred = self.model(x, training=True)
                losses = self._loss(y, y_pred)
                weights = tf.stop_gradient(tf.cast(self._filter(StepBatch(
                    indices, tf.stop_gradient(losses), weights, y, tf.stop_gradient(y_pred),
                    self._steps.read_value())), tf.float32))
                objective = tf.reduce_sum(weights * losses) / n
                if self.model.losses:
                    objective += tf.add_n(self.model.losses)
            kept_indices = tf.boolean_mask(indices, weights > 0)
            self._apply(tape.gradient(objective, variables), variables)
        elif self._filter is not None:
            y_pred_all = self.model(x, training=False)
            losses = self._loss(y, y_pred_all)
            weights = tf.cast(self._filter(StepBatch(indices, tf.stop_gradient(losses), weights, y,
                                                     tf.stop_gradient(y_pred_all), self._steps.read_value())),
                              tf.float32)
            keep = tf.reshape(tf.where(weights > 0), [-1])
            kept_x = tf.nest.map_structure(lambda t: tf.gather(t, keep), x)
            kept_y, kept_w = tf.gather(y, keep), tf.gather(weights, keep)
            kept_indices = tf.gather(indices, keep)

            def backprop_kept():
                with tf.GradientTape() as tape:
                    kept_losses = self._loss(kept_y, self.model(kept_x, training=True))
                    objective = tf.reduce_sum(kept_w * kept_losses) / n
                    if self.model.losses:
                        objective += tf.add_n(self.model.losses)
                self._apply(tape.gradient(objective, variables), variables)
                return tf.constant(0)

            # A filter may drop every candidate; then there is nothing to backpropagate.
            tf.cond(tf.size(keep) > 0, backprop_kept, lambda: tf.constant(0))
            y_pred = y_pred_all
        else:
            with tf.GradientTape() as tape:
                y_pred = self.model(x, training=True)
                losses = self._loss(y, y_pred)
                objective = tf.reduce_sum(weights * losses) / n
                if self.model.losses:
                    objective += tf.add_n(self.model.losses)
            kept_indices = tf.boolean_mask(indices, weights > 0)
            self._apply(tape.gradient(objective, variables), variables)
        self._account(indices, kept_indices, losses, y, y_pred)
        return losses

    def _account(self, indices, kept_indices, losses, y, y_pred):
        """The bookkeeping of one step: loss table, counters and train metrics (also used by distribute)."""
        finite = tf.reduce_all(tf.math.is_finite(losses))
        self._first_bad_step.assign(tf.where(tf.logical_and(tf.logical_not(finite), self._first_bad_step < 0),
                                             self._steps.read_value(), self._first_bad_step.read_value()))
        self._record_losses(indices, losses)
        self._steps.assign_add(1)
        self._trained_table.scatter_add(tf.IndexedSlices(tf.ones_like(kept_indices), kept_indices))
        self._backprop.assign_add(tf.cast(tf.size(kept_indices), tf.int64))
        self._seen.assign_add(tf.cast(tf.size(indices), tf.int64))
        self._loss_tracker.update_state(losses)
        for metric in self._train_metrics:
            metric.update_state(y, y_pred)

    def _apply(self, gradients, variables):
        gradients = [tf.zeros_like(v) if g is None else g for g, v in zip(gradients, variables)]
        self.optimizer.apply_gradients(zip(gradients, variables))

    def _eval_step(self, x, y):
        y_pred = self.model(x, training=False)
        self._val_loss_tracker.update_state(self._loss(y, y_pred))
        for metric in self._val_metrics:
            metric.update_state(y, y_pred)

    # --------------------------------------------------------------- helpers
    def _score(self, indices):
        indices = self._check_indices(np.asarray(indices), "score")
        out = [self._score_fn(tf.constant(indices[i:i + self.eval_batch_size], tf.int32)).numpy()
               for i in range(0, len(indices), self.eval_batch_size)]
        return np.concatenate(out) if out else np.zeros([0], np.float32)

    def _check_indices(self, indices, where):
        if indices.dtype.kind not in "iu":
            raise ValueError(f"{where}: indices must be integers, got dtype {indices.dtype} "
                             f"(values such as {indices.ravel()[:3].tolist()})")
        if indices.size and (indices.min() < 0 or indices.max() >= self.num_samples):
            bad = indices[(indices < 0) | (indices >= self.num_samples)]
            raise ValueError(f"{where}: indices {bad[:5].tolist()} are outside [0, {self.num_samples})")
        return indices.astype(np.int32, copy=False)

    def _validate_plan(self, plan):
        """Flattens a plan to ``(indices, weights, bounds)`` or raises ValueError."""
        name = describe(self.selector)
        if plan is None:
            raise ValueError(f"selector {name} returned None; it must return an iterable of index arrays")
        batches, weights, lengths, weighted = [], [], [], False
        try:
            items = list(plan)
        except TypeError:
            raise ValueError(f"selector {name} returned {type(plan).__name__}, not an iterable of "
                             "mini-batches (index arrays or (indices, weights) pairs)") from None
        if not items:
            raise ValueError(f"selector {name} returned an empty plan; return at least one mini-batch")
        for b, item in enumerate(items):
            w = None
            if isinstance(item, tuple):
                if len(item) != 2:
                    raise ValueError(f"selector {name}, batch {b}: a tuple must be (indices, weights), "
                                     f"got {len(item)} items")
                item, w = item
            idx = np.asarray(item)
            if idx.ndim != 1:
                idx = idx.reshape(-1) if idx.ndim > 1 else idx.reshape(1)
            if idx.size == 0:
                raise ValueError(f"selector {name}, batch {b}: the mini-batch is empty; "
                                 "drop it from the plan or give it at least one index")
            if idx.dtype.kind not in "iu":
                raise ValueError(f"selector {name}, batch {b}: indices must be integers, got dtype {idx.dtype} "
                                 f"(values such as {idx[:3].tolist()}); use e.g. np.asarray(batch, dtype=int)")
            if w is not None:
                w = np.asarray(w, dtype=np.float64).reshape(-1)
                if len(w) != len(idx):
                    raise ValueError(f"selector {name}, batch {b}: {len(w)} weights for {len(idx)} indices; "
                                     "give one weight per index")
                bad = ~np.isfinite(w) | (w < 0)
                if bad.any():
                    raise ValueError(f"selector {name}, batch {b}: weights must be finite and non-negative, "
                                     f"got {w[bad][:5].tolist()}")
                weighted = True
            batches.append(idx)
            weights.append(w)
            lengths.append(len(idx))
        indices = np.concatenate(batches)
        out_of_range = (indices < 0) | (indices >= self.num_samples)
        if out_of_range.any():
            pos = int(np.argmax(out_of_range))
            b = int(np.searchsorted(np.cumsum(lengths), pos, side="right"))
            raise ValueError(f"selector {name}, batch {b}: indices {indices[out_of_range][:5].tolist()} are "
                             f"outside [0, {self.num_samples}); index the training set's rows")
        if weighted:
            flat_w = np.concatenate([np.ones(n) if w is None else w for w, n in zip(weights, lengths)])
        else:
            flat_w = np.ones(len(indices))
        bounds = np.zeros(len(lengths) + 1, np.int32)
        np.cumsum(lengths, out=bounds[1:])
        return indices.astype(np.int32), flat_w.astype(np.float32), bounds

    def _state(self, epoch, epochs, logs):
        return State(epoch=epoch, epochs=epochs, step=int(self._steps.numpy()), num_samples=self.num_samples,
                     batch_size=self.batch_size, labels=self.labels, num_classes=self.num_classes,
                     task=self.task, losses=self._loss_table.numpy(), loss_step=self._loss_step_table.numpy(),
                     rng=np.random.default_rng([self.seed, epoch]), logs=dict(logs), score=self._score)

    def _logs(self, trackers, metrics, prefix=""):
        out = {prefix + trackers.name: float(trackers.result())}
        for m in metrics:
            out[prefix + m.name] = float(m.result())
        return out

    def evaluate(self, x, y):
        """Returns the loss and metrics on ``(x, y)`` as a dict (``val_`` prefix-free)."""
        x, y = tf.nest.map_structure(np.asarray, x), np.asarray(y)
        _validate_arrays(x, y, "evaluation data")
        if self._train_fn is None:
            raise RuntimeError("call fit() before evaluate(); the loop builds its metrics there")
        return self._evaluate(tf.nest.map_structure(tf.convert_to_tensor, x), tf.convert_to_tensor(y), prefix="")

    def _evaluate(self, x, y, prefix="val_"):
        self._val_loss_tracker.reset_state()
        for m in self._val_metrics:
            m.reset_state()
        n = int(y.shape[0])
        for i in range(0, n, self.eval_batch_size):
            xb = tf.nest.map_structure(lambda t: t[i:i + self.eval_batch_size], x)
            self._eval_fn(xb, y[i:i + self.eval_batch_size])
        return self._logs(self._val_loss_tracker, self._val_metrics, prefix)

    @property
    def losses(self):
        """The last-seen loss of every training sample (NaN where never seen)."""
        return self._loss_table.numpy()

    @property
    def loss_step(self):
        """The global step at which each training sample's loss was last seen (-1: never)."""
        return self._loss_step_table.numpy()

    @property
    def trained_counts(self):
        """How many times each training sample contributed to a gradient (weight > 0)."""
        return self._trained_table.numpy()

    # ------------------------------------------------------------------- fit
    def fit(self, data, *, epochs, validation_data=None, target=None, stop_at_target=False, eval_every=None,
            callbacks=None, verbose=1, checkpoint_dir=None):
        """Trains the model, asking the selector for a plan every epoch.

        Args:
            data: an ``(x, y)`` pair of arrays (x may be a dict or tuple of arrays).
            epochs: number of epochs, i.e. selector calls.
            validation_data: an ``(x, y)`` pair evaluated at each evaluation.
            target: ``{metric: threshold}`` or ``{metric: (threshold, "min"|"max")}``
                used for ``time_to_target`` and ``stop_at_target``.
            stop_at_target: end the fit as soon as the target is reached.
            eval_every: evaluate every this many optimizer steps instead of once
                per epoch (plus at the end of training).
            callbacks: ``keras.callbacks.Callback`` objects.
            verbose: 0 silent, 1 progress bar, 2 one line per epoch.
            checkpoint_dir: save a checkpoint there at every epoch end and on
                SIGTERM or Ctrl-C, and resume from its latest checkpoint; see
                :mod:`loop.checkpoint`.

        Returns:
            A :class:`loop.history.History`.

        Raises:
            ValueError: bad data, plan, target or argument, naming the value.
            FloatingPointError: a loss became NaN or Inf, naming the epoch and step.
        """
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs <= 0:
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
        if eval_every is not None and (not isinstance(eval_every, (int, np.integer)) or eval_every <= 0):
            raise ValueError(f"eval_every must be a positive number of steps or None, got {eval_every!r}")
        x, y = _as_arrays(data, "data")
        self._set_training_data(x, y)
        if self.batch_size > self.num_samples:
            raise ValueError(f"batch_size={self.batch_size} is larger than the {self.num_samples} training "
                             "samples; lower batch_size")
        if validation_data is not None:
            vx, vy = _as_arrays(validation_data, "validation_data")
            _validate_arrays(vx, vy, "validation_data")
            for leaf, vleaf in zip(tf.nest.flatten(x), tf.nest.flatten(vx)):
                if leaf.shape[1:] != vleaf.shape[1:]:
                    raise ValueError(f"validation_data: x has sample shape {vleaf.shape[1:]} but the training "
                                     f"data has {leaf.shape[1:]}; they must match")
            if vy.shape[1:] != y.shape[1:]:
                raise ValueError(f"validation_data: y has sample shape {vy.shape[1:]} but the training "
                                 f"targets have {y.shape[1:]}")
        parsed_target = history_lib.parse_target(target)
        tracked = ["loss"] + [f().name for f in self._metric_factories]
        tracked += ["val_" + t for t in tracked] if validation_data is not None else []
        unknown = [m for m in parsed_target if m not in tracked]
        if unknown:
            raise ValueError(f"target metric(s) {unknown} are not tracked; this fit tracks {tracked} "
                             "(add the metric to metrics=[...] or validation_data=...)")
        if stop_at_target and not parsed_target:
            raise ValueError("stop_at_target=True needs a target, e.g. target={'val_accuracy': 0.9}")

        keras.utils.set_random_seed(self.seed)
        if self.deterministic:
            tf.config.experimental.enable_op_determinism()
        if self._train_fn is None:
            with distribute_lib.scope(self.strategy):
                self._build()
        self._first_bad_step.assign(-1)
        device_val = None
        if validation_data is not None:
            device_val = (tf.nest.map_structure(tf.convert_to_tensor, vx), tf.convert_to_tensor(vy))
        ckpt = resume = None
        if checkpoint_dir is not None:
            ckpt = checkpoint_lib.Checkpointer(self, checkpoint_dir)
            resume = ckpt.restore()
        state = self._state(0, epochs, {})
        if hasattr(self.selector, "on_train_begin"):
            with distribute_lib.scope(self.strategy):  # an in-step filter's variables are replicated too
                self.selector.on_train_begin(state)
        self._trace()

        hist = history_lib.History(rows=resume.rows if resume else None, target=parsed_target,
                                   selector=describe(self.selector),
                                   params={"batch_size": self.batch_size, "seed": self.seed, "epochs": epochs})
        self.history = hist
        if resume is not None and (resume.stopped or resume.epoch >= epochs):
            return hist
        cbks = keras.callbacks.CallbackList(callbacks, add_history=False, add_progbar=verbose != 0,
                                            model=self.model, verbose=verbose, epochs=epochs, steps=None)
        hooks = ("on_train_batch_end", "on_train_batch_begin", "on_batch_end", "on_batch_begin")
        # As in Keras, batch-level hooks left at their default are skipped, so no host read per chunk.
        batch_hooks = any(getattr(type(c), h) is not getattr(keras.callbacks.Callback, h)
                          for c in cbks.callbacks for h in hooks)
        on_batch_end = getattr(self.selector, "on_batch_end", None)
        self.model.stop_training = False
        timer = {"train": 0.0, "selection": 0.0, "eval": 0.0}
        logs, last_val = {}, {}
        if resume is not None:
            timer, logs, last_val = dict(resume.timer), resume.logs, resume.last_val
        cbks.on_train_begin()
        with checkpoint_lib.guard(ckpt):
            return self._train_epochs(
                epochs=epochs, state=state, hist=hist, cbks=cbks, timer=timer, logs=logs, last_val=last_val,
                eval_every=eval_every, device_val=device_val, parsed_target=parsed_target,
                stop_at_target=stop_at_target, batch_hooks=batch_hooks, on_batch_end=on_batch_end,
                verbose=verbose, ckpt=ckpt, resume=resume)

    def _train_epochs(self, *, epochs, state, hist, cbks, timer, logs, last_val, eval_every, device_val,
                      parsed_target, stop_at_target, batch_hooks, on_batch_end, verbose, ckpt, resume):
        """The eager epoch loop of :meth:`fit`; ``resume`` continues a checkpointed run where it stopped."""
        for epoch in range(resume.epoch if resume is not None else 0, epochs):
            t0 = time.perf_counter()
            state = self._state(epoch, epochs, logs) if epoch else state
            resumed = resume is not None and resume.plan is not None and epoch == resume.epoch
            try:
                plan = resume.plan if resumed else self.selector(state)
                indices, weights, bounds = plan if resumed else self._validate_plan(plan)
            except ValueError:
                raise
            except Exception as err:
                raise RuntimeError(f"selector {describe(self.selector)} raised {type(err).__name__} at epoch "
                                   f"{epoch}: {err}\n{traceback.format_exc()}") from err
            if self._plan_check is not None:
                self._plan_check(indices, weights, bounds, epoch)
            num_batches = len(bounds) - 1
            dev_indices, dev_weights, dev_bounds = (tf.constant(indices), tf.constant(weights),
                                                    tf.constant(bounds))
            if self._position_losses is not None:
                self._position_losses.assign(tf.zeros([len(indices)]))
            elapsed = time.perf_counter() - t0
            timer["selection"] += elapsed
            timer["train"] += elapsed
            cbks.set_params({"verbose": verbose, "epochs": epochs, "steps": num_batches})
            cbks.on_epoch_begin(epoch)
            if not resumed:  # a resumed epoch keeps its restored running metrics
                self._loss_tracker.reset_state()
                for m in self._train_metrics:
                    m.reset_state()
            start_step = resume.start_step if resumed else int(self._steps.numpy())
            batch = resume.batch if resumed else 0
            while batch < num_batches:
                stop = min(batch + self.steps_per_execution, num_batches)
                if eval_every:
                    done = start_step + batch
                    stop = min(stop, batch + eval_every - done % eval_every)
                if batch_hooks:
                    cbks.on_train_batch_begin(batch)
                t0 = time.perf_counter()
                # Reading the result waits for the device, so the time is honest.
                steps_now, bad_step = self._train_fn(dev_indices, dev_weights, dev_bounds, batch, stop).numpy()
                timer["train"] += time.perf_counter() - t0
                if bad_step >= 0:
                    raise FloatingPointError(
                        f"the loss became NaN or Inf at epoch {epoch}, step {bad_step} (selector "
                        f"{describe(self.selector)}); lower the learning rate, check the inputs, or add "
                        "gradient clipping (e.g. optimizer=keras.optimizers.Adam(clipnorm=1.0))")
                if on_batch_end is not None:
                    t0 = time.perf_counter()
                    fresh = self._position_losses[bounds[batch]:bounds[stop]].numpy()
                    for b in range(batch, stop):
                        lo, hi = bounds[b], bounds[b + 1]
                        on_batch_end(indices[lo:hi], fresh[lo - bounds[batch]:hi - bounds[batch]])
                    elapsed = time.perf_counter() - t0
                    timer["train"] += elapsed
                    timer["selection"] += elapsed
                batch = stop
                mid_eval = eval_every and steps_now % eval_every == 0 and batch < num_batches
                if batch_hooks or verbose == 1 or mid_eval:
                    logs = self._logs(self._loss_tracker, self._train_metrics)
                if batch_hooks or verbose == 1:
                    cbks.on_train_batch_end(batch - 1, logs)
                if mid_eval:
                    last_val = self._eval_row(hist, cbks, epoch + batch / num_batches, logs, device_val, timer)
                    if self._stop(hist, parsed_target, stop_at_target):
                        break
                if self.model.stop_training:
                    break
                if ckpt is not None and ckpt.interrupted and batch < num_batches:
                    ckpt.save(epoch=epoch, batch=batch, plan=(indices, weights, bounds), start_step=start_step,
                              rows=hist.rows, timer=timer, logs=logs, last_val=last_val)
                    ckpt.stop()
            logs = self._logs(self._loss_tracker, self._train_metrics)
            if not eval_every or steps_now % eval_every == 0 or epoch == epochs - 1 or self.model.stop_training:
                if not (hist.rows and hist.rows[-1]["step"] == steps_now):
                    last_val = self._eval_row(hist, cbks, epoch + batch / num_batches, logs, device_val, timer)
            epoch_logs = {**logs, **last_val}
            cbks.on_epoch_end(epoch, epoch_logs)
            logs = epoch_logs
            stopping = self._stop(hist, parsed_target, stop_at_target) or self.model.stop_training
            if ckpt is not None:
                ckpt.save(epoch=epoch + 1, batch=0, rows=hist.rows, timer=timer, logs=logs, last_val=last_val,
                          stopped=stopping)
                if ckpt.interrupted:
                    ckpt.stop()
            if stopping:
                break
        cbks.on_train_end(logs)
        return hist

    def _stop(self, hist, target, stop_at_target):
        if stop_at_target and hist.rows and history_lib.reached(hist.rows[-1], target):
            self.model.stop_training = True
        return self.model.stop_training

    def _eval_row(self, hist, cbks, epoch_progress, train_logs, validation_data, timer):
        val = {}
        if validation_data is not None:
            t0 = time.perf_counter()
            cbks.on_test_begin()
            val = self._evaluate(*validation_data)
            cbks.on_test_end({k[4:]: v for k, v in val.items()})
            timer["eval"] += time.perf_counter() - t0
        row = {"epoch": round(float(epoch_progress), 6), "step": int(self._steps.numpy()),
               "samples_seen": int(self._seen.numpy()), "samples_backpropagated": int(self._backprop.numpy()),
               "train_time_s": timer["train"], "selection_time_s": timer["selection"],
               "eval_time_s": timer["eval"], **train_logs, **val}
        hist.rows.append(row)
        return val
