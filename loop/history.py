"""Training history and the time-to-target arithmetic.

A :class:`History` holds one row per evaluation of a ``Loop.fit``: where the
loop was (epoch, step, samples seen in training steps, samples forwarded in all,
samples backpropagated), how long it took (``train_time_s`` counts
training and selection, never evaluation; ``setup_time_s`` is the share spent in
the selector's ``on_train_begin``, such as fitting RhoLoss's irreducible-loss
model), and the train and validation
metrics.  :func:`parse_target` and :func:`first_reached` turn a target such as
``{"val_accuracy": 0.9}`` into the first row that reaches it; the benchmark
uses the same two functions so its tables and ``History`` cannot disagree.
"""

import math

import pandas as pd

#: Metric-name fragments whose values are better when lower.
LOWER_IS_BETTER = ("loss", "mse", "mae", "mape", "msle", "error", "crossentropy", "hinge", "huber", "logcosh")

#: Metric names (without ``val_``) whose values are fractions in [0, 1]; any name containing "accuracy" is too.
FRACTION_METRICS = ("acc", "auc", "precision", "recall", "f1_score", "fbeta_score")

#: Metric-name fragments of quantities that are never negative (losses and errors; not e.g. cosine similarity).
NON_NEGATIVE = ("mse", "mae", "mape", "msle", "mean_squared", "mean_absolute", "crossentropy", "hinge", "huber",
                "logcosh", "log_cosh", "kl_divergence", "kld", "poisson")

#: Columns every history row has, in order, before the metric columns.
INDEX_COLUMNS = ("epoch", "step", "samples_seen", "samples_forwarded", "samples_backpropagated",
                 "train_time_s", "selection_time_s", "setup_time_s", "eval_time_s")


def infer_mode(metric):
    """Returns ``"min"`` if lower values of ``metric`` are better, else ``"max"``."""
    name = metric.lower()
    if name.startswith("val_"):
        name = name[4:]
    return "min" if any(part in name for part in LOWER_IS_BETTER) else "max"


def metric_range(metric, loss_name=None):
    """The values ``metric`` can take, ``(low, high)``, or None when unknown.

    Accuracy-like metrics (a name containing ``accuracy``, or one of
    :data:`FRACTION_METRICS`) lie in [0, 1]; losses and errors named by a
    fragment in :data:`NON_NEGATIVE` (``mse``, ``mae``, ``crossentropy``, ...)
    in [0, inf).  ``loss`` and ``val_loss`` are non-negative when
    ``loss_name`` (the loop's loss) is one of those; other metrics and losses
    (e.g. a cosine-similarity loss, which is negative) are not checked.
    """
    name = metric.lower()
    if name.startswith("val_"):
        name = name[4:]
    if "accuracy" in name or name in FRACTION_METRICS:
        return 0.0, 1.0
    if name == "loss":
        name = (loss_name or "").lower()
    if name and any(part in name for part in NON_NEGATIVE):
        return 0.0, math.inf
    return None


def parse_target(target, loss_name=None):
    """Normalizes a target to ``{metric: (threshold, mode)}``.

    Args:
        target: ``None``, or a dict mapping a metric name to a threshold, or to
            a ``(threshold, mode)`` pair with mode ``"min"`` (reached at or
            below) or ``"max"`` (reached at or above).  Without a mode it is
            inferred from the name: losses and errors (``loss``, ``mse``,
            ``mae``, ...) are lower-is-better, everything else higher.
        loss_name: the loop's loss, so that a ``loss`` target is checked
            against its range (see :func:`metric_range`).

    Raises:
        ValueError: a threshold is not a finite number, lies outside the
            metric's range (an accuracy above 1, a negative error; see
            :func:`metric_range`), or a mode is unknown.
    """
    if target is None or (isinstance(target, dict) and not target):
        return {}
    if not isinstance(target, dict):
        raise ValueError(f"target must be a non-empty dict like {{'val_accuracy': 0.9}}, got {target!r}")
    parsed = {}
    for metric, spec in target.items():
        if isinstance(spec, (tuple, list)):
            if len(spec) != 2:
                raise ValueError(f"target[{metric!r}] = {spec!r}: give a threshold or a (threshold, 'min'|'max') pair")
            threshold, mode = spec
        else:
            threshold, mode = spec, infer_mode(metric)
        if mode not in ("min", "max"):
            raise ValueError(f"target[{metric!r}] has mode {mode!r}; use 'min' (lower is better) or 'max'")
        try:
            threshold = float(threshold)
        except (TypeError, ValueError):
            raise ValueError(f"target[{metric!r}] threshold {threshold!r} is not a number") from None
        if not math.isfinite(threshold):
            raise ValueError(f"target[{metric!r}] threshold {threshold!r} is not finite")
        bounds = metric_range(str(metric), loss_name)
        if bounds is not None and not bounds[0] <= threshold <= bounds[1]:
            low, high = bounds
            span = f"lies in [{low:g}, {high:g}]" if math.isfinite(high) else "is never negative"
            hint = ("; give it as a fraction, e.g. 0.95 for 95%" if math.isfinite(high) and threshold > high
                    else "")
            raise ValueError(f"target[{metric!r}] = {threshold:g} can never be reached: {metric} {span}{hint}")
        parsed[str(metric)] = (threshold, mode)
    return parsed


