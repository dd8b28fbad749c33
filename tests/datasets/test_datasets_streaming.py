"""``load(name, streaming=True)``: tfds ArrayRecord copies, the memmap cache, and grain sources in RandomAccess.

Offline throughout: tfds is mocked (``tfds.testing.mock_data``) or prepares a
tiny copy from files written here; the memmap cache is built from the fixture
files of the other dataset tests; grain reads an ArrayRecord file written here.
"""

import contextlib
import gzip
import os
import shutil

import numpy as np
import pytest

from loop import datasets
from loop.datasets import images, sources
from loop.datasets import streaming as ds_streaming
from loop.streaming import RandomAccess

import helpers as util

tfds = pytest.importorskip("tensorflow_datasets")


@pytest.fixture(autouse=True)
def no_tfds_copies(tmp_path, monkeypatch):
    """An empty tfds data directory, so a copy prepared on this machine is never picked up."""
    path = tmp_path / "tfds-empty"
    path.mkdir()
    monkeypatch.setenv("TFDS_DATA_DIR", str(path))
    return path


def _everything(source):
    return source.take(np.arange(len(source)))


def _same_benchmark(streamed, in_memory):
    for field in ("name", "task", "num_classes", "loss", "metrics", "batch_size", "optimizer",
                  "learning_rate", "target_metric", "default_model", "model_names", "input_shape"):
        assert getattr(streamed, field) == getattr(in_memory, field), field


# ------------------------------------------------------------------ tfds, mocked


@contextlib.contextmanager
def _mocked_tfds(num_examples):
    """``tfds.testing.mock_data`` for ``tfds.data_source``.

    tfds 4.9.10's mock binds the data source's ``__getitems__`` without its
    ``self`` (the call fails with "missing 1 required positional argument"),
    so batches are read one record at a time here.
    """
    from unittest import mock

    from tensorflow_datasets.core.data_sources import base

    with tfds.testing.mock_data(num_examples=num_examples, policy=tfds.testing.MockPolicy.USE_CODE), \
            mock.patch.object(base.BaseDataSource, "__getitems__", lambda self, keys: [self[k] for k in keys]):
        yield


@pytest.mark.parametrize("name,options,shape,classes", [
    ("mnist", {}, (28, 28, 1), 10),
    ("fashion_mnist", {}, (28, 28, 1), 10),
    ("cifar10", {"standardize_images": False}, (32, 32, 3), 10),
    ("cifar100", {"label_mode": "coarse", "standardize_images": False}, (32, 32, 3), 20),
])
def test_tfds_data_source_mocked(name, options, shape, classes):
    with _mocked_tfds(num_examples=12):
        ds = datasets.load(name, streaming=True, stream_from="tfds", **options)
        raw = tfds.data_source(name, split="train", download=False)
        records = [raw[i] for i in range(len(raw))]
        x, y = _everything(ds.train)
    assert isinstance(ds, datasets.StreamingDataset) and ds.streamed_from == "tfds"
    assert "tfds.data_source" in ds.source and "ArrayRecord" in ds.info
    assert isinstance(ds.train, RandomAccess) and isinstance(ds.test, RandomAccess)
    assert len(ds.train) == len(ds.test) == 12
    assert x.shape == (12, *shape) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert y.dtype == np.int32 and 0 <= y.min() and y.max() < classes
    assert ds.input_shape == shape and ds.num_classes == classes and ds.task == "classification"
    label_key = "coarse_label" if options.get("label_mode") == "coarse" else "label"
    np.testing.assert_array_equal(y, [int(r[label_key]) for r in records])
    np.testing.assert_array_equal(ds.train.labels, y)
    pixels = np.stack([r["image"] for r in records])
    if name.startswith("cifar"):  # the in-memory loader's own scaling
        np.testing.assert_array_equal(x, images.normalize(pixels, 0.0, 255.0))
    else:
        np.testing.assert_array_equal(x, (pixels.astype(np.float32) / np.float32(255.0)))


