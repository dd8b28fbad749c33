"""Every loader: shapes, dtypes, labels, splits and preprocessing."""


import numpy as np
import pytest

from loop import datasets
from loop.datasets import images, loaders, sources

import helpers as util


def _check(ds, *, n_train, n_test, shape, num_classes, task="classification"):
    assert ds.x_train.shape == (n_train, *shape)
    assert ds.x_test.shape == (n_test, *shape)
    assert ds.y_train.shape == (n_train,) and ds.y_test.shape == (n_test,)
    assert ds.num_classes == num_classes and ds.task == task
    assert ds.input_shape == tuple(shape)
    if task == "classification":
        assert ds.y_train.dtype == np.int32 and ds.y_test.dtype == np.int32
        for y in (ds.y_train, ds.y_test):
            assert 0 <= y.min() and y.max() < num_classes
        assert ds.loss == "sparse_categorical_crossentropy"
        assert ds.metrics == ["accuracy"] and ds.target_metric == "val_accuracy"
    else:
        assert ds.y_train.dtype == np.float32
        assert ds.loss == "mse" and ds.target_metric == "val_mae"
    assert ds.batch_size > 0 and ds.source and ds.info
    assert ds.default_model in ds.model_names


# -------------------------------------------------------------- images


@pytest.mark.parametrize("name,prefix", [("mnist", "mnist"),
                                         ("fashion_mnist", "fashion-mnist")])
def test_idx_from_local_dir(name, prefix, data_dir, monkeypatch):
    arrays = util.write_mnist_dir(data_dir, monkeypatch, prefix)
    ds = datasets.load(name, data_dir=data_dir)
    _check(ds, n_train=20, n_test=10, shape=(28, 28, 1), num_classes=10)
    assert ds.x_train.dtype == np.float32
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    np.testing.assert_allclose(ds.x_train[..., 0] * 255, arrays["train-images"],
                               atol=1e-3)
    np.testing.assert_array_equal(ds.y_test, arrays["test-labels"])
    assert "local IDX" in ds.source


def test_mnist_from_keras_npz_cache(keras_datasets, monkeypatch):
    rng = np.random.default_rng(0)
    path = keras_datasets / "mnist.npz"
    np.savez(path, x_train=util.images(rng, 12, (28, 28)),
             y_train=np.arange(12, dtype=np.uint8) % 10,
             x_test=util.images(rng, 4, (28, 28)), y_test=np.arange(4, dtype=np.uint8))
    util.trust(monkeypatch, "mnist/npz", path)
    ds = datasets.load("mnist")
    _check(ds, n_train=12, n_test=4, shape=(28, 28, 1), num_classes=10)
    assert "Keras cache" in ds.source


def test_fashion_mnist_from_keras_cache(tmp_path, monkeypatch):
    cache = tmp_path / "keras-home"
    rng = np.random.default_rng(0)
    for key, array in {"train-images": util.images(rng, 6, (28, 28)),
                       "train-labels": np.arange(6),
                       "test-images": util.images(rng, 3, (28, 28)),
                       "test-labels": np.arange(3)}.items():
        source = sources.SOURCES[f"fashion-mnist/{key}"]
        path = util.write_idx(cache / source.cache_subdir / source.cache_name, array)
        util.trust(monkeypatch, f"fashion-mnist/{key}", path)
    ds = datasets.load("fashion_mnist")
    _check(ds, n_train=6, n_test=3, shape=(28, 28, 1), num_classes=10)


def test_truncated_idx_is_reported(tmp_path):
    path = util.write_idx(tmp_path / "x.gz", np.zeros((3, 28, 28)))
    import gzip
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-5]))
    with pytest.raises(ValueError, match="truncated"):
        images.read_idx(str(path))


