"""What is optimized and measured: per-sample losses, metrics and the task, from Keras arguments.

Who owns what: this module turns the ``loss`` and ``metrics`` arguments of
``Loop`` (Keras names, objects or functions, or the model's own ``compile``)
into a per-sample loss function, metric objects and the task
("classification" or "regression"), and builds them once
(:func:`build_objective`: the model's ``compile`` when it has none, its
metrics, the optimizer's variables).  It uses only public Keras API: a
``keras.losses.Loss`` is called through ``Loss.__call__`` with
``reduction=None``, and ``"accuracy"`` is resolved from the shapes of the
targets and the model's outputs, as ``Model.compile`` does.

Mixed precision (``keras.mixed_precision``): the model may compute in float16
or bfloat16, but losses and metrics are always computed in float32, as Keras'
own ``Loss`` and ``Metric`` objects do: :func:`float32` casts the model's
outputs first.  :func:`training_optimizer` wraps the optimizer in a
``keras.optimizers.LossScaleOptimizer`` when the model computes in float16, as
``Model.compile`` does (to find nested layers it uses Keras'
``Layer._flatten_layers`` when present, the one non-public call here).
"""

import copy
import warnings

import keras
import numpy as np
import tensorflow as tf

#: Loss-name fragments that mark a regression loss.
REGRESSION_LOSSES = ("mse", "mae", "mape", "msle", "mean_squared", "mean_absolute", "huber", "log_cosh",
                     "logcosh", "poisson", "cosine")
ACCURACY_NAMES = ("accuracy", "acc")


def per_sample_loss(loss):
    """Returns ``(name, fn)`` where ``fn(y_true, y_pred)`` gives float32 per-sample losses, shape ``[n]``.

    Raises:
        ValueError: ``loss`` is not a Keras loss name, ``keras.losses.Loss`` or function.
    """
    if isinstance(loss, str):
        try:
            fn = keras.losses.get(loss)
        except ValueError:
            fn = None
        if fn is None:
            raise ValueError(f"unknown loss {loss!r}; pass a Keras loss name such as "
                             "'sparse_categorical_crossentropy', a keras.losses.Loss or a function")
        name = loss
    elif isinstance(loss, keras.losses.Loss):
        name, fn = loss.name, _unreduced(loss)
    elif callable(loss):
        name, fn = getattr(loss, "__name__", "loss"), loss
    else:
        raise ValueError(f"loss must be a Keras loss name, a keras.losses.Loss or a function, got {loss!r}")
    if isinstance(fn, keras.losses.Loss):
        fn = _unreduced(fn)

    def per_sample(y_true, y_pred):
        values = fn(y_true, float32(y_pred))
        rank = len(values.shape)
        if rank > 1:
            values = tf.reduce_mean(values, axis=list(range(1, rank)))
        return tf.cast(values, tf.float32)

    return name, per_sample


def float32(y_pred):
    """``y_pred`` (a tensor or a nest of them) with its float16 and bfloat16 parts cast to float32.

    Under a mixed precision policy the model's outputs are float16 or bfloat16;
    losses, metrics and in-step filters see them in float32, as Keras' own
    losses and metrics do.  Other dtypes pass unchanged (a float32 tensor is
    returned as is).
    """
    def cast(t):
        dtype = getattr(t, "dtype", None)
        if dtype is not None and tf.as_dtype(dtype) in (tf.float16, tf.bfloat16):
            return tf.cast(t, tf.float32)
        return t

    return tf.nest.map_structure(cast, y_pred)


def computes_in_float16(model):
    """True when the model or any of its layers computes in float16 (e.g. the ``"mixed_float16"`` policy)."""
    if getattr(getattr(model, "dtype_policy", None), "name", None) == "mixed_float16":
        return True
    flatten = getattr(model, "_flatten_layers", None)  # every nested layer (Keras 3); else the top-level ones
    layers = flatten(include_self=True, recursive=True) if callable(flatten) else [model, *model.layers]
    return any(getattr(layer, "compute_dtype", None) == "float16" for layer in layers)


