"""The error catalogue's triggers: tiny data, models and loops, and a function that provokes each error.

Who owns what: this module holds what :data:`loop.error_catalogue.CATALOGUE`
runs: :func:`tiny_data`, :func:`tiny_model`, :func:`tiny_loop` and
:func:`tiny_fit` build a small, seeded problem (:data:`NUM_SAMPLES` rows), and
each other function here (or the trigger a factory such as
:func:`plan_selector` or :func:`parse_spec` returns) provokes one refused
input on it.  The names of the selectors made here (``plan``, ``TopLoss``,
``FastFilter()``, ``my_selector``) appear in the messages that
``docs/errors.md`` lists, so they do not change.  The catalogue's cases, and
the rendering of ``docs/errors.md``, are :mod:`loop.error_catalogue`'s.
"""

import os
import tempfile

import numpy as np

#: The number of rows of :func:`tiny_data`.
NUM_SAMPLES = 48


def tiny_data(n=NUM_SAMPLES, d=4, classes=3):
    """``(x, y)``: ``n`` rows of ``d`` float32 features and int32 labels of ``classes`` classes (seed 0)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d)).astype("float32")
    return x, np.argmax(x[:, :classes], axis=1).astype("int32")


def tiny_model(d=4, classes=3):
    """A seeded softmax regression of ``d`` inputs and ``classes`` outputs."""
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((d,)), keras.layers.Dense(classes, activation="softmax")])


def tiny_loop(selector=None, **kwargs):
    """A ``Loop`` of :func:`tiny_model` (or ``model=...``), batch size 8, sparse cross-entropy and accuracy."""
    from loop import Loop

    kwargs.setdefault("batch_size", 8)
    kwargs.setdefault("loss", "sparse_categorical_crossentropy")
    return Loop(kwargs.pop("model", None) or tiny_model(), metrics=["accuracy"], selector=selector, **kwargs)


def tiny_fit(selector=None, data=None, loop_kwargs=None, verbose_level=0, **fit_kwargs):
    """Fits :func:`tiny_loop` (given ``loop_kwargs``) on ``data`` (default :func:`tiny_data`), one epoch by default."""
    fit_kwargs.setdefault("epochs", 1)
    return tiny_loop(selector, **(loop_kwargs or {})).fit(data or tiny_data(), verbose=verbose_level, **fit_kwargs)


def plan_selector(make):
    """A selector named ``plan`` that returns ``make(n)`` (named, so its messages are stable)."""
    def plan(state):
        return make(state.num_samples)
    return plan


class FastFilter:
    """An in-step filter of an unknown mode (``filter_mode="fast"``)."""

    filter_mode = "fast"

    def __repr__(self):
        return "FastFilter()"

    def __call__(self, state):
        return [np.arange(state.num_samples)]

    def keep(self, batch):
        return batch.weights


class Needs:
    """A plan selector that declares per-sample quantities (``needs``), named ``Needs(...)`` in messages."""

    def __init__(self, *needs):
        self.needs = needs

    def __repr__(self):
        return f"Needs{self.needs!r}"

    def __call__(self, state):
        state.quantities([0])
        return [np.arange(state.num_samples)]


def features_of_a_convolutional_head():
    """``DivBS`` (it needs the last layer's features) on a model that ends in global pooling, not Dense."""
    import keras

    from loop.selectors import DivBS

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4, 1)), keras.layers.Conv1D(3, 2, activation="softmax"),
                              keras.layers.GlobalAveragePooling1D(name="pool")], name="pooled")
    x, y = tiny_data()
    tiny_fit(DivBS(), data=(x[..., None], y), loop_kwargs={"model": model})


def validation_labels_out_of_range():
    """Fits with a validation label (9) outside the 3 classes."""
    x, y = tiny_data()
    vy = y.copy()
    vy[2] = 9
    tiny_fit(validation_data=(x, vy))


def nan_loss():
    """Fits at a learning rate of 1e30 on inputs scaled by 1e30, until the loss overflows."""
    import keras

    from loop import Loop
    x, y = tiny_data()
    Loop(tiny_model(), loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.SGD(1e30),
         batch_size=8).fit((x * 1e30, y), epochs=2, verbose=0)


def other_run_checkpoint():
    """Resumes a checkpoint of batch size 8 with batch size 16."""
    with tempfile.TemporaryDirectory() as tmp:
        tiny_fit(checkpoint_dir=tmp, loop_kwargs={"batch_size": 8})
        tiny_fit(checkpoint_dir=tmp, loop_kwargs={"batch_size": 16})


def selector_class_with_arguments():
    """Passes a selector class whose constructor needs an argument."""
    class TopLoss:
        """A selector class whose constructor needs an argument."""

        def __init__(self, fraction):
            self.fraction = fraction

        def __call__(self, state):
            return [np.argsort(-state.losses)[:int(self.fraction * state.num_samples)]]

    tiny_loop(TopLoss)


def fractional_labels():
    """Fits a sparse loss on a label of 0.5."""
    x, y = tiny_data()
    y = y.astype("float32")
    y[4] = 0.5
    tiny_fit(data=(x, y))


