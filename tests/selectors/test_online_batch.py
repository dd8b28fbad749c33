"""OnlineBatchSelection as in Loshchilov & Hutter's reference: a uniform epoch 0, the rank probabilities, the
annealed selection pressure and the loss recomputation schedule."""

import math

import numpy as np
import pytest
from scipy import stats

from loop.selectors import OnlineBatchSelection
from helpers import FakeState, batches_of, flatten, scoring_epochs


@pytest.mark.parametrize("losses", [None, np.arange(100, dtype=np.float32)], ids=["never-seen", "seen"])
def test_epoch_zero_is_a_seeded_uniform_permutation(losses):
    selector = OnlineBatchSelection(s_e0=1e8, s_e_end=1e8, r_freq=1.0)
    firsts = []
    for seed in range(300):
        state = FakeState(num_samples=100, batch_size=10, epoch=0, seed=seed, losses=losses)
        plan = selector(state)
        order = flatten(plan)[0]
        assert np.array_equal(np.sort(order), np.arange(100))
        assert [len(b) for b in batches_of(plan)] == [10] * 10
        assert state.scored == []
        firsts.append(order[0])
    # A ranking would put the highest losses (90-99) first; the first position is uniform instead.
    assert stats.chisquare(np.bincount(np.asarray(firsts) // 10, minlength=10)).pvalue > 1e-3


def test_probabilities_follow_the_paper_formula():
    n, s_e = 50, 100.0
    p = OnlineBatchSelection().probabilities(n, s_e)
    unnormalized = np.exp(math.log(s_e) / n) ** -np.arange(n)
    assert np.allclose(p, unnormalized / unnormalized.sum())
    assert np.isclose(p[0] / p[-1], s_e ** ((n - 1) / n))


def test_draws_follow_the_rank_probabilities_at_the_epochs_pressure():
    n, s_e = 40, 50.0
    losses = np.random.default_rng(1).permutation(n).astype(np.float32)
    rank = np.argsort(np.argsort(-losses))  # rank 0 is the highest loss
    selector = OnlineBatchSelection(s_e0=s_e, s_e_end=s_e, r_freq=0)
    counts = np.zeros(n)
    for seed in range(200):
        state = FakeState(num_samples=n, batch_size=8, epoch=1, epochs=5, seed=seed, losses=losses)
        order = flatten(selector(state))[0]
        assert len(order) == n  # N draws with replacement per epoch
        counts += np.bincount(rank[order], minlength=n)
    assert stats.chisquare(counts, selector.probabilities(n, s_e) * counts.sum()).pvalue > 1e-3
    assert stats.chisquare(counts).pvalue < 1e-6  # and not uniform


def test_selection_pressure_anneals_exponentially_reaching_s_e_end_after_the_last_epoch():
    selector = OnlineBatchSelection(s_e0=1e8, s_e_end=1e2)
    assert np.isclose(selector.selection_pressure(0, 6), 1e8)
    assert np.isclose(selector.selection_pressure(3, 6), 1e5)
    assert np.isclose(selector.selection_pressure(5, 6), 1e8 * 1e-6 ** (5 / 6))
    assert np.isclose(selector.selection_pressure(6, 6), 1e2)


def test_pressure_one_is_a_plain_shuffle():
    state = FakeState(num_samples=30, epoch=2, losses=np.arange(30, dtype=np.float32))
    order = flatten(OnlineBatchSelection(s_e0=1.0, s_e_end=1.0)(state))[0]
    assert np.array_equal(np.sort(order), np.arange(30)) and state.scored == []


@pytest.mark.parametrize("r_freq,expected", [
    (0.5, [2, 4, 6, 8]), (1.0, [1, 2, 3, 4, 5, 6, 7, 8, 9]), (1 / 3, [3, 6, 9]), (0.4, [3, 5, 8]), (0, []),
])
def test_recomputes_all_losses_on_exactly_the_scheduled_epochs(r_freq, expected):
    assert scoring_epochs(OnlineBatchSelection(r_freq=r_freq), num_samples=30, losses=np.ones(30)) == expected


def test_recompute_rescores_the_top_r_ratio_and_ranks_by_the_fresh_losses():
    n = 40
    cached = np.arange(n, dtype=np.float32)  # cached ranking: 39, 38, ... first
    fresh = cached[::-1].copy()              # the fresh losses of 30..39 are 9..0
    selector = OnlineBatchSelection(s_e0=1e8, s_e_end=1e8, r_freq=0.5, r_ratio=0.25)
    state = FakeState(num_samples=n, batch_size=8, epoch=2, epochs=10, losses=cached, true_losses=fresh)
    order = flatten(selector(state))[0]
    assert len(state.scored) == 1 and np.array_equal(state.scored[0], np.arange(30, 40))
    # With s_e = 1e8 the top 10% of ranks get 84% of the draws: now samples 29..26, no longer 39..36.
    assert np.mean(np.isin(order, [26, 27, 28, 29])) > 0.6
    state = FakeState(num_samples=n, batch_size=8, epoch=3, epochs=10, losses=cached, true_losses=fresh)
    order = flatten(selector(state))[0]
    assert state.scored == [] and np.mean(np.isin(order, [36, 37, 38, 39])) > 0.6


def test_favours_high_loss_after_epoch_zero():
    losses = np.arange(1000, dtype=np.float32)
    state = FakeState(num_samples=1000, batch_size=50, epoch=1, losses=losses)
    order = flatten(OnlineBatchSelection(s_e0=100, s_e_end=100, r_freq=0)(state))[0]
    assert len(order) == 1000
    # expected ratio ~ (1 - 100**-0.1) / (100**-0.9 - 100**-1) ~ 30
    assert np.mean(order >= 900) / np.mean(order < 100) > 20


def test_weights_are_the_batchs_mean_selection_probability_over_each_samples_by_default():
    """The reference script trains ``mean(loss * ww)`` with ``ww = meanselprob / prob[rank]`` (on by default)."""
    n, b, s_e = 48, 8, 100.0
    losses = np.random.default_rng(2).permutation(n).astype(np.float32)
    rank = np.argsort(np.argsort(-losses))  # rank 0 is the highest loss
    selector = OnlineBatchSelection(s_e0=s_e, s_e_end=s_e, r_freq=0)
    assert selector.weighted is True and "weighted" not in repr(selector)
    p = selector.probabilities(n, s_e)
    plan = selector(FakeState(num_samples=n, batch_size=b, epoch=1, epochs=5, seed=3, losses=losses))
    assert all(isinstance(batch, tuple) for batch in plan) and [len(i) for i, _ in plan] == [b] * (n // b)
    for indices, weights in plan:
        selected = p[rank[indices]]
        np.testing.assert_allclose(weights, selected.mean() / selected, rtol=1e-6)
    _, weights = flatten(plan)
    assert weights.max() / weights.min() > 2  # the draws span ranks whose probabilities differ
    # The same draws without weights: weighted=False changes nothing but the weights.
    unweighted = OnlineBatchSelection(s_e0=s_e, s_e_end=s_e, r_freq=0, weighted=False)
    plain = unweighted(FakeState(num_samples=n, batch_size=b, epoch=1, epochs=5, seed=3, losses=losses))
    assert not any(isinstance(batch, tuple) for batch in plain)
    np.testing.assert_array_equal(flatten(plain)[0], flatten(plan)[0])
    # Epoch 0 (a permutation) and s_e = 1 (a shuffle) are unweighted.
    assert not any(isinstance(batch, tuple) for batch in selector(FakeState(num_samples=n, epoch=0, losses=losses)))
    flat = OnlineBatchSelection(s_e0=1.0, s_e_end=1.0)(FakeState(num_samples=n, epoch=2, losses=losses))
    assert not any(isinstance(batch, tuple) for batch in flat)
    with pytest.raises(ValueError, match="weighted='yes'"):
        OnlineBatchSelection(weighted="yes")
