"""StaleSelectiveBackprop as in the reference (angelajiang/SelectiveBackprop, ``--fp_selector stale``): priming, the
refresh schedule, the windowed strict percentile and the keep rate."""

import numpy as np
import pytest

from loop.selectors.stale_selective_backprop import StaleSelectiveBackprop, window_percentiles
from helpers import FakeState, batches_of, flatten, scoring_epochs


def test_percentile_is_the_fraction_of_window_losses_strictly_below_including_the_own_batch():
    percentiles, _ = window_percentiles([1, 2, 3, 4], [], history=10, batch_size=4)
    assert np.allclose(percentiles, [0, 0.25, 0.5, 0.75])
    percentiles, _ = window_percentiles([2, 2, 1], [], history=10, batch_size=3)
    assert np.allclose(percentiles, [1 / 3, 1 / 3, 0])


def test_window_slides_batch_by_batch_and_carries_over():
    percentiles, window = window_percentiles([1, 2, 3, 4], [], history=3, batch_size=2)
    # [1, 2] against [1, 2]; then [3, 4] against the last three losses [2, 3, 4]
    assert np.allclose(percentiles, [0, 0.5, 1 / 3, 2 / 3])
    assert np.array_equal(window, [2, 3, 4])
    percentiles, window = window_percentiles([0, 5], window, history=3, batch_size=1)
    # [0] against [3, 4, 0]; [5] against [4, 0, 5]
    assert np.allclose(percentiles, [0, 2 / 3])
    assert np.array_equal(window, [4, 0, 5])


def test_priming_epoch_trains_every_sample_once_without_scoring():
    selector = StaleSelectiveBackprop()
    state = FakeState(num_samples=50, batch_size=8, epoch=0)
    order = flatten(selector(state))[0]
    assert np.array_equal(np.sort(order), np.arange(50))
    assert state.scored == [] and selector.window_ is None


@pytest.mark.parametrize("staleness,prime_epochs,expected", [
    (3, 1, [3, 6, 9]), (2, 1, [2, 4, 6, 8]), (1, 1, [1, 2, 3, 4, 5, 6, 7, 8, 9]), (3, 2, [4, 7]),
    (3, 0, [0, 3, 6, 9]), (None, 1, []),
])
def test_rescores_every_sample_on_exactly_every_staleness_th_epoch(staleness, prime_epochs, expected):
    selector = StaleSelectiveBackprop(staleness=staleness, prime_epochs=prime_epochs)
    losses = np.random.default_rng(0).random(40).astype(np.float32)
    assert scoring_epochs(selector, num_samples=40, batch_size=8, losses=losses) == expected


def test_never_seen_samples_are_scored_on_a_stale_epoch():
    losses = np.random.default_rng(0).random(40).astype(np.float32)
    losses[[5, 17]] = np.nan
    state = FakeState(num_samples=40, epoch=1, losses=losses)
    StaleSelectiveBackprop()(state)
    assert len(state.scored) == 1 and np.array_equal(state.scored[0], [5, 17])


@pytest.mark.parametrize("history", [1024, None])
@pytest.mark.parametrize("beta", [1.0, 3.0])
def test_keep_rate_matches_the_expected_percentile_power(beta, history):
    n, runs = 200, 300
    losses = np.random.default_rng(0).permutation(n).astype(np.float32)
    # One batch of all candidates (or the whole-set percentile): the percentiles are 0, 1/n, ..., (n-1)/n.
    batch_size = n if history else 10
    p = (np.arange(n) / n) ** beta
    kept = np.zeros(n)
    for seed in range(runs):
        state = FakeState(num_samples=n, batch_size=batch_size, epoch=1, seed=seed, losses=losses)
        order = flatten(StaleSelectiveBackprop(beta=beta, history=history)(state))[0]
        assert len(np.unique(order)) == len(order)
        kept[order] += 1
    assert abs(kept.sum() / runs - p.sum()) < 4 * np.sqrt(np.sum(p * (1 - p)) / runs)
    assert kept[np.argmin(losses)] == 0  # percentile 0: strictly lower counts, so never kept
    top = np.argmax(losses)
    assert abs(kept[top] / runs - p[-1]) < 4 * np.sqrt(p[-1] * (1 - p[-1]) / runs) + 1e-9


def test_kept_samples_fill_full_batches_in_candidate_order():
    losses = np.random.default_rng(0).random(100).astype(np.float32)
    state = FakeState(num_samples=100, batch_size=8, epoch=1, seed=0, losses=losses)
    plan = batches_of(StaleSelectiveBackprop(beta=1.0)(state))
    sizes = [len(batch) for batch in plan]
    assert all(size == 8 for size in sizes[:-1]) and 1 <= sizes[-1] <= 8
    order = np.concatenate(plan)
    candidates = np.random.default_rng([0, 1]).permutation(100)  # FakeState's rng: the candidate shuffle
    assert np.array_equal(order, candidates[np.isin(candidates, order)])


def test_refresh_epochs_select_by_fresh_losses_and_stale_epochs_by_cached_ones():
    n = 100
    cached = np.arange(n, dtype=np.float32)
    fresh = cached[::-1].copy()
    for epoch, lowest in [(3, n - 1), (2, 0)]:
        means = []
        for seed in range(20):
            state = FakeState(num_samples=n, batch_size=n, epoch=epoch, seed=seed, losses=cached, true_losses=fresh)
            order = flatten(StaleSelectiveBackprop()(state))[0]
            assert lowest not in order
            means.append(order.mean())
        assert (np.mean(means) < n / 3) if epoch == 3 else (np.mean(means) > 2 * n / 3)
