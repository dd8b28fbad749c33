import numpy as np
import pytest

from loop.selectors import Heterogeneous, Homogeneous
from helpers import batches_of, flatten


def test_homogeneous_batches_hold_one_label_and_cover_all(make_state):
    state = make_state(num_samples=125, num_classes=4, batch_size=8)
    plan = Homogeneous()(state)
    for batch in batches_of(plan):
        assert len(np.unique(state.labels[batch])) == 1
        assert 1 <= len(batch) <= 8
    assert np.array_equal(np.sort(flatten(plan)[0]), np.arange(125))


def test_homogeneous_shuffles_batch_order(make_state):
    state = make_state(num_samples=200, num_classes=2, batch_size=10)
    sequence = [state.labels[b[0]] for b in batches_of(Homogeneous()(state))]
    assert len(set(sequence[:10])) == 2  # the classes' batches are mixed, not one class after the other


@pytest.mark.parametrize("batch_size", [3, 8, 10, 12])
def test_heterogeneous_class_counts_differ_by_at_most_one(make_state, batch_size):
    state = make_state(num_samples=120, num_classes=4, batch_size=batch_size)
    plan = Heterogeneous()(state)
    for batch in batches_of(plan):
        counts = np.bincount(state.labels[batch], minlength=4)
        if len(batch) >= 4:
            assert counts.max() - counts.min() <= 1, counts
        else:
            assert counts.max() <= 1
    assert np.array_equal(np.sort(flatten(plan)[0]), np.arange(120))


@pytest.mark.parametrize("cls", [Homogeneous, Heterogeneous])
def test_class_based_rejects_regression(make_state, cls):
    with pytest.raises(ValueError, match="regression"):
        cls()(make_state(task="regression"))


@pytest.mark.parametrize("cls", [Homogeneous, Heterogeneous])
def test_class_based_deterministic_by_seed(make_state, cls):
    a = flatten(cls()(make_state(seed=1)))[0]
    b = flatten(cls()(make_state(seed=1)))[0]
    c = flatten(cls()(make_state(seed=2)))[0]
    assert np.array_equal(a, b) and not np.array_equal(a, c)
