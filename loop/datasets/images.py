"""The image datasets' loaders: MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100.

This module owns reading their original formats (gzipped IDX files, Keras'
``mnist.npz``, the CIFAR python batches) and their pixel preprocessing
(scaling to [0, 1], exact per-channel standardization). The text, audio and
tabular loaders and the helpers they share with these are in
`loop.datasets.loaders`.
"""

from __future__ import annotations

import gzip
import os

import numpy as np

from loop.datasets import sources
from loop.datasets.dataset import Dataset
from loop.datasets.loaders import CLASSIFY, int_labels


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


def normalize(images, mean, std):
    """``(images - mean) * (1 / std)`` in float32: CIFAR's pixel preprocessing (standardized, or scaled to [0, 1]).

    The streamed CIFAR copies (`loop.datasets.streaming.ImageDecoder`) decode
    each record with this same function, so their values equal the in-memory
    loader's.

    Args:
        images: an array of images (any numeric dtype), channels last.
        mean: the per-channel mean (or a scalar), subtracted first.
        std: the per-channel standard deviation (or a scalar); the result is multiplied by ``1 / std``.

    Returns:
        A new float32 array of the images' shape.
    """
    out = images.astype(np.float32)
    out -= np.asarray(mean, np.float32)
    out *= np.float32(1) / np.asarray(std, np.float32)
    return out


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
        x_train=scale(x_train), y_train=int_labels(y_train),
        x_test=scale(x_test), y_test=int_labels(y_test),
        num_classes=10, source=source,
        info=f"{len(x_train):,} train / {len(x_test):,} test 28x28x1 images "
             "scaled to [0, 1] float32 (official split).",
        models={"cnn": builder}, default_model="cnn", batch_size=128,
        **CLASSIFY,
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
        x_train = normalize(x_train, mean, std)
        x_test = normalize(x_test, mean, std)
        how = "standardized per channel with training-split mean/std"
    else:
        x_train = normalize(x_train, 0.0, 255.0)
        x_test = normalize(x_test, 0.0, 255.0)
        how = "scaled to [0, 1]"
    return Dataset(
        name=name,
        x_train=x_train, y_train=int_labels(y_train),
        x_test=x_test, y_test=int_labels(y_test),
        num_classes=num_classes, source=f"{archive} (sha256 {digest[:12]}...)",
        info=f"{len(x_train):,} train / {len(x_test):,} test 32x32x3 images, "
             f"float32 {how} (official split).",
        models=models.cifar_models(), default_model="resnet20", batch_size=128,
        **CLASSIFY,
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
