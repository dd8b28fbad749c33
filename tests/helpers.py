"""The helpers every test module shares: tiny data, tiny models and loops, a fake selector state, plan helpers,
and writers of tiny dataset files in each original format.

Importable as ``helpers`` from any test (``tests/conftest.py`` puts this
directory on ``sys.path``).
"""

import dataclasses
import gzip
import hashlib
import io
import pickle
import tarfile

import numpy as np

from loop.datasets import sources
from loop.protocol import StepBatch  # noqa: F401  (re-exported for the in-step filter tests)


def make_data(n=240, d=6, classes=3, seed=0):
    """``n`` Gaussian rows of ``d`` features; the label is the argmax of the first ``classes`` features."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    return x, np.argmax(x[:, :classes], axis=1).astype("int32")


def make_model(d=6, classes=3, seed=0, dropout=0.0, hidden=16):
    """A seeded softmax MLP (``hidden`` units; no hidden layer when 0)."""
    import keras

    keras.utils.set_random_seed(seed)
    layers = [keras.Input((d,))]
    if hidden:
        layers.append(keras.layers.Dense(hidden, activation="relu"))
    if dropout:
        layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(classes, activation="softmax"))
    return keras.Sequential(layers)


def make_loop(selector=None, model=None, **kwargs):
    """A ``Loop`` over :func:`make_model` with a sparse loss, accuracy, batch 16 and Adam unless overridden."""
    from loop import Loop

    kwargs.setdefault("batch_size", 16)
    kwargs.setdefault("optimizer", "adam")
    kwargs.setdefault("loss", "sparse_categorical_crossentropy")
    kwargs.setdefault("metrics", ["accuracy"])
    return Loop(model or make_model(), selector=selector, **kwargs)


class FakeState:
    """The fields of the loop's state; ``score`` returns a fixed synthetic loss and records it."""

    def __init__(self, num_samples=120, num_classes=3, batch_size=10, epoch=0, epochs=5, seed=0, losses=None,
                 task="classification", logs=None, true_losses=None):
        self.num_samples, self.num_classes, self.batch_size = num_samples, num_classes, batch_size
        self.epoch, self.epochs, self.step, self.task = epoch, epochs, 0, task
        if task == "classification":
            self.labels = np.random.default_rng(123).permutation(np.arange(num_samples) % num_classes)
        else:
            self.labels = np.random.default_rng(123).normal(size=num_samples).astype(np.float32)
            self.num_classes = None
        self.losses = (np.full(num_samples, np.nan, np.float32) if losses is None
                       else np.asarray(losses, np.float32).copy())
        self.loss_step = np.where(np.isnan(self.losses), -1, 0).astype(np.int64)
        self.rng = np.random.default_rng([seed, epoch])
        self.logs = dict(logs or {})
        self.true_losses = (np.linspace(0.1, 2.0, num_samples).astype(np.float32) if true_losses is None
                            else np.asarray(true_losses, np.float32))
        self.scored = []

    def score(self, indices):
        indices = np.asarray(indices)
        self.scored.append(indices)
        self.losses[indices] = self.true_losses[indices]
        return self.true_losses[indices]

    def quantities(self, indices):
        """Fixed synthetic per-sample quantities (every name of ``loop.protocol.QUANTITIES``), recorded as a score."""
        indices = np.asarray(indices)
        width = self.num_classes or 1
        rng = np.random.default_rng(7)
        gradients = rng.normal(size=(self.num_samples, width)).astype(np.float32)
        features = rng.normal(size=(self.num_samples, 4)).astype(np.float32)
        losses = self.score(indices)
        return {"losses": losses, "outputs": gradients[indices], "features": features[indices],
                "last_layer_gradients": gradients[indices]}


def scoring_epochs(selector, epochs=10, **state_kwargs):
    """The epochs (of ``epochs``, one :class:`FakeState` each) at whose start ``selector`` re-scored every sample."""
    scored = []
    for epoch in range(epochs):
        state = FakeState(epoch=epoch, epochs=epochs, **state_kwargs)
        selector(state)
        if state.scored:
            assert len(state.scored) == 1 and np.array_equal(np.sort(state.scored[0]), np.arange(state.num_samples))
            scored.append(epoch)
    return scored


def flatten(plan):
    """``(indices, weights)`` of a whole plan, weights 1 where a batch gives none."""
    idx, w = [], []
    for batch in plan:
        if isinstance(batch, tuple):
            i, bw = batch
        else:
            i, bw = batch, np.ones(len(batch))
        idx.append(np.asarray(i))
        w.append(np.asarray(bw, float))
    return np.concatenate(idx), np.concatenate(w)


def batches_of(plan):
    return [np.asarray(b[0] if isinstance(b, tuple) else b) for b in plan]


# ------------------------------------------------------------------ dataset files in their original formats
def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def trust(monkeypatch, key, path):
    """Makes SOURCES[key] accept exactly the file at path."""
    table = dict(sources.SOURCES)
    table[key] = dataclasses.replace(table[key], sha256=(sha256(path),))
    monkeypatch.setattr(sources, "SOURCES", table)