def test_tfds_cifar_standardization_uses_whole_training_split():
    with _mocked_tfds(num_examples=9):
        ds = datasets.load("cifar10", streaming=True, stream_from="tfds")
        raw = tfds.data_source("cifar10", split="train", download=False)
        pixels = np.stack([raw[i]["image"] for i in range(len(raw))])
        train, test = _everything(ds.train)[0], _everything(ds.test)[0]
    mean, std = images.channel_stats(pixels)  # exactly what the in-memory loader computes
    np.testing.assert_array_equal(train, images.normalize(pixels, mean, std))
    np.testing.assert_array_equal(test[:2], images.normalize(pixels[:2], mean, std))  # the mock's splits agree
    assert "standardized per channel" in ds.info
    assert ds.model_names[0] == "resnet20" == ds.default_model


# ------------------------------------------------------- tfds, a prepared copy


@contextlib.contextmanager
def _offline_prepare(builder_cls, downloaded):
    """``download_and_prepare`` with ``download_and_extract`` returning ``downloaded``.

    The builder's checksum table (``url_infos``) is set aside: reading it
    imports ``importlib_resources``, which this environment lacks, and offline
    there is nothing to check.
    """
    from unittest import mock

    had = "url_infos" in builder_cls.__dict__
    saved = builder_cls.__dict__.get("url_infos")
    builder_cls.url_infos = None  # a plain set: getattr would evaluate the class property
    try:
        with mock.patch.object(tfds.download.DownloadManager, "download_and_extract",
                               lambda self, urls: downloaded):
            yield
    finally:
        if had:
            builder_cls.url_infos = saved
        else:
            del builder_cls.url_infos


def _prepare(name, tfds_dir, builder_cls, downloaded):
    with _offline_prepare(builder_cls, downloaded):
        builder = tfds.builder(name, data_dir=str(tfds_dir), file_format="array_record")
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(try_download_gcs=False))


def _prepare_mnist(data_dir, tfds_dir, monkeypatch, tmp_path):
    """A real tfds ArrayRecord copy of the IDX fixture files in data_dir/mnist."""
    from tensorflow_datasets.image_classification import mnist as tfds_mnist

    raw = tmp_path / "tfds-downloads"
    raw.mkdir()
    files = {"train_data": "train-images-idx3-ubyte.gz", "train_labels": "train-labels-idx1-ubyte.gz",
             "test_data": "t10k-images-idx3-ubyte.gz", "test_labels": "t10k-labels-idx1-ubyte.gz"}
    downloaded = {}
    for key, filename in files.items():  # tfds reads them extracted
        downloaded[key] = str(raw / filename[:-3])
        with gzip.open(data_dir / "mnist" / filename) as f:
            (raw / filename[:-3]).write_bytes(f.read())
    monkeypatch.setattr(tfds_mnist, "_TRAIN_EXAMPLES", 20)
    monkeypatch.setattr(tfds_mnist, "_TEST_EXAMPLES", 10)
    _prepare("mnist", tfds_dir, tfds_mnist.MNIST, downloaded)


def _match_rows(streamed, in_memory):
    """For each streamed row, the index of the equal in-memory row (tfds shuffles the records)."""
    where = {row.tobytes(): i for i, row in enumerate(in_memory)}
    assert len(where) == len(in_memory)
    return np.array([where[row.tobytes()] for row in streamed])


def test_tfds_prepared_copy_equals_in_memory_loader(data_dir, no_tfds_copies, monkeypatch, tmp_path):
    util.write_mnist_dir(data_dir, monkeypatch)
    _prepare_mnist(data_dir, no_tfds_copies, monkeypatch, tmp_path)
    in_memory = datasets.load("mnist", data_dir=data_dir)
    ds = datasets.load("mnist", streaming=True)  # auto: finds the copy in $TFDS_DATA_DIR
    assert ds.streamed_from == "tfds" and str(no_tfds_copies) in ds.source
    _same_benchmark(ds, in_memory)
    for split in ("train", "test"):
        x, y = _everything(getattr(ds, split))
        x_mem, y_mem = getattr(in_memory, f"x_{split}"), getattr(in_memory, f"y_{split}")
        order = _match_rows(x, x_mem)
        assert sorted(order) == list(range(len(x_mem)))
        np.testing.assert_array_equal(x, x_mem[order])  # bit for bit
        np.testing.assert_array_equal(y, y_mem[order])
        assert x.dtype == x_mem.dtype and y.dtype == y_mem.dtype == np.int32
    # The labels were read once and cached, keyed by the prepared files.
    cached = list((tmp_path / "loop-cache" / "streaming").glob("tfds-mnist-*/train.npz"))
    assert len(cached) == 1
    again = datasets.load("mnist", streaming=True, tfds_data_dir=no_tfds_copies)
    np.testing.assert_array_equal(again.train.labels, ds.train.labels)
    # stream_from="memmap" ignores the tfds copy.
    assert datasets.load("mnist", streaming=True, stream_from="memmap",
                         data_dir=data_dir).streamed_from == "memmap"


