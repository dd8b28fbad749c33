"""The selector protocol: the one place where it is defined and documented.

Who owns what: this module owns the contract between the loop and a selector,
which is what a selector reads (:class:`State`), what it returns (a *plan*,
checked by :func:`validate_plan`), and the optional hooks the loop calls
(:class:`TrainBeginHook`, :class:`BatchEndHook`, :class:`InStepFilter`,
:class:`Checkpointable`).  The loop (:mod:`loop.loop`), the step
(:mod:`loop.step`), the selectors' base class (:mod:`loop.selectors.base`) and
wrapping selectors (:class:`loop.selectors.DynamicBatchSize`) all refer here.

The call
--------
A selector is any callable ``selector(state) -> plan``.  The loop calls it at
the start of every epoch with a read-only :class:`State`; see its fields.

The plan
--------
An iterable of mini-batches.  Each is a 1-D integer index array into the
training set, or an ``(indices, weights)`` pair whose finite, non-negative
weights scale the per-sample losses (e.g. for unbiased importance sampling).
The train step minimizes ``sum(w_i * loss_i) / n`` over the ``n`` rows of the
batch, plus the model's regularization losses.  When ``fit`` is given
``sample_weight`` (or ``class_weight``, turned into sample weights from the
labels), ``w_i`` is the plan's weight times the sample's weight, multiplied
on the host once per epoch; an in-step filter sees that product as
``batch.weights``, so a filter that scales ``batch.weights`` (as every
filter in :mod:`loop.selectors` does) keeps the sample weights.  The train
``loss`` metric is weighted by the sample weights alone (the mean of
``sample_weight * loss``, as Keras reports it), the other metrics by
neither, as Keras' ``compile(metrics=...)``; never by the plan's weights.  Batch sizes may vary without
retracing.  The loop validates the whole plan before training on any of it; a
bad plan raises ``ValueError`` naming the selector, the batch and the values.
A flat index array is not a plan (it would be one single-sample batch per
element): wrap it as ``[order]`` for one batch, or cut it with
``np.array_split``.  A 2-D array is read as one batch per row.

Optional hooks
--------------
``on_train_begin(state)`` (:class:`TrainBeginHook`)
    once per ``fit``, before the train step is traced; create the
    ``tf.Variable`` objects of an in-step filter here.
``on_batch_end(indices, losses)`` (:class:`BatchEndHook`)
    after each mini-batch, with its fresh per-sample losses (NumPy).  Calls
    come once per execution chunk, which costs one host read per chunk.
``keep(batch) -> weights`` and ``filter_mode`` (:class:`InStepFilter`)
    an in-step filter, traced into the compiled step.  ``batch`` is a
    :class:`StepBatch` of tensors; its ``step`` is the optimizer steps so far
    and its ``candidate`` the number of this candidate batch (every call of
    ``keep`` is one, counted from 0 over the loop's life and checkpointed).  A
    filter that draws random numbers seeds them with ``candidate``: in
    ``"accumulate"`` mode several candidate batches see the same ``step``.
    It returns new weights, and the step
    backpropagates only the rows whose weight is positive, with the objective
    above (``n`` stays the number of candidate rows, so a filter normalizes its
    own weights).  ``filter_mode`` chooses how (default ``"compact"``):

    * ``"compact"``: a forward pass without gradient (``training=False``)
      gives the losses the filter sees; then a forward and backward pass runs
      on the kept rows only.  Cheaper when few rows are kept.
    * ``"mask"``: the filter sees the losses of the training forward pass
      itself, and its weights mask that pass: one forward pass, and a backward
      pass over every row.  Cheaper when most rows are kept.
    * ``"accumulate"``: as ``"compact"``, but the kept rows (with their
      weights) join a queue on the device, and the step trains only once
      ``batch_size`` rows are queued: a forward and backward pass over exactly
      ``batch_size`` rows, objective ``sum(w_i * loss_i) / batch_size``.  One
      candidate batch may so give no optimizer step, or several.  The queue
      carries over epoch ends.  This is how selective backprop fills its
      backward batches (Jiang et al. 2019).

    The train metrics (``loss``, ``accuracy``, ...) always come from the
    training forward pass, i.e. from the rows that were backpropagated in
    ``"compact"`` and ``"accumulate"`` mode, and from the whole batch in
    ``"mask"`` mode and without a filter.  The loss table gets the losses of
    every forward pass, candidates included.
``active(step) -> bool`` (optional, with ``keep``)
    a scalar boolean tensor, read inside the compiled step before each
    mini-batch (``step`` is the optimizer steps so far).  While it is False
    the step trains only the first ``batch_size`` rows of the candidate batch,
    in ``"mask"`` mode: one training forward pass and no extra one.  ``keep``
    then sees those rows' training losses and outputs, may update its
    statistics from them, and returns their weights (unchanged, to train them
    as they are).  E.g. selective backprop's priming epoch, or importance
    sampling before its variance-reduction switch, which trains ``b`` uniform
    samples of its ``B`` presampled ones and updates ``tau`` from their scores.
``get_state()`` / ``set_state(state)`` (:class:`Checkpointable`)
    the selector's learned state, a dict of arrays, numbers, strings and
    nested dicts of them, saved in checkpoints.
``tasks``
    the tasks the selector can order, ``("classification", "regression")``
    unless it says otherwise; the benchmark records a selector on a task it
    leaves out as not applicable.
``needs``
    the per-sample quantities the selector reads beyond the losses, a tuple of
    names from :data:`QUANTITIES` (default ``("losses",)``: what every
    selector gets).  The loop computes only what is declared, in the scoring
    pass (:meth:`State.quantities`) and in the forward pass an in-step filter
    sees (the matching :class:`StepBatch` fields; None when not declared):

    * ``"losses"``: each sample's loss (always computed);
    * ``"outputs"``: the model's outputs, float32;
    * ``"features"``: the last layer's input (the penultimate features);
    * ``"last_layer_gradients"``: the gradient of each sample's loss with
      respect to the last layer's pre-activation, ``p - y`` for softmax
      cross-entropy (the ``l0_grads`` of CORDS' gradient approximations).

    The last two need a Sequential or functional model that ends in a
    ``Dense`` layer, optionally followed by an ``Activation`` or ``Softmax``
    layer (:mod:`loop.quantities`).

A selector that wraps another (such as ``DynamicBatchSize``) forwards every
member in :data:`HOOKS` that its base defines, and nests its base's state.

Reuse
-----
``Loop`` works on its own copy of a selector object that has a ``clone()``
method (every :class:`loop.selectors.Selector` has one): a fresh selector with
the same hyper-parameters and no learned state.  So one selector object can be
passed to several loops (say, one per seed) and each run starts fresh;
``loop.selector`` is the copy that learns.  Two ``fit`` calls on the same loop
continue with the same copy, as they continue with the same model and
optimizer.  A plain function is used as it is.
"""

