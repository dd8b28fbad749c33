"""The time-to-accuracy benchmark: does a selector reach a target sooner than seeded shuffling?

One pipeline, each part defined once:

* what trains: :mod:`~loop.bench.workloads` (a ``Workload`` apart from its ``Hyperparameters``) and
  :mod:`~loop.bench.suites` (named suites of entries, which selectors run where);
* how one trial trains: :mod:`~loop.bench.training` (data, model, precision from :mod:`~loop.bench.precision`,
  the fit, the pruning callback), named by :mod:`~loop.bench.labels`;
* what a trial stores: :mod:`~loop.bench.records` (the versioned trial record, its machine, the older layouts) in
  :mod:`~loop.bench.store` (paths, atomic writes, claims, ``load``, the skip rule);
* what runs: :mod:`~loop.bench.campaign` (the one loop: studies over workloads and selectors), with
  :mod:`~loop.bench.search` (``--tune K``: points, the range test) and :mod:`~loop.bench.auto_seeds`
  (``--seeds auto``), showing :mod:`~loop.bench.progress`;
* how it scores: :mod:`loop.bench.scoring` (targets, time to target, paired speedups, study winners, thresholds,
  profiles), and, above it, :mod:`loop.bench.reporting` (formatting, figures, the one report);
* the command line: ``__main__`` (``python -m loop.bench --help`` states the protocol), its up-front
  :mod:`~loop.bench.checks`; the performance benchmarks: :mod:`loop.bench.perf`.

The names below are imported on first use (PEP 562), so that ``python -m loop.bench --help`` does not load
TensorFlow.
"""

import importlib

#: Each public name and the module that defines it.
_EXPORTS = {"run_campaign": "loop.bench.campaign", "Workload": "loop.bench.workloads",
            "Hyperparameters": "loop.bench.workloads", "Entry": "loop.bench.suites", "entry": "loop.bench.suites",
            "Suite": "loop.bench.suites", "SUITES": "loop.bench.suites", "DEFAULT": "loop.bench.suites",
            "load": "loop.bench.store", "Store": "loop.bench.store", "report": "loop.bench.reporting",
            "summarize": "loop.bench.scoring", "bootstrap_ci": "loop.bench.scoring",
            "paired_speedup": "loop.bench.scoring", "time_to": "loop.bench.scoring"}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'loop.bench' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
