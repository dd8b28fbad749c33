"""GradMatch-PB and CRAIG-PB: the matching pursuit, facility location, the schedule and the weighted plan."""

import math

import keras
import numpy as np
import pytest

from helpers import FakeState, flatten
from loop import Loop
from loop.selectors import CRAIGPB, GradMatchPB, from_string
from loop.selectors.gradient_matching import facility_location, orthogonal_matching_pursuit


# ------------------------------------------------------------------ matching pursuit, by hand
def test_omp_picks_the_most_correlated_column_then_solves_on_the_support():
    A = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])  # columns e1, e2, e1 + e2
    # b = (2, 2): A^T b = (2, 2, 4), so e1 + e2 with 4 / 2 = 2, and the residual is zero.
    np.testing.assert_allclose(orthogonal_matching_pursuit(A, [2.0, 2.0], 3), [0, 0, 2])
    # b = (3, 1): first e1 + e2 (A^T b = (3, 1, 4)) with 2, residual (1, -1); then e1 (A^T r = (1, -1, 0));
    # on {e1 + e2, e1}: a (1, 1) + c (1, 0) = (3, 1) gives a = 1, c = 2.
    np.testing.assert_allclose(orthogonal_matching_pursuit(A, [3.0, 1.0], 3), [2, 0, 1], atol=1e-12)
    # nnz = 1 stops after the first pick.
    np.testing.assert_allclose(orthogonal_matching_pursuit(A, [3.0, 1.0], 1), [0, 0, 2])


def test_omp_keeps_weights_non_negative():
    A = np.array([[1.0, 0.0], [1.0, 1.0]])  # columns (1, 1), (0, 1)
    # b = (1, 0): (1, 1) with 0.5, residual (0.5, -0.5); A^T r = (0, -0.5): no positive correlation left.
    np.testing.assert_allclose(orthogonal_matching_pursuit(A, [1.0, 0.0], 2), [0.5, 0])
    # Without the sign constraint the second column joins and the exact solution has a negative weight.
    np.testing.assert_allclose(orthogonal_matching_pursuit(A, [1.0, 0.0], 2, positive=False), [1, -1],
                               atol=1e-12)


def test_omp_drops_a_coefficient_that_turns_negative():
    # Columns u = (2, 2), v = (1, 0); b = (3, -0.2).  A^T b = (5.6, 3): u first, weight 5.6 / 8 = 0.7, residual
    # (1.6, -1.6); A^T r = (0, 1.6): v joins.  On {u, v}: a (2, 2) + c (1, 0) = (3, -0.2) gives a = -0.1 < 0, so
    # u is dropped and v alone stays with v.b / v.v = 3; its residual (0, -0.2) correlates positively with nothing.
    A = np.array([[2.0, 1.0], [2.0, 0.0]])
    np.testing.assert_allclose(orthogonal_matching_pursuit(A, [3.0, -0.2], 2), [0, 3], atol=1e-12)
    np.testing.assert_allclose(orthogonal_matching_pursuit(A, [3.0, -0.2], 2, positive=False), [-0.1, 3.2],
                               atol=1e-12)


def test_omp_ridge_and_tolerance():
    A = np.eye(2)
    np.testing.assert_allclose(orthogonal_matching_pursuit(A, [1.0, 0.0], 2, lam=0.0), [1, 0])
    # The first pick's weight is the plain projection (as the reference's); with two picks the ridge shrinks.
    np.testing.assert_allclose(orthogonal_matching_pursuit(A, [2.0, 1.0], 2, lam=1.0), [1, 0.5])
    # tol: stop once the residual is small relative to b.
    np.testing.assert_allclose(orthogonal_matching_pursuit(A, [1.0, 0.01], 2, tol=0.1), [1, 0])
    with pytest.raises(ValueError, match=r"A has shape \(2, 2\) and b \(3,\)"):
        orthogonal_matching_pursuit(A, [1.0, 2.0, 3.0], 2)


