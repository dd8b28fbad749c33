"""Scoring stored trials: every number the benchmark reports, and nothing that formats or draws.

Who owns what:

* :mod:`~loop.bench.scoring.targets`: the targets (``--target`` specs, fixed, inferred from the baseline) and
  :func:`~loop.bench.scoring.targets.time_to`, the one definition of a trial's time to target in any unit;
  the best metric and the test metric at the target.
* :mod:`~loop.bench.scoring.speedups`: the one paired speedup with the order-statistic interval of its median and
  its sign-test verdict (:func:`~loop.bench.scoring.speedups.paired_speedup`), the verdict's stated false-win rate
  (:func:`~loop.bench.scoring.speedups.false_win_rate`) and the one aggregate over studies
  (:func:`~loop.bench.scoring.speedups.aggregate`, the median).
* :mod:`~loop.bench.scoring.grouping`: records by workload without the not-applicable ones
  (:func:`~loop.bench.scoring.grouping.by_workload`).
* :mod:`~loop.bench.scoring.studies`: each study's winning trial, the winning hyper-parameters, the tuning cost,
  and how often the winners sit at an edge of the searched range (:func:`~loop.bench.scoring.studies.edge_hits`).
* :mod:`~loop.bench.scoring.summary`: the time-to-accuracy table (``table.csv``) and the seed 000 table.
* :mod:`~loop.bench.scoring.thresholds`: the speedup across thresholds and its trend.
* :mod:`~loop.bench.scoring.profiles`: performance profiles over workloads.

Nothing here imports :mod:`loop.bench.reporting` or matplotlib; TensorFlow is imported only inside
:func:`~loop.bench.scoring.summary.summarize` (FLOPs).  The main names are re-exported here.
"""

from loop.bench.scoring.grouping import MixedHardwareError, by_workload, not_applicable, one_machine, selector_order
from loop.bench.scoring.speedups import (AGGREGATE, LEVEL, MIN_STUDIES, TOO_FEW, VERDICTS, Speedup, aggregate,
                                         bootstrap_ci, coverage, false_win_rate, median_interval, order_statistic_k,
                                         paired_ratios, paired_speedup, sign_verdict, verdict)
from loop.bench.scoring.studies import costs, edge_hits, study_winners, trials_per_study, winners
from loop.bench.scoring.summary import SEED000_SELECTORS, seed000, summarize
from loop.bench.scoring.targets import (AA_CONTROL, BASELINE, UNITS, best, dataset_target, infer_target,
                                        is_aa_control, parse_targets, test_at, test_metric, time_to)

__all__ = ["MixedHardwareError", "one_machine", "AA_CONTROL", "AGGREGATE", "BASELINE", "LEVEL", "MIN_STUDIES", "SEED000_SELECTORS", "TOO_FEW", "UNITS",
           "VERDICTS", "Speedup", "aggregate", "best", "bootstrap_ci", "by_workload", "costs", "coverage",
           "dataset_target", "edge_hits", "false_win_rate", "infer_target", "is_aa_control", "median_interval",
           "not_applicable", "order_statistic_k", "paired_ratios", "paired_speedup", "parse_targets", "seed000",
           "selector_order", "sign_verdict", "study_winners", "summarize", "test_at", "test_metric", "time_to",
           "trials_per_study", "verdict", "winners"]
