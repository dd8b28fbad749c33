"""Scoring on synthetic records (no training): time to target, paired speedups, intervals, grouping, the table."""

import math

import numpy as np
import pandas as pd
import pytest
from synthetic_records import curve, record

from loop.bench.scoring import grouping, speedups, summary, targets


def _run(selector, study, val_acc, *, workload="toy", status="ok", step_s=1.0, selection_s=0.1):
    return record(workload, selector, study, curve(val_acc, seconds_per_eval=step_s, selection_s=selection_s),
                  status=status)


def _counted(selector, study, val_acc, forwarded_per_epoch, backprop_per_epoch, flops=None):
    return record("toy", selector, study, curve(val_acc, forwarded_per_eval=forwarded_per_epoch,
                                                backprop_per_eval=backprop_per_epoch), flops=flops)


# ------------------------------------------------------------------------------------------------ time to target
def test_time_to_reads_every_unit_at_the_first_evaluation_that_meets_the_target():
    frame = curve([0.5, 0.7, 0.9, 0.95], seconds_per_eval=2.0, forwarded_per_eval=300, backprop_per_eval=100)
    frame["step"] = [10, 20, 30, 40]
    r = record("toy", "X()", 0, frame)
    goal = {"val_accuracy": 0.9}
    assert targets.time_to(r, goal) == 6.0  # the default unit: training + selection seconds
    assert targets.time_to(r, goal, "epochs") == 3.0
    assert targets.time_to(r, goal, "steps") == 30.0
    assert targets.time_to(r, goal, "samples_forwarded") == 900.0
    assert targets.time_to(r, goal, "samples_backpropagated") == 300.0
    # one lookup for several units, in the order asked; a parsed target reads the same
    assert targets.time_to(r, {"val_accuracy": (0.9, "max")}, ("epochs", "seconds")) == (3.0, 6.0)
    assert targets.time_to(r, {"val_accuracy": 0.99}, tuple(targets.UNITS)) == (math.inf,) * 5  # never met
    assert targets.time_to(r, {"val_loss": 0.35}) == 4.0  # lower is better: first at or below 0.35 (1 - 0.7)
    with pytest.raises(ValueError, match="unknown unit"):
        targets.time_to(r, goal, "minutes")


def test_time_to_is_inf_for_a_failed_trial_an_empty_history_or_a_missing_target_column():
    frame = curve([0.95, 0.95])
    assert targets.time_to(record("toy", "X()", 0, frame), {"val_accuracy": 0.9}) == 1.0
    assert math.isinf(targets.time_to(record("toy", "X()", 0, frame, status="failed"), {"val_accuracy": 0.9}))
    assert math.isinf(targets.time_to(record("toy", "X()", 0, pd.DataFrame()), {"val_accuracy": 0.9}))
    # the guard: a target metric the history lacks is a miss in every unit, not an error
    assert targets.time_to(record("toy", "X()", 0, frame), {"val_mae": 3.0}, ("seconds", "steps")) == (math.inf,) * 2
    assert math.isinf(targets.time_to(record("toy", "X()", 0, frame), {}))  # no target: nothing to meet
    stored = record("toy", "X()", 0, frame)
    stored["frame"] = frame.to_dict(orient="records")  # as the store writes it, before loading
    assert targets.time_to(stored, {"val_accuracy": 0.9}, ("seconds", "epochs")) == (1.0, 1.0)


def test_a_count_the_history_lacks_is_nan_at_a_met_target_and_inf_at_a_miss():
    r = record("toy", "X()", 0, curve([0.5, 0.95]))  # stored before samples_forwarded existed
    assert math.isnan(targets.time_to(r, {"val_accuracy": 0.9}, "samples_forwarded"))
    assert math.isinf(targets.time_to(r, {"val_accuracy": 0.99}, "samples_forwarded"))