# ------------------------------------------------------------------ facility location, by hand
def test_facility_location_picks_one_medoid_per_cluster_and_weights_by_cluster_size():
    points = np.array([0.0, 1.0, 10.0, 11.0, 12.0])
    distances = (points[:, None] - points[None, :]) ** 2
    similarity = distances.max() - distances
    # Row sums of the similarity: 1 and 10 are central; the first pick is 10 (index 2)? By hand:
    # max distance 144; sums: 0 -> 144+143+44+23+0 = 354, 1 -> 143+144+63+44+23 = 417, 2 -> 44+63+144+143+140 = 534,
    # 3 -> 23+44+143+144+143 = 497, 4 -> 0+23+140+143+144 = 450: index 2 first.  Then gains over
    # best = (44, 63, 144, 143, 140): 0 -> 100+80 = 180, 1 -> 99+81 = 180, 3 -> 0+0+0+1+3 = 4, 4 -> 4: 0 (ties to
    # the lowest index).
    picks, weights = facility_location(similarity, 2)
    np.testing.assert_array_equal(picks, [2, 0])
    np.testing.assert_array_equal(weights, [3, 2])  # 10, 11, 12 are nearest to 10; 0, 1 to 0
    picks, weights = facility_location(similarity, 5)
    assert sorted(picks.tolist()) == [0, 1, 2, 3, 4] and np.all(weights == 1)


# ------------------------------------------------------------------ the schedule and the plan
def designed_state(epoch=2, epochs=30, gradients=None):
    """8 samples in fixed batches [0,1], [2,3], [4,5], [6,7] whose mean gradients are designed."""
    state = FakeState(num_samples=8, num_classes=2, batch_size=2, epoch=epoch, epochs=epochs)
    if gradients is None:
        means = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.9, 1.1]])
        gradients = np.repeat(means, 2, axis=0) + np.tile([[0.1, -0.1], [-0.1, 0.1]], (4, 1))
    state.quantities = lambda indices: {"losses": np.zeros(len(indices)),
                                        "last_layer_gradients": gradients[np.asarray(indices)]}
    return state


def test_gradmatch_picks_the_batch_that_matches_the_full_gradient_with_the_pursuits_weight():
    selector = GradMatchPB(fraction=0.25, select_every=2, linear_layer=False)  # budget 2 samples: 1 batch
    selector.partition_ = np.arange(8)
    plan = selector(designed_state())
    # Target sum = (2.9, 3.1); A^T b = (2.9, 3.1, 6.0, 6.02): batch [6, 7], weight 6.02 / (0.81 + 1.21).
    assert selector.selections_ == 1
    np.testing.assert_array_equal(np.sort(selector.subset_), [6, 7])
    np.testing.assert_allclose(selector.subset_weights_, [6.02 / 2.02] * 2)
    idx, w = flatten(plan)
    assert sorted(idx.tolist()) == [6, 7]
    np.testing.assert_allclose(w, 1.0)  # one batch: its weights normalized to its size


def test_craig_picks_the_medoid_batch():
    selector = CRAIGPB(fraction=0.25, select_every=2)
    selector.partition_ = np.arange(8)
    selector(designed_state())
    # Distances between the batch means (1,0), (0,1), (1,1), (0.9,1.1): the medoid is (1, 1), batch [4, 5].
    np.testing.assert_array_equal(np.sort(selector.subset_), [4, 5])
    np.testing.assert_allclose(selector.subset_weights_, [4, 4])


def test_plan_weights_are_normalized_per_batch_as_the_reference_loss():
    selector = GradMatchPB(fraction=0.5, select_every=2, linear_layer=False)  # 2 batches: [6, 7], then [0, 1]
    selector.partition_ = np.arange(8)
    plan = selector(designed_state())
    raw = dict(zip(selector.subset_.tolist(), selector.subset_weights_.tolist()))
    assert sorted(raw) == [0, 1, 6, 7] and raw[0] != raw[6]
    for indices, weights in plan:
        mine = np.array([raw[i] for i in indices.tolist()])
        np.testing.assert_allclose(weights, mine * len(indices) / mine.sum(), rtol=1e-6)  # sum(w * l) / sum(w)


def test_the_budget_is_filled_with_random_samples_of_weight_one():
    zero = np.zeros((8, 2))
    zero[6:] = 1.0  # only the last batch has a gradient: the pursuit stops after it
    selector = GradMatchPB(fraction=0.75, select_every=2, linear_layer=False)  # budget 6: 3 batches asked for
    selector.partition_ = np.arange(8)
    selector(designed_state(gradients=zero))
    assert len(selector.subset_) == 6 and len(set(selector.subset_.tolist())) == 6
    assert {6, 7} <= set(selector.subset_.tolist())
    picked = np.isin(selector.subset_, [6, 7])
    np.testing.assert_allclose(selector.subset_weights_[~picked], 1.0)


