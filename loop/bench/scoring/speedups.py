"""Paired speedups, their bootstrap intervals and verdicts, and the aggregate over studies.

* :func:`aggregate` is the one statistic every table reports over studies
  (seeds): the median (:data:`AGGREGATE`), NaN values left out.  A median is
  ``inf`` when half or more of the values are.
* :func:`paired_ratios` pairs two selectors' values by study: ``baseline /
  selector``; a selector miss scores 0, a hit where the baseline missed ``inf``.
* :func:`paired_speedup` is the one paired speedup: the aggregate of those
  ratios, its 95% percentile bootstrap interval (:func:`bootstrap_ci`) and its
  :func:`verdict`.
"""

import math
from typing import NamedTuple

import numpy as np

#: The statistic over studies (seeds) of every table, and of the bootstrap's resamples.
AGGREGATE = np.median

#: The verdicts of a speedup's 95% interval (see :func:`verdict`).
VERDICTS = ("win", "loss", "no difference", "n/a")


def aggregate(values):
    """:data:`AGGREGATE` (the median) of ``values`` with NaN left out; NaN when nothing is left."""
    values = np.asarray(list(values), dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(AGGREGATE(values)) if values.size else math.nan


def bootstrap_ci(values, statistic=AGGREGATE, *, level=0.95, n_boot=10_000, seed=0, min_values=2):
    """A percentile bootstrap confidence interval of ``statistic(values)``.

    Resamples ``values`` with replacement ``n_boot`` times with a seeded NumPy
    generator.  Values may be ``inf``; the bounds are order statistics of the
    resampled statistics (no interpolation), so infinities stay meaningful.

    A single value has no spread to resample: its "interval" would be the
    value itself, and :func:`verdict` would call one paired study a win or a
    loss.  Below ``min_values`` values there is therefore no interval.

    Returns:
        ``(low, high)``; ``(nan, nan)`` for fewer than ``min_values`` values
        (so the verdict is "n/a").
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size < max(min_values, 1):
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    samples = values[rng.integers(0, values.size, size=(n_boot, values.size))]
    stats = np.sort(np.apply_along_axis(statistic, 1, samples) if statistic is not np.median
                    else np.median(samples, axis=1))
    alpha = (1.0 - level) / 2.0
    low = stats[int(math.floor(alpha * (n_boot - 1)))]
    high = stats[int(math.ceil((1.0 - alpha) * (n_boot - 1)))]
    return float(low), float(high)


def verdict(low, high):
    """"win" (interval above 1), "loss" (below 1), "no difference" (contains 1) or "n/a" (no interval)."""
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return "n/a"
    if low > 1.0:
        return "win"
    if high < 1.0:
        return "loss"
    return "no difference"


def paired_ratios(baseline_values, values):
    """Per-study ratios ``baseline / selector`` for the studies both have, in study order.

    Args:
        baseline_values, values: ``{study: time or count}``; ``inf`` for a trial that never reached the target.

    Returns:
        A list: a selector miss scores 0 (even when the baseline missed too); a selector hit where the baseline
        missed scores ``inf``.
    """
    ratios = []
    for study, mine in sorted(values.items()):
        if study not in baseline_values:
            continue
        base = baseline_values[study]
        if not math.isfinite(mine):
            ratios.append(0.0)
        elif not math.isfinite(base):
            ratios.append(math.inf)
        else:
            ratios.append(base / max(mine, 1e-12))
    return ratios


class Speedup(NamedTuple):
    """A paired speedup: the aggregate ratio, its 95% bootstrap interval and the interval's verdict."""

    speedup: float
    low: float
    high: float
    verdict: str


def paired_speedup(baseline_values, values, n_boot=10_000):
    """The paired speedup of ``values`` over ``baseline_values`` (``{study: time or count}``).

    The :func:`aggregate` of :func:`paired_ratios`, its :func:`bootstrap_ci` with ``n_boot`` resamples and its
    :func:`verdict`; all NaN and "n/a" when no study is paired.

    Returns:
        A :class:`Speedup` ``(speedup, low, high, verdict)``.
    """
    ratios = paired_ratios(baseline_values, values)
    if not ratios:
        return Speedup(math.nan, math.nan, math.nan, "n/a")
    low, high = bootstrap_ci(ratios, n_boot=n_boot)
    return Speedup(float(AGGREGATE(ratios)), low, high, verdict(low, high))