def test_test_at_reads_the_test_metric_at_the_target_and_at_the_end():
    frame = curve([0.5, 0.92, 0.95])
    frame["test_accuracy"] = [0.4, 0.88, 0.91]
    r = record("toy", "X()", 0, frame)
    assert targets.test_at(r, "accuracy", {"val_accuracy": 0.9}) == (0.88, 0.91)
    at_target, at_end = targets.test_at(r, "accuracy", {"val_accuracy": 0.99})
    assert math.isnan(at_target) and at_end == 0.91
    assert targets.test_metric(r, "accuracy") == "test_accuracy"
    assert all(math.isnan(v) for v in targets.test_at(_run("X()", 0, [0.9]), "accuracy", {"val_accuracy": 0.5}))


# ------------------------------------------------------------------------------------------ speedups, intervals
def test_bootstrap_ci_contains_the_known_median_and_is_seeded():
    rng = np.random.default_rng(1)
    values = rng.normal(2.0, 0.1, size=200)
    low, high = speedups.bootstrap_ci(values, n_boot=2000)
    assert low < np.median(values) < high
    assert low > 1.95 and high < 2.05
    assert speedups.bootstrap_ci(values, n_boot=2000) == (low, high)


def test_bootstrap_ci_covers_the_true_median_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    trials, covered = 200, 0
    for t in range(trials):
        sample = rng.lognormal(0.0, 0.5, size=40)  # true median exp(0) = 1
        low, high = speedups.bootstrap_ci(sample, n_boot=500, seed=t)
        covered += low <= 1.0 <= high
    assert 0.88 <= covered / trials <= 0.99


def test_bootstrap_ci_handles_infinite_ratios():
    assert speedups.bootstrap_ci([math.inf, math.inf, math.inf], n_boot=100) == (math.inf, math.inf)
    low, high = speedups.bootstrap_ci([0.0, 1.0, math.inf], n_boot=500)
    assert low == 0.0 and high == math.inf
    assert all(math.isnan(v) for v in speedups.bootstrap_ci([]))


def test_paired_ratios_pair_by_study_and_score_misses():
    base = {0: 10.0, 1: 10.0, 2: math.inf, 3: math.inf}
    sel = {0: 5.0, 1: math.inf, 2: 4.0, 3: math.inf, 9: 1.0}  # study 9 has no baseline trial: unpaired
    assert speedups.paired_ratios(base, sel) == [2.0, 0.0, math.inf, 0.0]


def test_paired_speedup_gives_the_median_ratio_its_interval_and_verdict():
    base = {s: 10.0 for s in range(6)}
    win = speedups.paired_speedup(base, {s: 4.0 + 0.1 * s for s in range(6)})
    assert win.verdict == "win" and win.low > 1.0 and win.speedup == pytest.approx((10 / 4.2 + 10 / 4.3) / 2)
    assert (win.low, win.high) == (10 / 4.5, 10 / 4.0)  # n = 6: k = 1, [min, max]
    assert win.ratios == tuple(10 / (4.0 + 0.1 * s) for s in range(6)) and win.false_win_rate == 1 / 64
    loss = speedups.paired_speedup(base, {s: 20.0 if s % 2 else math.inf for s in range(6)})
    assert loss.verdict == "loss" and loss.high < 1.0 and loss.speedup == pytest.approx(0.25)  # 0, .5, 0, .5 ...
    same = speedups.paired_speedup(base, {s: 10.0 * (0.8 if s % 2 else 1.25) for s in range(6)})
    assert same.verdict == "no difference" and same.low < 1.0 < same.high
    few = speedups.paired_speedup(base, {s: 2.0 for s in range(4)})  # 4 of 4 faster: 1 in 16 by chance
    assert few.speedup == 5.0 and few.verdict == "n/a (< 5 studies)" == speedups.TOO_FEW and math.isnan(few.low)
    assert math.isnan(few.false_win_rate) and few.ratios == (5.0,) * 4
    one = speedups.paired_speedup(base, {0: 2.0})  # one pair: a point estimate, no interval
    assert one.speedup == 5.0 and one.verdict == speedups.TOO_FEW and math.isnan(one.low)
    none = speedups.paired_speedup(base, {7: 2.0})
    assert math.isnan(none.speedup) and none.verdict == "n/a" and none.ratios == ()
    assert tuple(win)[:4] == (win.speedup, win.low, win.high, win.verdict)
    assert speedups.paired_speedup(base, {s: 2.0 for s in range(6)}, n_boot=50) == speedups.paired_speedup(
        base, {s: 2.0 for s in range(6)})  # n_boot is accepted and changes nothing


