"""Validation of what a user passes to ``Loop``: arguments, data and targets.

Who owns what: every check of user input that happens before training lives
here, so that ``Loop.fit`` refuses bad input before any step, with a message
that names the value and the fix.  Plans are checked by
:func:`loop.protocol.validate_plan`, selector hyper-parameters by the
selectors themselves.
"""

import inspect
import numbers

import numpy as np
import tensorflow as tf

from loop import history as history_lib
from loop.protocol import describe
from loop.schedules import TrainClock

RANDOM_ACCESS_HINT = ("the loop gathers mini-batches by index, which a tf.data pipeline cannot do. Pass an (x, y) "
                      "pair of arrays, or a random-access source that streams by index: a NumPy memmap "
                      "(fit(np.load(path, mmap_mode='r'), y)), tfds.data_source(name, split=...) or a grain "
                      "RandomAccessDataSource, wrapped as loop.RandomAccess(source, decode=...) "
                      "(for a tfds dataset that fits in memory: tfds.as_numpy(tfds.load(name, split=..., "
                      "batch_size=-1, as_supervised=True)))")


def positive_int(name, value, allow_none=False):
    """Returns ``int(value)``, or raises ``ValueError`` naming it unless it is a positive integer."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        more = " or None" if allow_none else ""
        raise ValueError(f"{name} must be a positive integer{more}, got {value!r}")
    return int(value)


def seed(value):
    """``Loop(seed=...)``: returns ``int(value)``, or raises ``ValueError`` unless it is a non-negative integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"seed must be a non-negative integer, got {value!r}")
    return int(value)


def resident_limit_bytes(value):
    """``Loop(resident_limit_bytes=...)``: returns ``value``, or raises ``ValueError`` unless it is >= 0 or None.

    The limit is a whole number of bytes: 0 always streams, None never does.
    """
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0):
        raise ValueError(f"resident_limit_bytes must be a non-negative integer (0: always stream) or None (never "
                         f"stream), got {value!r}")
    return value


def selector(value):
    """``Loop(selector=...)`` checked: a class is instantiated, and anything else but None or a name must be callable.

    A selector class whose constructor needs no argument is instantiated, as
    Keras instantiates a loss or metric class; None and a spec string are
    returned as they are (``Loop`` makes them ``Shuffle()`` or parses them).

    Raises:
        ValueError: a class whose constructor needs arguments (naming them) or whose instances are not callable,
            or a value that is not callable.
    """
    if isinstance(value, type):
        value = _instantiate(value)
    if value is not None and not isinstance(value, str) and not callable(value):
        raise ValueError(f"selector {value!r} is not callable; pass a function state -> plan, "
                         "a loop.selectors object such as Shuffle(), or a name such as 'shuffle'")
    return value


def _instantiate(cls):
    """``cls()`` for a selector class passed where an instance belongs, or a ``ValueError`` naming what it needs."""
    try:
        required = [p.name for p in inspect.signature(cls).parameters.values()
                    if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    except (TypeError, ValueError):  # no signature to read (a builtin): try it as it is
        required = []
    if required:
        raise ValueError(f"selector {cls.__name__} is a class whose constructor needs {', '.join(required)}; pass an "
                         f"instance, e.g. selector={cls.__name__}({', '.join(f'{r}=...' for r in required)})")
    instance = cls()
    if not callable(instance):
        raise ValueError(f"selector {cls.__name__} is a class whose instances are not callable; pass a function "
                         "state -> plan, a loop.selectors object such as Shuffle(), or a name such as 'shuffle'")
    return instance


def fit_settings(*, epochs, eval_every, verbose, target, stop_at_target, tracked, loss_name=None):
    """``fit``'s scalar arguments, checked and normalized (``verbose="auto"`` is 1, the target parsed).

    ``epochs`` may be 0, as in Keras' ``Model.fit`` (nothing is trained).
    ``loss_name`` lets a ``loss`` target be checked against the loss's range
    (:func:`loop.history.metric_range`).

    Raises:
        ValueError: a bad value, a target outside its metric's range, or a target metric that ``tracked``
            lacks, naming it and the fix.
    """
    verbose = 1 if verbose == "auto" else verbose
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0 (silent), 1 (progress bar) or 2 (one line per epoch), or 'auto'; "
                         f"got {verbose!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative integer (0 trains nothing, as in Keras), got {epochs!r}")
    parsed = history_lib.parse_target(target, loss_name)
    unknown = [m for m in parsed if m not in tracked]
    if unknown:
        raise ValueError(f"target metric(s) {unknown} are not tracked; this fit tracks {tracked} "
                         "(add the metric to metrics=[...] or validation_data=...)")
    if stop_at_target and not parsed:
        raise ValueError("stop_at_target=True needs a target, e.g. target={'val_accuracy': 0.9}")
    return {"epochs": int(epochs), "eval_every": positive_int("eval_every", eval_every, True),
            "verbose": verbose, "target": parsed, "stop_at_target": bool(stop_at_target)}