import dataclasses
import types
import typing

import numpy as np

#: The optional protocol members a wrapping selector forwards from its base.
HOOKS = ("on_train_begin", "on_batch_end", "keep", "filter_mode", "active", "get_state", "set_state", "tasks",
         "needs")

#: The per-sample quantities a selector may declare in ``needs``; see the module's docstring.
QUANTITIES = ("losses", "outputs", "features", "last_layer_gradients")

#: How an in-step filter runs; see :class:`InStepFilter`.
FILTER_MODES = ("compact", "mask", "accumulate")

TASKS = ("classification", "regression")


@dataclasses.dataclass(frozen=True, eq=False)
class State:
    """The read-only view of the loop that a selector receives each epoch.

    Attributes:
        epoch: the 0-based epoch about to be planned.
        epochs: the number of epochs of this ``fit``.
        step: the optimizer steps taken so far.
        num_samples: the training-set size.
        batch_size: the loop's nominal mini-batch size.
        labels: the training targets (read-only).
        num_classes: the number of classes, None for regression.
        task: ``"classification"`` or ``"regression"``.
        losses: the last-seen loss of every training sample, NaN where never
            seen.  The train step records them in a device table for free; the
            host reads the table once per epoch.
        loss_step: the optimizer step that saw each loss, -1 where never seen.
        rng: a ``numpy.random.Generator`` derived from the loop's seed and the
            epoch.  Draw all randomness from it, never from global state.
        logs: the previous evaluation's train and validation metrics (never the metrics of ``fit``'s
            ``extra_evaluations``, such as a test set).
        score_fn: what :meth:`score` calls.
        quantities_fn: what :meth:`quantities` calls.
        inputs: the training inputs (read-only arrays, or a dict or tuple of
            them), for selectors that fit a companion model on the data.
        model: the model being trained.  Read it, never train or change it:
            e.g. ``keras.models.clone_model(state.model)`` for a companion of
            the same architecture.
        optimizer: the loop's optimizer; copy its configuration, never step it.
        loss: the loop's loss as given (a name, ``Loss`` or function), to
            compile a companion model with the same objective.

    Time spent in ``on_train_begin`` (e.g. fitting a companion model) counts as
    training and selection time, and is also reported as ``setup_time_s``.
    """

    epoch: int
    epochs: int
    step: int
    num_samples: int
    batch_size: int
    labels: np.ndarray
    num_classes: typing.Optional[int]
    task: str
    losses: np.ndarray
    loss_step: np.ndarray
    rng: np.random.Generator
    logs: typing.Mapping[str, float] = dataclasses.field(default_factory=dict)
    score_fn: typing.Optional[typing.Callable] = dataclasses.field(default=None, repr=False)
    quantities_fn: typing.Optional[typing.Callable] = dataclasses.field(default=None, repr=False)
    inputs: typing.Any = dataclasses.field(default=None, repr=False)
    model: typing.Any = dataclasses.field(default=None, repr=False)
    optimizer: typing.Any = dataclasses.field(default=None, repr=False)
    loss: typing.Any = dataclasses.field(default=None, repr=False)

    def __post_init__(self):
        for field in ("labels", "losses", "loss_step", "inputs"):
            value = getattr(self, field)
            if value is not None:
                object.__setattr__(self, field, _read_only(value))
        object.__setattr__(self, "logs", types.MappingProxyType(dict(self.logs)))

    def __repr__(self):
        return (f"State(epoch={self.epoch}, step={self.step}, num_samples={self.num_samples}, "
                f"batch_size={self.batch_size}, num_classes={self.num_classes}, task={self.task!r})")

    def score(self, indices):
        """Fresh per-sample losses of ``indices`` from a compiled forward pass (``training=False``).

        The losses also enter the loss table, and their time counts as
        training (and selection) time.
        """
        if self.score_fn is None:
            raise RuntimeError("this State has no scorer; it was not made by Loop.fit")
        return self.score_fn(indices)

    def quantities(self, indices):
        """The per-sample quantities the selector declared in ``needs``, of ``indices``, from one compiled
        forward pass (``training=False``).

        Returns a dict from each declared name (:data:`QUANTITIES`; ``"losses"`` always) to a float32 NumPy
        array with one row per index.  The losses also enter the loss table, and the pass's time counts as
        training (and selection) time, as :meth:`score`'s.
        """
        if self.quantities_fn is None:
            raise RuntimeError("this State has no scorer; it was not made by Loop.fit")
        return self.quantities_fn(indices)

    def replace(self, **changes):
        """A copy with some fields changed, e.g. ``state.replace(batch_size=64)`` for a wrapped selector."""
        return dataclasses.replace(self, **changes)