def training_optimizer(optimizer, compiled_optimizer, model):
    """The optimizer the loop trains with, set up for mixed precision as ``Model.compile`` does.

    The model's own compiled optimizer (``optimizer`` None, or the same object)
    is used as Keras' ``compile`` left it: under ``"mixed_float16"`` it is
    already a ``keras.optimizers.LossScaleOptimizer``, unless the model was
    compiled with ``auto_scale_loss=False``, which is honoured.  Any other
    optimizer (``optimizer=``, or ``"adam"`` for an uncompiled model) is
    resolved with ``keras.optimizers.get`` and, when the model computes in
    float16 (:func:`computes_in_float16`), wrapped in a
    ``LossScaleOptimizer`` with Keras' defaults (dynamic scale, initial
    ``2**15``); an optimizer that already is one is never wrapped twice.
    bfloat16 needs no loss scaling (it has float32's exponent range).

    Raises:
        ValueError: ``optimizer`` is not a Keras optimizer or its name (from ``keras.optimizers.get``).
    """
    if compiled_optimizer is not None and (optimizer is None or optimizer is compiled_optimizer):
        return compiled_optimizer
    resolved = keras.optimizers.get(optimizer or "adam")
    if computes_in_float16(model) and not isinstance(resolved, keras.optimizers.LossScaleOptimizer):
        resolved = keras.optimizers.LossScaleOptimizer(resolved, name="loss_scale_optimizer")
    return resolved


def _unreduced(loss):
    """A copy of a ``keras.losses.Loss`` with ``reduction=None``: its ``__call__`` returns per-sample values."""
    try:
        return type(loss).from_config({**loss.get_config(), "reduction": None})
    except (TypeError, ValueError, NotImplementedError):
        unreduced = copy.copy(loss)
        unreduced.reduction = None
        return unreduced


def from_compiled(model):
    """``(optimizer, loss, metrics)`` of a model compiled by its user, or Nones when it is not compiled."""
    if not getattr(model, "compiled", False):
        return None, None, None
    config = model.get_compile_config() or {}
    metrics = [m if isinstance(m, str) else keras.metrics.get(m) for m in (config.get("metrics") or [])]
    return model.optimizer, model.loss, metrics


def compiled_defaults(model, optimizer, loss, metrics):
    """``Loop``'s ``loss`` and ``metrics``, the model's own ``compile`` giving those left None, and its optimizer.

    The loop never changes the user's ``compile``: an ``optimizer`` other than
    the compiled one trains, with a warning (callbacks that read
    ``model.optimizer`` see the compiled one).

    Returns:
        ``(compiled_optimizer, loss, metric_specs)``: the model's compiled
        optimizer or None (:func:`training_optimizer` chooses), the loss and
        the list of metric specs.

    Raises:
        ValueError: no ``loss`` and an uncompiled model.
    """
    compiled_optimizer, compiled_loss, compiled_metrics = from_compiled(model)
    if loss is None and compiled_loss is None:
        raise ValueError("no loss: pass loss=... (e.g. 'sparse_categorical_crossentropy') or compile the model")
    if compiled_optimizer is not None and optimizer is not None and optimizer is not compiled_optimizer:
        warnings.warn("the model is compiled with another optimizer; the loop trains with optimizer=... and "
                      "leaves your compile alone, so callbacks that read model.optimizer see yours",
                      stacklevel=3)  # Loop(...)'s caller
    metric_specs = list(compiled_metrics or []) if metrics is None else list(metrics)
    return compiled_optimizer, compiled_loss if loss is None else loss, metric_specs


def infer_task(loss_name, y, model):
    """Returns ``(task, num_classes)`` from the loss, the targets and the model's outputs.

    Raises:
        ValueError: a classification loss with non-integer class labels.
    """
    integral = np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_)
    lname = loss_name.lower()
    if any(part in lname for part in REGRESSION_LOSSES):
        return "regression", None
    if not ("crossentropy" in lname or "hinge" in lname or integral):
        return "regression", None
    if y.ndim >= 2 and y.shape[-1] > 1:
        return "classification", int(y.shape[-1])
    outputs = output_width(model)
    if outputs is None or outputs == 1:
        y_int = y.astype(np.int64)
        if not np.array_equal(y_int, y):
            flat = y.ravel()
            raise ValueError("training data: class labels must be integers, got non-integer values such as "
                             f"{flat[~np.isclose(flat, np.round(flat))][:3].tolist()}")
        return "classification", max(int(y_int.max()) + 1, 2)
    return "classification", int(outputs)


def output_width(model):
    """The last dimension of the model's (first) output, or None when unknown."""
    try:
        return model.outputs[0].shape[-1] if model.outputs else None
    except (AttributeError, ValueError):
        return None


