"""The error catalogue: every bad input ``loop`` refuses, with the error it raises.

Each :class:`Case` holds a trigger (a function that provokes the error on tiny
data), the exception type and a fragment of the message that names the bad
value or the fix.  ``tests/test_error_catalogue.py`` runs every trigger and checks the
type and the fragment, and checks that ``docs/errors.md`` equals
:func:`render` of the real messages, so the list cannot drift.  Regenerate it
with::

    python -m loop.error_catalogue > docs/errors.md

None of these errors changes a checkpoint or a result already written: plans
and data are validated before any training step, and checkpoints are only
written at epoch ends and on SIGTERM/SIGINT (see :mod:`loop.checkpoint`).
"""

import collections
import os
import re
import tempfile

import numpy as np

#: One catalogue entry.
Case = collections.namedtuple("Case", ["group", "case", "exception", "fragment", "trigger"])

NUM_SAMPLES = 48


def _data(n=NUM_SAMPLES, d=4, classes=3):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d)).astype("float32")
    return x, np.argmax(x[:, :classes], axis=1).astype("int32")


def _model(d=4, classes=3):
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((d,)), keras.layers.Dense(classes, activation="softmax")])


def _loop(selector=None, **kwargs):
    from loop import Loop

    kwargs.setdefault("batch_size", 8)
    kwargs.setdefault("loss", "sparse_categorical_crossentropy")
    return Loop(kwargs.pop("model", None) or _model(), metrics=["accuracy"], selector=selector, **kwargs)


def _fit(selector=None, data=None, loop_kwargs=None, verbose_level=0, **fit_kwargs):
    fit_kwargs.setdefault("epochs", 1)
    return _loop(selector, **(loop_kwargs or {})).fit(data or _data(), verbose=verbose_level, **fit_kwargs)


def _plan(make):
    """A selector named ``plan`` that returns ``make(n)`` (named, so its messages are stable)."""
    def plan(state):
        return make(state.num_samples)
    return plan


def _raises_mid_fit(state):
    if state.epoch == 1:
        raise KeyError("no such column 'difficulty'")
    return [np.arange(state.num_samples)]


class _FastFilter:
    filter_mode = "fast"

    def __repr__(self):
        return "FastFilter()"

    def __call__(self, state):
        return [np.arange(state.num_samples)]

    def keep(self, batch):
        return batch.weights


def _validation_labels_out_of_range():
    x, y = _data()
    vy = y.copy()
    vy[2] = 9
    _fit(validation_data=(x, vy))


def _nan_loss():
    import keras

    from loop import Loop
    x, y = _data()
    Loop(_model(), loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.SGD(1e30),
         batch_size=8).fit((x * 1e30, y), epochs=2, verbose=0)


def _other_run_checkpoint():
    with tempfile.TemporaryDirectory() as tmp:
        _fit(checkpoint_dir=tmp, loop_kwargs={"batch_size": 8})
        _fit(checkpoint_dir=tmp, loop_kwargs={"batch_size": 16})


def _selector_class_with_arguments():
    class TopLoss:
        """A selector class whose constructor needs an argument."""

        def __init__(self, fraction):
            self.fraction = fraction

        def __call__(self, state):
            return [np.argsort(-state.losses)[:int(self.fraction * state.num_samples)]]

    _loop(TopLoss)


def _fractional_labels():
    x, y = _data()
    y = y.astype("float32")
    y[4] = 0.5
    _fit(data=(x, y))


def _checkpoint_files(tmp):
    """Two checkpoints of a 2-epoch fit in ``tmp`` (ckpt-1, ckpt-2): ``{name: path}`` of their data files."""
    _fit(checkpoint_dir=tmp, epochs=2)
    return {name: os.path.join(tmp, name) for name in os.listdir(tmp) if ".data-" in name}


def _truncated_checkpoints():
    with tempfile.TemporaryDirectory() as tmp:
        for path in sorted(_checkpoint_files(tmp).values()):
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) // 2)
        _fit(checkpoint_dir=tmp, epochs=3)


