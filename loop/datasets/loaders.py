"""One loader per dataset: read the original files, preprocess, attach models.

Each loader takes ``data_dir`` and ``cache_dir`` (already resolved by
`loop.datasets.load`) plus its own keyword options, and returns a `Dataset`.
File lookup, hashes and downloads belong to `loop.datasets.sources`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os

import numpy as np

from loop.datasets import sources
from loop.datasets.dataset import Dataset
from loop.datasets.spirals import make_spirals

_CLASSIFY = dict(
    task="classification", loss="sparse_categorical_crossentropy",
    metrics=["accuracy"], target_metric="val_accuracy",
)
_REGRESS = dict(
    task="regression", loss="mse", metrics=["mae"], target_metric="val_mae",
    num_classes=1,
)


# -------------------------------------------------------------------- helpers


def read_idx(path: str) -> np.ndarray:
    """Reads a gzipped IDX file (MNIST format) into a uint8 array.

    Raises:
        ValueError: the file is not an unsigned-byte IDX file or is truncated.
    """
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0:2] != b"\x00\x00" or raw[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file.")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(np.frombuffer(raw, ">u4", count=ndim, offset=4).astype(int))
    data = np.frombuffer(raw, np.uint8, offset=header)
    if data.size != int(np.prod(shape)):
        raise ValueError(
            f"{path} is truncated: header says {shape}, found {data.size} bytes."
        )
    return data.reshape(shape)


def standardize(x_train, x_test, axis=0):
    """Standardizes both splits with the training split's mean and std."""
    mean = x_train.mean(axis=axis, keepdims=True, dtype=np.float64)
    std = x_train.std(axis=axis, keepdims=True, dtype=np.float64)
    std[std == 0] = 1.0
    scale = (1.0 / std).astype(np.float32)
    mean = mean.astype(np.float32)
    return ((x_train - mean) * scale).astype(np.float32), (
        (x_test - mean) * scale
    ).astype(np.float32)


def channel_stats(images: np.ndarray):
    """Exact per-channel mean and std of uint8 images (N, H, W, C).

    Uses a histogram of the 256 pixel values per channel, so it needs no
    float copy of the images.
    """
    values = np.arange(256, dtype=np.float64)
    flat = images.reshape(-1, images.shape[-1])
    means, stds = [], []
    for c in range(flat.shape[1]):
        counts = np.bincount(flat[:, c], minlength=256).astype(np.float64)
        mean = counts @ values / counts.sum()
        means.append(mean)
        stds.append(np.sqrt(counts @ (values - mean) ** 2 / counts.sum()))
    stds = np.asarray(stds, np.float32)
    stds[stds == 0] = 1.0
    return np.asarray(means, np.float32), stds


def _normalize(images, mean, std):
    out = images.astype(np.float32)
    out -= np.asarray(mean, np.float32)
    out *= np.float32(1) / np.asarray(std, np.float32)
    return out


def stratified_split(x, y, test_size, seed):
    """Seeded stratified train/test split (scikit-learn)."""
    from sklearn.model_selection import train_test_split

    return train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=y, shuffle=True
    )


def _labels(y):
    return np.asarray(y).astype(np.int32).reshape(-1)


# ---------------------------------------------------------------- image data


def _load_idx_dataset(prefix: str, data_dir):
    keys = ("train-images", "train-labels", "test-images", "test-labels")
    arrays = []
    for key in keys:
        source = sources.SOURCES[f"{prefix}/{key}"]
        path = sources.local_copy(source, data_dir)
        if path is None:
            return None
        arrays.append(read_idx(path))
    return arrays, os.path.join(data_dir, prefix)


