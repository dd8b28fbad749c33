"""``load(name, streaming=True)``: each dataset as random-access sources, read by index while training.

This module owns the two ways a dataset streams, and the cache files they
keep; `loop.streaming.RandomAccess` owns reading (by index, in threads) and
``Loop.fit`` owns training from it.

* ``"tfds"`` (MNIST, Fashion-MNIST, CIFAR-10, CIFAR-100): a copy that
  tensorflow-datasets prepared as ArrayRecord files, read with
  ``tfds.data_source``; each record is decoded to exactly the in-memory
  loader's preprocessed image (`loop.datasets.images`: float32, / 255, or
  CIFAR's per-channel standardization with the training split's exact mean
  and std).  The records are in tfds' order (tfds shuffles them when it
  prepares the copy), not the order of the original files.  The labels
  (int32, read without decoding the images) and CIFAR's channel statistics
  (one pass over the training images, held as uint8: 150 MB for CIFAR) are
  read once and cached under ``cache_dir``, keyed by the prepared files.
* ``"memmap"`` (every dataset, offline): the in-memory loader runs once, its
  arrays are written as ``.npy`` files to ``<cache_dir>/streaming/`` (into a
  temporary directory renamed into place, so a crash never leaves a partial
  copy), and the inputs are read from ``np.load(..., mmap_mode="r")``; the
  labels are held in memory.  Later calls with the same name and options reuse
  the files when they are present and have the recorded shapes and dtypes;
  otherwise they are rebuilt.  The sources' files are checked against known
  hashes by the loaders, so name and options determine the contents; delete
  the directory to rebuild it.

``stream_from="auto"`` (the default) takes ``"tfds"`` for the four image
datasets when an ArrayRecord copy is prepared in the tfds data directory
(``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``), when ``tfds_data_dir=``
names a directory, or when ``tfds_download=True`` asks tfds to download and
prepare a copy, and ``"memmap"`` otherwise.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import numbers
import os
import shutil
import tempfile

import numpy as np

from loop.datasets import images, sources
from loop.datasets.dataset import Benchmark, StreamingDataset
from loop.datasets.loaders import CLASSIFY

STREAM_FROM = ("auto", "tfds", "memmap")

#: The options of ``load`` that only apply with ``streaming=True``.
OPTIONS = ("stream_from", "tfds_data_dir", "tfds_download", "parallel_reads")

#: Registry name -> tfds name, for the datasets tfds can prepare as ArrayRecord.
TFDS_NAMES = {"mnist": "mnist", "fashion_mnist": "fashion_mnist",
              "cifar10": "cifar10", "cifar100": "cifar100"}

TFDS_DATA_DIR_ENV = "TFDS_DATA_DIR"

_CACHE_VERSION = 1
_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
# The Benchmark fields the memmap cache records (models are code: see _reference_models).
_FIELDS = tuple(f.name for f in dataclasses.fields(Benchmark) if f.name not in ("models", "extras"))


def load(key, loader, *, data_dir, cache_dir, options, stream_from="auto", tfds_data_dir=None,
         tfds_download=False, parallel_reads=None):
    """The `StreamingDataset` of registry name ``key`` (see the module docstring and `loop.datasets.load`)."""
    from loop import streaming as streaming_lib

    if parallel_reads is None:
        parallel_reads = streaming_lib.DEFAULT_PARALLEL_READS
    via = _choose(key, stream_from, tfds_data_dir, tfds_download, parallel_reads)
    if via == "tfds":
        return _from_tfds(key, loader, options, _tfds_dir(tfds_data_dir), tfds_download, cache_dir, parallel_reads)
    return _from_memmap(key, loader, options, data_dir, cache_dir, parallel_reads)


def _choose(key, stream_from, tfds_data_dir, tfds_download, parallel_reads):
    if not isinstance(stream_from, str) or stream_from not in STREAM_FROM:
        raise ValueError(f"stream_from must be one of {', '.join(map(repr, STREAM_FROM))}, got {stream_from!r}.")
    if not isinstance(tfds_download, bool):
        raise ValueError(f"tfds_download must be True or False, got {tfds_download!r}.")
    if isinstance(parallel_reads, bool) or not isinstance(parallel_reads, numbers.Integral) or parallel_reads < 1:
        raise ValueError(f"parallel_reads must be a positive integer, got {parallel_reads!r}.")
    tfds_options = [k for k, v in (("tfds_data_dir", tfds_data_dir), ("tfds_download", tfds_download)) if v]
    named = f"{' and '.join(tfds_options)} appl{'y' if len(tfds_options) > 1 else 'ies'}"
    if key not in TFDS_NAMES:
        if stream_from == "tfds":
            raise ValueError(f"stream_from='tfds': {key!r} has no tfds ArrayRecord copy; only "
                             f"{', '.join(TFDS_NAMES)} do. Pass stream_from='memmap' (or 'auto').")
        if tfds_options:
            raise ValueError(f"{named} only to {', '.join(TFDS_NAMES)}; {key!r} streams "
                             "from the memmap cache. Drop them.")
        return "memmap"
    if stream_from == "memmap":
        if tfds_options:
            raise ValueError(f"{named} only to stream_from='tfds' or 'auto', not "
                             "'memmap'. Drop them, or pass stream_from='auto'.")
        return "memmap"
    if tfds_data_dir is not None and not tfds_download and not os.path.isdir(_tfds_dir(tfds_data_dir)):
        raise ValueError(f"tfds_data_dir {os.fspath(tfds_data_dir)!r} is not a directory. Pass the directory tfds "
                         "prepared the dataset in, or tfds_download=True to let tfds prepare it there.")
    if stream_from == "tfds" or tfds_download or tfds_data_dir is not None:
        return "tfds"  # asked for by name, download or directory: its absence is an error, not a fallback
    return "tfds" if _tfds_prepared(TFDS_NAMES[key], _tfds_dir(tfds_data_dir)) else "memmap"


# ---------------------------------------------------------------------- tfds


def _tfds_dir(tfds_data_dir):
    """The tfds data directory: the argument, else $TFDS_DATA_DIR, else tfds' default ~/tensorflow_datasets."""
    path = tfds_data_dir or os.environ.get(TFDS_DATA_DIR_ENV) or "~/tensorflow_datasets"
    return os.path.expanduser(os.fspath(path))