def fit_options(*, epochs, eval_every, verbose, target, stop_at_target, extra, metric_names, validated, loss_name,
                selector, filter_mode, eval_every_seconds=None, time_budget_s=None, train_clock=None,
                multi_worker=False):
    """``fit``'s options, checked before any data is read: :func:`fit_settings` and :func:`extra_evaluations`.

    Args:
        epochs, eval_every, verbose, target, stop_at_target: ``fit``'s arguments.
        eval_every_seconds, time_budget_s, train_clock: ``fit``'s options on the training clock; each worker of a
            multi-worker strategy (``multi_worker``) measures its own clock, so they are refused there.
        extra: ``fit``'s ``extra_evaluations``.
        metric_names: the loop's metric names; a target may name ``loss``, them, and with ``validated``
            (``validation_data`` given) their ``val_`` columns.
        validated: ``validation_data`` was given.
        loss_name: the loss's name, for the range of a ``loss`` target.
        selector, filter_mode: the loop's selector and its in-step filter's mode (an ``"accumulate"`` filter
            refuses ``eval_every``, not ``eval_every_seconds``).

    Returns:
        ``(settings, extra)``: :func:`fit_settings`'s dict and :func:`extra_evaluations`'s.

    Raises:
        ValueError: a bad option, naming it and the fix.
    """
    tracked = ["loss"] + list(metric_names)
    tracked += ["val_" + t for t in tracked] if validated else []
    if eval_every is not None and filter_mode == "accumulate":
        raise ValueError(f"eval_every={eval_every!r} counts optimizer steps, which the accumulating filter of "
                         f"{describe(selector)} decouples from the plan's batches; leave eval_every=None "
                         "to evaluate once per epoch, or evaluate on the training clock (eval_every_seconds=...)")
    if eval_every is not None and eval_every_seconds is not None:
        raise ValueError(f"pass eval_every={eval_every!r} (optimizer steps) or eval_every_seconds="
                         f"{eval_every_seconds!r} (training seconds), not both")
    seconds = {"eval_every_seconds": eval_every_seconds, "time_budget_s": time_budget_s}
    for name, value in seconds.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
                np.isfinite(value) and value > 0)):
            raise ValueError(f"{name} must be a positive number of training seconds (the history's train_time_s) "
                             f"or None, got {value!r}")
    if train_clock is not None and not isinstance(train_clock, TrainClock):
        raise ValueError(f"train_clock must be a loop.schedules.TrainClock (the clock a ClockSchedule reads) or "
                         f"None, got {type(train_clock).__name__}")
    clocked = [n for n, v in {**seconds, "train_clock": train_clock}.items() if v is not None]
    if clocked and multi_worker:
        raise ValueError(f"{', '.join(clocked)} follow this worker's measured clock, on which the workers of a "
                         "multi-worker strategy would disagree (and wait for each other); use eval_every= and a "
                         "step schedule (loop.schedules.make_schedule) there")
    settings = fit_settings(epochs=epochs, eval_every=eval_every, verbose=verbose, target=target,
                            stop_at_target=stop_at_target, tracked=tracked, loss_name=loss_name)
    settings.update({n: None if v is None else float(v) for n, v in seconds.items()}, train_clock=train_clock)
    return settings, extra_evaluations(extra)


def extra_evaluations(extra):
    """``fit``'s ``extra_evaluations`` as a dict ``{name: data}`` (None: empty), its names checked.

    Raises:
        ValueError: not a dict, or a name that is not a lower-case identifier, is ``val`` (the validation
            columns' prefix) or starts with ``val_``, naming it.
    """
    if extra is None:
        return {}
    if not isinstance(extra, dict):
        raise ValueError(f"extra_evaluations must be a dict {{name: (x, y)}}, e.g. {{'test': (x_test, y_test)}}; "
                         f"got {type(extra).__name__}")
    for name in extra:
        if not isinstance(name, str) or not name.isidentifier() or name != name.lower() or name == "val" or \
                name.startswith("val_"):
            raise ValueError(f"extra_evaluations name {name!r} must be a lower-case identifier other than 'val' "
                             "(its metrics become '<name>_loss', ... columns), e.g. 'test'")
    return dict(extra)