def _read_only(value):
    """A read-only view of a NumPy array, or of every array in a dict, tuple or list of them."""
    if isinstance(value, np.ndarray):
        view = value.view()
        view.flags.writeable = False
        return view
    if isinstance(value, dict):
        return {k: _read_only(v) for k, v in value.items()}  # a copy: the loop's own dict is untouched
    if isinstance(value, (tuple, list)):
        return tuple(_read_only(v) for v in value)
    return value


class StepBatch(typing.NamedTuple):
    """The tensors an in-step filter's ``keep`` receives, one row per candidate sample."""

    indices: typing.Any   #: int32 [n], the rows of the training set
    losses: typing.Any    #: float32 [n], per-sample losses (no gradient)
    weights: typing.Any   #: float32 [n], the plan's weights
    y_true: typing.Any    #: the targets of the rows
    y_pred: typing.Any    #: the model's outputs for the rows (no gradient)
    step: typing.Any      #: int64 scalar, the optimizer steps so far
    #: int64 scalar, this candidate batch's number (``Tables.candidates``: one per ``keep`` call, from 0).  The
    #: step always sets it; a ``StepBatch`` built by hand without it holds None.
    candidate: typing.Any = None
    #: float32 [n, d], the last layer's inputs (no gradient), when the selector's ``needs`` has ``"features"``;
    #: else None.
    features: typing.Any = None
    #: float32 [n, k], each row's loss gradient at the last layer's pre-activation (no gradient), when ``needs``
    #: has ``"last_layer_gradients"``; else None.
    last_layer_gradients: typing.Any = None