def test_tfds_prepared_cifar10_standardized_equals_in_memory_loader(data_dir, no_tfds_copies, monkeypatch,
                                                                   tmp_path):
    from tensorflow_datasets.image_classification import cifar as tfds_cifar

    archive = data_dir / "cifar-10" / "cifar-10-python.tar.gz"
    util.write_cifar10(archive)
    util.trust(monkeypatch, "cifar-10", archive)
    in_memory = datasets.load("cifar10", data_dir=data_dir)
    scaled = datasets.load("cifar10", data_dir=data_dir, standardize_images=False)
    # The same images and labels in CIFAR's binary format, which tfds prepares from.
    folder = tmp_path / "tfds-downloads" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)

    def records(x, y):
        pixels = np.rint(x * 255).astype(np.uint8).transpose(0, 3, 1, 2).reshape(len(x), -1)
        return b"".join(bytes([int(label)]) + row.tobytes() for row, label in zip(pixels, y))

    for i in range(5):
        rows = slice(4 * i, 4 * i + 4)
        (folder / f"data_batch_{i + 1}.bin").write_bytes(records(scaled.x_train[rows], scaled.y_train[rows]))
    (folder / "test_batch.bin").write_bytes(records(scaled.x_test, scaled.y_test))
    (folder / "batches.meta.txt").write_text("\n".join(f"c{i}" for i in range(10)) + "\n")
    _prepare("cifar10", no_tfds_copies, tfds_cifar.Cifar10, str(folder.parent))

    ds = datasets.load("cifar10", streaming=True)
    assert ds.streamed_from == "tfds" and ds.class_names == tuple(f"c{i}" for i in range(10))
    for split in ("train", "test"):
        x, y = _everything(getattr(ds, split))
        order = _match_rows(x, getattr(in_memory, f"x_{split}"))
        np.testing.assert_array_equal(x, getattr(in_memory, f"x_{split}")[order])
        np.testing.assert_array_equal(y, getattr(in_memory, f"y_{split}")[order])
    plain = datasets.load("cifar10", streaming=True, standardize_images=False)
    x = _everything(plain.train)[0]
    np.testing.assert_array_equal(x, scaled.x_train[_match_rows(x, scaled.x_train)])


def test_tfds_missing_copy_is_reported(no_tfds_copies):
    with pytest.raises(sources.DatasetNotFoundError, match="tfds_download=True"):
        datasets.load("mnist", streaming=True, stream_from="tfds")
    assert not (no_tfds_copies / "downloads").exists()  # nothing was downloaded


# ------------------------------------------------------------ the memmap cache


def _fixture(name, data_dir, monkeypatch):
    """Writes name's fixture files (as the loader tests do); returns load() options."""
    if name in ("mnist", "fashion_mnist"):
        util.write_mnist_dir(data_dir, monkeypatch, "mnist" if name == "mnist" else "fashion-mnist")
    elif name == "cifar10":
        archive = data_dir / "cifar-10" / "cifar-10-python.tar.gz"
        util.write_cifar10(archive)
        util.trust(monkeypatch, "cifar-10", archive)
    elif name == "cifar100":
        archive = data_dir / "cifar-100" / "cifar-100-python.tar.gz"
        util.write_cifar100(archive)
        util.trust(monkeypatch, "cifar-100", archive)
    elif name == "sentiment140":
        train, test = util.write_sentiment(data_dir)
        util.trust(monkeypatch, "sentiment140/train-slice", train)
        util.trust(monkeypatch, "sentiment140/test", test)
        return {"vocab_size": 50}
    elif name == "music_genre":
        path = data_dir / "music-genre" / "data.csv"
        path.parent.mkdir()
        path.write_text(util.music_csv_text(n_per_genre=10))
        util.trust(monkeypatch, "music-genre", path)
    elif name == "boston":
        path = util.write_boston_csv(data_dir / "boston-housing" / "BostonHousing.csv")
        util.trust(monkeypatch, "boston-housing/csv", path)
    return {}