# ------------------------------------------------------------ file writers


def write_idx(path, array):
    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, 8, array.ndim]) + np.asarray(
        array.shape, ">u4").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())
    return path


def images(rng, n, shape):
    return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)


def write_mnist_dir(root, monkeypatch, prefix="mnist", n_train=20, n_test=10):
    """IDX .gz files as in <data_dir>/mnist/; returns the arrays."""
    rng = np.random.default_rng(1)
    arrays = {
        "train-images": images(rng, n_train, (28, 28)),
        "train-labels": np.arange(n_train) % 10,
        "test-images": images(rng, n_test, (28, 28)),
        "test-labels": np.arange(n_test) % 10,
    }
    for key, array in arrays.items():
        source = sources.SOURCES[f"{prefix}/{key}"]
        path = write_idx(root / source.local_path, array)
        trust(monkeypatch, f"{prefix}/{key}", path)
    return arrays


def _pickle(obj):
    return pickle.dumps(obj, protocol=3)


def write_tar(path, top, members):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def write_cifar10(path, per_batch=4, n_test=6):
    rng = np.random.default_rng(2)
    members, labels = {}, []
    for i in range(1, 6):
        y = [int(v) for v in rng.integers(0, 10, per_batch)]
        labels += y
        members[f"data_batch_{i}"] = _pickle({
            b"batch_label": b"training batch",
            b"labels": y,
            b"data": images(rng, per_batch, (3072,)),
        })
    test_y = [int(v) for v in rng.integers(0, 10, n_test)]
    members["test_batch"] = _pickle({
        b"labels": test_y, b"data": images(rng, n_test, (3072,))})
    members["batches.meta"] = _pickle({b"label_names": [b"c%d" % i for i in range(10)]})
    write_tar(path, "cifar-10-batches-py", members)
    return np.asarray(labels), np.asarray(test_y)


def write_cifar100(path, n_train=10, n_test=5):
    rng = np.random.default_rng(3)

    def batch(n):
        return _pickle({
            b"fine_labels": [int(v) for v in rng.integers(0, 100, n)],
            b"coarse_labels": [int(v) for v in rng.integers(0, 20, n)],
            b"data": images(rng, n, (3072,)),
        })

    write_tar(path, "cifar-100-python",
              {"train": batch(n_train), "test": batch(n_test), "meta": _pickle({})})


def sentiment_line(polarity, i, text):
    return (f'"{polarity}","{1000 + i}","Mon Apr 06 22:19:45 PDT 2009",'
            f'"NO_QUERY","user{i}","{text}"')


def write_sentiment(root, *, encoding="utf-8", n_per_class=20):
    folder = root / "sentiment140"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [sentiment_line(0, i, f"bad sad awful day {i} café")
             for i in range(n_per_class)]
    lines += [sentiment_line(4, n_per_class + i, f"good happy great day {i}")
              for i in range(n_per_class)]
    train = folder / sources.SOURCES["sentiment140/train-slice"].filename
    train.write_bytes("\n".join(lines).encode(encoding))  # no final newline
    test_lines = [sentiment_line(0, 1, "bad testonlyword"),
                  sentiment_line(2, 2, "neutral thing"),
                  sentiment_line(4, 3, "good happy"),
                  sentiment_line(4, 4, "great")]
    test = folder / sources.SOURCES["sentiment140/test"].filename
    test.write_text("\n".join(test_lines) + "\n", encoding="utf-8")
    return train, test


MUSIC_GENRES = ["blues", "classical", "country", "disco", "hiphop",
                "jazz", "metal", "pop", "reggae", "rock"]


def music_csv_text(n_per_genre=5, seed=4):
    rng = np.random.default_rng(seed)
    columns = (["filename", "chroma_stft", "rmse", "spectral_centroid",
                "spectral_bandwidth", "rolloff", "zero_crossing_rate"]
               + [f"mfcc{i}" for i in range(1, 21)] + ["label"])
    rows = [",".join(columns)]
    for g, genre in enumerate(MUSIC_GENRES):
        for i in range(n_per_genre):
            features = rng.normal(g, 1.0, 26)
            rows.append(",".join([f"{genre}.{i:05d}.au"]
                                 + [f"{v:.6f}" for v in features] + [genre]))
    return "\n".join(rows) + "\n"


def write_boston_csv(path, n=30):
    rng = np.random.default_rng(5)
    header = ('"crim","zn","indus","chas","nox","rm","age","dis","rad","tax",'
              '"ptratio","b","lstat","medv"')
    rows = [header]
    for i in range(n):
        values = rng.uniform(0, 10, 13)
        cells = [f"{v:.4f}" for v in values]
        cells[3] = f'"{i % 2}"'
        rows.append(",".join(cells + [f"{20 + i * 0.5:.1f}"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")
    return path