def _tfds_prepared(tfds_name, tfds_dir):
    """True when ``tfds_dir`` holds a copy of ``tfds_name`` prepared as ArrayRecord."""
    if not os.path.isdir(os.path.join(tfds_dir, tfds_name)):
        return False  # decided without importing tensorflow_datasets
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(tfds_name, data_dir=tfds_dir)
        return bool(builder.is_prepared()) and (
            tfds.core.FileFormat.ARRAY_RECORD in builder.info.available_file_formats())
    except Exception:  # an unreadable or foreign directory: not a usable copy
        return False


def _data_source(tfds_name, split, tfds_dir, download, decoders=None):
    import tensorflow_datasets as tfds

    try:
        return tfds.data_source(tfds_name, split=split, data_dir=tfds_dir, download=download, decoders=decoders,
                                builder_kwargs={"file_format": "array_record"})
    except Exception as e:
        fix = ("check the network, or prepare it elsewhere and copy it there" if download else
               "pass tfds_download=True to let tfds download and prepare it, or prepare it with "
               f"`tfds build {tfds_name} --data_dir={tfds_dir} --file_format=array_record`, or pass "
               "stream_from='memmap' to stream from the loop cache instead")
        raise sources.DatasetNotFoundError(
            f"No tfds ArrayRecord copy of {tfds_name!r} ({split}) in {tfds_dir} ({type(e).__name__}: {e}). "
            f"To fix: {fix}.") from e


def _label_keys(tfds_name):
    return ("label", "coarse_label") if tfds_name == "cifar100" else ("label",)


def _from_tfds(key, loader, options, tfds_dir, download, cache_dir, parallel_reads):
    from loop.streaming import RandomAccess

    options = _bind(loader, options)
    label_mode = options.get("label_mode", "fine")
    if label_mode not in ("fine", "coarse"):
        raise ValueError(f"label_mode must be 'fine' or 'coarse', got {label_mode!r}.")
    standardize = bool(options.get("standardize_images", False))
    tfds_name = TFDS_NAMES[key]
    label_key = "coarse_label" if label_mode == "coarse" else "label"
    cifar = key.startswith("cifar")
    splits, tables = {}, {}
    for split in ("train", "test"):
        splits[split] = _data_source(tfds_name, split, tfds_dir, download)
        tables[split] = _tables(tfds_name, split, splits[split], tfds_dir, download, cache_dir,
                                stats=cifar and standardize and split == "train")
    if cifar and standardize:
        decode = ImageDecoder(tables["train"]["channel_mean"], tables["train"]["channel_std"])
        how = "standardized per channel with training-split mean/std"
    elif cifar:
        decode = ImageDecoder(0.0, 255.0)
        how = "scaled to [0, 1]"
    else:
        decode = ImageDecoder(None, 255.0)
        how = "scaled to [0, 1]"
    train, test = (RandomAccess(splits[s], tables[s][label_key], decode=decode, parallel_reads=parallel_reads)
                   for s in ("train", "test"))
    info_tfds = splits["train"].dataset_info
    shape = "x".join(map(str, train.x_spec.shape[1:]))
    names = info_tfds.features[label_key].names
    num_classes = {"cifar100": 100 if label_mode == "fine" else 20}.get(key, 10)
    models = _reference_models(key)
    return StreamingDataset(
        name=key, train=train, test=test, num_classes=num_classes, streamed_from="tfds",
        source=f"tfds.data_source({tfds_name!r}) ArrayRecord files in {info_tfds.data_dir}",
        info=f"{len(train):,} train / {len(test):,} test {shape} images, float32 {how} (official split), "
             f"decoded per record from tfds' ArrayRecord copy (tfds {info_tfds.version}; tfds' record order).",
        models=models, default_model=next(iter(models)), batch_size=128,
        class_names=tuple(names) if names else None, **CLASSIFY,
    )


