import numpy as np
import pytest

from loop.selectors import DyBAT, DynamicBatchSize, InfoBatch, SelectiveBackprop, from_string
from helpers import batches_of, flatten


@pytest.mark.parametrize("schedule,middle", [("linear", 144), ("geometric", 91)])
def test_dynamic_batch_size_schedule(make_state, schedule, middle):
    selector = DynamicBatchSize("shuffle", k0=32, k1=256, schedule=schedule)
    sizes = []
    for epoch in range(5):
        plan = batches_of(selector(make_state(num_samples=1000, epoch=epoch, epochs=5)))
        sizes.append(len(plan[0]))
        assert np.array_equal(np.sort(np.concatenate(plan)), np.arange(1000))
    assert sizes[0] == 32 and sizes[-1] == 256 and sizes[2] == middle
    assert sizes == sorted(sizes)


def test_dynamic_batch_size_shrinks_and_keeps_weights(make_state):
    selector = DynamicBatchSize(InfoBatch(prune_ratio=0.5), k0=50, k1=5)
    state = make_state(num_samples=100, epoch=0, epochs=10, losses=np.random.default_rng(0).permutation(100))
    plan = selector(state)  # 50 well-learned, 25 of them kept with weight 2
    assert len(plan[0][0]) == 50
    idx, w = flatten(plan)
    assert set(np.unique(w)) == {1.0, 2.0} and len(idx) == 75


def test_dynamic_from_string_and_hooks():
    selector = from_string("dynamic:base='dybat:delta=0.25',k0=16,k1=64")
    assert isinstance(selector._base, DyBAT) and selector._base.delta == 0.25
    assert repr(selector) == "DynamicBatchSize(base='dybat:delta=0.25', k0=16, k1=64)"
    assert not hasattr(selector, "keep")
    wrapped = DynamicBatchSize(SelectiveBackprop())
    assert hasattr(wrapped, "keep") and hasattr(wrapped, "on_train_begin")
    assert repr(wrapped) == "DynamicBatchSize(base=SelectiveBackprop())"
    with pytest.raises(ValueError, match="k0=0"):
        DynamicBatchSize(k0=0)
    with pytest.raises(ValueError, match="nope"):
        DynamicBatchSize(base="nope")


def test_selectors_declare_the_tasks_they_support():
    from loop.selectors import Heterogeneous, Homogeneous, LossSorted, Shuffle

    both = ("classification", "regression")
    assert Shuffle().tasks == both and DyBAT().tasks == both and LossSorted().tasks == both
    assert Homogeneous().tasks == Heterogeneous().tasks == LossSorted(per_class=True).tasks == ("classification",)
    assert DynamicBatchSize(base="homogeneous").tasks == ("classification",)
    assert DynamicBatchSize(base=lambda state: []).tasks == both


def test_from_string_nests_a_spec_with_commas_in_quotes():
    from loop.selectors.base import split_top_level

    selector = from_string("dynamic:base='dybat:delta=0.5,shuffle=True',k0=16,schedule=geometric")
    assert isinstance(selector._base, DyBAT)
    assert selector._base.delta == 0.5 and selector._base.shuffle is True
    assert selector.k0 == 16 and selector.schedule == "geometric"
    assert split_top_level("a=1,b='x,y',c=[1, 2],d=\"p,q\"") == ["a=1", "b='x,y'", "c=[1, 2]", 'd="p,q"']
    with pytest.raises(ValueError, match="unclosed quote"):
        from_string("dynamic:base='dybat:delta=0.5,k0=16")
    with pytest.raises(ValueError, match="unclosed bracket"):
        split_top_level("a=[1,2")
    with pytest.raises(ValueError, match="unmatched closing bracket ']'"):
        split_top_level("a=1],b=2")


def test_dynamic_state_includes_base(make_state):
    a = DynamicBatchSize(DyBAT(delta=0.5), k0=10, k1=10)
    a(make_state(num_samples=100))
    b = DynamicBatchSize(DyBAT(delta=0.5), k0=10, k1=10)
    b.set_state(a.get_state())
    assert np.array_equal(b._base.batches_, a._base.batches_)


def _weighted_means(selector, losses, seeds):
    """``sum(w * loss) / N`` of ``selector.prune`` over ``seeds``, never-seen losses counted as 1."""
    values = np.nan_to_num(losses, nan=1.0)
    out = []
    for seed in seeds:
        idx, w = selector.prune(losses, np.random.default_rng(seed))
        out.append(np.sum(w * values[idx]) / len(losses))
    return np.asarray(out)


@pytest.mark.parametrize("pruning", ["exact", "bernoulli"])
@pytest.mark.parametrize("prune_ratio", [0.5, 0.7])
def test_infobatch_weighted_loss_is_unbiased(prune_ratio, pruning):
    losses = np.random.default_rng(0).gamma(2.0, size=41).astype(np.float32)
    losses[:5] = np.nan  # never seen: always kept, weight 1
    selector = InfoBatch(prune_ratio=prune_ratio, pruning=pruning)
    totals = _weighted_means(selector, losses, range(4000))
    full = np.nan_to_num(losses, nan=1.0).mean()
    se = totals.std() / np.sqrt(len(totals))
    assert se > 0 and abs(totals.mean() - full) < 4 * se
    if pruning == "exact":
        # keep * |W| is not whole here, so the reference's weight 1 / keep would be detectably biased.
        well_learned = selector.well_learned(losses)
        keep, size = selector.keep_ratio, well_learned.sum()
        kept_share = int(keep * size) / size
        reference_mean = full - np.sum(losses[well_learned]) * (1 - kept_share / keep) / len(losses)
        assert abs(reference_mean - full) > 4 * se


