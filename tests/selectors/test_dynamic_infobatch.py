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
    state = make_state(num_samples=100, epoch=0, epochs=10, losses=np.random.default_rng(0).random(100))
    plan = selector(state)
    assert len(plan[0][0]) == 50
    idx, w = flatten(plan)
    assert set(np.unique(w)) <= {1.0, 2.0} and len(idx) < 100


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


def test_infobatch_expected_weighted_loss_equals_full_mean(make_state):
    losses = np.random.default_rng(0).gamma(2.0, size=200).astype(np.float32)
    losses[:5] = np.nan  # never seen: always kept
    selector = InfoBatch(prune_ratio=0.7)
    totals, kept = [], []
    for seed in range(2000):
        idx, w = selector.prune(losses, np.random.default_rng(seed))
        values = np.nan_to_num(losses[idx], nan=1.0)
        totals.append(np.sum(w * values) / len(losses))
        kept.append(len(idx))
    full = np.nan_to_num(losses, nan=1.0).mean()
    assert abs(np.mean(totals) - full) < 4 * np.std(totals) / np.sqrt(len(totals))
    assert np.mean(kept) < 200 * 0.75  # about 0.7 of the below-mean samples pruned


def test_infobatch_plan_weights_and_annealing(make_state):
    losses = np.random.default_rng(0).random(100).astype(np.float32)
    selector = InfoBatch(prune_ratio=0.5, delta=0.8)
    idx, w = flatten(selector(make_state(num_samples=100, epoch=0, epochs=10, losses=losses)))
    below = losses[idx] < losses.mean()
    assert np.all(w[below] == 2.0) and np.all(w[~below] == 1.0)
    assert set(np.flatnonzero(losses >= losses.mean())) <= set(idx)
    idx, w = flatten(selector(make_state(num_samples=100, epoch=8, epochs=10, losses=losses)))
    assert np.array_equal(np.sort(idx), np.arange(100)) and np.all(w == 1)


def test_infobatch_bad_ratio():
    for r in (-0.1, 1.0):
        with pytest.raises(ValueError, match=f"prune_ratio={r}"):
            InfoBatch(prune_ratio=r)
