"""Validation splits held out of the training set, and label-noise variants of a training set.

In a benchmark the test set chooses nothing: targets, early stops, learning
rates and tuning read a validation split, and the test metric is only
reported.  :func:`validation_split` holds that split out of the TRAINING set:

* fixed: ``sklearn.model_selection.train_test_split`` with a constant seed
  (default 0), so every seed and every selector sees the same split;
* stratified by class for classification (the class shares of the
  validation rows match the training set's), unstratified for regression;
* sized per dataset (:data:`VALIDATION_SIZES`): 10,000 rows for MNIST and
  Fashion-MNIST (the size of their test sets), 5,000 for CIFAR-10 and
  CIFAR-100 (10% of the training set, the usual choice), 20% for the small
  datasets, 10% for Sentiment140 (2,000 of the default 20,000 balanced rows,
  against a test set of only 359);
* both parts keep the rows in their original order.

:func:`with_label_noise` replaces a fraction of the TRAINING labels, after the
split, so validation and test labels stay clean.

This module owns the split and the noise; the records they return are the
:mod:`loop.datasets.dataset` ones, with the validation rows in ``x_val`` and
``y_val`` (``val`` for a :class:`StreamingDataset`).
"""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np

from loop.datasets.dataset import Dataset, StreamingDataset

#: The documented validation size of each dataset: rows (int) or a fraction of the training set (float).
VALIDATION_SIZES = {
    "mnist": 10_000, "fashion_mnist": 10_000, "cifar10": 5_000, "cifar100": 5_000, "sentiment140": 0.1,
    "spirals": 0.2, "iris": 0.2, "wine": 0.2, "boston": 0.2, "music_genre": 0.2,
}

#: The seed of every validation split unless one is given.
VALIDATION_SEED = 0


def validation_rows(labels, size, *, seed=VALIDATION_SEED, stratify=True):
    """The training rows kept for training and those held out for validation.

    Args:
        labels: every training sample's label (class ids, one-hot rows, or
            regression targets).
        size: rows to hold out (int >= 1) or a fraction in (0, 1).
        seed: the split's seed (``random_state`` of ``train_test_split``).
        stratify: keep the class shares (classification labels only).

    Returns:
        ``(train_rows, val_rows)``: sorted int64 index arrays that partition
        ``range(len(labels))``.

    Raises:
        ValueError: ``size`` not a positive int below the number of rows nor a
            fraction in (0, 1), or too small to hold one row of every class
            when stratified, naming the value.
    """
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    n = len(labels)
    bad_int = isinstance(size, numbers.Integral) and not isinstance(size, bool) and not 1 <= size < n
    bad_float = isinstance(size, float) and not 0.0 < size < 1.0
    if isinstance(size, bool) or not isinstance(size, (numbers.Integral, float)) or bad_int or bad_float:
        raise ValueError(f"validation size {size!r} is not usable for {n} training rows: give a number of rows in "
                         f"[1, {n - 1}] or a fraction in (0, 1), e.g. 0.2")
    classes = None
    if stratify:
        classes = labels.argmax(axis=-1) if labels.ndim > 1 and labels.shape[-1] > 1 else labels.reshape(n)
    try:
        train_rows, val_rows = train_test_split(np.arange(n), test_size=size, random_state=seed, shuffle=True,
                                                stratify=classes)
    except ValueError as err:
        raise ValueError(f"cannot hold out a stratified validation split of size {size!r} from {n} rows: {err}; "
                         "give a larger size or stratify=False") from None
    return np.sort(train_rows).astype(np.int64), np.sort(val_rows).astype(np.int64)


def default_validation_size(name):
    """The documented validation size of dataset ``name`` (:data:`VALIDATION_SIZES`).

    Raises:
        ValueError: a dataset without a documented size, naming the known ones.
    """
    if name not in VALIDATION_SIZES:
        raise ValueError(f"dataset {name!r} has no documented validation size; pass size=... (rows or a fraction) "
                         f"or use one of {', '.join(VALIDATION_SIZES)}")
    return VALIDATION_SIZES[name]