def test_the_order_statistic_rank_and_the_false_win_rate_are_exact():
    from scipy.stats import binom

    assert [speedups.order_statistic_k(n) for n in range(1, 13)] == [None] * 4 + [1, 1, 1, 2, 2, 2, 3, 3]
    assert speedups.MIN_STUDIES == 5 and speedups.TOO_FEW == "n/a (< 5 studies)"
    assert speedups.false_win_rate(5) == 1 / 32 and speedups.coverage(5) == 0.9375
    assert speedups.false_win_rate(8) == 9 / 256 and speedups.false_win_rate(10) == 11 / 1024
    assert math.isnan(speedups.false_win_rate(4)) and math.isnan(speedups.coverage(3))
    for n in range(5, 40):
        k = speedups.order_statistic_k(n)
        assert binom.cdf(k - 1, n, 0.5) <= 0.05 < binom.cdf(k, n, 0.5)  # the largest such k
        assert speedups.false_win_rate(n) == pytest.approx(binom.cdf(k - 1, n, 0.5), rel=1e-12)
    assert speedups.order_statistic_k(8, level=0.01) == 1 and speedups.min_studies(0.01) == 7
    assert speedups.too_few(0.01) == "n/a (< 7 studies)"
    with pytest.raises(ValueError, match="level=0.7"):
        speedups.order_statistic_k(8, level=0.7)


def test_the_median_interval_is_a_pair_of_order_statistics_misses_included():
    assert speedups.median_interval([1.3, 0.9, 1.1, 1.2, 1.05]) == (0.9, 1.3)                  # n = 5: [min, max]
    assert speedups.median_interval([5, 1, 7, 3, 2, 8, 4, 6]) == (2.0, 7.0)                    # n = 8: k = 2
    assert speedups.median_interval([0.0, 2.0, math.inf, 3.0, 4.0, 5.0, 6.0, 1.5]) == (1.5, 6.0)
    assert speedups.median_interval([math.inf] * 5) == (math.inf, math.inf)
    assert all(math.isnan(v) for v in speedups.median_interval([1.0, 2.0, 3.0, 4.0]))
    assert all(math.isnan(v) for v in speedups.median_interval([]))
    assert speedups.sign_verdict([1.1, 1.2, 1.3, 1.4, 1.01]) == "win"           # 5 of 5 faster
    assert speedups.sign_verdict([1.1, 1.2, 1.3, 1.4, 1.0]) == "no difference"  # a tie at 1 is not faster
    assert speedups.sign_verdict([0.0] * 5) == "loss" and speedups.sign_verdict([math.inf] * 5) == "win"
    assert speedups.sign_verdict([2.0, 2, 2, 2, 2, 2, 2, 0.5]) == "win"         # n = 8: 7 of 8 suffice
    assert speedups.sign_verdict([2.0, 2, 2, 2, 2, 2, 0.5, 0.5]) == "no difference"
    assert speedups.sign_verdict([2.0] * 4) == speedups.TOO_FEW and speedups.sign_verdict([]) == "n/a"
    assert speedups.ratios_text([1.123, 0.98, 0.0, math.inf, 0.004]) == "1.12, 0.98, 0, inf, 0.004"


def test_the_aggregate_is_the_median_without_nan():
    assert speedups.aggregate([3.0, 1.0, math.nan, 2.0]) == 2.0
    assert speedups.aggregate([1.0, math.inf]) == math.inf  # half missed: not reached
    assert speedups.aggregate([1.0, 2.0, math.inf]) == 2.0
    assert math.isnan(speedups.aggregate([])) and math.isnan(speedups.aggregate([math.nan]))
    assert speedups.AGGREGATE is np.median