def _garbage_checkpoint_index():
    with tempfile.TemporaryDirectory() as tmp:
        for path in _checkpoint_files(tmp).values():
            os.remove(path)
        with open(os.path.join(tmp, "checkpoint"), "w") as f:
            f.write("not a checkpoint index\n")
        _fit(checkpoint_dir=tmp, epochs=3)


def _checkpoint_of_another_model():
    import keras

    with tempfile.TemporaryDirectory() as tmp:
        _checkpoint_files(tmp)
        keras.utils.set_random_seed(0)
        wider = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="softmax")])
        _fit(checkpoint_dir=tmp, epochs=3, loop_kwargs={"model": wider})


def _checkpoint_dir_is_a_file():
    with tempfile.NamedTemporaryFile() as file:
        _fit(checkpoint_dir=file.name)


def _corrupted_local_file():
    from loop import datasets

    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "mnist"))
        for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                     "t10k-labels-idx1-ubyte.gz"):
            with open(os.path.join(tmp, "mnist", name), "wb") as f:
                f.write(b"\x1f\x8b truncated")
        datasets.load("mnist", data_dir=tmp)


def _truncated_cache():
    from loop.datasets import sources

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "tokens.npz")
        sources.save_npz_atomic(path, x=np.arange(1000))
        with open(path, "r+b") as f:
            f.truncate(100)
        sources.load_npz(path, ["x"])


def _model_outside_scope():
    import tensorflow as tf

    _loop(model=_model(), strategy=tf.distribute.MirroredStrategy(["/cpu:0"]))


def _accumulate_under_strategy():
    import tensorflow as tf

    from loop.selectors import RandomDrop
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = _model()
    _fit(RandomDrop(), loop_kwargs={"model": model, "strategy": strategy})


def _rho_wrong_model():
    import keras

    from loop.selectors import RhoLoss
    wrong = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, activation="softmax", name="out")], name="wrong")
    _fit(RhoLoss(irreducible_model=wrong, irreducible_epochs=0))


def _from_string(spec):
    from loop.selectors import from_string
    return lambda: from_string(spec)


def my_selector(state):
    """A user's selector function (for the registration case)."""
    return [np.arange(state.num_samples)]


def _register(name):
    from loop.selectors import register
    return lambda: register(name, my_selector)


def _tf_dataset():
    import tensorflow as tf

    _fit(data=tf.data.Dataset.from_tensor_slices(_data()).batch(8))


def _random_access():
    from loop import RandomAccess

    return RandomAccess(*_data())


class _Records:
    """A random-access source of dict records (``__len__`` and ``__getitem__`` only)."""

    def __len__(self):
        return NUM_SAMPLES

    def __getitem__(self, i):
        x, y = _data()
        return {"features": x[i], "label": y[i]}


def _records_without_decode():
    from loop import RandomAccess

    _fit(data=RandomAccess(_Records()))


def _dybat_budget():
    from loop.selectors import DyBAT

    DyBAT().epochs_for_budget(3, NUM_SAMPLES, 64)


def _selector(name, **kwargs):
    def build():
        import loop.selectors as selectors
        getattr(selectors, name)(**kwargs)
    return build


def _nan_inputs():
    x, y = _data()
    x[3, 1] = np.nan
    _fit(data=(x, y))


def _labels_out_of_range():
    x, y = _data()
    y[5] = 7
    _fit(data=(x, y))