@typing.runtime_checkable
class TrainBeginHook(typing.Protocol):
    def on_train_begin(self, state: State) -> None: ...


@typing.runtime_checkable
class BatchEndHook(typing.Protocol):
    def on_batch_end(self, indices: np.ndarray, losses: np.ndarray) -> None: ...


@typing.runtime_checkable
class InStepFilter(typing.Protocol):
    """``keep(batch) -> weights``, traced into the step; ``filter_mode`` is "compact" (default) or "mask"."""

    def keep(self, batch: StepBatch): ...


@typing.runtime_checkable
class Checkpointable(typing.Protocol):
    def get_state(self) -> dict: ...

    def set_state(self, state: dict) -> None: ...


def describe(selector):
    """A short, readable name for any selector: the repr of objects, the name of functions."""
    name = getattr(selector, "__name__", None)
    if name is not None and not isinstance(selector, type):
        return name
    return repr(selector)


def needs_of(selector):
    """The per-sample quantities a selector declares (its ``needs``), as a tuple in :data:`QUANTITIES` order.

    ``"losses"`` is always included.

    Raises:
        ValueError: ``needs`` is not a collection of names from :data:`QUANTITIES`.
    """
    needs = getattr(selector, "needs", ("losses",))
    if isinstance(needs, str):
        needs = (needs,)
    try:
        names = set(needs)
    except TypeError:
        raise ValueError(f"selector {describe(selector)} has needs={needs!r}; give a tuple of names from "
                         f"{', '.join(map(repr, QUANTITIES))}") from None
    unknown = sorted(str(name) for name in names - set(QUANTITIES))
    if unknown:
        raise ValueError(f"selector {describe(selector)} needs unknown per-sample quantities {unknown}; the loop "
                         f"computes {', '.join(map(repr, QUANTITIES))}")
    return tuple(name for name in QUANTITIES if name in names or name == "losses")


def in_step_filter(selector):
    """Returns ``(keep, mode)`` of a selector: its in-step filter and mode, or ``(None, None)``.

    The filter's optional ``active`` switch is ``getattr(selector, "active", None)``.

    Raises:
        ValueError: ``filter_mode`` is not one of :data:`FILTER_MODES`.
    """
    keep = getattr(selector, "keep", None)
    if keep is None:
        return None, None
    mode = getattr(selector, "filter_mode", "compact")
    if mode not in FILTER_MODES:
        raise ValueError(f"selector {describe(selector)} has filter_mode={mode!r}; use one of "
                         f"{', '.join(map(repr, FILTER_MODES))}")
    return keep, mode


class FlatPlan(typing.NamedTuple):
    """A validated plan, flattened: batch ``b`` is ``indices[bounds[b]:bounds[b + 1]]``."""

    indices: np.ndarray   #: int32, every batch's indices end to end
    weights: np.ndarray   #: float32, one per index
    bounds: np.ndarray    #: int32, ``num_batches + 1`` offsets

    @property
    def num_batches(self):
        return len(self.bounds) - 1