def test_verdict_reads_the_interval_against_1():
    assert speedups.verdict(1.2, 3.0) == "win"
    assert speedups.verdict(0.2, 0.9) == "loss"
    assert speedups.verdict(0.9, 1.1) == "no difference"
    assert speedups.verdict(1.0, 1.0) == "no difference" and speedups.verdict(1.0, 2.0) == "no difference"
    assert speedups.verdict(math.inf, math.inf) == "win" and speedups.verdict(0.0, 0.0) == "loss"
    assert speedups.verdict(math.nan, math.nan) == "n/a" and speedups.verdict(None, None) == "n/a"
    assert set(speedups.VERDICTS) == {"win", "loss", "no difference", "n/a", "n/a (< 5 studies)"}


# --------------------------------------------------------------------------------------------------- grouping
def test_by_workload_drops_not_applicable_records_and_keeps_first_seen_order():
    records = [_run("Shuffle()", 0, [0.5], workload="b"), _run("Shuffle()", 0, [0.5], workload="a"),
               record("b", "Homogeneous()", 0, pd.DataFrame(), status="not_applicable", error="regression"),
               record("c", "Homogeneous()", 0, pd.DataFrame(), status="not_applicable", error="regression"),
               _run("Other()", 0, [0.5], workload="b")]
    grouped = grouping.by_workload(records)
    assert list(grouped) == ["b", "a"]  # "c" had only a not-applicable record
    assert [r["selector"] for r in grouped["b"]] == ["Shuffle()", "Other()"]
    assert grouping.not_applicable(records) == {"Homogeneous()": ["b", "c"]}
    assert grouping.selector_order(grouped["b"][::-1], "Shuffle()") == ["Shuffle()", "Other()"]


# -------------------------------------------------------------------------------------------------- targets
def test_infer_target_is_99_percent_of_the_median_best_shuffle():
    records = [_run("Shuffle()", s, [0.5, best]) for s, best in enumerate([0.8, 0.9, 1.0])]
    records.append(_run("Other()", 0, [0.99, 0.99]))
    threshold, mode = targets.infer_target(records, "val_accuracy")
    assert mode == "max" and threshold == pytest.approx(0.99 * 0.9)


def test_infer_target_lower_is_better_uses_101_percent_of_the_median_best():
    records = []
    for study, best in enumerate([3.0, 2.0, 4.0]):
        run = _run("Shuffle()", study, [0.1, 0.2])
        run["frame"]["val_mae"] = [best + 1.0, best]
        run["target_metric"] = "val_mae"
        records.append(run)
    assert targets.infer_target(records, "val_mae") == (pytest.approx(3.03), "min")


def test_parse_targets():
    assert targets.parse_targets(["val_mae=3", "iris:val_accuracy=0.9"]) == {
        None: {"val_mae": 3.0}, "iris": {"val_accuracy": 0.9}}
    for bad in ["val_mae", "val_mae=x", "=3", "val_mae=inf"]:
        with pytest.raises(ValueError, match="bad target"):
            targets.parse_targets([bad])


def test_the_target_is_given_else_the_records_fixed_one_else_inferred():
    records = [_run("Shuffle()", s, [0.5, 0.8]) for s in range(2)]
    assert targets.dataset_target(records)[1] == "99% of median best Shuffle()"
    fixed = [dict(r, target={"val_accuracy": 0.7}) for r in records]
    assert targets.dataset_target(fixed) == ({"val_accuracy": (0.7, "max")}, "fixed in the suite")
    given = targets.parse_targets(["toy:val_accuracy=0.6", "val_accuracy=0.5"])
    assert targets.dataset_target(fixed, given) == ({"val_accuracy": (0.6, "max")}, "given")  # its own entry wins
    assert targets.dataset_target(fixed, {None: {"val_accuracy": 0.5}})[0] == {"val_accuracy": (0.5, "max")}
    assert targets.dataset_target(fixed, {None: {"val_mae": 3.0}})[1] == "fixed in the suite"  # not its metric
    assert targets.dataset_target([_run("Other()", 0, [0.5])]) == ({}, "none: no successful Shuffle() run to "
                                                                       "infer it from")


