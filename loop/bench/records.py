"""The trial record: what one timed training stores, in one versioned layout.

Every result of the benchmark is a trial of a study (AlgoPerf's unit): an untuned run is the one trial of its study,
a search's study has ``K`` trials.  A record (layout :data:`LAYOUT`) is a JSON-ready dict built once, by
:func:`new`, and never patched after the fact:

* **what was trained**: ``workload`` (its name, the tables' grouping key), ``dataset`` (the loader's name),
  ``workload_config`` (:meth:`loop.bench.workloads.Workload.config`), ``hyperparameters``
  (:meth:`loop.bench.workloads.Hyperparameters.config`), ``knobs`` (the selector's own searched knobs),
  ``selector`` (the method's label, a table's row), ``trial_selector`` (the label as trained, knobs set),
  ``study`` (also the training seed) and ``trial``, ``precision``, and ``target`` (the workload's fixed target);
* **what happened**: ``status`` (:data:`STATUSES`), ``error`` (and ``traceback``), ``frame`` (the history, one row
  per evaluation), the data's and model's facts (``task``, ``metrics``, ``loss``, ``target_metric``, ``n_train``,
  ``n_val``, ``n_test``, ``model``, ``compute_dtype``, ``init_fingerprint``, ``label_noise``), the schedule that
  trained (``loop_epochs``, ``schedule``), the pruning limit (``time_limit_s``);
* **what it cost**: ``costs`` (``wall_s``: the whole trial, set-up and evaluation included; ``flops_per_sample``);
* **on which clock**: ``clock`` (None on the epochs clock; on the seconds clock the calibration's
  ``seconds_per_epoch`` and the ``budget_s`` and ``eval_period_s`` it gave, :mod:`loop.bench.calibration`); for a
  searched trial ``search_units`` and ``search_space`` (its point's coordinates and the space);
* **where it ran**: ``machine`` (:func:`machine`: CPU model and instruction set, GPU models, TensorFlow and Keras
  versions, host name).

:func:`identity` is what the store's skip rule compares.  :func:`upgrade` reads the older layouts too, so stored
results stay readable: layout 1 runs (``format: 1``, ``runs/<dataset>/<selector>/seed_<s>.json``: ``seed`` is the
study, ``budget`` mixed the workload and the hyper-parameters) and layout 1 tuning trials (``trial_format: 1``:
``untuned_selector`` was the method, ``hyperparameters`` mixed the shared dimensions and the knobs).  Fields that did
not exist then read as today's defaults, and ``machine`` as None (not recorded).
"""

import functools
import os
import platform
import socket

from loop.bench.workloads import HYPERPARAMETER_FIELDS, Hyperparameters, Workload

#: The record layout this build writes; bumped when it changes (and :func:`upgrade` learns the old one).
LAYOUT = 2

#: A trial's status: trained to the end of its budget or its target.
OK = "ok"
#: The trial raised (a NaN loss, a selector error); its error is stored with it.
FAILED = "failed"
#: The trial was stopped by exact pruning (its training clock passed its study's best time) before its target.
PRUNED = "pruned"
#: The selector does not support the workload's task; nothing was trained, and the tables leave it out.
NOT_APPLICABLE = "not_applicable"
#: Every status.
STATUSES = (OK, FAILED, PRUNED, NOT_APPLICABLE)

#: The precision of a record written before precisions were recorded.
DEFAULT_PRECISION = "float32"


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return platform.processor() or platform.machine(), None
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")),
                 platform.processor() or platform.machine())
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    isa = next((name for name in ("avx512f", "avx2", "avx", "sse4_2") if name in flags), None)
    return model, {"avx512f": "AVX-512"}.get(isa, isa.upper().replace("_", ".") if isa else None)


@functools.lru_cache(maxsize=1)
def machine():
    """The machine this process trains on, as a trial records it.

    Returns:
        ``{"host", "cpu", "instruction_set", "cores", "gpus", "tensorflow", "keras", "python"}``: the host name,
        the CPU model and its widest vector instruction set (``"AVX-512"``, ``"AVX2"`` ...), the cores this process
        may use, the GPU models TensorFlow sees (empty on a CPU machine), and the versions.
    """
    import keras
    import tensorflow as tf

    cpu, isa = _cpu_model()
    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        gpus.append(details.get("device_name", device.name))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"host": socket.gethostname(), "cpu": cpu, "instruction_set": isa, "cores": cores, "gpus": gpus,
            "tensorflow": tf.__version__, "keras": keras.__version__, "python": platform.python_version()}


def hardware(record):
    """What a record's timing depends on: ``"<cpu> (<isa>), <n> cores"`` plus its GPUs; ``"unknown"`` when the record
    predates machine records."""
    found = record.get("machine")
    if not found:
        return "unknown"
    text = f"{found.get('cpu')} ({found.get('instruction_set')}), {found.get('cores')} cores"
    return text + (", " + ", ".join(found["gpus"]) if found.get("gpus") else "")


