"""The error catalogue: every bad input ``loop`` refuses, with the error it raises.

Each :class:`Case` holds a trigger (a function that provokes the error on tiny
data, from :mod:`loop.error_triggers`), the exception type and a fragment of
the message that names the bad value or the fix.  ``tests/test_error_catalogue.py``
runs every trigger and checks the type and the fragment, and checks that
``docs/errors.md`` equals :func:`render` of the real messages, so the list
cannot drift.  Regenerate it with::

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

from loop.error_triggers import (  # noqa: F401 - NUM_SAMPLES and my_selector: importable from here as before
    NUM_SAMPLES, FastFilter, Needs, accumulate_under_strategy, build_selector, checkpoint_dir_is_a_file,
    checkpoint_of_another_model, corrupted_local_file, dybat_budget, fractional_labels, garbage_checkpoint_index,
    features_of_a_convolutional_head, labels_out_of_range, model_outside_scope, my_selector, nan_inputs,
    nan_loss, other_run_checkpoint, parse_spec, plan_selector, random_access, records_without_decode, register_as,
    rho_wrong_model,
    selector_class_with_arguments, tf_dataset, tiny_data, tiny_fit, tiny_loop, tiny_model, truncated_cache,
    truncated_checkpoints, validation_labels_out_of_range)

#: One catalogue entry.
Case = collections.namedtuple("Case", ["group", "case", "exception", "fragment", "trigger"])


def _raises_mid_fit(state):
    """The selector of the "selector raises mid-fit" case: a ``KeyError`` at epoch 1.

    It stays here, under this name, because the name is part of the message
    (``docs/errors.md``) and of the traceback ``tests/test_error_catalogue.py``
    checks.
    """
    if state.epoch == 1:
        raise KeyError("no such column 'difficulty'")
    return [np.arange(state.num_samples)]


def _two_machines():
    """Two trials of one workload that ran on different machines, scored together."""
    from loop.bench.scoring.grouping import one_machine

    cpu = {"cpu": "AMD EPYC", "instruction_set": "AVX-512", "cores": 2, "gpus": []}
    return one_machine([{"workload": "spirals", "machine": cpu},
                        {"workload": "spirals", "machine": {**cpu, "gpus": ["NVIDIA H100 80GB HBM3"]}}])


CATALOGUE = [
    # ---------------------------------------------------------------- selector output
    Case("selector output", "non-integer indices", ValueError, "indices must be integers",
         lambda: tiny_fit(plan_selector(lambda n: [np.array([0.0, 1.5])]))),
    Case("selector output", "index out of range", ValueError, f"outside [0, {NUM_SAMPLES})",
         lambda: tiny_fit(plan_selector(lambda n: [np.arange(8), np.array([2, n])]))),
    Case("selector output", "negative index", ValueError, "indices [-1] are outside",
         lambda: tiny_fit(plan_selector(lambda n: [np.array([-1, 2])]))),
    Case("selector output", "empty mini-batch", ValueError, "the mini-batch is empty",
         lambda: tiny_fit(plan_selector(lambda n: [np.arange(2), np.array([], dtype=int)]))),
    Case("selector output", "empty plan", ValueError, "returned an empty plan",
         lambda: tiny_fit(plan_selector(lambda n: []))),
    Case("selector output", "plan is None", ValueError, "returned None",
         lambda: tiny_fit(plan_selector(lambda n: None))),
    Case("selector output", "NaN weight", ValueError, "weights must be finite and non-negative, got [nan]",
         lambda: tiny_fit(plan_selector(lambda n: [(np.array([0, 1]), np.array([1.0, np.nan]))]))),
    Case("selector output", "negative weight", ValueError, "finite and non-negative, got [-1.0]",
         lambda: tiny_fit(plan_selector(lambda n: [(np.array([0, 1]), np.array([1.0, -1.0]))]))),
    Case("selector output", "wrong number of weights", ValueError, "2 weights for 3 indices",
         lambda: tiny_fit(plan_selector(lambda n: [(np.array([0, 1, 2]), np.array([1.0, 1.0]))]))),
    Case("selector output", "selector raises mid-fit (its own type and traceback, with a note)", KeyError,
         "raised by selector _raises_mid_fit (__call__) at epoch 1", lambda: tiny_fit(_raises_mid_fit, epochs=2)),
    Case("selector output", "a flat index array instead of a list of batches", ValueError,
         "batch 0 is a single index (0), not an index array", lambda: tiny_fit(plan_selector(lambda n: np.arange(n)))),
    Case("selector output", "a batch that is not 1-D", ValueError, "the mini-batch has shape (6, 8), not 1-D",
         lambda: tiny_fit(plan_selector(lambda n: [np.arange(n).reshape(6, 8)]))),
    Case("selector output", "unknown in-step filter mode", ValueError,
         "filter_mode='fast'; use one of 'compact', 'mask', 'accumulate'",
         lambda: tiny_loop(FastFilter())),
    Case("selector output", "unknown per-sample quantity in needs", ValueError,
         "needs unknown per-sample quantities ['gradients']", lambda: tiny_loop(Needs("features", "gradients"))),
    Case("selector output", "features or gradients of a model without a final Dense layer", ValueError,
         "ends in a GlobalAveragePooling1D layer", features_of_a_convolutional_head),
    Case("selector output", "selector not callable", ValueError, "selector 42 is not callable",
         lambda: tiny_loop(42)),
    Case("selector output", "a selector class that needs arguments, instead of an instance", ValueError,
         "pass an instance, e.g. selector=TopLoss(fraction=...)", selector_class_with_arguments),
    # ---------------------------------------------------------------- selector construction
    Case("selectors and hyper-parameters", "unknown selector name", ValueError, "unknown selector 'dybatt'",
         parse_spec("dybatt:delta=0.5")),
    Case("selectors and hyper-parameters", "unknown hyper-parameter", ValueError,
         "unknown hyper-parameter 'detla'", parse_spec("dybat:detla=0.5")),
    Case("selectors and hyper-parameters", "malformed hyper-parameter", ValueError, "write key=value",
         parse_spec("dybat:0.5")),
    Case("selectors and hyper-parameters", "unclosed quote in a nested spec", ValueError,
         "close every quote and bracket",
         parse_spec("dynamic:base='dybat:delta=0.5,k0=16")),
    Case("selectors and hyper-parameters", "your own selector: no such module", ValueError,
         "no module named 'my_selectorz'", parse_spec("my_selectorz:LossWeighted:power=2")),
    Case("selectors and hyper-parameters", "your own selector: no such attribute", ValueError,
         "'loop.selectors' has no attribute 'LossWeighted'", parse_spec("loop.selectors:LossWeighted")),
    Case("selectors and hyper-parameters", "registering a built-in name", ValueError,
         "'shuffle' is the built-in Shuffle", register_as("shuffle")),
    Case("selectors and hyper-parameters", "DyBAT step budget with a batch larger than the data", ValueError,
         "batch_size=64 is larger than the 48 samples", dybat_budget),
    Case("selectors and hyper-parameters", "DyBAT delta outside (0, 1]", ValueError, "delta=1.5 is out of range",
         build_selector("DyBAT", delta=1.5)),
    Case("selectors and hyper-parameters", "DyBAT delta = 0", ValueError, "delta=0 is out of range",
         build_selector("DyBAT", delta=0)),
    Case("selectors and hyper-parameters", "OnlineBatchSelection s_e < 1", ValueError,
         "s_e0=0.5 is out of range", build_selector("OnlineBatchSelection", s_e0=0.5)),
    Case("selectors and hyper-parameters", "InfoBatch prune_ratio outside [0, 1)", ValueError,
         "prune_ratio=1.0 is out of range", build_selector("InfoBatch", prune_ratio=1.0)),
    Case("selectors and hyper-parameters", "RhoLoss holdout outside (0, 1)", ValueError,
         "holdout=1.0 is out of range", build_selector("RhoLoss", holdout=1.0)),
    Case("selectors and hyper-parameters", "RhoLoss irreducible model that does not fit the data", ValueError,
         "give an irreducible_model with the trained model's inputs and outputs", rho_wrong_model),
    Case("selectors and hyper-parameters", "batch size <= 0", ValueError, "batch_size must be a positive integer",
         lambda: tiny_loop(batch_size=0)),
    Case("selectors and hyper-parameters", "negative seed", ValueError, "seed must be a non-negative integer, got -1",
         lambda: tiny_loop(seed=-1)),
    # ---------------------------------------------------------------- data
    Case("data", "x and y lengths differ", ValueError, f"x has {NUM_SAMPLES} samples but y has {NUM_SAMPLES - 1}",
         lambda: tiny_fit(data=(tiny_data()[0], tiny_data()[1][:-1]))),
    Case("data", "a tf.data.Dataset instead of arrays", ValueError,
         "Pass an (x, y) pair of arrays, or a random-access source that streams by index", tf_dataset),
    Case("data", "a streamed source whose records are not (inputs, target) pairs", ValueError,
         "pass decode=lambda record: (inputs, target)", records_without_decode),
    Case("data", "a loop.RandomAccess and a separate y", ValueError, "a loop.RandomAccess carries its targets",
         lambda: tiny_fit(data=(random_access(), tiny_data()[1]))),
    Case("data", "resident_limit_bytes not a byte count", ValueError,
         "resident_limit_bytes must be a non-negative integer (0: always stream) or None (never stream), got '2GB'",
         lambda: tiny_loop(resident_limit_bytes="2GB")),
    Case("data", "NaN or Inf in the inputs", ValueError, "x holds NaN or Inf at sample(s) [3]", nan_inputs),
    Case("data", "label outside [0, num_classes)", ValueError, "label [7] at sample 5 is outside [0, 3)",
         labels_out_of_range),
    Case("data", "fractional class labels with a sparse loss", ValueError,
         "label [0.5] at sample 4 is not a whole number", fractional_labels),
    Case("data", "sample_weight of the wrong length", ValueError,
         f"sample_weight has shape ({NUM_SAMPLES - 1},) but the data has {NUM_SAMPLES} samples",
         lambda: tiny_fit(sample_weight=np.ones(NUM_SAMPLES - 1))),
    Case("data", "negative sample weight", ValueError, "sample_weight must be finite and non-negative, got [-1.0]",
         lambda: tiny_fit(sample_weight=np.r_[np.ones(NUM_SAMPLES - 1), -1.0])),
    Case("data", "sample_weight and class_weight together", ValueError,
         "pass sample_weight or class_weight, not both",
         lambda: tiny_fit(sample_weight=np.ones(NUM_SAMPLES), class_weight={0: 2.0})),
    Case("data", "class_weight key that is not a class id", ValueError,
         "class_weight key 'cat' is not a class id of this model", lambda: tiny_fit(class_weight={"cat": 2.0})),
    Case("data", "labels given as strings", ValueError, "encode labels as integer class ids",
         lambda: tiny_fit(data=(tiny_data()[0], np.array(["cat"] * NUM_SAMPLES)))),
    Case("data", "empty dataset", ValueError, "the dataset is empty",
         lambda: tiny_fit(data=(tiny_data()[0][:0], tiny_data()[1][:0]))),
    Case("data", "validation data of the wrong shape", ValueError, "validation_data: x has sample shape (2,)",
         lambda: tiny_fit(validation_data=(tiny_data()[0][:, :2], tiny_data()[1]))),
    Case("data", "validation label outside [0, num_classes)", ValueError,
         "validation_data: label [9] at sample 2 is outside [0, 3)", validation_labels_out_of_range),
    Case("data", "one-hot targets with a sparse loss", ValueError, "y looks one-hot (sample shape (3,))",
         lambda: tiny_fit(data=(tiny_data()[0], np.eye(3, dtype="float32")[tiny_data()[1]]))),
    Case("data", "class ids with a one-hot loss", ValueError, "takes one-hot targets",
         lambda: tiny_loop(loss="categorical_crossentropy").fit(tiny_data(), epochs=1, verbose=0)),
    Case("data", "x without y", ValueError, "must be an (x, y) pair of arrays, or x and y given separately",
         lambda: tiny_loop().fit(tiny_data()[0], epochs=1, verbose=0)),
    Case("data", "evaluate before fit", RuntimeError, "call fit() before evaluate()",
         lambda: tiny_loop().evaluate(*tiny_data())),
    Case("data", "unknown dataset name", ValueError, "Unknown dataset 'mnits'. Did you mean 'mnist'?",
         lambda: __import__("loop.datasets", fromlist=["load"]).load("mnits")),
    Case("data", "corrupted or truncated local file", ValueError, "The file is corrupted, truncated",
         corrupted_local_file),
    Case("data", "corrupted or truncated cached file", RuntimeError, "is corrupted or truncated",
         truncated_cache),
    # ---------------------------------------------------------------- training
    Case("training", "NaN or Inf loss", FloatingPointError, "the loss became NaN or Inf at epoch 0, step",
         nan_loss),
    Case("training", "target metric not tracked", ValueError, "target metric(s) ['val_f1'] are not tracked",
         lambda: tiny_fit(target={"val_f1": 0.5})),
    Case("training", "stop_at_target without a target", ValueError, "stop_at_target=True needs a target",
         lambda: tiny_fit(stop_at_target=True)),
    Case("training", "target outside its metric's range", ValueError,
         "target['val_accuracy'] = 1.5 can never be reached: val_accuracy lies in [0, 1]",
         lambda: tiny_fit(validation_data=tiny_data(), target={"val_accuracy": 1.5})),
    Case("training", "negative epochs (epochs=0 trains nothing, as in Keras)", ValueError,
         "epochs must be a non-negative integer", lambda: tiny_fit(epochs=-1)),
    Case("training", "no loss and an uncompiled model", ValueError, "no loss: pass loss=",
         lambda: __import__("loop").Loop(tiny_model())),
    Case("training", "eval_every with an accumulating in-step filter", ValueError,
         "decouples from the plan's batches; leave eval_every=None",
         lambda: tiny_fit(__import__("loop.selectors", fromlist=["RandomDrop"]).RandomDrop(), eval_every=2)),
    Case("training", "eval_every and eval_every_seconds together", ValueError,
         "or eval_every_seconds=2.0 (training seconds), not both",
         lambda: tiny_fit(eval_every=2, eval_every_seconds=2.0)),
    Case("training", "eval_every_seconds or time_budget_s not a positive number", ValueError,
         "eval_every_seconds must be a positive number of training seconds", lambda: tiny_fit(eval_every_seconds=0)),
    Case("training", "train_clock that is not a loop.schedules.TrainClock", ValueError,
         "train_clock must be a loop.schedules.TrainClock", lambda: tiny_fit(train_clock=1.0)),
    Case("training", "one workload's trials from two machines in one report (python -m loop.bench exits 2)",
         ValueError, "times measured on different hardware do not pair", _two_machines),
    Case("training", "an accumulating filter under a tf.distribute strategy", ValueError,
         "does not run under a tf.distribute strategy yet", accumulate_under_strategy),
    Case("training", "unknown verbose level", ValueError, "verbose must be 0 (silent), 1 (progress bar) or 2",
         lambda: tiny_fit(verbose_level=3)),
    Case("training", "checkpoint of a different run", ValueError,
         "holds a checkpoint of a different run (batch_size: 8 there, 16 here)", other_run_checkpoint),
    Case("training", "checkpoint_dir that is a file", ValueError, "is a file, not a directory",
         checkpoint_dir_is_a_file),
    Case("training", "every checkpoint truncated", ValueError,
         "ckpt-2: it is truncated or corrupt (IndexError: Read less bytes than requested)", truncated_checkpoints),
    Case("training", "garbage checkpoint index file and no readable checkpoint", ValueError,
         "checkpoint: the index file is unreadable", garbage_checkpoint_index),
    Case("training", "checkpoint of another model (architecture)", ValueError,
         "ckpt-2: it holds another model: a variable of shape (4, 5) here has shape (4, 3) there",
         checkpoint_of_another_model),
    Case("training", "model built outside strategy.scope()", ValueError, "created outside strategy.scope()",
         model_outside_scope),
    Case("training", "strategy that is not a tf.distribute.Strategy", ValueError,
         "strategy must be a tf.distribute.Strategy", lambda: tiny_loop(strategy="mirrored")),
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