@pytest.mark.parametrize("name", ["mnist", "cifar10", "boston", "spirals"])
def test_memmap_fallback_equals_in_memory_loader(name, data_dir, monkeypatch, tmp_path):
    options = _fixture(name, data_dir, monkeypatch)
    ds = datasets.load(name, streaming=True, data_dir=data_dir, **options)
    in_memory = datasets.load(name, data_dir=data_dir, **options)
    assert ds.streamed_from == "memmap" and ds.source.startswith("memmap cache ")
    assert in_memory.source in ds.source and "memmaps" in ds.info
    _same_benchmark(ds, in_memory)
    for split in ("train", "test"):
        source = getattr(ds, split)
        assert isinstance(source.x, np.memmap)  # read from the file, not held in memory
        x, y = _everything(source)
        np.testing.assert_array_equal(x, getattr(in_memory, f"x_{split}"))
        np.testing.assert_array_equal(y, getattr(in_memory, f"y_{split}"))
        assert x.dtype == getattr(in_memory, f"x_{split}").dtype and y.dtype == getattr(in_memory, f"y_{split}").dtype
    rows = [3, 0, 7]
    np.testing.assert_array_equal(ds.train.take(rows)[0], in_memory.x_train[rows])
    assert not list((tmp_path / "loop-cache" / "streaming").glob(".*"))  # no temporary left


def test_memmap_cache_is_reused_and_rebuilt_when_damaged(data_dir, monkeypatch, tmp_path):
    _fixture("cifar100", data_dir, monkeypatch)
    first = datasets.load("cifar100", streaming=True, data_dir=data_dir, label_mode="coarse")
    assert first.num_classes == 20 and first.model_names == datasets.load(
        "cifar100", data_dir=data_dir).model_names
    # Reused: the original files are gone, and the default options give the same key.
    shutil.rmtree(data_dir / "cifar-100")
    again = datasets.load("cifar100", streaming=True, label_mode="coarse", standardize_images=True)
    assert again.source == first.source
    np.testing.assert_array_equal(_everything(again.train)[0], _everything(first.train)[0])
    np.testing.assert_array_equal(again.train.labels, first.train.labels)
    # A truncated array is not reused: it is rebuilt from the original files.
    folder = first.source.split()[2]
    path = os.path.join(folder, "x_train.npy")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 100)
    with pytest.raises(sources.DatasetNotFoundError):
        datasets.load("cifar100", streaming=True, label_mode="coarse")
    _fixture("cifar100", data_dir, monkeypatch)
    rebuilt = datasets.load("cifar100", streaming=True, data_dir=data_dir, label_mode="coarse")
    np.testing.assert_array_equal(_everything(rebuilt.train)[0], _everything(first.train)[0])
    # Other options, another copy.
    fine = datasets.load("cifar100", streaming=True, data_dir=data_dir)
    assert fine.num_classes == 100 and fine.source != first.source


def test_memmap_keeps_extras(data_dir, monkeypatch):
    options = _fixture("sentiment140", data_dir, monkeypatch)
    ds = datasets.load("sentiment140", streaming=True, data_dir=data_dir, **options)
    in_memory = datasets.load("sentiment140", data_dir=data_dir, **options)
    np.testing.assert_array_equal(ds.extras["vocabulary"], in_memory.extras["vocabulary"])
    assert ds.extras["model_kwargs"] == in_memory.extras["model_kwargs"] == {"vocab_size": 50}
    assert ds.class_names == ("negative", "positive") and ds.train.x.dtype == np.int32
    reused = datasets.load("sentiment140", streaming=True, data_dir=data_dir, **options)
    np.testing.assert_array_equal(reused.extras["vocabulary"], in_memory.extras["vocabulary"])


@pytest.mark.parametrize("name", datasets.names())
def test_reference_models_match_the_loaders(name, data_dir, monkeypatch):
    """The models the tfds path and a reused memmap cache give are those of the in-memory loader."""
    options = _fixture(name, data_dir, monkeypatch)
    in_memory = datasets.load(name, data_dir=data_dir, **options)
    table = ds_streaming._reference_models(name)
    assert list(table) == list(in_memory.models)
    assert [f.__name__ for f in table.values()] == [f.__name__ for f in in_memory.models.values()]
    assert next(iter(table)) == in_memory.default_model


# ------------------------------------------------------------------------ grain


