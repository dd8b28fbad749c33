"""Benchmark-ready datasets of the original experiments, with reference models.

    from loop import datasets
    ds = datasets.load("fashion_mnist")
    ds.x_train, ds.y_train, ds.x_test, ds.y_test, ds.num_classes, ds.task
    model = ds.model()              # fresh, uncompiled reference model
    datasets.available()            # pandas DataFrame of every dataset
    ds = datasets.validation_split(ds)   # x_val, y_val held out of the training set

    ds = datasets.load("cifar10", streaming=True)   # random-access sources
    Loop(ds.model(), ...).fit(ds.train, validation_data=ds.test, epochs=5)

This package owns the public entry points (`load`, `available`) and the
registry of names; `sources` owns files, hashes, downloads and caches;
`images` (MNIST, Fashion-MNIST, CIFAR) and `loaders` (the other datasets)
own reading and preprocessing; `models` owns reference models; `streaming`
owns ``load(..., streaming=True)``: tfds ArrayRecord copies and the memmap
cache; `splits` owns the validation split held out of the training set
(`validation_split`, sizes in ``VALIDATION_SIZES``) and label-noise variants
(`with_label_noise`).

Offline use: pass ``data_dir=`` to `load` or set ``$LOOP_DATA_DIR`` to a
directory holding the original files in this layout::

    <data_dir>/
      mnist/          train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz
                      t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz
      fashion-mnist/  (the same four IDX .gz names)
      cifar-10/       cifar-10-python.tar.gz
      cifar-100/      cifar-100-python.tar.gz
      sentiment140/   training.1600000.processed.noemoticon.csv  (full file)
                      or training.1600000.processed.noemoticon.head9999_tail10001.csv
                      testdata.manual.2009.06.14.csv
      music-genre/    data.csv
      boston-housing/ BostonHousing.csv

Every local file is checked against its known sha256 and refused on a
mismatch. Without a local copy a file comes from the Keras cache
(``$KERAS_HOME/datasets``, the files `keras.datasets` uses) or is downloaded
there with `keras.utils.get_file`. Preprocessed arrays that are slow to build
(Sentiment140 tokens) and extracted archives are cached under ``cache_dir``
(argument, ``$LOOP_CACHE_DIR``, default ``$KERAS_HOME/loop-cache``).
"""

from __future__ import annotations

import difflib
import inspect
import os

from loop.datasets import images, loaders, sources
from loop.datasets import streaming as _streaming
from loop.datasets.dataset import Benchmark, Dataset, StreamingDataset
from loop.datasets.sources import (
    CacheCorruptedError,
    ChecksumError,
    DatasetNotFoundError,
)
from loop.datasets.spirals import make_spirals
from loop.datasets.splits import VALIDATION_SIZES, validation_split, with_label_noise

__all__ = [
    "Benchmark",
    "CacheCorruptedError",
    "ChecksumError",
    "Dataset",
    "DatasetNotFoundError",
    "StreamingDataset",
    "VALIDATION_SIZES",
    "available",
    "load",
    "make_spirals",
    "names",
    "validation_split",
    "with_label_noise",
]

