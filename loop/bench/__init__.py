"""The time-to-accuracy benchmark: does a selector reach a target sooner than seeded shuffling?

Who owns what: :mod:`~loop.bench.suites` the named suites and per-dataset
budgets; :mod:`~loop.bench.runner` training and storing each run;
:mod:`~loop.bench.tuning` equal tuning of every selector (``--tune K``, the
``tuned`` suite: quasirandom trials per study, exact pruning, study-best runs);
:mod:`~loop.bench.tables` targets, time-to-target, paired speedups and their
bootstrap intervals; :mod:`~loop.bench.plots` the learning-curve figures;
``__main__`` the command line (``python -m loop.bench --help`` states the
protocol); :mod:`~loop.bench.throughput` and :mod:`~loop.bench.overhead` the
performance benchmarks.
"""

from loop.bench.runner import run_suite
from loop.bench.suites import DEFAULT, SEEDS, SUITES, Budget, Suite
from loop.bench.tables import bootstrap_ci, load_runs, seed000, summarize

__all__ = ["run_suite", "Budget", "Suite", "SUITES", "DEFAULT", "SEEDS", "bootstrap_ci", "load_runs", "summarize",
           "seed000"]