def _mnist_like(name, prefix, builder, data_dir, keras_npz=None):
    found = _load_idx_dataset(prefix, data_dir)
    if found is not None:
        (x_train, y_train, x_test, y_test), where = found
        source = f"local IDX files in {where}"
    elif keras_npz is not None:
        path = sources.fetch(sources.SOURCES[keras_npz], data_dir)
        with np.load(path, allow_pickle=False) as f:
            x_train, y_train = f["x_train"], f["y_train"]
            x_test, y_test = f["x_test"], f["y_test"]
        source = f"Keras cache {path}"
    else:
        paths = [
            sources.fetch(sources.SOURCES[f"{prefix}/{k}"], data_dir)
            for k in ("train-images", "train-labels", "test-images", "test-labels")
        ]
        x_train, y_train, x_test, y_test = (read_idx(p) for p in paths)
        source = f"Keras cache {os.path.dirname(paths[0])}"

    def scale(x):
        return (x.astype(np.float32) / np.float32(255.0))[..., None]

    return Dataset(
        name=name,
        x_train=scale(x_train), y_train=_labels(y_train),
        x_test=scale(x_test), y_test=_labels(y_test),
        num_classes=10, source=source,
        info=f"{len(x_train):,} train / {len(x_test):,} test 28x28x1 images "
             "scaled to [0, 1] float32 (official split).",
        models={"cnn": builder}, default_model="cnn", batch_size=128,
        **_CLASSIFY,
    )


def load_mnist(data_dir=None, cache_dir=None):
    from loop.datasets import models

    return _mnist_like("mnist", "mnist", models.mnist_cnn, data_dir,
                       keras_npz="mnist/npz")


def load_fashion_mnist(data_dir=None, cache_dir=None):
    from loop.datasets import models

    return _mnist_like("fashion_mnist", "fashion-mnist",
                       models.fashion_mnist_cnn, data_dir)


def _cifar(name, key, batches, test, label_key, num_classes, data_dir,
           cache_dir, standardize_images):
    from keras.src.datasets.cifar import load_batch

    from loop.datasets import models

    source = sources.SOURCES[key]
    archive = sources.fetch(source, data_dir)
    digest = sources.sha256_file(archive)
    root = sources.extracted(archive, digest, cache_dir, key)
    subdirs = [d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))]
    if len(subdirs) != 1:
        raise ValueError(f"{archive}: expected one top-level directory, got {subdirs}.")
    folder = os.path.join(root, subdirs[0])
    try:
        train = [load_batch(os.path.join(folder, b), label_key) for b in batches]
        x_test, y_test = load_batch(os.path.join(folder, test), label_key)
    except Exception as e:
        raise sources.CacheCorruptedError(
            f"Cannot read the extracted CIFAR batches in {folder} ({e}). "
            "Delete that directory and load again."
        ) from e
    x_train = np.concatenate([x for x, _ in train]).transpose(0, 2, 3, 1)
    y_train = np.concatenate([np.asarray(y) for _, y in train])
    x_test = x_test.transpose(0, 2, 3, 1)
    if standardize_images:
        mean, std = channel_stats(x_train)
        x_train = _normalize(x_train, mean, std)
        x_test = _normalize(x_test, mean, std)
        how = "standardized per channel with training-split mean/std"
    else:
        x_train = _normalize(x_train, 0.0, 255.0)
        x_test = _normalize(x_test, 0.0, 255.0)
        how = "scaled to [0, 1]"
    return Dataset(
        name=name,
        x_train=x_train, y_train=_labels(y_train),
        x_test=x_test, y_test=_labels(y_test),
        num_classes=num_classes, source=f"{archive} (sha256 {digest[:12]}...)",
        info=f"{len(x_train):,} train / {len(x_test):,} test 32x32x3 images, "
             f"float32 {how} (official split).",
        models=models.cifar_models(), default_model="resnet20", batch_size=128,
        **_CLASSIFY,
    )


def load_cifar10(data_dir=None, cache_dir=None, *, standardize_images=True):
    return _cifar("cifar10", "cifar-10",
                  [f"data_batch_{i}" for i in range(1, 6)], "test_batch",
                  "labels", 10, data_dir, cache_dir, standardize_images)