# name: (loader, task, classes, train, test, input shape, source keys, origin)
# Source keys name the files `available()` checks; "sklearn"/"generated" need none.
_REGISTRY = {
    "mnist": (images.load_mnist, "classification", 10, 60_000, 10_000,
              (28, 28, 1), ["mnist/train-images", "mnist/train-labels",
                            "mnist/test-images", "mnist/test-labels"],
              ["mnist/npz"]),
    "fashion_mnist": (images.load_fashion_mnist, "classification", 10, 60_000,
                      10_000, (28, 28, 1),
                      ["fashion-mnist/train-images", "fashion-mnist/train-labels",
                       "fashion-mnist/test-images", "fashion-mnist/test-labels"],
                      ["fashion-mnist/train-images", "fashion-mnist/train-labels",
                       "fashion-mnist/test-images", "fashion-mnist/test-labels"]),
    "cifar10": (images.load_cifar10, "classification", 10, 50_000, 10_000,
                (32, 32, 3), ["cifar-10"], ["cifar-10"]),
    "cifar100": (images.load_cifar100, "classification", 100, 50_000, 10_000,
                 (32, 32, 3), ["cifar-100"], ["cifar-100"]),
    "sentiment140": (loaders.load_sentiment140, "classification", 2, 20_000, 359,
                     (48,), ["sentiment140/train-slice", "sentiment140/test"],
                     ["sentiment140/zip"]),
    "music_genre": (loaders.load_music_genre, "classification", 10, 800, 200,
                    (26,), ["music-genre"], ["music-genre"]),
    "wine": (loaders.load_wine, "classification", 3, 142, 36, (13,), "sklearn", None),
    "boston": (loaders.load_boston, "regression", 1, 404, 102, (13,),
               ["boston-housing/csv"], ["boston-housing/npz"]),
    "iris": (loaders.load_iris, "classification", 3, 120, 30, (4,), "sklearn", None),
    "spirals": (loaders.load_spirals, "classification", 2, 1_600, 400, (2,),
                "generated", None),
}

_NOTES = {
    "sentiment140": "train: balanced 20,000-row default (n_train=); full file "
                    "1.6M rows. test: official 498 rows minus 139 neutral",
    "cifar10": "default model resnet20; resnet18, simple_cnn, applications",
    "cifar100": "fine labels; label_mode='coarse' gives 20 classes",
    "boston": "split of keras.datasets.boston_housing (seed 113)",
    "spirals": "n_arms, n_samples, noise, turns, seed are options",
}


def names() -> list[str]:
    """The dataset names `load` accepts."""
    return list(_REGISTRY)


def load(name: str, *, streaming=False, data_dir=None, cache_dir=None,
         **options) -> Dataset | StreamingDataset:
    """Loads a preprocessed dataset with its reference models.

    Args:
        name: one of `names()`; case and "-" vs "_" are ignored.
        streaming: False: a `Dataset` of NumPy arrays in memory. True: a
            `StreamingDataset` whose ``train`` and ``test`` are
            `loop.streaming.RandomAccess` sources of the same preprocessed
            samples, read by index while training
            (``Loop(...).fit(ds.train, validation_data=ds.test)``), for data
            larger than the device. Works for every name: MNIST,
            Fashion-MNIST, CIFAR-10 and CIFAR-100 stream from a tfds
            ArrayRecord copy when one is prepared (records decoded one by
            one, in tfds' order); otherwise, and for the other datasets, the
            in-memory loader runs once and its arrays are cached as ``.npy``
            files under ``cache_dir`` and read as memmaps. ``ds.streamed_from``
            (and ``ds.source``) says which. See `loop.datasets.streaming`.
        data_dir: directory of original files (layout in the module
            docstring); default ``$LOOP_DATA_DIR``; None looks only in the
            Keras cache and downloads.
        cache_dir: where extracted archives and preprocessed arrays are kept;
            default ``$LOOP_CACHE_DIR`` or ``$KERAS_HOME/loop-cache``.
        **options: loader options, e.g. ``seed``, ``test_size``;
            sentiment140: ``n_train``, ``vocab_size``, ``sequence_length``;
            spirals: ``n_samples``, ``n_arms``, ``noise``, ``turns``;
            cifar: ``standardize_images``; cifar100: ``label_mode``.
            With ``streaming=True`` also: ``stream_from`` (``"auto"``,
            ``"tfds"`` or ``"memmap"``), ``tfds_data_dir`` (default
            ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``),
            ``tfds_download`` (let tfds download and prepare an ArrayRecord
            copy; default False) and ``parallel_reads`` (see
            `loop.streaming.RandomAccess`).

    Returns:
        A `Dataset`, or a `StreamingDataset` when ``streaming=True``.

    Raises:
        ValueError: unknown name (the message lists the names), an option the
            dataset does not have, ``streaming`` not a bool, a streaming
            option without ``streaming=True``, or a bad streaming option.
        DatasetNotFoundError: a source file is missing and cannot be
            downloaded; or ``stream_from="tfds"`` and no tfds copy is prepared.
        ChecksumError: a local, cached or downloaded file has the wrong hash.
        CacheCorruptedError: a cached preprocessed file cannot be read.
    """
    key = _canonical(name)
    if not isinstance(streaming, bool):
        raise ValueError(f"streaming must be True or False, got {streaming!r}.")
    loader = _REGISTRY[key][0]
    stream_options = {k: options.pop(k) for k in _streaming.OPTIONS if k in options}
    if stream_options and not streaming:
        raise ValueError(
            f"{' and '.join(sorted(stream_options))} only "
            f"appl{'y' if len(stream_options) > 1 else 'ies'} with streaming=True; "
            "pass streaming=True or drop "
            f"{'them' if len(stream_options) > 1 else 'it'}."
        )
    _check_options(key, loader, options)
    data_dir = sources.resolve_data_dir(data_dir)
    cache_dir = sources.resolve_cache_dir(cache_dir)
    if streaming:
        return _streaming.load(key, loader, data_dir=data_dir, cache_dir=cache_dir,
                               options=options, **stream_options)
    return loader(data_dir=data_dir, cache_dir=cache_dir, **options)