# ------------------------------------------------------------------------------------------------- the table
def test_unreached_and_failed_runs_stay_in_the_table_as_not_reached():
    records = [_run("Shuffle()", s, [0.5, 0.8, 0.9]) for s in range(3)]
    records += [_run("Slow()", s, [0.4, 0.5, 0.6]) for s in range(3)]           # never reaches 0.891
    records += [_run("Fast()", s, [0.9, 0.9, 0.9], step_s=0.5) for s in range(2)]
    records.append(_run("Fast()", 2, [0.2], status="failed"))
    table = summary.summarize(records, n_boot=200).set_index("selector")
    assert list(table.index) == ["Shuffle()", "Slow()", "Fast()"]
    assert table.loc["Shuffle()", "speedup"] == 1.0 and table.loc["Shuffle()", "reached"] == 1.0
    assert table.loc["Shuffle()", "time_to_target_s"] == 3.0 and table.loc["Shuffle()", "epochs_to_target"] == 3.0
    slow = table.loc["Slow()"]
    assert slow["seeds"] == 3 and slow["reached"] == 0.0
    assert math.isinf(slow["time_to_target_s"]) and slow["speedup"] == 0.0
    fast = table.loc["Fast()"]
    assert fast["seeds"] == 3 and fast["failed"] == 1 and fast["reached"] == pytest.approx(2 / 3)
    assert fast["speedup"] == pytest.approx(6.0)  # ratios 6, 6, 0 (the failed study)
    assert fast["time_to_target_s"] == 0.5 and "FloatingPointError" in fast["errors"]
    assert table.loc["Shuffle()", "selection_share"] == pytest.approx(0.1)
    assert set(table["dataset"]) == {"toy"} and table["target_source"].iloc[0] == "99% of median best Shuffle()"


def test_a_failed_trial_is_a_miss_even_where_its_history_met_the_target():
    records = [_run("Shuffle()", s, [0.5, 0.9]) for s in range(2)]
    records += [_run("Broken()", s, [0.95, 0.95], status="failed") for s in range(2)]  # NaN loss after the target
    table = summary.summarize(records, targets={None: {"val_accuracy": 0.9}}, n_boot=50).set_index("selector")
    assert table.loc["Broken()", "reached"] == 0.0 and table.loc["Broken()", "speedup"] == 0.0
    assert table.loc["Broken()", "best_test"] == pytest.approx(0.95)  # its history still counts for the bests


def test_a_given_target_overrides_the_inferred_one():
    records = [_run("Shuffle()", 0, [0.5, 0.8]), _run("Other()", 0, [0.7, 0.7])]
    table = summary.summarize(records, targets=targets.parse_targets(["val_accuracy=0.6"]), n_boot=50)
    assert list(table["reached"]) == [1.0, 1.0]
    assert table.loc[1, "speedup"] == pytest.approx(2.0)
    assert set(table["target_source"]) == {"given"}


def test_not_applicable_records_are_left_out_of_the_table():
    records = [_run("Shuffle()", s, [0.5, 0.9]) for s in range(2)]
    records.append(record("toy", "Homogeneous()", 0, pd.DataFrame(), status="not_applicable", error="regression"))
    assert list(summary.summarize(records, n_boot=50)["selector"]) == ["Shuffle()"]


def test_seed000_keeps_study_0_and_the_order_only_selectors_in_order():
    records = [_run(s, study, [0.5, 0.6]) for s in ["Heterogeneous()", "Shuffle()", "DyBAT()", "Freeze()"]
               for study in (0, 1)]
    first = summary.seed000(records)
    assert list(first["selector"]) == ["Freeze()", "Shuffle()", "Heterogeneous()"]
    assert list(first["best_test"]) == [0.6] * 3
    assert set(first["dataset"]) == {"toy"}
    assert summary.seed000([_run("DyBAT()", 0, [0.5])]).empty