def new(workload, hyperparameters, *, selector, trial_selector=None, knobs=None, study, trial=0,
        precision=DEFAULT_PRECISION, time_limit_s=None, search_units=None, search_space=None, jit_compile=False):
    """A record of a trial about to train: every field it will have, the outcome fields empty.

    Args:
        workload: a :class:`~loop.bench.workloads.Workload`.
        hyperparameters: the :class:`~loop.bench.workloads.Hyperparameters` it trains with.
        selector: the method's label; ``trial_selector`` the label as trained (default: ``selector``); ``knobs``
            the selector's own searched values.
        study, trial: the study (and training seed) and the trial within it.
        precision: the ``keras.mixed_precision`` policy.
        jit_compile: compile the train step with XLA (``Loop(jit_compile=True)``), the same for every method.
        time_limit_s: the pruning limit the trial trains under, or None.
        search_units, search_space: for a searched trial, its point's coordinates in ``[0, 1)`` by dimension and
            the space (``{name: [kind, args]}``), so the report can count winners at a range's edge.
    """
    return {"layout": LAYOUT, "workload": workload.label, "dataset": workload.dataset,
            "workload_config": workload.config(), "hyperparameters": hyperparameters.config(),
            "knobs": dict(knobs or {}), "selector": selector, "trial_selector": trial_selector or selector,
            "study": int(study), "trial": int(trial), "precision": precision, "jit_compile": bool(jit_compile),
            "target": workload.target, "time_limit_s": time_limit_s,
            "status": OK, "error": None, "task": None, "metrics": [], "loss": None, "target_metric": None,
            "n_train": None, "n_val": None, "n_test": None, "model": None, "compute_dtype": None,
            "init_fingerprint": None, "loop_epochs": None, "schedule": None,
            "costs": {"wall_s": None, "flops_per_sample": None}, "machine": None, "clock": None,
            "search_units": search_units, "search_space": search_space, "frame": []}


def identity(record):
    """What makes two records the same trial: the workload and hyper-parameters whole, the selector as trained, the
    study, the trial, the precision and XLA compilation.  The store skips a planned trial whose stored record has
    this identity."""
    return {"workload": record["workload_config"], "hyperparameters": record["hyperparameters"],
            "selector": record["trial_selector"], "study": int(record["study"]), "trial": int(record["trial"]),
            "precision": record.get("precision") or DEFAULT_PRECISION, "jit_compile": bool(record.get("jit_compile"))}


def _split_budget(budget):
    """A layout-1 ``budget`` dict as ``(Workload, Hyperparameters)``, today's defaults filled in."""
    budget = dict(budget)
    hp = {name: budget.pop(name) for name in HYPERPARAMETER_FIELDS if name in budget}
    budget.pop("selectors", None), budget.pop("note", None)
    budget["name"] = budget.pop("workload", None)
    return Workload(**budget), Hyperparameters(**{k: v for k, v in hp.items()})


#: The layout-1 fields that layout 2 keeps as they were.
_KEPT = ("status", "error", "traceback", "task", "metrics", "loss", "target_metric", "n_train", "n_val", "n_test",
         "model", "compute_dtype", "init_fingerprint", "loop_epochs", "schedule", "label_noise", "frame")


#: The layout-2 fields the store's skip rule and the tables read from every record (``precision`` may be missing:
#: it reads as :data:`DEFAULT_PRECISION`).
_REQUIRED = {"workload": str, "workload_config": dict, "hyperparameters": dict, "selector": str,
             "trial_selector": str, "study": int, "trial": int, "status": str}


def _complete(raw):
    """Whether a layout-2 dict has the fields every reader needs (a hand-edited file may not)."""
    return all(isinstance(raw.get(name), kind) and not isinstance(raw.get(name), bool)
               for name, kind in _REQUIRED.items())


def upgrade(raw):
    """A stored record of any layout as a layout-2 record; None when ``raw`` is no record this build can read.

    Layout 2 is returned as it is.  A layout-1 run (``format: 1``) becomes trial 0 of study ``seed``; a layout-1
    tuning trial (``trial_format: 1``) keeps its study and trial, ``untuned_selector`` becomes ``selector`` and its
    ``hyperparameters`` are split into the shared ones and the selector's ``knobs``.
    """
    if not isinstance(raw, dict):
        return None
    if raw.get("layout") == LAYOUT:
        return raw if _complete(raw) else None
    if raw.get("format") != 1 or not isinstance(raw.get("budget"), dict):
        return None
    try:
        return _upgrade_layout1(raw)
    except (KeyError, TypeError, ValueError):  # a layout-1 file without a field it needs (hand-edited)
        return None


def _upgrade_layout1(raw):
    workload, hp = _split_budget(raw["budget"])
    tuned = raw.get("trial_format") == 1
    if raw.get("trial_format") not in (None, 1):
        return None
    if tuned:
        searched = raw.get("hyperparameters") or {}
        knobs = {k: v for k, v in searched.items() if k not in HYPERPARAMETER_FIELDS}
        selector, trial_selector = raw.get("untuned_selector", raw["selector"]), raw.get("trial_selector")
        study, trial = raw["study"], raw["trial"]
    else:
        knobs, selector, trial_selector = {}, raw["selector"], raw["selector"]
        study, trial = raw["seed"], 0
    record = new(workload, hp, selector=selector, trial_selector=trial_selector, knobs=knobs, study=study,
                 trial=trial, precision=raw.get("precision") or DEFAULT_PRECISION,
                 time_limit_s=raw.get("time_limit_s"))
    record.update({k: raw[k] for k in _KEPT if k in raw})
    record["costs"] = {"wall_s": raw.get("wall_s"), "flops_per_sample": raw.get("flops_per_sample")}
    record["upgraded_from"] = "tuning trial, layout 1" if tuned else "run, layout 1"
    return record