def test_cifar10_local_tarball_and_extraction_cache(data_dir, monkeypatch, tmp_path):
    archive = data_dir / "cifar-10" / "cifar-10-python.tar.gz"
    y_train, y_test = util.write_cifar10(archive)
    util.trust(monkeypatch, "cifar-10", archive)
    ds = datasets.load("cifar10", data_dir=data_dir)
    _check(ds, n_train=20, n_test=6, shape=(32, 32, 3), num_classes=10)
    np.testing.assert_array_equal(ds.y_train, y_train)
    np.testing.assert_array_equal(ds.y_test, y_test)
    # Standardized per channel with training statistics only.
    np.testing.assert_allclose(ds.x_train.mean(axis=(0, 1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(ds.x_train.std(axis=(0, 1, 2)), 1, atol=1e-4)
    assert ds.model_names[0] == "resnet20" and ds.default_model == "resnet20"
    extracted = list((tmp_path / "loop-cache").iterdir())
    assert len(extracted) == 1
    again = datasets.load("cifar10", data_dir=data_dir, standardize_images=False)
    assert again.x_train.min() >= 0 and again.x_train.max() <= 1
    assert list((tmp_path / "loop-cache").iterdir()) == extracted


def test_cifar10_accepts_either_known_hash(data_dir, monkeypatch):
    archive = data_dir / "cifar-10" / "cifar-10-python.tar.gz"
    util.write_cifar10(archive)
    table = dict(sources.SOURCES)
    source = table["cifar-10"]
    table["cifar-10"] = type(source)(source.local_path, source.origin,
                                     ("0" * 64, util.sha256(archive)),
                                     source.cache_name)
    monkeypatch.setattr(sources, "SOURCES", table)
    assert datasets.load("cifar10", data_dir=data_dir).x_train.shape[0] == 20


@pytest.mark.parametrize("label_mode,classes", [("fine", 100), ("coarse", 20)])
def test_cifar100_local_tarball(label_mode, classes, data_dir, monkeypatch):
    archive = data_dir / "cifar-100" / "cifar-100-python.tar.gz"
    util.write_cifar100(archive)
    util.trust(monkeypatch, "cifar-100", archive)
    ds = datasets.load("cifar100", data_dir=data_dir, label_mode=label_mode)
    _check(ds, n_train=10, n_test=5, shape=(32, 32, 3), num_classes=classes)


# ------------------------------------------------------------ Sentiment140


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_sentiment140(encoding, data_dir, monkeypatch, tmp_path):
    train, test = util.write_sentiment(data_dir, encoding=encoding)
    util.trust(monkeypatch, "sentiment140/train-slice", train)
    util.trust(monkeypatch, "sentiment140/test", test)
    ds = datasets.load("sentiment140", data_dir=data_dir, n_train=30,
                       vocab_size=50, sequence_length=8)
    _check(ds, n_train=30, n_test=3, shape=(8,), num_classes=2)
    assert ds.x_train.dtype == np.int32 and ds.x_train.max() < 50
    assert np.bincount(ds.y_train).tolist() == [15, 15]  # balanced
    assert ds.y_test.tolist() == [0, 1, 1]  # neutral dropped, 4 -> 1
    vocabulary = list(ds.extras["vocabulary"])
    assert "good" in vocabulary and "testonlyword" not in vocabulary
    assert "café" in vocabulary  # latin-1 files are decoded, not mangled
    assert ds.x_test[0, 1] == 1  # out-of-vocabulary token id
    assert "20,000-row slice" in ds.info and "neutral" in ds.info
    assert ds.model().output_shape == (None, 2)
    cache = list((tmp_path / "loop-cache").iterdir())
    assert len(cache) == 1 and cache[0].suffix == ".npz"
    again = datasets.load("sentiment140", data_dir=data_dir, n_train=30,
                          vocab_size=50, sequence_length=8)
    np.testing.assert_array_equal(again.x_train, ds.x_train)
    assert "cached" in again.source
    other = datasets.load("sentiment140", data_dir=data_dir, n_train=10,
                          vocab_size=50, sequence_length=8)
    assert len(other.x_train) == 10 and len(list((tmp_path / "loop-cache").iterdir())) == 2


def test_sentiment140_corrupted_cache_is_reported(data_dir, monkeypatch, tmp_path):
    train, test = util.write_sentiment(data_dir)
    util.trust(monkeypatch, "sentiment140/train-slice", train)
    util.trust(monkeypatch, "sentiment140/test", test)
    datasets.load("sentiment140", data_dir=data_dir, vocab_size=50)
    (cached,) = (tmp_path / "loop-cache").iterdir()
    cached.write_bytes(cached.read_bytes()[:100])
    with pytest.raises(datasets.CacheCorruptedError) as info:
        datasets.load("sentiment140", data_dir=data_dir, vocab_size=50)
    assert str(cached) in str(info.value) and "Delete it" in str(info.value)


# ------------------------------------------------------------------ tabular


def test_music_genre_split_and_standardization(data_dir, monkeypatch):
    path = data_dir / "music-genre" / "data.csv"
    path.parent.mkdir()
    path.write_text(util.music_csv_text(n_per_genre=10))
    util.trust(monkeypatch, "music-genre", path)
    ds = datasets.load("music_genre", data_dir=data_dir)
    _check(ds, n_train=80, n_test=20, shape=(26,), num_classes=10)
    assert ds.class_names == tuple(util.MUSIC_GENRES)
    assert np.bincount(ds.y_test).tolist() == [2] * 10  # stratified
    np.testing.assert_allclose(ds.x_train.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(0), 1, atol=1e-4)


@pytest.mark.parametrize("name,n,features,classes",
                         [("wine", 178, 13, 3), ("iris", 150, 4, 3)])
def test_sklearn_split_invariants(name, n, features, classes):
    ds = datasets.load(name, seed=3)
    n_test = int(np.ceil(n * 0.2))
    _check(ds, n_train=n - n_test, n_test=n_test, shape=(features,),
           num_classes=classes)
    # Disjoint and complete: the splits hold every original row once.
    import sklearn.datasets

    raw = getattr(sklearn.datasets, f"load_{name}")().data
    rows = np.concatenate([ds.x_train, ds.x_test])
    distinct = len(np.unique(raw, axis=0))  # iris has one duplicated row
    assert len(np.unique(rows.round(4), axis=0)) == distinct
    # Stratified: class proportions match within one sample.
    for c in range(classes):
        share = (ds.y_train == c).mean() * len(ds.y_test)
        assert abs((ds.y_test == c).sum() - share) <= 1
    # Standardized with training statistics only.
    np.testing.assert_allclose(ds.x_train.mean(0), 0, atol=1e-5)
    assert np.abs(ds.x_test.mean(0)).max() > 1e-3
    # Seeded: same seed, same split; another seed, another split.
    np.testing.assert_array_equal(datasets.load(name, seed=3).x_test, ds.x_test)
    assert not np.array_equal(datasets.load(name, seed=4).y_test, ds.y_test)


def test_standardize_uses_training_statistics_only():
    x_train = np.array([[0.0], [2.0]], np.float32)
    x_test = np.array([[100.0]], np.float32)
    train, test = loaders.standardize(x_train, x_test)
    assert train.ravel().tolist() == [-1.0, 1.0]
    assert test.ravel().tolist() == [99.0]


def test_boston_local_csv(data_dir, monkeypatch):
    path = util.write_boston_csv(data_dir / "boston-housing" / "BostonHousing.csv")
    util.trust(monkeypatch, "boston-housing/csv", path)
    ds = datasets.load("boston", data_dir=data_dir)
    _check(ds, n_train=24, n_test=6, shape=(13,), num_classes=1, task="regression")
    targets = np.sort(np.concatenate([ds.y_train, ds.y_test]))
    np.testing.assert_allclose(targets, 20 + np.arange(30) * 0.5)
    assert ds.model().output_shape == (None, 1)


def test_boston_keras_npz_matches_csv_split(data_dir, keras_datasets, monkeypatch):
    import pandas as pd

    path = util.write_boston_csv(data_dir / "boston-housing" / "BostonHousing.csv")
    util.trust(monkeypatch, "boston-housing/csv", path)
    frame = pd.read_csv(path)
    npz = keras_datasets / "boston_housing.npz"
    np.savez(npz, x=frame.iloc[:, :13].to_numpy(float), y=frame["medv"].to_numpy(float))
    util.trust(monkeypatch, "boston-housing/npz", npz)
    from_keras = datasets.load("boston")
    from_csv = datasets.load("boston", data_dir=data_dir)
    assert "Keras cache" in from_keras.source
    np.testing.assert_allclose(from_keras.x_train, from_csv.x_train, rtol=1e-6)
    np.testing.assert_array_equal(from_keras.y_test, from_csv.y_test)


# ------------------------------------------------------------------ spirals


def test_spirals_generator():
    x, y = datasets.make_spirals(n_samples=300, n_arms=3, noise=0.1, seed=5)
    assert x.shape == (300, 2) and x.dtype == np.float32 and y.dtype == np.int32
    assert np.bincount(y).tolist() == [100, 100, 100]
    x2, y2 = datasets.make_spirals(n_samples=300, n_arms=3, noise=0.1, seed=5)
    np.testing.assert_array_equal(x, x2)
    assert not np.array_equal(x, datasets.make_spirals(300, 3, 0.1, seed=6)[0])
    clean, _ = datasets.make_spirals(n_samples=300, n_arms=3, noise=0.0, seed=5)
    assert np.linalg.norm(clean, axis=1).max() <= 1.0 + 1e-6
    with pytest.raises(ValueError, match="n_arms"):
        datasets.make_spirals(n_arms=1)
    with pytest.raises(ValueError, match="noise"):
        datasets.make_spirals(noise=-1)


def test_spirals_dataset():
    ds = datasets.load("spirals", n_samples=200, n_arms=4, seed=1)
    _check(ds, n_train=160, n_test=40, shape=(2,), num_classes=4)
    assert np.bincount(ds.y_test).tolist() == [10] * 4


# ------------------------------------------------------------------ registry


def test_unknown_name_lists_names_and_suggests():
    with pytest.raises(ValueError) as info:
        datasets.load("fashon_mnist")
    message = str(info.value)
    assert "Did you mean 'fashion_mnist'" in message
    assert all(name in message for name in datasets.names())


def test_aliases():
    assert datasets.load("Iris").name == "iris"


def test_unknown_model_name():
    ds = datasets.load("iris")
    with pytest.raises(ValueError, match="mlp"):
        ds.model("resnet")


def test_available(data_dir, monkeypatch):
    util.write_mnist_dir(data_dir, monkeypatch)
    table = datasets.available(data_dir=data_dir)
    assert list(table.index) == datasets.names()
    assert {"task", "train", "test", "loads_from", "cached"} <= set(table.columns)
    assert table.loc["mnist", "cached"]
    assert table.loc["mnist", "loads_from"] == str(data_dir / "mnist")
    assert not table.loc["cifar10", "cached"]
    assert table.loc["cifar10", "loads_from"].startswith("download ")
    assert table.loc["boston", "task"] == "regression"
    assert table.loc["sentiment140", "train"] == 20_000


def test_cli_lists_datasets(capsys):
    from loop.datasets.__main__ import main

    assert main([]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in datasets.names())
    assert main(["iris"]) == 0
    assert "iris: x_train (120, 4)" in capsys.readouterr().out


def test_sentiment140_from_stanford_zip_in_keras_cache(tmp_path, keras_datasets,
                                                         monkeypatch):
    import zipfile

    train, test = util.write_sentiment(tmp_path / "src")
    archive = keras_datasets / "trainingandtestdata.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(train, sources.SOURCES["sentiment140/train-full"].filename)
        z.write(test, test.name)
    util.trust(monkeypatch, "sentiment140/zip", archive)
    ds = datasets.load("sentiment140", n_train=None, vocab_size=50)
    _check(ds, n_train=40, n_test=3, shape=(48,), num_classes=2)
    assert "full 1.6M-row training CSV" in ds.info and "all 40 rows" in ds.info