def test_sample_counts_to_target_and_their_paired_savings():
    # Shuffle reaches 0.9 at epoch 3 (300 forwarded, 300 backpropagated); the filter at epoch 2, forwarding
    # 200 per epoch but backpropagating only 50: 400 forwarded, 100 backpropagated.
    records = [_counted("Shuffle()", s, [0.5, 0.7, 0.9], 100, 100, flops=1000) for s in range(5)]
    records += [_counted("Filter()", s, [0.6, 0.9, 0.95], 200, 50, flops=1000) for s in range(5)]
    table = summary.summarize(records, targets={None: {"val_accuracy": 0.9}}, n_boot=200).set_index("selector")
    goal = {"val_accuracy": (0.9, "max")}
    assert targets.time_to(records[5], goal, ("samples_forwarded", "samples_backpropagated")) == (400.0, 100.0)
    assert table.loc["Filter()", "forward_to_target"] == 400 and table.loc["Filter()", "backprop_to_target"] == 100
    # optimizer steps at the first evaluation that meets the target (the toy history's step is the epoch)
    assert targets.time_to(records[5], goal, "steps") == 2.0
    assert table.loc["Filter()", "steps_to_target"] == 2 and table.loc["Shuffle()", "steps_to_target"] == 3
    assert table.loc["Filter()", "forward_speedup"] == pytest.approx(300 / 400)
    assert table.loc["Filter()", "backprop_speedup"] == pytest.approx(300 / 100)
    assert table.loc["Filter()", "backprop_speedup_ci_low"] == pytest.approx(3.0)
    assert table.loc["Filter()", "backprop_verdict"] == "win" and table.loc["Filter()", "verdict"] == "win"
    assert table.loc["Filter()", "backprop_false_win_rate"] == 1 / 32
    # training FLOPs f * (F + 2 B): Shuffle 1000 * (300 + 600), the filter 1000 * (400 + 200)
    assert table.loc["Shuffle()", "train_gflops_to_target"] == pytest.approx(9e-4)
    assert table.loc["Filter()", "train_gflops_to_target"] == pytest.approx(6e-4)
    assert table.loc["Filter()", "flops_per_sample"] == 1000


def test_runs_stored_without_forward_counts_leave_the_forward_columns_empty():
    records = [_run("Shuffle()", s, [0.5, 0.9]) for s in range(2)] + [_run("Other()", s, [0.9, 0.9]) for s in range(2)]
    for r in records:
        r["frame"]["samples_backpropagated"] = 10 * r["frame"]["step"]
    table = summary.summarize(records, targets={None: {"val_accuracy": 0.9}}, n_boot=100).set_index("selector")
    assert math.isnan(table.loc["Other()", "forward_to_target"]) and math.isnan(table.loc["Other()", "forward_speedup"])
    assert table.loc["Other()", "backprop_speedup"] == pytest.approx(2.0)


def test_the_table_marks_each_speedup_as_win_loss_or_no_difference():
    records = [_counted("Shuffle()", s, [0.5, 0.7, 0.9], 100, 100) for s in range(5)]
    records += [_counted("Fast()", s, [0.9, 0.9, 0.9], 200, 50) for s in range(5)]       # 3x sooner, 1/6 backprop
    records += [_counted("Slow()", s, [0.5, 0.5, 0.5], 100, 100) for s in range(5)]      # never reaches it
    records += [_counted("Mixed()", s, [0.5, 0.7, 0.9] if s % 2 else [0.9, 0.9, 0.9], 100, 100)
                for s in range(5)]                                                       # 3x, 1x, 3x ...: undecided
    table = summary.summarize(records, targets={None: {"val_accuracy": 0.9}}, n_boot=500).set_index("selector")
    assert table.loc["Fast()", "verdict"] == "win" and table.loc["Fast()", "backprop_verdict"] == "win"
    assert table.loc["Slow()", "verdict"] == "loss" and table.loc["Slow()", "backprop_verdict"] == "loss"
    assert table.loc["Mixed()", "verdict"] == "no difference"
    assert table.loc["Shuffle()", "verdict"] == "no difference"  # itself: interval [1, 1]
    assert (table.loc["Mixed()", "speedup_ci_low"], table.loc["Mixed()", "speedup_ci_high"]) == (1.0, 3.0)


