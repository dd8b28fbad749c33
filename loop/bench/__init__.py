"""The time-to-accuracy benchmark: does a selector reach a target sooner than seeded shuffling?

Who owns what: :mod:`~loop.bench.suites` the named suites and per-dataset
budgets; :mod:`~loop.bench.runner` training and storing each run;
:mod:`~loop.bench.auto_seeds` adding seeds where a verdict is open;
:mod:`~loop.bench.tuning` equal tuning of every selector (``--tune K``, the
``tuned`` suite: quasirandom trials per study, exact pruning) and
:mod:`~loop.bench.tuned_report` its results (study-best runs, winners, costs);
:mod:`~loop.bench.tables` targets, time-to-target, paired speedups and their
bootstrap intervals, and the compact terminal table; :mod:`~loop.bench.plots`
the learning-curve figures; :mod:`~loop.bench.thresholds` (speedup across
thresholds), :mod:`~loop.bench.profiles` (performance profiles over workloads)
and :mod:`~loop.bench.analysis` (``write_analysis``, their files) the verdict
beyond one target; ``__main__`` the command line (``python -m loop.bench
--help`` states the protocol); :mod:`~loop.bench.throughput`,
:mod:`~loop.bench.streaming` and :mod:`~loop.bench.overhead` the performance
benchmarks.

The names below are imported on first use (PEP 562), so that ``python -m
loop.bench --help`` does not load TensorFlow.
"""

import importlib

#: Each public name and the module that defines it.
_EXPORTS = {"run_suite": "loop.bench.runner", "Budget": "loop.bench.suites", "Suite": "loop.bench.suites",
            "SUITES": "loop.bench.suites", "DEFAULT": "loop.bench.suites", "SEEDS": "loop.bench.suites",
            "bootstrap_ci": "loop.bench.tables", "load_runs": "loop.bench.tables", "summarize": "loop.bench.tables",
            "seed000": "loop.bench.tables"}

__all__ = ["run_suite", "Budget", "Suite", "SUITES", "DEFAULT", "SEEDS", "bootstrap_ci", "load_runs", "summarize",
           "seed000"]


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'loop.bench' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