@dataclasses.dataclass(frozen=True)
class ImageDecoder:
    """A tfds image record -> the in-memory loader's preprocessed image.

    ``mean=None``: ``image.astype(float32) / float32(std)`` (MNIST's scaling);
    otherwise `loop.datasets.images.normalize(image, mean, std)` (CIFAR's).
    The operations are those of `loop.datasets.images`, so the values are equal.
    """

    mean: object
    std: object

    def __call__(self, record):
        image = np.asarray(record["image"])
        if self.mean is None:
            return image.astype(np.float32) / np.float32(self.std)
        return images.normalize(image, self.mean, self.std)


def _tables(tfds_name, split, source, tfds_dir, download, cache_dir, *, stats):
    """Every label of a split (int32, one array per label key) and, for ``stats``, the exact channel mean/std.

    Read once (labels without decoding the images, unless the statistics need
    them) and cached in ``cache_dir`` when the prepared files can be fingerprinted.
    """
    keys = [*_label_keys(tfds_name), *(("channel_mean", "channel_std") if stats else ())]
    folder = _tfds_cache_folder(source.dataset_info, cache_dir)
    path = folder and os.path.join(folder, f"{split}.npz")
    if path and os.path.isfile(path):
        try:
            tables = sources.load_npz(path, keys)
            if all(len(tables[k]) == len(source) for k in _label_keys(tfds_name)):
                return tables
        except (sources.CacheCorruptedError, KeyError):
            pass  # rebuilt below
    reader = source if stats else _data_source(tfds_name, split, tfds_dir, download,
                                               decoders={"image": _skip_decoding()})
    tables = {k: np.empty(len(source), np.int32) for k in _label_keys(tfds_name)}
    pixels = np.empty((len(source), *source.dataset_info.features["image"].shape), np.uint8) if stats else None
    for start in range(0, len(source), 1024):
        indices = list(range(start, min(start + 1024, len(source))))
        records = _records(reader, indices)
        for k in _label_keys(tfds_name):
            tables[k][start:start + len(records)] = [int(np.asarray(r[k])) for r in records]
        if stats:
            pixels[start:start + len(records)] = np.stack([np.asarray(r["image"]) for r in records])
    if stats:
        tables["channel_mean"], tables["channel_std"] = images.channel_stats(pixels)
    if path:
        sources.save_npz_atomic(path, **tables)
    return tables


def _skip_decoding():
    import tensorflow_datasets as tfds

    return tfds.decode.SkipDecoding()


def _records(source, indices):
    getitems = getattr(source, "__getitems__", None)
    return list(getitems(indices)) if getitems is not None else [source[i] for i in indices]


def _tfds_cache_folder(info, cache_dir):
    """``<cache_dir>/streaming/tfds-<name>-<version>-<fingerprint>``, or None when the files cannot be listed."""
    data_dir = os.fspath(info.data_dir)
    if not os.path.isdir(data_dir):
        return None
    files = sorted(os.listdir(data_dir))
    fingerprint = [data_dir]
    for name in files:
        stat = os.stat(os.path.join(data_dir, name))
        fingerprint.append((name, stat.st_size, stat.st_mtime_ns))
    if not any(".array_record" in name for name in files):
        return None
    digest = hashlib.sha256(json.dumps(fingerprint).encode()).hexdigest()[:16]
    return os.path.join(cache_dir, "streaming", f"tfds-{info.name}-{info.version}-{digest}")


# -------------------------------------------------------------------- memmap


def _from_memmap(key, loader, options, data_dir, cache_dir, parallel_reads):
    from loop.streaming import RandomAccess

    options = _bind(loader, options)
    digest = hashlib.sha256(json.dumps({"name": key, "options": options, "version": _CACHE_VERSION},
                                       sort_keys=True, default=repr).encode()).hexdigest()[:16]
    folder = os.path.join(cache_dir, "streaming", f"{key}-{digest}")
    models = _reference_models(key)
    cached = _read_memmap_cache(folder, models)
    if cached is None:
        dataset = loader(data_dir=data_dir, cache_dir=cache_dir, **options)
        _write_memmap_cache(folder, dataset, options)
        cached = _read_memmap_cache(folder, dataset.models)
        if cached is None:
            raise sources.CacheCorruptedError(f"The memmap cache {folder} just written cannot be read back.")
        models = dataset.models
    arrays, meta, extras = cached
    fields = dict(meta["fields"])
    fields["class_names"] = tuple(fields["class_names"]) if fields["class_names"] is not None else None
    fields.update(
        source=f"memmap cache {folder} (built from {fields['source']})",
        info=f"{fields['info']} Streamed from .npy memmaps in the loop cache.",
    )
    return StreamingDataset(
        train=RandomAccess(arrays["x_train"], arrays["y_train"], parallel_reads=parallel_reads),
        test=RandomAccess(arrays["x_test"], arrays["y_test"], parallel_reads=parallel_reads),
        models=models, extras=extras, streamed_from="memmap", **fields,
    )