def load_cifar100(data_dir=None, cache_dir=None, *, standardize_images=True,
                  label_mode="fine"):
    if label_mode not in ("fine", "coarse"):
        raise ValueError(f"label_mode must be 'fine' or 'coarse', got {label_mode!r}.")
    return _cifar("cifar100", "cifar-100", ["train"], "test",
                  f"{label_mode}_labels", 100 if label_mode == "fine" else 20,
                  data_dir, cache_dir, standardize_images)


# --------------------------------------------------------------- Sentiment140

SENTIMENT_COLUMNS = ["polarity", "id", "date", "query", "user", "text"]


def read_sentiment_csv(path):
    """Reads a Sentiment140 CSV (no header, all fields quoted).

    Tries UTF-8 and falls back to latin-1 (the full original file has
    bytes that are not UTF-8).
    """
    import pandas as pd

    kwargs = dict(header=None, names=SENTIMENT_COLUMNS,
                  usecols=["polarity", "text"], dtype={"text": str})
    try:
        frame = pd.read_csv(path, encoding="utf-8", **kwargs)
    except UnicodeDecodeError:
        frame = pd.read_csv(path, encoding="latin-1", **kwargs)
    if not frame["polarity"].isin([0, 2, 4]).all():
        raise ValueError(f"{path} is not a Sentiment140 CSV: polarity not in 0/2/4.")
    frame["text"] = frame["text"].fillna("")
    return frame


def _sentiment_files(data_dir, cache_dir):
    """(train path, test path, description of the training file)."""
    table = sources.SOURCES
    full = sources.local_copy(table["sentiment140/train-full"], data_dir)
    slice_ = sources.local_copy(table["sentiment140/train-slice"], data_dir)
    test = sources.local_copy(table["sentiment140/test"], data_dir)
    if (full or slice_) and test:
        if full:
            return full, test, "the full 1.6M-row training CSV"
        return slice_, test, "the 20,000-row slice of the training CSV"
    archive = sources.fetch(table["sentiment140/zip"], data_dir)
    root = sources.extracted(archive, sources.sha256_file(archive), cache_dir,
                             "sentiment140")
    return (
        os.path.join(root, table["sentiment140/train-full"].filename),
        os.path.join(root, table["sentiment140/test"].filename),
        "the full 1.6M-row training CSV (from the Stanford zip)",
    )


def load_sentiment140(data_dir=None, cache_dir=None, *, n_train=20_000,
                      vocab_size=20_000, sequence_length=48, seed=0):
    """See `load`. n_train=None keeps every training row (unbalanced)."""
    from loop.datasets import models

    train_path, test_path, described = _sentiment_files(data_dir, cache_dir)
    key_fields = dict(
        train=sources.sha256_file(train_path), test=sources.sha256_file(test_path),
        n_train=n_train, vocab_size=vocab_size,
        sequence_length=sequence_length, seed=seed, version=1,
    )
    key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()
    cache_path = os.path.join(cache_dir, f"sentiment140-{key[:20]}.npz")
    names = ("x_train", "y_train", "x_test", "y_test", "vocabulary", "per_class")
    if os.path.exists(cache_path):
        arrays = sources.load_npz(cache_path, names)
        cached = True
    else:
        arrays = _prepare_sentiment(train_path, test_path, n_train, vocab_size,
                                    sequence_length, seed)
        sources.save_npz_atomic(cache_path, **arrays)
        cached = False
    per_class = arrays["per_class"].tolist()
    n_rows = len(arrays["x_train"])
    subset = (f"{n_rows:,} rows ({per_class[0]:,} negative, {per_class[1]:,} "
              f"positive; balanced seeded sample, seed={seed})"
              if n_train is not None else f"all {n_rows:,} rows")
    return Dataset(
        name="sentiment140",
        x_train=arrays["x_train"], y_train=arrays["y_train"],
        x_test=arrays["x_test"], y_test=arrays["y_test"],
        num_classes=2,
        source=f"{train_path} + {test_path}"
               + (f" (tokenized arrays cached in {cache_path})" if cached else ""),
        info=f"Training: {subset} of {described}. Test: the official manually "
             f"labelled set, neutral (polarity 2) rows dropped -> "
             f"{len(arrays['x_test'])} rows. Labels 0 = negative, 1 = positive "
             f"(polarity 0/4). Text tokenized by TextVectorization fitted on "
             f"the training rows only (vocab {vocab_size:,}, length "
             f"{sequence_length}).",
        models={"lstm": models.sentiment_lstm}, default_model="lstm",
        batch_size=64, class_names=("negative", "positive"),
        extras=dict(
            vocabulary=arrays["vocabulary"],
            model_kwargs=dict(vocab_size=vocab_size),
        ),
        **_CLASSIFY,
    )