def test_grain_array_record_source_in_random_access(tmp_path):
    grain = pytest.importorskip("grain.python")
    from array_record.python.array_record_module import ArrayRecordWriter

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (10, 4, 4), dtype=np.uint8)
    y = (np.arange(10) * 3 % 7).astype(np.int32)
    path = str(tmp_path / "tiny.array_record")
    writer = ArrayRecordWriter(path, "group_size:1")
    for image, label in zip(x, y):
        writer.write(bytes([int(label)]) + image.tobytes())
    writer.close()
    source = grain.ArrayRecordDataSource([path])
    assert isinstance(source, grain.RandomAccessDataSource) and len(source) == 10

    def decode(record):  # the record holds its own target
        image = np.frombuffer(record, np.uint8, offset=1).reshape(4, 4, 1)
        return image.astype(np.float32) / np.float32(255.0), np.int32(record[0])

    data = RandomAccess(source, decode=decode)
    rows = [7, 0, 3, 3]
    inputs, targets = data.take(rows)
    np.testing.assert_array_equal(inputs, x[rows][..., None] / np.float32(255.0))
    np.testing.assert_array_equal(targets, y[rows])
    assert inputs.shape == (4, 4, 4, 1) and inputs.dtype == np.float32 and targets.dtype == np.int32
    np.testing.assert_array_equal(data.labels, y)
    # With the targets in memory, decode gives the inputs only.
    with_labels = RandomAccess(source, y, decode=lambda r: decode(r)[0])
    np.testing.assert_array_equal(with_labels.take(rows)[1], y[rows])
    # grain's range source: records are indices, decode looks the sample up.
    indices = RandomAccess(grain.RangeDataSource(0, 10, 1), decode=lambda i: (x[i], y[i]))
    np.testing.assert_array_equal(indices.take([9, 1])[0], x[[9, 1]])
    np.testing.assert_array_equal(indices.take([9, 1])[1], y[[9, 1]])


# ------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize("kwargs,match", [
    ({"streaming": "yes"}, "streaming must be True or False, got 'yes'"),
    ({"streaming": True, "stream_from": "disk"}, "stream_from must be one of .*'disk'"),
    ({"streaming": True, "stream_from": "tfds"}, "'iris' has no tfds ArrayRecord copy.*stream_from='memmap'"),
    ({"streaming": True, "tfds_download": True},
     "tfds_download applies only to mnist.*'iris' streams from the memmap cache"),
    ({"stream_from": "memmap"}, "stream_from only applies with streaming=True; pass streaming=True or drop it"),
    ({"streaming": True, "parallel_reads": 0}, "parallel_reads must be a positive integer, got 0"),
    ({"streaming": True, "colour": "red"}, "Unknown option 'colour' for dataset 'iris'.*test_size, seed"),
    ({"colour": "red"}, "Unknown option 'colour'"),
])
def test_bad_inputs_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        datasets.load("iris", **kwargs)


def test_bad_tfds_inputs_are_named(tmp_path):
    with pytest.raises(ValueError, match="Unknown dataset 'mnsit'.*Did you mean 'mnist'"):
        datasets.load("mnsit", streaming=True)
    with pytest.raises(ValueError, match="tfds_data_dir .*nowhere' is not a directory"):
        datasets.load("mnist", streaming=True, tfds_data_dir=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="'memmap'.*Drop them"):
        datasets.load("mnist", streaming=True, stream_from="memmap", tfds_download=True)
    with pytest.raises(ValueError, match="tfds_download must be True or False"):
        datasets.load("mnist", streaming=True, tfds_download="no")
    with pytest.raises(ValueError, match="label_mode must be 'fine' or 'coarse', got 'medium'"):
        with _mocked_tfds(num_examples=3):
            datasets.load("cifar100", streaming=True, stream_from="tfds", label_mode="medium")


# ------------------------------------------------------------------ training


def test_fit_streams_a_streaming_dataset():
    from loop import Loop

    ds = datasets.load("iris", streaming=True)
    loop = Loop(ds.model(), loss=ds.loss, metrics=ds.metrics, optimizer="adam", batch_size=16,
                resident_limit_bytes=0)
    history = loop.fit(ds.train, validation_data=ds.test, epochs=2, verbose=0)
    assert loop.streaming
    assert np.isfinite(history.history["val_accuracy"][-1])