def _write_memmap_cache(folder, dataset, options):
    """The arrays as .npy files and ``meta.json``, written to a temporary directory and renamed to ``folder``."""
    root = os.path.dirname(folder)
    os.makedirs(root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(folder)}-", dir=root)
    try:
        meta = {"version": _CACHE_VERSION, "name": dataset.name,
                "options": json.loads(json.dumps(options, default=repr)),
                "arrays": {}, "extras": {}, "extra_arrays": [],
                "fields": {f: getattr(dataset, f) for f in _FIELDS}, "model_names": list(dataset.models)}
        meta["fields"]["class_names"] = (None if dataset.class_names is None
                                         else [str(c) for c in dataset.class_names])
        for name in _ARRAYS:
            array = np.ascontiguousarray(getattr(dataset, name))
            np.save(os.path.join(tmp, f"{name}.npy"), array, allow_pickle=False)
            meta["arrays"][name] = {"shape": list(array.shape), "dtype": array.dtype.str}
        for name, value in dataset.extras.items():
            if isinstance(value, np.ndarray):
                np.save(os.path.join(tmp, f"extra-{name}.npy"), value, allow_pickle=False)
                meta["extra_arrays"].append(name)
            else:
                meta["extras"][name] = value
        with open(os.path.join(tmp, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1, default=_json_scalar)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private.
        if os.path.isdir(folder):
            if _read_memmap_cache(folder, dataset.models) is not None:
                return  # another process wrote it meanwhile: keep that copy (it may be in use)
            shutil.rmtree(folder, ignore_errors=True)  # unreadable or of the wrong shape: replaced
        try:
            os.replace(tmp, folder)
        except OSError:  # another process wrote it meanwhile
            if not os.path.isfile(os.path.join(folder, "meta.json")):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _json_scalar(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _read_memmap_cache(folder, models):
    """``(arrays, meta, extras)`` of a complete cache whose arrays have the recorded shapes, else None."""
    try:
        with open(os.path.join(folder, "meta.json")) as f:
            meta = json.load(f)
        if meta.get("version") != _CACHE_VERSION or meta.get("model_names") != list(models):
            return None
        arrays = {}
        for name in _ARRAYS:
            mode = "r" if name.startswith("x_") else None  # labels in memory, inputs read from the file
            array = np.load(os.path.join(folder, f"{name}.npy"), mmap_mode=mode, allow_pickle=False)
            expected = meta["arrays"][name]
            if list(array.shape) != expected["shape"] or array.dtype.str != expected["dtype"]:
                return None
            arrays[name] = array
        for split in ("train", "test"):
            if len(arrays[f"x_{split}"]) != len(arrays[f"y_{split}"]) or not len(arrays[f"x_{split}"]):
                return None
        extras = dict(meta["extras"])
        for name in meta["extra_arrays"]:
            extras[name] = np.load(os.path.join(folder, f"extra-{name}.npy"), allow_pickle=False)
        return arrays, meta, extras
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return None


# ------------------------------------------------------------------- shared


def _bind(loader, options):
    """The loader's options with its defaults filled in (so equal settings give one cache key)."""
    bound = inspect.signature(loader).bind_partial(**options)
    bound.apply_defaults()
    return {k: v for k, v in bound.arguments.items() if k not in ("data_dir", "cache_dir")}


def _reference_models(key):
    """The reference models the in-memory loader gives ``key``, without running it.

    For the paths that do not run the loader (tfds, and a reused memmap cache);
    tests/datasets/test_datasets_streaming.py checks them against the loaders.
    """
    from loop.datasets import models

    if key in ("cifar10", "cifar100"):
        return models.cifar_models()
    return {
        "mnist": {"cnn": models.mnist_cnn},
        "fashion_mnist": {"cnn": models.fashion_mnist_cnn},
        "sentiment140": {"lstm": models.sentiment_lstm},
        "music_genre": {"mlp": models.mlp},
        "wine": {"mlp": models.mlp},
        "iris": {"mlp": models.mlp},
        "spirals": {"mlp": models.mlp},
        "boston": {"mlp": models.mlp_regressor},
    }[key]