def test_the_table_gives_the_per_study_ratios_and_the_verdicts_false_win_rate():
    records = [_run("Shuffle()", s, [0.5, 0.9]) for s in range(8)]                 # 2 s to 0.9
    records += [_run("Fast()", s, [0.9], step_s=1.6 if s == 3 else 0.8) for s in range(8)]   # 2.5x, one 1.25x
    records += [_run("Few()", s, [0.9]) for s in range(3)]                           # 2x in 3 of 3 studies
    records.append(_run("Fast()", 8, [0.9]))                                        # no Shuffle() study 8: unpaired
    table = summary.summarize(records, targets={None: {"val_accuracy": 0.9}}).set_index("selector")
    fast = table.loc["Fast()"]
    assert fast["ratios"] == "2.50, 2.50, 2.50, 1.25, 2.50, 2.50, 2.50, 2.50"  # study order, paired studies only
    assert fast["paired_studies"] == 8 and fast["seeds"] == 9
    assert fast["false_win_rate"] == 9 / 256 and fast["verdict"] == "win"             # n = 8: k = 2
    assert (fast["speedup_ci_low"], fast["speedup_ci_high"]) == (2.5, 2.5)            # x_(2), x_(7)
    few = table.loc["Few()"]
    assert few["verdict"] == "n/a (< 5 studies)" and math.isnan(few["false_win_rate"]) and few["speedup"] == 2.0
    assert math.isnan(few["speedup_ci_low"]) and few["ratios"] == "2.00, 2.00, 2.00" and few["paired_studies"] == 3
    assert table.loc["Shuffle()", "ratios"] == ", ".join(["1.00"] * 8)
    columns = list(table.reset_index().columns)
    assert columns[columns.index("verdict"):columns.index("verdict") + 4] == [
        "verdict", "paired_studies", "false_win_rate", "ratios"]
    assert columns.index("backprop_false_win_rate") == columns.index("backprop_verdict") + 1


def test_a_row_without_pairs_has_no_verdict():
    records = [_run("Shuffle()", 0, [0.5, 0.9]), _run("Other()", 5, [0.9, 0.9])]  # study 5: no Shuffle() to pair
    table = summary.summarize(records, targets={None: {"val_accuracy": 0.9}}, n_boot=50).set_index("selector")
    assert table.loc["Other()", "verdict"] == "n/a" and table.loc["Other()", "backprop_verdict"] == "n/a"
    assert table.loc["Other()", "paired_studies"] == 0 and table.loc["Other()", "ratios"] == ""


def test_fewer_than_five_paired_studies_is_no_verdict():
    """Four of four studies faster happens 1 time in 16 when nothing differs: more than 5%, so no claim."""
    assert all(math.isnan(v) for v in speedups.bootstrap_ci([3.0]))
    assert speedups.bootstrap_ci([3.0], min_values=1) == (3.0, 3.0)
    records = [_counted("Shuffle()", 0, [0.5, 0.7, 0.9], 100, 100), _counted("Fast()", 0, [0.9, 0.9, 0.9], 200, 50)]
    table = summary.summarize(records, targets={None: {"val_accuracy": 0.9}}, n_boot=50).set_index("selector")
    assert table.loc["Fast()", "speedup"] == 3.0  # the point estimate stays
    assert table.loc["Fast()", "verdict"] == "n/a (< 5 studies)" == table.loc["Fast()", "backprop_verdict"]
    for study in range(1, 5):
        records += [_counted("Shuffle()", study, [0.5, 0.7, 0.9], 100, 100),
                    _counted("Fast()", study, [0.9, 0.9, 0.9], 200, 50)]
        table = summary.summarize(records, targets={None: {"val_accuracy": 0.9}}).set_index("selector")
        assert table.loc["Fast()", "verdict"] == ("win" if study == 4 else "n/a (< 5 studies)")
    assert table.loc["Fast()", "false_win_rate"] == 1 / 32 and table.loc["Shuffle()", "verdict"] == "no difference"


def test_scoring_imports_no_reporting_no_matplotlib():
    import subprocess
    import sys

    code = ("import sys; import loop.bench.scoring as s; from loop.bench.scoring import profiles, thresholds; "
            "bad = [m for m in sys.modules if m.startswith(('matplotlib', 'loop.bench.reporting', 'tensorflow'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
