"""The validation split held out of the training set, and label noise on the training labels."""

import dataclasses

import numpy as np
import pytest

from loop import datasets
from loop.datasets import splits


def test_iris_split_is_stratified_fixed_and_partitions_the_training_set():
    ds = datasets.load("iris")
    a = datasets.validation_split(ds)
    b = datasets.validation_split(datasets.load("iris"))
    assert len(a.y_val) == 24 and len(a.y_train) == 96  # 20% of 120
    assert np.array_equal(np.bincount(a.y_val), [8, 8, 8])  # the training set's class shares
    assert np.array_equal(a.x_val, b.x_val) and np.array_equal(a.y_train, b.y_train)
    rows = a.extras["validation"]["rows"]
    kept = np.setdiff1d(np.arange(len(ds.y_train)), rows)
    assert np.array_equal(a.x_train, ds.x_train[kept]) and np.array_equal(a.x_val, ds.x_train[rows])
    assert np.array_equal(a.x_test, ds.x_test) and np.array_equal(a.y_test, ds.y_test)
    assert a.extras["validation"]["seed"] == 0 and a.extras["validation"]["stratified"]
    assert "x_val=(24, 4)" in repr(a)


def test_other_seed_gives_another_split_and_regression_is_not_stratified():
    ds = datasets.load("iris")
    assert not np.array_equal(datasets.validation_split(ds, seed=1).extras["validation"]["rows"],
                              datasets.validation_split(ds).extras["validation"]["rows"])
    rows, val = splits.validation_rows(np.linspace(0, 1, 50).astype(np.float32), 10, stratify=False)
    assert len(val) == 10 and np.array_equal(np.sort(np.concatenate([rows, val])), np.arange(50))


def test_documented_sizes():
    assert datasets.VALIDATION_SIZES["mnist"] == 10_000 and datasets.VALIDATION_SIZES["fashion_mnist"] == 10_000
    assert datasets.VALIDATION_SIZES["cifar10"] == 5_000 and datasets.VALIDATION_SIZES["cifar100"] == 5_000
    for name in ("spirals", "iris", "wine", "boston", "music_genre"):
        assert datasets.VALIDATION_SIZES[name] == 0.2
    assert set(datasets.VALIDATION_SIZES) == set(datasets.names())


def test_one_hot_labels_are_stratified_by_class():
    y = np.eye(4)[np.arange(80) % 4]
    _, val = splits.validation_rows(y, 20)
    assert np.array_equal(np.bincount(y[val].argmax(1)), [5, 5, 5, 5])


@pytest.mark.parametrize("size,match", [(0, "size 0"), (120, "size 120"), (1.5, "size 1.5"), ("big", "'big'"),
                                        (True, "True")])
def test_bad_sizes_name_the_value(size, match):
    with pytest.raises(ValueError, match=match):
        datasets.validation_split(datasets.load("iris"), size)


def test_split_twice_and_unknown_records_are_refused():
    once = datasets.validation_split(datasets.load("iris"))
    with pytest.raises(ValueError, match="already has a validation split"):
        datasets.validation_split(once)
    with pytest.raises(ValueError, match="needs a Dataset"):
        datasets.validation_split((np.zeros(3), np.zeros(3)))


def test_streaming_split_reads_the_same_rows_by_index():
    arrays = datasets.validation_split(datasets.load("wine"))
    streamed = datasets.validation_split(datasets.load("wine", streaming=True))
    assert len(streamed.train) == len(arrays.y_train) and len(streamed.val) == len(arrays.y_val)
    assert np.array_equal(streamed.val.labels, arrays.y_val)
    np.testing.assert_allclose(streamed.val.take(np.arange(len(streamed.val)))[0], arrays.x_val, rtol=0, atol=0)
    x, y = streamed.train.take([3, 0, 7])
    np.testing.assert_allclose(x, arrays.x_train[[3, 0, 7]], rtol=0, atol=0)
    assert np.array_equal(y, arrays.y_train[[3, 0, 7]]) and "val=" in repr(streamed)


def test_label_noise_touches_only_the_chosen_training_rows():
    ds = datasets.validation_split(datasets.load("wine"))
    noisy = datasets.with_label_noise(ds, 0.2, seed=3)
    record = noisy.extras["label_noise"]
    assert record["replaced"] == round(0.2 * len(ds.y_train))
    others = np.setdiff1d(np.arange(len(ds.y_train)), record["rows"])
    assert np.array_equal(noisy.y_train[others], ds.y_train[others])
    assert record["changed"] == int(np.sum(noisy.y_train != ds.y_train)) <= record["replaced"]
    assert np.array_equal(noisy.y_val, ds.y_val) and np.array_equal(noisy.y_test, ds.y_test)
    assert noisy.y_train.min() >= 0 and noisy.y_train.max() < ds.num_classes
    again = datasets.with_label_noise(ds, 0.2, seed=3)
    assert np.array_equal(again.y_train, noisy.y_train)


def test_label_noise_replaces_uniformly_among_all_classes():
    y = np.zeros(20_000, np.int32)
    ds = datasets.validation_split(datasets.load("iris"))
    big = dataclasses.replace(ds, x_train=np.zeros((len(y), 4), np.float32), y_train=y)
    noisy = datasets.with_label_noise(big, 0.5)
    counts = np.bincount(noisy.y_train[noisy.extras["label_noise"]["rows"]], minlength=3)
    assert counts.sum() == 10_000 and np.all(np.abs(counts - 10_000 / 3) < 200)  # ~8 standard deviations


@pytest.mark.parametrize("fraction", [-0.1, 1.5, "x"])
def test_label_noise_bad_fraction(fraction):
    with pytest.raises(ValueError, match=repr(fraction).replace(".", r"\.")):
        datasets.with_label_noise(datasets.load("iris"), fraction)


def test_label_noise_refuses_regression_and_repeats():
    with pytest.raises(ValueError, match="regression"):
        datasets.with_label_noise(dataclasses.replace(datasets.load("iris"), task="regression"), 0.2)
    once = datasets.with_label_noise(datasets.load("iris"), 0.2)
    with pytest.raises(ValueError, match="already has label noise"):
        datasets.with_label_noise(once, 0.2)
