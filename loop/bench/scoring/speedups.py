"""Paired speedups, their order-statistic intervals and sign-test verdicts, and the aggregate over studies.

* :func:`aggregate` is the one statistic every table reports over studies
  (seeds): the median (:data:`AGGREGATE`), NaN values left out.  A median is
  ``inf`` when half or more of the values are.
* :func:`paired_ratios` pairs two selectors' values by study: ``baseline /
  selector``; a selector miss scores 0, a hit where the baseline missed ``inf``.
* :func:`paired_speedup` is the one paired speedup: the aggregate of those
  ratios, the distribution-free interval of their median (:func:`median_interval`)
  and its :func:`verdict`, a one-sided sign test with a stated false-win rate
  (:func:`false_win_rate`).

The rule (also in ``docs/bench.md``, "Verdict").  Of ``n`` paired ratios sorted
``x_(1) <= ... <= x_(n)``, the interval of the median is ``[x_(k), x_(n-k+1)]``
with ``k`` (:func:`order_statistic_k`) the largest integer such that
``P(Binomial(n, 1/2) <= k - 1) <= 0.05``; its two-sided coverage is ``1 - 2 P(...)``
(:func:`coverage`).  The verdict is "win" when ``x_(k) > 1`` (at least ``n - k + 1``
of the ``n`` studies faster), "loss" when ``x_(n-k+1) < 1``, "no difference"
otherwise, and :data:`TOO_FEW` when no such ``k`` exists (``n <= 4``).  When
nothing differs (each study faster with probability 1/2, continuous ratios) a
win happens with probability exactly :func:`false_win_rate` ``(n)`` (3.1% for
``n = 5``); ties at 1 and misses on both sides only make it rarer.  The
percentile bootstrap (:func:`bootstrap_ci`) stays available, but no table uses it.
"""

import functools
import math
from fractions import Fraction
from typing import NamedTuple

import numpy as np

#: The statistic over studies (seeds) of every table, and of the bootstrap's resamples.
AGGREGATE = np.median

#: The one-sided level of the sign test: the most a verdict may claim a win (or a loss) when nothing differs.
LEVEL = 0.05