def check_indices(indices, num_samples, where):
    """Returns ``indices`` as int32, or raises ``ValueError`` for non-integers or values outside the data."""
    indices = np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise ValueError(f"{where}: indices must be integers, got dtype {indices.dtype} "
                         f"(values such as {indices.ravel()[:3].tolist()})")
    if indices.size and (indices.min() < 0 or indices.max() >= num_samples):
        bad = indices[(indices < 0) | (indices >= num_samples)]
        raise ValueError(f"{where}: indices {bad[:5].tolist()} are outside [0, {num_samples})")
    return indices.astype(np.int32, copy=False)


def _batch(item, name, b):
    weights = None
    if isinstance(item, tuple):
        if len(item) != 2:
            raise ValueError(f"selector {name}, batch {b}: a tuple must be (indices, weights), got {len(item)} items")
        item, weights = item
    indices = np.asarray(item)
    if indices.ndim != 1:
        if indices.ndim == 0:
            raise ValueError(f"selector {name}, batch {b} is a single index ({indices.item()!r}), not an index array; "
                             "a plan is a list of mini-batches, so a flat order must be wrapped as [order] or cut "
                             "with np.array_split(order, num_batches)")
        raise ValueError(f"selector {name}, batch {b}: the mini-batch has shape {indices.shape}, not 1-D; give each "
                         "batch as a 1-D index array (a 2-D plan array is read as one batch per row)")
    if indices.size == 0:
        raise ValueError(f"selector {name}, batch {b}: the mini-batch is empty; "
                         "drop it from the plan or give it at least one index")
    if indices.dtype.kind not in "iu":
        raise ValueError(f"selector {name}, batch {b}: indices must be integers, got dtype {indices.dtype} "
                         f"(values such as {indices[:3].tolist()}); use e.g. np.asarray(batch, dtype=int)")
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64).reshape(-1)
        if len(weights) != len(indices):
            raise ValueError(f"selector {name}, batch {b}: {len(weights)} weights for {len(indices)} indices; "
                             "give one weight per index")
        bad = ~np.isfinite(weights) | (weights < 0)
        if bad.any():
            raise ValueError(f"selector {name}, batch {b}: weights must be finite and non-negative, "
                             f"got {weights[bad][:5].tolist()}")
    return indices, weights


def validate_plan(plan, num_samples, name):
    """Checks a whole plan and flattens it.

    Args:
        plan: what the selector returned.
        num_samples: the training-set size.
        name: the selector's readable name, for messages.

    Returns:
        A :class:`FlatPlan`.

    Raises:
        ValueError: the plan is None, not iterable, empty or flat, or a batch
            is empty, not 1-D, not integer, out of range, or has bad weights;
            naming the selector, the batch and the values.
    """
    if plan is None:
        raise ValueError(f"selector {name} returned None; it must return an iterable of index arrays")
    try:
        items = list(plan)
    except TypeError:
        raise ValueError(f"selector {name} returned {type(plan).__name__}, not an iterable of "
                         "mini-batches (index arrays or (indices, weights) pairs)") from None
    if not items:
        raise ValueError(f"selector {name} returned an empty plan; return at least one mini-batch")
    batches = [_batch(item, name, b) for b, item in enumerate(items)]
    lengths = [len(indices) for indices, _ in batches]
    indices = np.concatenate([i for i, _ in batches])
    out_of_range = (indices < 0) | (indices >= num_samples)
    if out_of_range.any():
        b = int(np.searchsorted(np.cumsum(lengths), int(np.argmax(out_of_range)), side="right"))
        raise ValueError(f"selector {name}, batch {b}: indices {indices[out_of_range][:5].tolist()} are "
                         f"outside [0, {num_samples}); index the training set's rows")
    if any(w is not None for _, w in batches):
        weights = np.concatenate([np.ones(len(i)) if w is None else w for i, w in batches])
    else:
        weights = np.ones(len(indices))
    bounds = np.zeros(len(lengths) + 1, np.int32)
    np.cumsum(lengths, out=bounds[1:])
    return FlatPlan(indices.astype(np.int32), weights.astype(np.float32), bounds)