def _prepare_sentiment(train_path, test_path, n_train, vocab_size,
                       sequence_length, seed):
    import keras

    train = read_sentiment_csv(train_path)
    train = train[train["polarity"] != 2]
    counts = [int((train["polarity"] == p).sum()) for p in (0, 4)]
    if n_train is not None:
        rng = np.random.default_rng(seed)
        per_class = min(n_train // 2, *counts)
        keep = np.concatenate([
            rng.choice(np.flatnonzero(train["polarity"].to_numpy() == p),
                       per_class, replace=False)
            for p in (0, 4)
        ])
        train = train.iloc[rng.permutation(keep)]
        counts = [per_class, per_class]
    test = read_sentiment_csv(test_path)
    test = test[test["polarity"] != 2]
    vectorizer = keras.layers.TextVectorization(
        max_tokens=vocab_size, output_sequence_length=sequence_length,
    )
    vectorizer.adapt(train["text"].to_numpy(), batch_size=4096)

    def encode(texts):
        return np.asarray(vectorizer(np.asarray(texts, dtype=object)), np.int32)

    return dict(
        x_train=encode(train["text"].to_numpy()),
        y_train=(train["polarity"].to_numpy() // 4).astype(np.int32),
        x_test=encode(test["text"].to_numpy()),
        y_test=(test["polarity"].to_numpy() // 4).astype(np.int32),
        vocabulary=np.asarray(vectorizer.get_vocabulary(), dtype=str),
        per_class=np.asarray(counts, np.int64),
    )


# ------------------------------------------------------------------- tabular


def _tabular(name, x, y, *, class_names, source, info, test_size, seed,
             batch_size=32):
    from loop.datasets import models

    x_train, x_test, y_train, y_test = stratified_split(
        np.asarray(x, np.float32), _labels(y), test_size, seed
    )
    x_train, x_test = standardize(x_train, x_test)
    return Dataset(
        name=name, x_train=x_train, y_train=y_train, x_test=x_test,
        y_test=y_test, num_classes=len(class_names), source=source,
        info=f"{info} Seeded stratified split (test_size={test_size}, "
             f"seed={seed}); features standardized with training-split "
             "statistics.",
        models={"mlp": models.mlp}, default_model="mlp", batch_size=batch_size,
        class_names=tuple(class_names), **_CLASSIFY,
    )


def load_music_genre(data_dir=None, cache_dir=None, *, test_size=0.2, seed=0):
    import pandas as pd

    path = sources.fetch(sources.SOURCES["music-genre"], data_dir)
    frame = pd.read_csv(path)
    labels = frame.pop("label").astype(str)
    frame = frame.drop(columns=["filename"])
    class_names, y = np.unique(labels.to_numpy(), return_inverse=True)
    return _tabular(
        "music_genre", frame.to_numpy(np.float32), y, class_names=class_names,
        source=path, test_size=test_size, seed=seed,
        info=f"{len(frame)} GTZAN clips x {frame.shape[1]} audio features, "
             f"{len(class_names)} genres.",
    )


def _sklearn(name, loader, test_size, seed):
    bunch = loader()
    return _tabular(
        name, bunch.data, bunch.target, class_names=bunch.target_names,
        source=f"scikit-learn sklearn.datasets.{loader.__name__} (bundled)",
        test_size=test_size, seed=seed,
        info=f"{len(bunch.data)} samples x {bunch.data.shape[1]} features, "
             f"{len(bunch.target_names)} classes.",
    )


def load_wine(data_dir=None, cache_dir=None, *, test_size=0.2, seed=0):
    from sklearn.datasets import load_wine as sk_load_wine

    return _sklearn("wine", sk_load_wine, test_size, seed)


def load_iris(data_dir=None, cache_dir=None, *, test_size=0.2, seed=0):
    from sklearn.datasets import load_iris as sk_load_iris

    return _sklearn("iris", sk_load_iris, test_size, seed)


def load_spirals(data_dir=None, cache_dir=None, *, n_samples=2000, n_arms=2,
                 noise=0.2, turns=1.5, test_size=0.2, seed=0):
    from loop.datasets import models

    x, y = make_spirals(n_samples=n_samples, n_arms=n_arms, noise=noise,
                        turns=turns, seed=seed)
    x_train, x_test, y_train, y_test = stratified_split(x, y, test_size, seed)
    return Dataset(
        name="spirals", x_train=x_train, y_train=y_train, x_test=x_test,
        y_test=y_test, num_classes=n_arms,
        source=f"generated by make_spirals(seed={seed})",
        info=f"{n_samples} points on {n_arms} interleaved Archimedean arms "
             f"({turns} turns, noise={noise}); coordinates left as generated "
             f"(centred, radius <= 1). Seeded stratified split "
             f"(test_size={test_size}).",
        models={"mlp": models.mlp}, default_model="mlp", batch_size=32,
        class_names=tuple(f"arm {i}" for i in range(n_arms)), **_CLASSIFY,
    )


# -------------------------------------------------------------------- Boston

BOSTON_FEATURES = ["crim", "zn", "indus", "chas", "nox", "rm", "age", "dis",
                   "rad", "tax", "ptratio", "b", "lstat"]


def load_boston(data_dir=None, cache_dir=None, *, test_split=0.2, seed=113):
    """Boston housing; the split is keras.datasets.boston_housing's."""
    from loop.datasets import models

    local = sources.local_copy(sources.SOURCES["boston-housing/csv"], data_dir)
    if local is not None:
        import pandas as pd

        frame = pd.read_csv(local)
        x = frame[BOSTON_FEATURES].to_numpy(np.float64)
        y = frame["medv"].to_numpy(np.float64)
        where = local
    else:
        where = sources.fetch(sources.SOURCES["boston-housing/npz"], data_dir)
        with np.load(where, allow_pickle=False) as f:
            x, y = f["x"], f["y"]
        where = f"Keras cache {where}"
    # The same shuffle as keras.datasets.boston_housing.load_data.
    indices = np.arange(len(x))
    np.random.RandomState(seed).shuffle(indices)
    x, y = x[indices], y[indices]
    n_train = int(len(x) * (1 - test_split))
    x_train, x_test = standardize(x[:n_train].astype(np.float32),
                                  x[n_train:].astype(np.float32))
    return Dataset(
        name="boston", x_train=x_train,
        y_train=y[:n_train].astype(np.float32), x_test=x_test,
        y_test=y[n_train:].astype(np.float32), source=where,
        info=f"{len(x)} tracts x 13 features; target medv (median value, "
             f"$1000s) as float32. Split as keras.datasets.boston_housing "
             f"(test_split={test_split}, seed={seed}); features standardized "
             "with training-split statistics.",
        models={"mlp": models.mlp_regressor}, default_model="mlp",
        batch_size=16, **_REGRESS,
    )