def aggregate(values):
    """:data:`AGGREGATE` (the median) of ``values`` with NaN left out; NaN when nothing is left."""
    values = np.asarray(list(values), dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(AGGREGATE(values)) if values.size else math.nan


# ------------------------------------------------------------------------------- the order-statistic interval
@functools.lru_cache(maxsize=None)
def _binomial_half_cdf(n, j):
    """``P(Binomial(n, 1/2) <= j)``, exactly (a ``Fraction``)."""
    if j < 0:
        return Fraction(0)
    return Fraction(sum(math.comb(n, i) for i in range(min(j, n) + 1)), 2 ** n)


def _exact(level):
    """``level`` as the fraction it was written as (0.05 as 1/20, not the float's binary expansion)."""
    return Fraction(level).limit_denominator(10 ** 9)


def _check_level(level):
    if not (isinstance(level, (int, float)) and 0 < level < 0.5):
        raise ValueError(f"level={level!r}: give the one-sided level of the sign test, 0 < level < 0.5 (e.g. 0.05)")


@functools.lru_cache(maxsize=None)
def order_statistic_k(n, level=LEVEL):
    """The rank ``k`` of the interval ``[x_(k), x_(n-k+1)]`` of the median of ``n`` values.

    The largest integer ``k >= 1`` with ``P(Binomial(n, 1/2) <= k - 1) <= level``: each end is then a
    one-sided bound of the median at level ``level`` (n = 5: k = 1, [min, max]; n = 8: k = 2).

    Returns:
        ``k``, or None when no ``k`` qualifies (``n <= 4`` at the default level: too few values).
    """
    _check_level(level)
    n = int(n)
    k = None
    for candidate in range(1, n // 2 + 2):
        if candidate <= n - candidate + 1 and _binomial_half_cdf(n, candidate - 1) <= _exact(level):
            k = candidate
    return k


def false_win_rate(n, level=LEVEL):
    """The probability of a "win" over ``n`` paired studies when nothing differs: ``P(Binomial(n, 1/2) <= k - 1)``.

    Exact under the null of continuous ratios symmetric about 1 (each study faster with probability 1/2), with
    ``k`` = :func:`order_statistic_k` ``(n)``; the same for a "loss".  Ties at 1, and misses on both sides (a
    selector miss scores 0), only make a win rarer.  NaN when ``n`` is too small for a verdict.
    """
    k = order_statistic_k(n, level)
    return math.nan if k is None else float(_binomial_half_cdf(int(n), k - 1))


def coverage(n, level=LEVEL):
    """The two-sided coverage of the median's interval of ``n`` values: ``1 - 2`` :func:`false_win_rate` ``(n)``
    (at least that for values with ties); NaN when there is no interval."""
    rate = false_win_rate(n, level)
    return math.nan if math.isnan(rate) else 1.0 - 2.0 * rate


def min_studies(level=LEVEL):
    """The fewest paired studies with a verdict at ``level``: 5 at the default 5%."""
    return next(n for n in range(1, 1024) if order_statistic_k(n, level) is not None)


def too_few(level=LEVEL):
    """The verdict text of too few paired studies for a claim at ``level``: ``"n/a (< 5 studies)"``."""
    return f"n/a (< {min_studies(level)} studies)"


#: The fewest paired studies with a verdict at :data:`LEVEL` (5).
MIN_STUDIES = min_studies()

#: The verdict of a speedup with too few paired studies for a claim at :data:`LEVEL` (``n <= 4``).
TOO_FEW = too_few()

#: The verdicts (see :func:`verdict` and :func:`sign_verdict`): "n/a" when no study is paired.
VERDICTS = ("win", "loss", "no difference", "n/a", TOO_FEW)


def median_interval(values, level=LEVEL):
    """The order-statistic (distribution-free) interval of the median of ``values``: ``(x_(k), x_(n-k+1))``.

    ``values`` are sorted as they are, infinities included (a miss stays 0 or ``inf``); no interpolation.

    Returns:
        ``(low, high)``; ``(nan, nan)`` when :func:`order_statistic_k` has no ``k`` (fewer than
        :data:`MIN_STUDIES` values) or a value is NaN.
    """
    values = np.sort(np.asarray(list(values), dtype=np.float64))
    k = order_statistic_k(values.size, level) if values.size else None
    if k is None or np.isnan(values).any():
        return math.nan, math.nan
    return float(values[k - 1]), float(values[values.size - k])


def bootstrap_ci(values, statistic=AGGREGATE, *, level=0.95, n_boot=10_000, seed=0, min_values=2):
    """A percentile bootstrap confidence interval of ``statistic(values)`` (no table uses it: see
    :func:`median_interval`).

    Resamples ``values`` with replacement ``n_boot`` times with a seeded NumPy
    generator.  Values may be ``inf``; the bounds are order statistics of the
    resampled statistics (no interpolation), so infinities stay meaningful.

    A single value has no spread to resample: its "interval" would be the
    value itself.  Below ``min_values`` values there is therefore no interval.

    Returns:
        ``(low, high)``; ``(nan, nan)`` for fewer than ``min_values`` values.
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
    """"win" (interval above 1), "loss" (below 1), "no difference" (contains 1) or "n/a" (no interval).

    With the order-statistic interval (:func:`median_interval`) this is the sign test of :func:`sign_verdict`.
    """
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return "n/a"
    if low > 1.0:
        return "win"
    if high < 1.0:
        return "loss"
    return "no difference"


def sign_verdict(ratios, level=LEVEL):
    """The verdict of paired ratios: :func:`verdict` of their :func:`median_interval`.

    "win" when at least ``n - k + 1`` of the ``n`` ratios exceed 1 (a one-sided sign test at level
    :func:`false_win_rate` ``(n) <= level``), "loss" when as many are below 1, "no difference" otherwise;
    :data:`TOO_FEW` (:func:`too_few` of ``level``) when ``n`` is too small for a claim at ``level``, "n/a"
    without ratios.
    """
    ratios = list(ratios)
    if not ratios:
        return "n/a"
    if order_statistic_k(len(ratios), level) is None:
        return too_few(level)
    return verdict(*median_interval(ratios, level))


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


def ratios_text(ratios):
    """Per-study ratios as a table cell, in study order: ``"1.12, 0.98, 0, inf"`` (0: the selector missed; inf:
    the baseline did); ``""`` without ratios."""
    def one(r):
        if r == 0 or not math.isfinite(r):
            return "0" if r == 0 else ("inf" if r > 0 else "nan")
        return f"{r:.2f}" if r >= 0.01 else f"{r:.2g}"

    return ", ".join(one(float(r)) for r in ratios)


class Speedup(NamedTuple):
    """A paired speedup: the aggregate ratio, the interval of the median, its verdict, the per-study ratios (study
    order) and the verdict's false-win rate (NaN without a verdict)."""

    speedup: float
    low: float
    high: float
    verdict: str
    ratios: tuple = ()
    false_win_rate: float = math.nan


def paired_speedup(baseline_values, values, n_boot=None, *, level=LEVEL):
    """The paired speedup of ``values`` over ``baseline_values`` (``{study: time or count}``).

    The :func:`aggregate` of :func:`paired_ratios`, their :func:`median_interval` and :func:`sign_verdict`, and the
    :func:`false_win_rate` of that many paired studies; all NaN and "n/a" when no study is paired.

    Args:
        baseline_values, values: ``{study: time or count}``.
        n_boot: unused (the interval was a bootstrap's); kept so that callers passing it keep working.
        level: the sign test's one-sided level.

    Returns:
        A :class:`Speedup` ``(speedup, low, high, verdict, ratios, false_win_rate)``.
    """
    del n_boot
    ratios = paired_ratios(baseline_values, values)
    if not ratios:
        return Speedup(math.nan, math.nan, math.nan, "n/a", (), math.nan)
    low, high = median_interval(ratios, level)
    return Speedup(float(AGGREGATE(ratios)), low, high, sign_verdict(ratios, level), tuple(ratios),
                   false_win_rate(len(ratios), level))