def _check_options(key, loader, options):
    accepted = [p.name for p in inspect.signature(loader).parameters.values()
                if p.name not in ("data_dir", "cache_dir")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        has = f"its options are {', '.join(accepted)}" if accepted else "it has no options"
        raise ValueError(
            f"Unknown option {', '.join(map(repr, unknown))} for dataset {key!r}: "
            f"{has} (with streaming=True also {', '.join(_streaming.OPTIONS)})."
        )


def _canonical(name: str) -> str:
    key = str(name).strip().lower().replace("-", "_")
    key = {"fashion": "fashion_mnist", "cifar_10": "cifar10",
           "cifar_100": "cifar100", "music": "music_genre",
           "boston_housing": "boston"}.get(key, key)
    if key not in _REGISTRY:
        close = difflib.get_close_matches(key, _REGISTRY, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"Unknown dataset {name!r}.{hint} Available: {', '.join(_REGISTRY)}."
        )
    return key


def available(*, data_dir=None):
    """Every dataset: size, task, where it would load from, whether it is local.

    Only checks that files exist (hashes are checked by `load`).

    Returns:
        A pandas DataFrame indexed by name, with columns task, classes,
        train, test, input_shape, loads_from, cached and notes.
    """
    import pandas as pd

    data_dir = sources.resolve_data_dir(data_dir)
    rows = []
    for name, (_, task, classes, n_train, n_test, shape, local, remote) in (
        _REGISTRY.items()
    ):
        loads_from, cached = _where(local, remote, data_dir)
        rows.append(dict(name=name, task=task, classes=classes, train=n_train,
                         test=n_test, input_shape=shape, loads_from=loads_from,
                         cached=cached, notes=_NOTES.get(name, "")))
    return pd.DataFrame(rows).set_index("name")


def _where(local, remote, data_dir):
    if local == "sklearn":
        return "scikit-learn (bundled)", True
    if local == "generated":
        return "generated (seeded)", True
    table = sources.SOURCES
    if data_dir is not None and all(
        os.path.isfile(os.path.join(data_dir, table[k].local_path)) for k in local
    ):
        return os.path.dirname(os.path.join(data_dir, table[local[0]].local_path)), True
    if data_dir is not None and local[0] == "sentiment140/train-slice" and all(
        os.path.isfile(os.path.join(data_dir, table[k].local_path))
        for k in ("sentiment140/train-full", "sentiment140/test")
    ):
        return os.path.join(data_dir, "sentiment140"), True
    paths = [sources.keras_cache_path(table[k]) for k in remote]
    if all(p and os.path.isfile(p) for p in paths):
        return f"Keras cache {os.path.dirname(paths[0])}", True
    origins = [table[k].origin for k in remote if table[k].origin]
    return (f"download {origins[0]}" if origins else "missing"), False