def _checkpoint_files(tmp):
    """Two checkpoints of a 2-epoch fit in ``tmp`` (ckpt-1, ckpt-2): ``{name: path}`` of their data files."""
    tiny_fit(checkpoint_dir=tmp, epochs=2)
    return {name: os.path.join(tmp, name) for name in os.listdir(tmp) if ".data-" in name}


def truncated_checkpoints():
    """Resumes from a directory whose every checkpoint data file is cut in half."""
    with tempfile.TemporaryDirectory() as tmp:
        for path in sorted(_checkpoint_files(tmp).values()):
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) // 2)
        tiny_fit(checkpoint_dir=tmp, epochs=3)


def garbage_checkpoint_index():
    """Resumes from a directory with a garbage index file and no data files."""
    with tempfile.TemporaryDirectory() as tmp:
        for path in _checkpoint_files(tmp).values():
            os.remove(path)
        with open(os.path.join(tmp, "checkpoint"), "w") as f:
            f.write("not a checkpoint index\n")
        tiny_fit(checkpoint_dir=tmp, epochs=3)


def checkpoint_of_another_model():
    """Resumes a wider model (5 outputs) from checkpoints of a 3-output one."""
    import keras

    with tempfile.TemporaryDirectory() as tmp:
        _checkpoint_files(tmp)
        keras.utils.set_random_seed(0)
        wider = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="softmax")])
        tiny_fit(checkpoint_dir=tmp, epochs=3, loop_kwargs={"model": wider})


def checkpoint_dir_is_a_file():
    """Passes a file as ``checkpoint_dir``."""
    with tempfile.NamedTemporaryFile() as file:
        tiny_fit(checkpoint_dir=file.name)


def corrupted_local_file():
    """Loads MNIST from local files that are truncated gzip streams."""
    from loop import datasets

    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "mnist"))
        for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                     "t10k-labels-idx1-ubyte.gz"):
            with open(os.path.join(tmp, "mnist", name), "wb") as f:
                f.write(b"\x1f\x8b truncated")
        datasets.load("mnist", data_dir=tmp)


def truncated_cache():
    """Loads a cached ``.npz`` cut to 100 bytes."""
    from loop.datasets import sources

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "tokens.npz")
        sources.save_npz_atomic(path, x=np.arange(1000))
        with open(path, "r+b") as f:
            f.truncate(100)
        sources.load_npz(path, ["x"])


def model_outside_scope():
    """Passes a strategy with a model built outside its scope."""
    import tensorflow as tf

    tiny_loop(model=tiny_model(), strategy=tf.distribute.MirroredStrategy(["/cpu:0"]))


def accumulate_under_strategy():
    """Fits an accumulating in-step filter (``RandomDrop``) under a strategy."""
    import tensorflow as tf

    from loop.selectors import RandomDrop
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = tiny_model()
    tiny_fit(RandomDrop(), loop_kwargs={"model": model, "strategy": strategy})


def rho_wrong_model():
    """Fits ``RhoLoss`` with an irreducible-loss model of the wrong input width."""
    import keras

    from loop.selectors import RhoLoss
    wrong = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, activation="softmax", name="out")], name="wrong")
    tiny_fit(RhoLoss(irreducible_model=wrong, irreducible_epochs=0))


def parse_spec(spec):
    """A trigger that parses the selector spec ``spec`` with ``from_string``."""
    from loop.selectors import from_string
    return lambda: from_string(spec)


def my_selector(state):
    """A user's selector function (for the registration case)."""
    return [np.arange(state.num_samples)]


def register_as(name):
    """A trigger that registers :func:`my_selector` under ``name``."""
    from loop.selectors import register
    return lambda: register(name, my_selector)


def tf_dataset():
    """Fits a ``tf.data.Dataset``."""
    import tensorflow as tf

    tiny_fit(data=tf.data.Dataset.from_tensor_slices(tiny_data()).batch(8))


def random_access():
    """A ``loop.RandomAccess`` over :func:`tiny_data` (it carries its targets)."""
    from loop import RandomAccess

    return RandomAccess(*tiny_data())


class Records:
    """A random-access source of dict records (``__len__`` and ``__getitem__`` only)."""

    def __len__(self):
        return NUM_SAMPLES

    def __getitem__(self, i):
        x, y = tiny_data()
        return {"features": x[i], "label": y[i]}


def records_without_decode():
    """Fits :class:`Records` without a ``decode`` that makes ``(inputs, target)`` pairs."""
    from loop import RandomAccess

    tiny_fit(data=RandomAccess(Records()))


def dybat_budget():
    """Asks DyBAT's step budget for a batch larger than the data."""
    from loop.selectors import DyBAT

    DyBAT().epochs_for_budget(3, NUM_SAMPLES, 64)


def build_selector(name, **kwargs):
    """A trigger that builds ``loop.selectors.<name>(**kwargs)``."""
    def build():
        import loop.selectors as selectors
        getattr(selectors, name)(**kwargs)
    return build


def nan_inputs():
    """Fits inputs holding a NaN."""
    x, y = tiny_data()
    x[3, 1] = np.nan
    tiny_fit(data=(x, y))


def labels_out_of_range():
    """Fits a label (7) outside the 3 classes."""
    x, y = tiny_data()
    y[5] = 7
    tiny_fit(data=(x, y))