def test_schedule_random_subset_then_selection_every_R_epochs_after_epoch_one():
    selector = GradMatchPB(fraction=0.25, select_every=3)
    assert [e for e in range(10) if selector.selects(e, 10)] == [3, 6, 9]
    assert [e for e in range(4) if GradMatchPB(select_every=1).selects(e, 4)] == [2, 3]  # r > 1
    state = designed_state(epoch=0)
    plan = selector(state)
    assert selector.selections_ == 0 and len(selector.subset_) == 2  # the initial random subset
    assert len(flatten(plan)[0]) == 2


def test_warm_start_trains_full_epochs_then_skips_the_reference_epochs():
    selector = CRAIGPB(fraction=0.1, select_every=20, kappa=0.5)
    # E = 300: select_after = 150, W = ceil(150 * 0.1) = 15; reference epochs 16..149 are skipped.
    assert selector.warm_epochs(300) == (15, 150)
    assert [selector.reference_epoch(e, 300) for e in (0, 14, 15, 16, 17)] == [0, 14, 15, 150, 151]
    # By the reference's condition (r % 20 == 0) the first selection after the skip is at r = 160, loop epoch 26.
    assert [e for e in range(0, 50) if selector.selects(e, 300)] == [26, 46]
    state = FakeState(num_samples=40, num_classes=2, batch_size=4, epoch=3, epochs=300)
    assert len(flatten(selector(state))[0]) == 40  # a warm-up epoch: the full data


def test_steps_and_epochs_for_budget():
    selector = GradMatchPB(fraction=0.1)
    assert selector.expected_steps(10, 1000, 10) == 10 * 10
    assert selector.epochs_for_budget(3, 1000, 10) == 30  # 300 steps at 10 a subset epoch
    warm = GradMatchPB(fraction=0.1, kappa=0.5)
    assert warm.expected_steps(300, 1000, 10) == 15 * 100 + 285 * 10
    epochs = warm.epochs_for_budget(20, 1000, 10)
    assert warm.expected_steps(epochs, 1000, 10) >= 2000 > warm.expected_steps(epochs - 1, 1000, 10)


def test_arguments_are_checked():
    with pytest.raises(ValueError, match=r"fraction=0 is out of range"):
        GradMatchPB(fraction=0)
    with pytest.raises(ValueError, match=r"select_every=0"):
        CRAIGPB(select_every=0)
    with pytest.raises(ValueError, match=r"kappa=1"):
        GradMatchPB(kappa=1)
    with pytest.raises(ValueError, match="linear_layer='yes'"):
        GradMatchPB(linear_layer="yes")
    assert GradMatchPB().needs == ("last_layer_gradients", "features")
    assert CRAIGPB().needs == ("last_layer_gradients",)
    assert repr(from_string("gradmatch_pb:fraction=0.2")) == "GradMatchPB(fraction=0.2)"


# ------------------------------------------------------------------ through the loop
def spiral_like(n=240):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    return x, (x[:, 0] * x[:, 1] > 0).astype("int64")


def model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(2, activation="softmax")])


@pytest.mark.parametrize("selector", [GradMatchPB(fraction=0.25, select_every=2), CRAIGPB(fraction=0.25,
                                                                                          select_every=2)], ids=repr)
def test_trains_through_the_loop_with_selections_on_the_clock(selector):
    x, y = spiral_like()
    loop = Loop(model(), loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.SGD(0.1),
                selector=selector, batch_size=12, seed=0)
    history = loop.fit((x, y), epochs=5, verbose=0)
    trained = loop.selector
    assert trained.selections_ == 2  # epochs 2 and 4
    steps = loop.tables.counts()["step"]
    assert steps == 5 * math.ceil(60 / 12)
    # Each selection forwards the whole training set once (the quantities pass), besides the training passes.
    assert loop.tables.counts()["samples_forwarded"] == 5 * 60 + 2 * 240
    assert np.isfinite(history.history["loss"]).all()