CATALOGUE = [
    # ---------------------------------------------------------------- selector output
    Case("selector output", "non-integer indices", ValueError, "indices must be integers",
         lambda: _fit(_plan(lambda n: [np.array([0.0, 1.5])]))),
    Case("selector output", "index out of range", ValueError, f"outside [0, {NUM_SAMPLES})",
         lambda: _fit(_plan(lambda n: [np.arange(8), np.array([2, n])]))),
    Case("selector output", "negative index", ValueError, "indices [-1] are outside",
         lambda: _fit(_plan(lambda n: [np.array([-1, 2])]))),
    Case("selector output", "empty mini-batch", ValueError, "the mini-batch is empty",
         lambda: _fit(_plan(lambda n: [np.arange(2), np.array([], dtype=int)]))),
    Case("selector output", "empty plan", ValueError, "returned an empty plan",
         lambda: _fit(_plan(lambda n: []))),
    Case("selector output", "plan is None", ValueError, "returned None",
         lambda: _fit(_plan(lambda n: None))),
    Case("selector output", "NaN weight", ValueError, "weights must be finite and non-negative, got [nan]",
         lambda: _fit(_plan(lambda n: [(np.array([0, 1]), np.array([1.0, np.nan]))]))),
    Case("selector output", "negative weight", ValueError, "finite and non-negative, got [-1.0]",
         lambda: _fit(_plan(lambda n: [(np.array([0, 1]), np.array([1.0, -1.0]))]))),
    Case("selector output", "wrong number of weights", ValueError, "2 weights for 3 indices",
         lambda: _fit(_plan(lambda n: [(np.array([0, 1, 2]), np.array([1.0, 1.0]))]))),
    Case("selector output", "selector raises mid-fit (its own type and traceback, with a note)", KeyError,
         "raised by selector _raises_mid_fit (__call__) at epoch 1", lambda: _fit(_raises_mid_fit, epochs=2)),
    Case("selector output", "a flat index array instead of a list of batches", ValueError,
         "batch 0 is a single index (0), not an index array", lambda: _fit(_plan(lambda n: np.arange(n)))),
    Case("selector output", "a batch that is not 1-D", ValueError, "the mini-batch has shape (6, 8), not 1-D",
         lambda: _fit(_plan(lambda n: [np.arange(n).reshape(6, 8)]))),
    Case("selector output", "unknown in-step filter mode", ValueError,
         "filter_mode='fast'; use one of 'compact', 'mask', 'accumulate'",
         lambda: _loop(_FastFilter())),
    Case("selector output", "selector not callable", ValueError, "selector 42 is not callable",
         lambda: _loop(42)),
    Case("selector output", "a selector class that needs arguments, instead of an instance", ValueError,
         "pass an instance, e.g. selector=TopLoss(fraction=...)", _selector_class_with_arguments),
    # ---------------------------------------------------------------- selector construction
    Case("selectors and hyper-parameters", "unknown selector name", ValueError, "unknown selector 'dybatt'",
         _from_string("dybatt:delta=0.5")),
    Case("selectors and hyper-parameters", "unknown hyper-parameter", ValueError,
         "unknown hyper-parameter 'detla'", _from_string("dybat:detla=0.5")),
    Case("selectors and hyper-parameters", "malformed hyper-parameter", ValueError, "write key=value",
         _from_string("dybat:0.5")),
    Case("selectors and hyper-parameters", "unclosed quote in a nested spec", ValueError,
         "close every quote and bracket",
         _from_string("dynamic:base='dybat:delta=0.5,k0=16")),
    Case("selectors and hyper-parameters", "your own selector: no such module", ValueError,
         "no module named 'my_selectorz'", _from_string("my_selectorz:LossWeighted:power=2")),
    Case("selectors and hyper-parameters", "your own selector: no such attribute", ValueError,
         "'loop.selectors' has no attribute 'LossWeighted'", _from_string("loop.selectors:LossWeighted")),
    Case("selectors and hyper-parameters", "registering a built-in name", ValueError,
         "'shuffle' is the built-in Shuffle", _register("shuffle")),
    Case("selectors and hyper-parameters", "DyBAT step budget with a batch larger than the data", ValueError,
         "batch_size=64 is larger than the 48 samples", _dybat_budget),
    Case("selectors and hyper-parameters", "DyBAT delta outside (0, 1]", ValueError, "delta=1.5 is out of range",
         _selector("DyBAT", delta=1.5)),
    Case("selectors and hyper-parameters", "DyBAT delta = 0", ValueError, "delta=0 is out of range",
         _selector("DyBAT", delta=0)),
    Case("selectors and hyper-parameters", "OnlineBatchSelection s_e < 1", ValueError,
         "s_e0=0.5 is out of range", _selector("OnlineBatchSelection", s_e0=0.5)),
    Case("selectors and hyper-parameters", "InfoBatch prune_ratio outside [0, 1)", ValueError,
         "prune_ratio=1.0 is out of range", _selector("InfoBatch", prune_ratio=1.0)),
    Case("selectors and hyper-parameters", "RhoLoss holdout outside (0, 1)", ValueError,
         "holdout=1.0 is out of range", _selector("RhoLoss", holdout=1.0)),
    Case("selectors and hyper-parameters", "RhoLoss irreducible model that does not fit the data", ValueError,
         "give an irreducible_model with the trained model's inputs and outputs", _rho_wrong_model),
    Case("selectors and hyper-parameters", "batch size <= 0", ValueError, "batch_size must be a positive integer",
         lambda: _loop(batch_size=0)),
    Case("selectors and hyper-parameters", "negative seed", ValueError, "seed must be a non-negative integer, got -1",
         lambda: _loop(seed=-1)),
    # ---------------------------------------------------------------- data
    Case("data", "x and y lengths differ", ValueError, f"x has {NUM_SAMPLES} samples but y has {NUM_SAMPLES - 1}",
         lambda: _fit(data=(_data()[0], _data()[1][:-1]))),
    Case("data", "a tf.data.Dataset instead of arrays", ValueError,
         "Pass an (x, y) pair of arrays, or a random-access source that streams by index", _tf_dataset),
    Case("data", "a streamed source whose records are not (inputs, target) pairs", ValueError,
         "pass decode=lambda record: (inputs, target)", _records_without_decode),
    Case("data", "a loop.RandomAccess and a separate y", ValueError, "a loop.RandomAccess carries its targets",
         lambda: _fit(data=(_random_access(), _data()[1]))),
    Case("data", "resident_limit_bytes not a byte count", ValueError,
         "resident_limit_bytes must be a non-negative integer (0: always stream) or None (never stream), got '2GB'",
         lambda: _loop(resident_limit_bytes="2GB")),
    Case("data", "NaN or Inf in the inputs", ValueError, "x holds NaN or Inf at sample(s) [3]", _nan_inputs),
    Case("data", "label outside [0, num_classes)", ValueError, "label [7] at sample 5 is outside [0, 3)",
         _labels_out_of_range),
    Case("data", "fractional class labels with a sparse loss", ValueError,
         "label [0.5] at sample 4 is not a whole number", _fractional_labels),
    Case("data", "sample_weight of the wrong length", ValueError,
         f"sample_weight has shape ({NUM_SAMPLES - 1},) but the data has {NUM_SAMPLES} samples",
         lambda: _fit(sample_weight=np.ones(NUM_SAMPLES - 1))),
    Case("data", "negative sample weight", ValueError, "sample_weight must be finite and non-negative, got [-1.0]",
         lambda: _fit(sample_weight=np.r_[np.ones(NUM_SAMPLES - 1), -1.0])),
    Case("data", "sample_weight and class_weight together", ValueError,
         "pass sample_weight or class_weight, not both",
         lambda: _fit(sample_weight=np.ones(NUM_SAMPLES), class_weight={0: 2.0})),
    Case("data", "class_weight key that is not a class id", ValueError,
         "class_weight key 'cat' is not a class id of this model", lambda: _fit(class_weight={"cat": 2.0})),
    Case("data", "labels given as strings", ValueError, "encode labels as integer class ids",
         lambda: _fit(data=(_data()[0], np.array(["cat"] * NUM_SAMPLES)))),
    Case("data", "empty dataset", ValueError, "the dataset is empty",
         lambda: _fit(data=(_data()[0][:0], _data()[1][:0]))),
    Case("data", "validation data of the wrong shape", ValueError, "validation_data: x has sample shape (2,)",
         lambda: _fit(validation_data=(_data()[0][:, :2], _data()[1]))),
    Case("data", "validation label outside [0, num_classes)", ValueError,
         "validation_data: label [9] at sample 2 is outside [0, 3)", _validation_labels_out_of_range),
    Case("data", "one-hot targets with a sparse loss", ValueError, "y looks one-hot (sample shape (3,))",
         lambda: _fit(data=(_data()[0], np.eye(3, dtype="float32")[_data()[1]]))),
    Case("data", "class ids with a one-hot loss", ValueError, "takes one-hot targets",
         lambda: _loop(loss="categorical_crossentropy").fit(_data(), epochs=1, verbose=0)),
    Case("data", "x without y", ValueError, "must be an (x, y) pair of arrays, or x and y given separately",
         lambda: _loop().fit(_data()[0], epochs=1, verbose=0)),
    Case("data", "evaluate before fit", RuntimeError, "call fit() before evaluate()",
         lambda: _loop().evaluate(*_data())),
    Case("data", "unknown dataset name", ValueError, "Unknown dataset 'mnits'. Did you mean 'mnist'?",
         lambda: __import__("loop.datasets", fromlist=["load"]).load("mnits")),
    Case("data", "corrupted or truncated local file", ValueError, "The file is corrupted, truncated",
         _corrupted_local_file),
    Case("data", "corrupted or truncated cached file", RuntimeError, "is corrupted or truncated",
         _truncated_cache),
    # ---------------------------------------------------------------- training
    Case("training", "NaN or Inf loss", FloatingPointError, "the loss became NaN or Inf at epoch 0, step",
         _nan_loss),
    Case("training", "target metric not tracked", ValueError, "target metric(s) ['val_f1'] are not tracked",
         lambda: _fit(target={"val_f1": 0.5})),
    Case("training", "stop_at_target without a target", ValueError, "stop_at_target=True needs a target",
         lambda: _fit(stop_at_target=True)),
    Case("training", "target outside its metric's range", ValueError,
         "target['val_accuracy'] = 1.5 can never be reached: val_accuracy lies in [0, 1]",
         lambda: _fit(validation_data=_data(), target={"val_accuracy": 1.5})),
    Case("training", "negative epochs (epochs=0 trains nothing, as in Keras)", ValueError,
         "epochs must be a non-negative integer", lambda: _fit(epochs=-1)),
    Case("training", "no loss and an uncompiled model", ValueError, "no loss: pass loss=",
         lambda: __import__("loop").Loop(_model())),
    Case("training", "eval_every with an accumulating in-step filter", ValueError,
         "decouples from the plan's batches; leave eval_every=None",
         lambda: _fit(__import__("loop.selectors", fromlist=["RandomDrop"]).RandomDrop(), eval_every=2)),
    Case("training", "an accumulating filter under a tf.distribute strategy", ValueError,
         "does not run under a tf.distribute strategy yet", _accumulate_under_strategy),
    Case("training", "unknown verbose level", ValueError, "verbose must be 0 (silent), 1 (progress bar) or 2",
         lambda: _fit(verbose_level=3)),
    Case("training", "checkpoint of a different run", ValueError,
         "holds a checkpoint of a different run (batch_size: 8 there, 16 here)", _other_run_checkpoint),
    Case("training", "checkpoint_dir that is a file", ValueError, "is a file, not a directory",
         _checkpoint_dir_is_a_file),
    Case("training", "every checkpoint truncated", ValueError,
         "ckpt-2: it is truncated or corrupt (IndexError: Read less bytes than requested)", _truncated_checkpoints),
    Case("training", "garbage checkpoint index file and no readable checkpoint", ValueError,
         "checkpoint: the index file is unreadable", _garbage_checkpoint_index),
    Case("training", "checkpoint of another model (architecture)", ValueError,
         "ckpt-2: it holds another model: a variable of shape (4, 5) here has shape (4, 3) there",
         _checkpoint_of_another_model),
    Case("training", "model built outside strategy.scope()", ValueError, "created outside strategy.scope()",
         _model_outside_scope),
    Case("training", "strategy that is not a tf.distribute.Strategy", ValueError,
         "strategy must be a tf.distribute.Strategy", lambda: _loop(strategy="mirrored")),
]

