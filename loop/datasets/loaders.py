"""One loader per text, audio or tabular dataset, and the helpers all loaders share.

Each loader takes ``data_dir`` and ``cache_dir`` (already resolved by
`loop.datasets.load`) plus its own keyword options, and returns a `Dataset`.
This module owns Sentiment140 (CSV reading, tokenization, the cache of its
arrays), the music-genre CSV, wine, iris, spirals and Boston housing, plus the
shared preprocessing: task presets, integer labels, standardization and the
stratified split. The image loaders are in `loop.datasets.images`; file
lookup, hashes and downloads belong to `loop.datasets.sources`.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from loop.datasets import sources
from loop.datasets.dataset import Dataset
from loop.datasets.spirals import make_spirals

# Dataset fields every classification / regression dataset shares.
CLASSIFY = dict(
    task="classification", loss="sparse_categorical_crossentropy",
    metrics=["accuracy"], target_metric="val_accuracy",
)
REGRESS = dict(
    task="regression", loss="mse", metrics=["mae"], target_metric="val_mae",
    num_classes=1,
)


# -------------------------------------------------------------------- helpers


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


def stratified_split(x, y, test_size, seed):
    """Seeded stratified train/test split (scikit-learn)."""
    from sklearn.model_selection import train_test_split

    return train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=y, shuffle=True
    )


def int_labels(y):
    """Class ids as a flat int32 array."""
    return np.asarray(y).astype(np.int32).reshape(-1)


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
        **CLASSIFY,
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
        np.asarray(x, np.float32), int_labels(y), test_size, seed
    )
    x_train, x_test = standardize(x_train, x_test)
    return Dataset(
        name=name, x_train=x_train, y_train=y_train, x_test=x_test,
        y_test=y_test, num_classes=len(class_names), source=source,
        info=f"{info} Seeded stratified split (test_size={test_size}, "
             f"seed={seed}); features standardized with training-split "
             "statistics.",
        models={"mlp": models.mlp}, default_model="mlp", batch_size=batch_size,
        class_names=tuple(class_names), **CLASSIFY,
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
        class_names=tuple(f"arm {i}" for i in range(n_arms)), **CLASSIFY,
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
        batch_size=16, **REGRESS,
    )