def validation_split(ds, size=None, *, seed=VALIDATION_SEED):
    """The dataset with a validation split held out of its training set.

    ::

        ds = loop.datasets.validation_split(loop.datasets.load("mnist"))
        ds.x_train.shape, ds.x_val.shape          # (50000, 28, 28, 1), (10000, 28, 28, 1)
        Loop(ds.model(), ...).fit(ds.x_train, ds.y_train, validation_data=(ds.x_val, ds.y_val),
                                  extra_evaluations={"test": (ds.x_test, ds.y_test)}, epochs=5)

    The split is fixed by ``seed`` (not by a run's seed), stratified by class
    for classification, and both parts keep the original row order.  The test
    set is untouched.  ``ds.extras["validation"]`` records the size, seed,
    stratification and the held-out rows (indices into the original training
    set).

    Args:
        ds: a :class:`Dataset` or :class:`StreamingDataset` from
            ``loop.datasets.load`` without a validation split yet.
        size: rows (int) or a fraction of the training set (float in (0, 1));
            None for the dataset's documented size (:data:`VALIDATION_SIZES`).
        seed: the split's seed; the default 0 is the benchmark's.

    Returns:
        A new record of the same type: a :class:`Dataset` whose ``x_train`` and
        ``y_train`` lost the rows now in ``x_val`` and ``y_val``; or a
        :class:`StreamingDataset` whose ``train`` and ``val`` are
        :class:`loop.RandomAccess` views selecting rows of the original
        training source by index (nothing is copied).

    Raises:
        ValueError: ``ds`` is not a dataset record or already has a
            validation split, or a bad ``size`` (see :func:`validation_rows`).
    """
    if not isinstance(ds, (Dataset, StreamingDataset)):
        raise ValueError(f"validation_split needs a Dataset or StreamingDataset from loop.datasets.load, got "
                         f"{type(ds).__name__}")
    if "validation" in ds.extras:
        raise ValueError(f"{ds.name}: the dataset already has a validation split "
                         f"({ds.extras['validation']['size']} rows); split the original dataset once")
    size = default_validation_size(ds.name) if size is None else size
    labels = ds.y_train if isinstance(ds, Dataset) else ds.train.labels
    stratify = ds.task == "classification"
    train_rows, val_rows = validation_rows(labels, size, seed=seed, stratify=stratify)
    record = {"size": int(len(val_rows)), "requested": size, "seed": seed, "stratified": stratify,
              "rows": val_rows}
    extras = {**ds.extras, "validation": record}
    info = (f"{ds.info} Validation: {len(val_rows):,} rows held out of the training set "
            f"({'stratified, ' if stratify else ''}seed {seed}); {len(train_rows):,} train.")
    if isinstance(ds, Dataset):
        return dataclasses.replace(ds, x_train=ds.x_train[train_rows], y_train=ds.y_train[train_rows],
                                   x_val=ds.x_train[val_rows], y_val=ds.y_train[val_rows], info=info, extras=extras)
    return dataclasses.replace(ds, train=rows_of(ds.train, train_rows), val=rows_of(ds.train, val_rows), info=info,
                               extras=extras)


class _Rows:
    """Rows ``rows`` of a :class:`loop.RandomAccess`, as a random-access source of inputs (read a batch at a time)."""

    def __init__(self, source, rows):
        self.source, self.rows = source, np.asarray(rows, np.int64)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.__getitems__([i])[0]

    def __getitems__(self, indices):
        import tensorflow as tf

        x, _ = self.source.take(self.rows[np.asarray(indices, np.int64)])
        return [tf.nest.map_structure(lambda leaf, k=k: leaf[k], x) for k in range(len(indices))]


def rows_of(source, rows):
    """A :class:`loop.RandomAccess` over rows ``rows`` of ``source`` (a ``RandomAccess``), read through it by index.

    Raises:
        ValueError: ``rows`` empty or out of range.
    """
    from loop.streaming import RandomAccess

    rows = np.asarray(rows, np.int64).reshape(-1)
    if rows.size == 0 or rows.min() < 0 or rows.max() >= len(source):
        raise ValueError(f"rows must be a non-empty set of indices in [0, {len(source)}), got {rows.size} rows")
    return RandomAccess(_Rows(source, rows), source.labels[rows], parallel_reads=source.parallel_reads)


def with_label_noise(ds, fraction, *, seed=0):
    """The dataset with a fraction of its TRAINING labels replaced uniformly at random.

    Exactly ``round(fraction * n_train)`` training rows, drawn without
    replacement, get a label drawn uniformly from all ``num_classes`` classes,
    so a replaced label equals the original with probability
    ``1 / num_classes``: the expected share of wrong labels is
    ``fraction * (1 - 1 / num_classes)`` (18% for 20% on 10 classes).  The
    validation labels (``y_val``, apply this after :func:`validation_split`)
    and test labels stay clean.  ``ds.extras["label_noise"]`` records the
    fraction, seed, the replaced rows and how many labels actually changed.

    Args:
        ds: an in-memory classification :class:`Dataset` with int class ids.
        fraction: the share of training rows whose label is redrawn, in [0, 1].
        seed: the noise's own seed (fixed: the same for every run's seed).

    Returns:
        A new :class:`Dataset`.

    Raises:
        ValueError: a regression or streaming dataset, a fraction outside
            [0, 1], or a dataset that already has label noise.
    """
    if not isinstance(ds, Dataset):
        raise ValueError(f"with_label_noise needs an in-memory Dataset, got {type(ds).__name__}; load it with "
                         "streaming=False")
    if ds.task != "classification":
        raise ValueError(f"{ds.name} is a {ds.task} task; label noise replaces class labels, so it needs a "
                         "classification dataset")
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0.0 <= fraction <= 1.0:
        raise ValueError(f"label noise fraction {fraction!r} must be a number in [0, 1], e.g. 0.2")
    if "label_noise" in ds.extras:
        raise ValueError(f"{ds.name} already has label noise ({ds.extras['label_noise']['fraction']}); "
                         "apply it once")
    y = np.asarray(ds.y_train)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ValueError(f"{ds.name}: label noise needs integer class ids of shape (n,), got {y.dtype} {y.shape}")
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(y), size=int(round(fraction * len(y))), replace=False))
    noisy = y.copy()
    noisy[rows] = rng.integers(0, ds.num_classes, size=len(rows)).astype(y.dtype)
    record = {"fraction": float(fraction), "seed": seed, "replaced": int(len(rows)),
              "changed": int(np.sum(noisy != y)), "rows": rows}
    info = (f"{ds.info} Label noise: {len(rows):,} training labels ({fraction:.0%}) redrawn uniformly from all "
            f"{ds.num_classes} classes (seed {seed}), {record['changed']:,} of them changed.")
    return dataclasses.replace(ds, y_train=noisy, info=info, extras={**ds.extras, "label_noise": record})