#: Cases covered elsewhere, listed in the rendered catalogue for completeness.
ELSEWHERE = [
    ("data", "a download interrupted midway leaves no partial file",
     "tests/datasets/test_datasets_sources.py::test_interrupted_download_leaves_no_partial_file"),
    ("results", "benchmark result files are never half-written", "loop.bench (atomic writes, resumable suite)"),
    ("training", "a killed fit leaves its last checkpoint intact and resumable", "tests/test_checkpoint.py"),
    ("training", "a truncated, corrupt or foreign latest checkpoint falls back to the previous one, with a warning",
     "tests/test_bad_inputs.py"),
]


def run(case):
    """Runs ``case.trigger`` and returns the exception it raised.

    Raises:
        AssertionError: it raised nothing, another type, or a message without the fragment.
    """
    try:
        case.trigger()
    except Exception as err:  # noqa: BLE001 - the catalogue checks the type itself
        if not isinstance(err, case.exception):
            raise AssertionError(f"{case.case}: expected {case.exception.__name__}, got "
                                 f"{type(err).__name__}: {err}") from err
        if case.fragment not in message(err):
            raise AssertionError(f"{case.case}: the message lacks {case.fragment!r}: {err}") from err
        return err
    raise AssertionError(f"{case.case}: no error was raised")


