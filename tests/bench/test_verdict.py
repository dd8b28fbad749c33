"""The verdict's stated false-win rate, checked by simulation: null experiments of paired studies (nothing differs)
and a real effect, vectorised with NumPy, seeded, and compared with tolerances rather than pinned floats."""

import math

import numpy as np
import pytest
from scipy.stats import binom, norm

from loop.bench.scoring import speedups

EXPERIMENTS = 20_000
STUDIES = (5, 6, 8, 10)


def _ratios(base, mine):
    """:func:`loop.bench.scoring.speedups.paired_ratios` on arrays: a selector miss (inf time) scores 0, a hit where
    the baseline missed inf, else baseline / selector."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = base / mine
    ratios = np.where(np.isinf(base), np.inf, ratios)
    return np.where(np.isinf(mine), 0.0, ratios)


def _verdicts(ratios):
    """The verdict of every row of ``ratios`` (experiments x studies), vectorised: the order statistics
    ``x_(k)``, ``x_(n-k+1)`` against 1.  Returns ``(wins, losses)`` as boolean arrays."""
    n = ratios.shape[1]
    k = speedups.order_statistic_k(n)
    ordered = np.sort(ratios, axis=1)
    return ordered[:, k - 1] > 1.0, ordered[:, n - k] < 1.0


def _times(rng, shape, *, sigma=0.25, miss=0.0, grid=None):
    times = rng.lognormal(0.0, sigma, size=shape)
    if grid is not None:  # evaluations at whole multiples of ``grid``: many exact ties
        times = np.ceil(times / grid) * grid
    return np.where(rng.random(shape) < miss, np.inf, times)


def _tolerance(p, trials=EXPERIMENTS, sigmas=5.0):
    return sigmas * math.sqrt(p * (1.0 - p) / trials) + 1e-3


def _check_against_the_function(ratios, wins, losses, rows=300):
    """The vectorised rule is the library's: the first ``rows`` experiments through ``sign_verdict``."""
    for row, won, lost in zip(ratios[:rows], wins[:rows], losses[:rows]):
        assert speedups.sign_verdict(list(row)) == ("win" if won else "loss" if lost else "no difference")
    assert not (wins & losses).any()


@pytest.mark.parametrize("n", STUDIES)
def test_the_false_win_rate_is_as_stated_when_nothing_differs(n):
    rng = np.random.default_rng(1000 + n)
    shape = (EXPERIMENTS, n)
    ratios = _ratios(_times(rng, shape), _times(rng, shape))  # the same distribution for both: the null
    wins, losses = _verdicts(ratios)
    _check_against_the_function(ratios, wins, losses)
    stated = speedups.false_win_rate(n)
    assert stated <= 0.05
    for rate in (wins.mean(), losses.mean()):  # continuous, symmetric about 1: a loss is as rare as a win
        assert rate <= 0.05 and abs(rate - stated) <= _tolerance(stated), (n, rate, stated)


@pytest.mark.parametrize("n", STUDIES)
def test_misses_and_ties_only_make_a_false_win_rarer(n):
    rng = np.random.default_rng(2000 + n)
    shape = (EXPERIMENTS, n)
    # 10% of the trials miss on either side, symmetrically (a miss is inf time), and the clocks read whole
    # evaluations (ties at a ratio of exactly 1): a win needs strictly more than 1, a selector miss scores 0
    # even where the baseline missed too.
    base = _times(rng, shape, miss=0.1, grid=0.25)
    mine = _times(rng, shape, miss=0.1, grid=0.25)
    ratios = _ratios(base, mine)
    assert (ratios == 1.0).mean() > 0.1 and np.isinf(ratios).any() and (ratios == 0.0).any()
    wins, losses = _verdicts(ratios)
    _check_against_the_function(ratios, wins, losses)
    stated = speedups.false_win_rate(n)
    assert wins.mean() <= stated + _tolerance(stated) and wins.mean() <= 0.05, (n, wins.mean(), stated)
    # the exact rate of this null: each study faster with probability p < 1/2
    p_faster = np.mean(ratios > 1.0)
    k = speedups.order_statistic_k(n)
    exact = binom.sf(n - k, n, p_faster)  # P(at least n - k + 1 of n faster)
    assert abs(wins.mean() - exact) <= _tolerance(exact), (n, wins.mean(), exact)


@pytest.mark.parametrize("n", STUDIES)
def test_a_real_one_and_a_half_fold_speedup_wins_often(n):
    rng = np.random.default_rng(3000 + n)
    shape = (EXPERIMENTS, n)
    sigma = 0.2  # per trial; the log ratio's spread is sigma * sqrt(2)
    base = _times(rng, shape, sigma=sigma)
    mine = _times(rng, shape, sigma=sigma) / 1.5
    ratios = _ratios(base, mine)
    wins, losses = _verdicts(ratios)
    _check_against_the_function(ratios, wins, losses)
    p_faster = norm.cdf(math.log(1.5) / (sigma * math.sqrt(2.0)))
    k = speedups.order_statistic_k(n)
    power = binom.sf(n - k, n, p_faster)
    assert abs(wins.mean() - power) <= _tolerance(power), (n, wins.mean(), power)
    assert wins.mean() >= 0.6 and losses.mean() < 1e-3, (n, wins.mean())


def test_the_stated_rates_for_the_protocols_study_counts():
    rates = {n: speedups.false_win_rate(n) for n in STUDIES}
    assert rates == {5: 1 / 32, 6: 1 / 64, 8: 9 / 256, 10: 11 / 1024}
    assert all(rate <= speedups.LEVEL for rate in rates.values())
    assert {n: speedups.coverage(n) for n in STUDIES} == {n: 1 - 2 * rate for n, rate in rates.items()}