def test_infobatch_keeps_exactly_int_keep_ratio_of_the_well_learned():
    losses = np.arange(40, dtype=np.float32)  # mean 19.5: W = samples 0..19
    for prune_ratio, kept_w in [(0.5, 10), (0.3, 14), (0.7, 6), (0.0, 20)]:
        selector = InfoBatch(prune_ratio=prune_ratio)
        for seed in range(5):
            idx, w = selector.prune(losses, np.random.default_rng(seed))
            assert set(range(20, 40)) <= set(idx)  # the others are never dropped
            kept = idx[idx < 20]
            assert len(kept) == kept_w and len(idx) == 20 + kept_w
            assert np.allclose(w[idx < 20], 20 / kept_w) and np.all(w[idx >= 20] == 1)
    # |W| = 7, r = 0.5: the reference keeps int(0.5 * 7) = 3 and drops 4 (not int(r * |W|) = 3).
    losses = np.r_[np.zeros(7), np.full(5, 10.0)].astype(np.float32)
    idx, w = InfoBatch(prune_ratio=0.5).prune(losses, np.random.default_rng(0))
    assert np.sum(idx < 7) == 3 and np.allclose(w[idx < 7], 7 / 3)
    # The kept well-learned samples are a uniform draw without replacement.
    counts = np.zeros(7)
    for seed in range(3000):
        idx, _ = InfoBatch(prune_ratio=0.5).prune(losses, np.random.default_rng(seed))
        counts[idx[idx < 7]] += 1
    assert np.all(np.abs(counts / 3000 - 3 / 7) < 0.04)


def test_infobatch_clamps_the_keep_ratio_at_a_tenth():
    losses = np.arange(200, dtype=np.float32)  # W = samples 0..99
    for prune_ratio in (0.9, 0.95, 0.99):
        selector = InfoBatch(prune_ratio=prune_ratio)
        assert selector.keep_ratio == pytest.approx(0.1)
        idx, w = selector.prune(losses, np.random.default_rng(0))
        assert np.sum(idx < 100) == 10 and np.allclose(w[idx < 100], 10.0)
    assert InfoBatch(prune_ratio=0.8).keep_ratio == pytest.approx(0.2)


@pytest.mark.parametrize("delta,epochs,pruned", [(0.875, 4, [0, 1, 2]), (0.875, 8, [0, 1, 2, 3, 4, 5, 6]),
                                                (0.5, 4, [0, 1]), (1.0, 3, [0, 1, 2]), (0.0, 3, [])])
def test_infobatch_prunes_while_epoch_plus_one_is_at_most_delta_epochs(make_state, delta, epochs, pruned):
    selector = InfoBatch(delta=delta)
    assert [e for e in range(epochs) if selector.prunes(e, epochs)] == pruned
    losses = np.arange(100, dtype=np.float32)
    for epoch in range(epochs):
        idx, w = flatten(selector(make_state(num_samples=100, epoch=epoch, epochs=epochs, losses=losses)))
        if epoch in pruned:
            assert len(idx) == 75 and np.all(w[idx < 50] == 2.0)
        else:  # annealing: everything, weight 1
            assert np.array_equal(np.sort(idx), np.arange(100)) and np.all(w == 1)


def test_infobatch_plan_weights_and_never_seen(make_state):
    losses = np.random.default_rng(0).random(100).astype(np.float32)
    losses[:4] = np.nan
    selector = InfoBatch(prune_ratio=0.5, delta=0.8)
    plan = selector(make_state(num_samples=100, batch_size=10, epoch=0, epochs=10, losses=losses))
    idx, w = flatten(plan)
    assert len(np.unique(idx)) == len(idx) and all(len(b) == 10 for b in batches_of(plan)[:-1])
    below = np.flatnonzero(selector.well_learned(losses))
    k = int(0.5 * len(below))
    assert set(range(4)) <= set(idx) and set(np.flatnonzero(~selector.well_learned(losses))) <= set(idx)
    assert np.allclose(w[np.isin(idx, below)], len(below) / k) and np.all(w[~np.isin(idx, below)] == 1)
    assert np.sum(np.isin(idx, below)) == k
    # Epoch 0 of a fit: nothing seen, nothing pruned.
    idx, w = flatten(selector(make_state(num_samples=100, epoch=0, epochs=10)))
    assert np.array_equal(np.sort(idx), np.arange(100)) and np.all(w == 1)


def test_infobatch_bernoulli_drops_each_independently(make_state):
    losses = np.arange(40, dtype=np.float32)
    selector = InfoBatch(prune_ratio=0.5, pruning="bernoulli")
    kept = []
    for seed in range(200):
        idx, w = selector.prune(losses, np.random.default_rng(seed))
        assert set(range(20, 40)) <= set(idx) and np.all(w[idx < 20] == 2.0)
        kept.append(np.sum(idx < 20))
    assert len(set(kept)) > 3 and abs(np.mean(kept) - 10) < 0.5  # a Binomial(20, 0.5) count


def test_infobatch_bad_arguments():
    for r in (-0.1, 1.0):
        with pytest.raises(ValueError, match=f"prune_ratio={r}"):
            InfoBatch(prune_ratio=r)
    with pytest.raises(ValueError, match="pruning='random'"):
        InfoBatch(pruning="random")