def reached(row, target):
    """True when every metric of a parsed ``target`` meets its threshold in ``row``."""
    for metric, (threshold, mode) in target.items():
        value = row.get(metric)
        if value is None or not math.isfinite(value):
            return False
        if (mode == "min" and value > threshold) or (mode == "max" and value < threshold):
            return False
    return bool(target)


def first_reached(frame, target):
    """Returns the first row (a ``pandas.Series``) of ``frame`` that reaches ``target``, or None."""
    target = parse_target(target) if not _is_parsed(target) else target
    if not target or frame is None or len(frame) == 0:
        return None
    missing = [m for m in target if m not in frame.columns]
    if missing:
        raise ValueError(f"target metric(s) {missing} are not in the history; it has {list(frame.columns)}")
    for _, row in frame.iterrows():
        if reached(row, target):
            return row
    return None


def _is_parsed(target):
    return isinstance(target, dict) and all(
        isinstance(v, tuple) and len(v) == 2 and v[1] in ("min", "max") for v in target.values()) and bool(target)


class History:
    """What a ``Loop.fit`` did: one row per evaluation.

    Attributes:
        rows: list of dicts, one per evaluation.
        target: the parsed target, ``{metric: (threshold, mode)}``.
        selector: the selector's readable name.
    """

    def __init__(self, rows=None, target=None, selector=None, params=None):
        self.rows = list(rows or [])
        self.target = parse_target(target) if not _is_parsed(target) else target
        self.selector = selector
        self.params = dict(params or {})

    @property
    def frame(self):
        """The rows as a ``pandas.DataFrame`` (index columns first)."""
        frame = pd.DataFrame(self.rows)
        front = [c for c in INDEX_COLUMNS if c in frame.columns]
        return frame[front + [c for c in frame.columns if c not in front]]

    @property
    def history(self):
        """Keras-style ``{metric: [value per evaluation]}``."""
        return {k: list(v) for k, v in self.frame.items() if k not in INDEX_COLUMNS}

    def _first(self):
        return first_reached(self.frame, self.target) if self.target else None

    @property
    def time_to_target(self):
        """Training + selection seconds until the target was first reached; None if never."""
        row = self._first()
        return None if row is None else float(row["train_time_s"])

    @property
    def epochs_to_target(self):
        """Epochs (fractional when evaluating mid-epoch) until the target was reached; None if never."""
        row = self._first()
        return None if row is None else float(row["epoch"])

    @property
    def steps_to_target(self):
        """Optimizer steps until the target was reached; None if never."""
        row = self._first()
        return None if row is None else int(row["step"])

    @property
    def samples_forwarded_to_target(self):
        """Samples the model forwarded on training data until the target was reached; None if never.

        With :attr:`samples_backpropagated_to_target`, a hardware-neutral cost:
        see ``docs/performance.md`` for turning the two into a predicted
        speedup on another device.
        """
        row = self._first()
        return None if row is None or "samples_forwarded" not in row else int(row["samples_forwarded"])

    @property
    def samples_backpropagated_to_target(self):
        """Samples that contributed to a gradient until the target was reached; None if never."""
        row = self._first()
        return None if row is None else int(row["samples_backpropagated"])

    def best(self, metric, mode=None):
        """The best value of ``metric`` over the rows (min or max by its inferred mode)."""
        values = self.frame[metric]
        return float(values.min() if (mode or infer_mode(metric)) == "min" else values.max())

    def __len__(self):
        return len(self.rows)

    def __repr__(self):
        return f"History({len(self.rows)} rows, selector={self.selector!r}, time_to_target={self.time_to_target})"