def as_arrays(x, y, what):
    """``(x, y)`` as NumPy arrays from ``(x, y)`` or from ``((x, y), None)``, as ``fit`` and ``evaluate`` take them.

    Raises:
        ValueError: a ``tf.data.Dataset``, or not an ``(x, y)`` pair.
    """
    if isinstance(x, tf.data.Dataset) or isinstance(y, tf.data.Dataset):
        raise ValueError(f"{what} is a tf.data.Dataset; {RANDOM_ACCESS_HINT}")
    if y is None:
        if not isinstance(x, (tuple, list)) or len(x) != 2:
            raise ValueError(f"{what} must be an (x, y) pair of arrays, or x and y given separately, "
                             f"got {type(x).__name__}")
        x, y = x
        if isinstance(x, tf.data.Dataset):
            raise ValueError(f"{what} is a tf.data.Dataset; {RANDOM_ACCESS_HINT}")
    if y is None:
        raise ValueError(f"{what}: y is None; pass the targets")
    return tf.nest.map_structure(np.asarray, x), np.asarray(y)


def as_source(x, y, what):
    """A :class:`loop.streaming.RandomAccess` for a random-access source (or ``(source, y)``), else None.

    ``x`` may be a ``RandomAccess``, a memmap (or a tuple or dict holding one)
    with ``y``, or a source whose records are ``(inputs, target)`` pairs.

    Raises:
        ValueError: a ``tf.data.Dataset``, or a ``RandomAccess`` given a separate ``y``.
    """
    from loop import streaming

    if isinstance(x, tf.data.Dataset) or isinstance(y, tf.data.Dataset):
        raise ValueError(f"{what} is a tf.data.Dataset; {RANDOM_ACCESS_HINT}")
    if y is None and isinstance(x, (tuple, list)) and len(x) == 2 and not isinstance(x[0], streaming.RandomAccess) \
            and _holds_source(x[0]):
        x, y = x
    if isinstance(x, streaming.RandomAccess):
        if y is not None:
            raise ValueError(f"{what}: a loop.RandomAccess carries its targets; pass y to RandomAccess(x, y) "
                             "instead of to fit")
        return x
    if _holds_source(x):
        return streaming.RandomAccess(x, None if y is None else np.asarray(y))
    return None


def _holds_source(x):
    from loop import streaming

    if isinstance(x, dict) or (isinstance(x, tuple) and not hasattr(x, "__getitems__")):
        return any(isinstance(leaf, np.memmap) for leaf in tf.nest.flatten(x))
    return streaming.is_source(x)


def check_source(source, what):
    """Checks a streamed source's targets and first rows (its inputs are not scanned; the step's NaN check
    catches a non-finite loss); returns the number of samples."""
    head_x, head_y = source.take(np.arange(min(8, len(source))))
    check_arrays(head_x, head_y, what)
    labels = source.labels
    if labels.dtype.kind in "USO":
        raise ValueError(f"{what}: the targets hold {labels.dtype} values such as {labels.ravel()[:3].tolist()}; "
                         "decode labels to integer class ids")
    if np.issubdtype(labels.dtype, np.floating) and not np.isfinite(labels).all():
        raise ValueError(f"{what}: the targets hold NaN or Inf; clean the targets first")
    return len(source)


