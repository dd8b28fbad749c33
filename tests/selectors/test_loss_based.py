import numpy as np
import pytest

from loop.selectors import Curriculum, LossSorted, OnlineBatchSelection
from helpers import batches_of, flatten


def _losses(n=60, seed=0):
    losses = np.random.default_rng(seed).random(n).astype(np.float32)
    losses[[3, 7]] = np.nan
    return losses


def test_loss_sorted_desc_puts_never_seen_first(make_state):
    losses = _losses()
    order = flatten(LossSorted()(make_state(num_samples=60, losses=losses)))[0]
    assert set(order[:2]) == {3, 7}
    seen = losses[order[2:]]
    assert np.all(np.diff(seen) <= 0)


def test_loss_sorted_asc_puts_never_seen_last(make_state):
    losses = _losses()
    order = flatten(LossSorted(order="asc")(make_state(num_samples=60, losses=losses)))[0]
    assert set(order[-2:]) == {3, 7}
    assert np.all(np.diff(losses[order[:-2]]) >= 0)


def test_loss_sorted_per_class_interleaves_sorted_queues(make_state):
    state = make_state(num_samples=60, num_classes=3, batch_size=6, losses=np.random.default_rng(1).random(60))
    plan = LossSorted(per_class=True)(state)
    order = flatten(plan)[0]
    for c in range(3):
        queue = order[state.labels[order] == c]
        assert np.all(np.diff(state.losses[queue]) <= 0)
    for batch in batches_of(plan):
        assert np.all(np.bincount(state.labels[batch], minlength=3) == 2)


def test_loss_sorted_refresh_scores_every_k_epochs(make_state):
    selector = LossSorted(refresh_every=2)
    for epoch, expect in [(0, True), (1, False), (2, True)]:
        state = make_state(num_samples=30, epoch=epoch)
        order = flatten(selector(state))[0]
        assert bool(state.scored) == expect
        if expect:
            assert np.array_equal(order, np.arange(30)[::-1])  # true losses rise with the index


def test_loss_sorted_per_class_rejects_regression(make_state):
    LossSorted()(make_state(task="regression"))
    with pytest.raises(ValueError, match="regression"):
        LossSorted(per_class=True)(make_state(task="regression"))


@pytest.mark.parametrize("pacing", ["linear", "root", "geometric"])
def test_curriculum_pool_grows_from_start_to_all(make_state, pacing):
    selector = Curriculum(pacing=pacing, start=0.25, ramp=0.5)
    losses = np.random.default_rng(0).random(100)
    sizes = []
    for epoch in range(10):
        order = flatten(selector(make_state(num_samples=100, epoch=epoch, epochs=10, losses=losses)))[0]
        sizes.append(len(order))
        assert len(np.unique(order)) == len(order)
        easiest = np.argsort(losses)[:len(order)]
        assert set(order) == set(easiest)
    assert sizes[0] == 25 and sizes[5:] == [100] * 5 and sizes == sorted(sizes)


def test_curriculum_hard_takes_highest_losses(make_state):
    losses = np.random.default_rng(0).random(100)
    order = flatten(Curriculum(order="hard", start=0.3)(make_state(num_samples=100, losses=losses)))[0]
    assert set(order) == set(np.argsort(-losses)[:30])


def test_online_batch_probabilities_ratio_is_pressure():
    p = OnlineBatchSelection().probabilities(1000, 100.0)
    assert np.isclose(p.sum(), 1) and np.all(np.diff(p) < 0)
    assert np.isclose(p[0] / p[-1], 100.0 ** (999 / 1000))


def test_online_batch_anneals_exponentially():
    selector = OnlineBatchSelection(s_e0=1e8, s_e_end=1e2)
    assert np.isclose(selector.selection_pressure(0, 5), 1e8)
    assert np.isclose(selector.selection_pressure(4, 5), 1e2)
    assert np.isclose(selector.selection_pressure(2, 5), 1e5)


def test_online_batch_favours_high_loss(make_state):
    losses = np.arange(1000, dtype=np.float32)
    state = make_state(num_samples=1000, batch_size=50, losses=losses)
    order = flatten(OnlineBatchSelection(s_e0=100, s_e_end=100)(state))[0]
    assert len(order) == 1000
    top = np.mean(order >= 900)
    bottom = np.mean(order < 100)
    assert top / bottom > 20  # expected ratio ~ (1 - 100**-0.1) / (100**-0.9 - 100**-1) ~ 30


def test_online_batch_recomputes_losses(make_state):
    state = make_state(num_samples=40)
    OnlineBatchSelection(recompute_every=3)(state)
    assert len(state.scored) == 1 and len(state.scored[0]) == 40
