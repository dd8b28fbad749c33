"""Validation of what a user passes to ``Loop``: arguments, data and targets.

Who owns what: every check of user input that happens before training lives
here, so that ``Loop.fit`` refuses bad input before any step, with a message
that names the value and the fix.  Plans are checked by
:func:`loop.protocol.validate_plan`, selector hyper-parameters by the
selectors themselves.
"""

import numbers

import numpy as np
import tensorflow as tf

from loop import history as history_lib

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


def fit_settings(*, epochs, eval_every, verbose, target, stop_at_target, tracked):
    """``fit``'s scalar arguments, checked and normalized (``verbose="auto"`` is 1, the target parsed).

    Raises:
        ValueError: a bad value, or a target metric that ``tracked`` lacks, naming it and the fix.
    """
    verbose = 1 if verbose == "auto" else verbose
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0 (silent), 1 (progress bar) or 2 (one line per epoch), or 'auto'; "
                         f"got {verbose!r}")
    parsed = history_lib.parse_target(target)
    unknown = [m for m in parsed if m not in tracked]
    if unknown:
        raise ValueError(f"target metric(s) {unknown} are not tracked; this fit tracks {tracked} "
                         "(add the metric to metrics=[...] or validation_data=...)")
    if stop_at_target and not parsed:
        raise ValueError("stop_at_target=True needs a target, e.g. target={'val_accuracy': 0.9}")
    return {"epochs": positive_int("epochs", epochs), "eval_every": positive_int("eval_every", eval_every, True),
            "verbose": verbose, "target": parsed, "stop_at_target": bool(stop_at_target)}


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
    """Raises ``ValueError`` for class ids outside ``[0, num_classes)`` (integer-label targets only)."""
    if num_classes is None:
        return
    labels = y.reshape(len(y), -1)
    if not (sparse or labels.shape[1] == 1):
        return
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        i = int(np.argwhere(bad.any(axis=1))[0, 0])
        raise ValueError(f"{what}: label {labels[i].tolist()} at sample {i} is outside [0, {num_classes}) for a "
                         f"model with {num_classes} outputs; labels must be integer class ids from 0 to "
                         "num_classes-1")


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