def _non_finite_rows(array, block_bytes=64 * 2 ** 20):
    """Up to 6 indices of rows of ``array`` holding NaN or Inf, checked in slices (no data-sized mask)."""
    step = max(1, block_bytes // max(1, array[:1].nbytes))
    where = []
    for start in range(0, len(array), step):
        bad = ~np.isfinite(array[start:start + step]).reshape(min(step, len(array) - start), -1).all(axis=1)
        where.extend((start + np.flatnonzero(bad)[:6 - len(where)]).tolist())
        if len(where) >= 6:
            break
    return np.asarray(where, np.int64)


def check_arrays(x, y, what):
    """Returns the number of samples, or raises ``ValueError`` for empty, ragged, NaN or string data."""
    leaves = tf.nest.flatten(x)
    if not leaves:
        raise ValueError(f"{what}: x is empty")
    if any(leaf.ndim == 0 for leaf in leaves) or y.ndim == 0:
        raise ValueError(f"{what}: x and y need a leading sample dimension; got a scalar")
    sizes = {len(leaf) for leaf in leaves}
    if len(sizes) != 1:
        raise ValueError(f"{what}: the inputs in x have different lengths {sorted(sizes)}")
    n = sizes.pop()
    if n == 0:
        raise ValueError(f"{what}: the dataset is empty (0 samples); pass at least one sample")
    if len(y) != n:
        raise ValueError(f"{what}: x has {n} samples but y has {len(y)}; they must have the same length")
    for leaf in leaves:
        if leaf.dtype.kind in "USO":
            raise ValueError(f"{what}: x holds {leaf.dtype} values such as {leaf.ravel()[:3].tolist()}; "
                             "encode the inputs as numbers first")
        if np.issubdtype(leaf.dtype, np.floating):
            where = _non_finite_rows(leaf)
            if len(where):
                raise ValueError(f"{what}: x holds NaN or Inf at sample(s) {where[:5].tolist()}"
                                 f"{' ...' if len(where) > 5 else ''}; clean or impute the inputs first")
    if y.dtype.kind in "USO":
        raise ValueError(f"{what}: y holds {y.dtype} values such as {y.ravel()[:3].tolist()}; "
                         "encode labels as integer class ids (e.g. sklearn.preprocessing.LabelEncoder)")
    if np.issubdtype(y.dtype, np.floating) and not np.isfinite(y).all():
        raise ValueError(f"{what}: y holds NaN or Inf; clean the targets first")
    return n


def check_labels(y, num_classes, sparse, what):
    """Raises ``ValueError`` for class ids outside ``[0, num_classes)`` (integer-label targets only), and for
    class ids that are not whole numbers with a sparse loss (floats such as 1.0 pass, as in Keras; 0.5 does not:
    a sparse loss would truncate it to a class id and train on the wrong class without a word)."""
    if num_classes is None:
        return
    labels = y.reshape(len(y), -1)
    if not (sparse or labels.shape[1] == 1):
        return
    if sparse and labels.dtype.kind == "f":
        fractional = labels != np.round(labels)
        if fractional.any():
            i = int(np.argwhere(fractional.any(axis=1))[0, 0])
            raise ValueError(f"{what}: label {labels[i].tolist()} at sample {i} is not a whole number; a sparse "
                             "loss takes integer class ids (1.0 is fine): pass the class ids (e.g. "
                             "np.round(y).astype(int) if they were rounded off), or for soft targets use one-hot "
                             "rows with 'categorical_crossentropy'")
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        i = int(np.argwhere(bad.any(axis=1))[0, 0])
        raise ValueError(f"{what}: label {labels[i].tolist()} at sample {i} is outside [0, {num_classes}) for a "
                         f"model with {num_classes} outputs; labels must be integer class ids from 0 to "
                         "num_classes-1")


def sample_weights(sample_weight, class_weight, y, num_classes, what):
    """Per-sample weights from ``fit``'s ``sample_weight`` or ``class_weight``, as Keras' ``Model.fit`` takes them.

    Args:
        sample_weight: None, or one weight per sample (shape ``[n]`` or ``[n, 1]``).
        class_weight: None, or ``{class id: weight}``; a class left out weighs 1.  The class of a sample is its
            label, or the argmax of a one-hot target, as in Keras.
        y: the targets (``n`` rows).
        num_classes: the number of classes, None for a regression.
        what: the data's name, for messages.

    Returns:
        float32 ``[n]`` weights, or None when neither is given.

    Raises:
        ValueError: both are given (as in Keras), a weight is negative or not finite, the shape is not ``[n]``,
            a class id is not one of the model's, or ``class_weight`` is given for a regression.
    """
    if sample_weight is not None and class_weight is not None:
        raise ValueError("pass sample_weight or class_weight, not both (Keras' Model.fit refuses both too); fold "
                         "the class weights into the sample weights, e.g. sample_weight * "
                         "np.array([class_weight.get(int(c), 1.0) for c in y])")
    n = len(y)
    if class_weight is not None:
        return _class_weights(class_weight, y, num_classes, what)
    if sample_weight is None:
        return None
    weights = np.asarray(sample_weight)
    if weights.dtype.kind not in "biuf":
        raise ValueError(f"{what}: sample_weight holds {weights.dtype} values; give one number per sample")
    if weights.ndim == 2 and weights.shape[1] == 1:
        weights = weights[:, 0]
    if weights.shape != (n,):
        raise ValueError(f"{what}: sample_weight has shape {weights.shape} but the data has {n} samples; give one "
                         f"weight per sample, shape ({n},)")
    bad = ~np.isfinite(weights) | (weights < 0)
    if bad.any():
        raise ValueError(f"{what}: sample_weight must be finite and non-negative, got {weights[bad][:5].tolist()} "
                         f"at sample(s) {np.flatnonzero(bad)[:5].tolist()}")
    return weights.astype(np.float32)


def _class_weights(class_weight, y, num_classes, what):
    if not isinstance(class_weight, dict):
        raise ValueError(f"class_weight must be a dict {{class id: weight}}, e.g. {{0: 1.0, 1: 5.0}}, got "
                         f"{type(class_weight).__name__}")
    if num_classes is None:
        raise ValueError(f"class_weight={class_weight!r} needs class labels, but {what} is a regression; "
                         "pass sample_weight=... instead")
    table = np.ones(num_classes, np.float32)
    for key, weight in class_weight.items():
        integral = isinstance(key, numbers.Integral) and not isinstance(key, bool)
        if not (integral or (isinstance(key, float) and key.is_integer())) or not 0 <= key < num_classes:
            raise ValueError(f"class_weight key {key!r} is not a class id of this model; the keys are integer class "
                             f"ids in [0, {num_classes})")
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not np.isfinite(weight) or weight < 0:
            raise ValueError(f"class_weight[{key!r}] = {weight!r}; class weights must be finite, non-negative "
                             "numbers")
        table[int(key)] = weight
    labels = np.asarray(y)
    if labels.ndim >= 2 and labels.shape[-1] > 1:
        labels = labels.argmax(-1)
    if labels.size != len(labels):
        raise ValueError(f"class_weight needs one class per sample, but {what} has targets of sample shape "
                         f"{tuple(np.shape(y)[1:])}; pass sample_weight=... instead")
    return table[np.round(labels.reshape(len(labels))).astype(np.int64)]


def check_like(x, y, train_x, train_y, what):
    """Raises ``ValueError`` unless ``(x, y)`` has the training data's structure and per-sample shapes."""
    try:
        tf.nest.assert_same_structure(x, train_x)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: x has another structure than the training inputs; pass the same "
                         "arrays, dict keys or tuple") from None
    for leaf, train_leaf in zip(tf.nest.flatten(x), tf.nest.flatten(train_x)):
        if leaf.shape[1:] != train_leaf.shape[1:]:
            raise ValueError(f"{what}: x has sample shape {leaf.shape[1:]} but the training data has "
                             f"{train_leaf.shape[1:]}; they must match")
    if y.shape[1:] != train_y.shape[1:]:
        raise ValueError(f"{what}: y has sample shape {y.shape[1:]} but the training targets have "
                         f"{train_y.shape[1:]}; they must match")