def message(err):
    """The message of ``err`` with its notes (``add_note``), as Python prints them."""
    return "\n".join([str(err), *getattr(err, "__notes__", [])])


def _first_line(err):
    lines = str(err).strip().splitlines()
    line = " — ".join([lines[0] if lines else "", *getattr(err, "__notes__", [])])
    line = re.sub(re.escape(tempfile.gettempdir()) + r"/[^\s/']+", "<tmp>", line)
    line = re.sub(r"sha256 is [0-9a-f]{64}", "sha256 is <sha256>", line)
    line = re.sub(r"expected [0-9a-f]{64}( or [0-9a-f]{64})*", "expected <known sha256>", line)
    return line.replace("|", "\\|")


def render(errors):
    """The catalogue as Markdown, given ``{case name: raised exception}`` from :func:`run`."""
    out = ["# Error catalogue", "",
           "Every bad input `loop` refuses, the exception it raises and its message (first line).",
           "Generated by `python -m loop.error_catalogue > docs/errors.md`; "
           "`tests/test_error_catalogue.py` checks that this",
           "file matches the code.  No error below changes a checkpoint or a result already written.", ""]
    group = None
    for case in CATALOGUE:
        if case.group != group:
            group = case.group
            out += [f"## {group[0].upper() + group[1:]}", "", "| Case | Exception | Message |", "|---|---|---|"]
        out.append(f"| {case.case} | `{type(errors[case.case]).__name__}` | {_first_line(errors[case.case])} |")
        if case is CATALOGUE[-1] or CATALOGUE[CATALOGUE.index(case) + 1].group != group:
            out.append("")
    out += ["## Covered elsewhere", "", "| Area | Case | Where |", "|---|---|---|"]
    out += [f"| {area} | {case} | `{where}` |" for area, case, where in ELSEWHERE]
    return "\n".join(out) + "\n"


def run_all():
    """Runs every trigger; returns ``{case name: exception}``."""
    return {case.case: run(case) for case in CATALOGUE}


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import sys

    sys.stdout.write(render(run_all()))
