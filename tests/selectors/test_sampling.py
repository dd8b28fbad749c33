import itertools

import numpy as np
import pytest
from scipy import stats

from loop.selectors import WeightedRandom, weighted_permutation
from loop.selectors.sampling import loss_weights
from helpers import flatten


def _algorithm_d_pair_probability(w, i, j):
    """P(first draw = i, second draw = j) under sequential weighted draws without replacement."""
    total = w.sum()
    return w[i] / total * w[j] / (total - w[i])


def test_weighted_permutation_matches_algorithm_d():
    w = np.array([1.0, 2.0, 3.0, 4.0, 0.5])
    rng = np.random.default_rng(0)
    pairs = list(itertools.permutations(range(5), 2))
    cell = {p: k for k, p in enumerate(pairs)}
    draws = 20000
    observed = np.zeros(len(pairs))
    for _ in range(draws):
        order = weighted_permutation(w, rng)
        observed[cell[(order[0], order[1])]] += 1
    expected = np.array([_algorithm_d_pair_probability(w, i, j) for i, j in pairs]) * draws
    assert stats.chisquare(observed, expected).pvalue > 1e-3
    # The first two positions' inclusion frequencies, as the brief states it.
    inclusion = np.array([sum(observed[cell[p]] for p in pairs if k in p) for k in range(5)]) / draws
    exact = np.array([sum(_algorithm_d_pair_probability(w, *p) for p in pairs if k in p) for k in range(5)])
    assert np.allclose(inclusion, exact, atol=0.015)


def test_weighted_permutation_rejects_sampling_proportional_to_weight():
    # Guard that the test above has power: inclusion proportional to w is not Algorithm D.
    w = np.array([1.0, 2.0, 3.0, 4.0, 0.5])
    rng = np.random.default_rng(0)
    first = np.bincount([weighted_permutation(w, rng)[0] for _ in range(5000)], minlength=5)
    assert stats.chisquare(first, w / w.sum() * 5000).pvalue > 1e-3
    assert stats.chisquare(first, np.full(5, 1000.0)).pvalue < 1e-6


def test_zero_weights_come_last_in_random_order():
    w = np.array([0.0, 1.0, 0.0, 2.0, 0.0])
    rng = np.random.default_rng(0)
    lasts = set()
    for _ in range(50):
        order = weighted_permutation(w, rng)
        assert set(order[:2]) == {1, 3}
        lasts.add(tuple(order[2:]))
    assert len(lasts) > 1


def test_weighted_permutation_rejects_bad_weights():
    with pytest.raises(ValueError):
        weighted_permutation(np.array([1.0, -1.0]), np.random.default_rng(0))
    with pytest.raises(ValueError):
        weighted_permutation(np.array([1.0, np.nan]), np.random.default_rng(0))


def test_loss_weights_fill_never_seen_with_max():
    w = loss_weights(np.array([0.5, np.nan, 2.0, 0.0]), "loss")
    assert np.array_equal(w, [0.5, 2.0, 2.0, 0.0])
    assert np.array_equal(loss_weights(np.full(3, np.nan), "loss"), np.ones(3))
    assert np.array_equal(loss_weights(np.zeros(3), "loss"), np.zeros(3))


@pytest.mark.parametrize("replacement", [False, True])
def test_weighted_random_plan(make_state, replacement):
    losses = np.zeros(100, np.float32)
    losses[:10] = 5.0
    state = make_state(num_samples=100, batch_size=10, losses=losses)
    order = flatten(WeightedRandom(replacement=replacement)(state))[0]
    assert len(order) == 100
    if replacement:
        assert set(order) <= set(range(10))
    else:
        assert np.array_equal(np.sort(order), np.arange(100))
        assert set(order[:10]) == set(range(10))


def test_weighted_random_all_zero_is_uniform(make_state):
    state = make_state(num_samples=50, losses=np.zeros(50))
    for replacement in (False, True):
        assert len(flatten(WeightedRandom(replacement=replacement)(state))[0]) == 50