def check_loss_applies(loss_name, loss_fn, y, y_pred):
    """Calls the per-sample loss on a few rows, eagerly, and turns a failure into a ``ValueError`` that says why.

    Catches targets that do not fit the loss, such as one-hot targets with a
    sparse loss, before the step is traced.
    """
    sparse = "sparse" in loss_name.lower()
    hint = ""
    if sparse and y.ndim >= 2 and y.shape[-1] > 1:
        hint = (f"; y looks one-hot (sample shape {tuple(y.shape[1:])}) but {loss_name!r} takes integer class "
                "ids: pass y.argmax(-1), or use 'categorical_crossentropy'")
    elif "categorical" in loss_name.lower() and not sparse and (y.ndim == 1 or y.shape[-1] == 1) and \
            y_pred.shape[-1] > 1:
        hint = (f"; y holds class ids (sample shape {tuple(y.shape[1:])}) but {loss_name!r} takes one-hot "
                "targets: use 'sparse_categorical_crossentropy', or keras.utils.to_categorical(y)")
    try:
        losses = loss_fn(tf.convert_to_tensor(y), y_pred)
    except Exception as err:  # noqa: BLE001 - any failure here is the data's or the loss's, reported below
        raise ValueError(f"the loss {loss_name!r} cannot be computed on the targets (sample shape "
                         f"{tuple(y.shape[1:])}, dtype {y.dtype}) and the model's outputs (sample shape "
                         f"{tuple(y_pred.shape[1:])}){hint or '; check that they match the loss'} "
                         f"({type(err).__name__}: {str(err).splitlines()[0][:200]})") from None
    if hint:
        raise ValueError(f"the loss {loss_name!r} does not fit the targets{hint}")
    if losses.shape.rank != 1 or losses.shape[0] != len(y):
        raise ValueError(f"the loss {loss_name!r} returned shape {tuple(losses.shape)} for {len(y)} samples; "
                         "a loss must give one value per sample (or per sample and output)")