def make_metric(spec, y_true_shape, y_pred_shape):
    """A fresh metric object for ``spec``; ``"accuracy"`` is chosen by shapes as ``Model.compile`` does.

    Raises:
        ValueError: ``spec`` is not a metric name, ``keras.metrics.Metric`` or function.
    """
    if isinstance(spec, str):
        if spec.lower() in ACCURACY_NAMES:
            binary = y_pred_shape[-1] == 1
            sparse = len(y_true_shape) < len(y_pred_shape) or (y_true_shape[-1] == 1 and y_pred_shape[-1] > 1)
            cls = (keras.metrics.BinaryAccuracy if binary else
                   keras.metrics.SparseCategoricalAccuracy if sparse else keras.metrics.CategoricalAccuracy)
            return cls(name=spec)
        try:
            found = keras.metrics.get(spec)
        except ValueError:
            found = None
        if isinstance(found, keras.metrics.Metric):
            return type(found).from_config({**found.get_config(), "name": spec})
        if callable(found):
            return keras.metrics.MeanMetricWrapper(found, name=spec)
        raise ValueError(f"unknown metric {spec!r}; pass a Keras metric name such as 'accuracy', a "
                         "keras.metrics.Metric or a function")
    if isinstance(spec, keras.metrics.Metric):
        return type(spec).from_config(spec.get_config())
    if callable(spec):
        return keras.metrics.MeanMetricWrapper(spec, name=getattr(spec, "__name__", "metric"))
    raise ValueError(f"metrics must be names, keras.metrics.Metric objects or functions, got {spec!r}")


def metric_name(spec):
    """The name a metric spec logs under, known before any shapes are."""
    if isinstance(spec, str):
        return spec
    if isinstance(spec, keras.metrics.Metric):
        return spec.name
    if callable(spec):
        return getattr(spec, "__name__", "metric")
    raise ValueError(f"metrics must be names, keras.metrics.Metric objects or functions, got {spec!r}")


class MetricSet:
    """A loss mean and the metrics of one phase (training or validation); all float32.

    Args:
        specs: metric specs (see :func:`make_metric`).
        y_true_shape, y_pred_shape: example shapes (with a batch dimension).
    """

    def __init__(self, specs, y_true_shape, y_pred_shape):
        self.loss = keras.metrics.Mean(name="loss")
        self.metrics = [make_metric(s, y_true_shape, y_pred_shape) for s in specs]

    @property
    def variables(self):
        return [v for m in (self.loss, *self.metrics) for v in m.variables]

    @property
    def objects(self):
        """The Keras metric objects, loss mean first."""
        return [self.loss, *self.metrics]

    def update_state(self, losses, y_true, y_pred, sample_weight=None):
        """Adds a batch: its per-sample ``losses`` and, for the metrics, ``y_pred`` in float32 (:func:`float32`).

        With per-sample ``sample_weight`` the loss counts as Keras' does: the
        loss mean adds ``sample_weight * losses`` (Keras' loss is the weighted
        sum over the number of samples).  The metrics stay unweighted, as
        Keras' ``compile(metrics=...)`` are (only its ``weighted_metrics``
        see the weights).
        """
        if sample_weight is None:
            self.loss.update_state(losses)
        else:
            self.loss.update_state(losses * sample_weight)
        y_pred = float32(y_pred)
        for metric in self.metrics:
            metric.update_state(y_true, y_pred)

    def reset_state(self):
        for metric in self.objects:
            metric.reset_state()

    def result(self, prefix=""):
        """``{prefix + name: value}`` as Python floats (a host read)."""
        return {prefix + m.name: float(m.result()) for m in self.objects}


def build_objective(model, optimizer, loss, metric_specs, x, y, y_pred):
    """Builds, once, what the loop optimizes and measures: the model's compile, its metrics and the optimizer.

    An uncompiled model is compiled with the loop's optimizer, loss and
    metrics (``jit_compile=False``; the loop never changes a user's
    ``compile``), so that Keras callbacks find them and the metrics'
    directions; the model's compiled metrics are built on the rows ``x``
    (targets ``y[:1]``, outputs ``y_pred``) and reset, and the optimizer's
    variables are built.

    Returns:
        ``(train_metrics, val_metrics)``: two :class:`MetricSet` of ``metric_specs``.
    """
    if not model.compiled:  # lets Keras callbacks find the optimizer, loss and metric directions
        model.compile(optimizer=optimizer, loss=loss, metrics=metric_specs or None, jit_compile=False)
    model.compute_metrics(x, y[:1], y_pred)  # builds the compiled metrics (directions)
    model.reset_metrics()
    optimizer.build(model.trainable_variables)
    shapes = (y.shape, y_pred.shape)
    return MetricSet(metric_specs, *shapes), MetricSet(metric_specs, *shapes)
