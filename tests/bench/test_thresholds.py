"""Speedup across thresholds on synthetic records (no training): levels, speedups, trends and the figure."""

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from synthetic_records import record

from loop.bench.reporting import formatting
from loop.bench.reporting.plots import plot_speedup_by_threshold
from loop.bench.scoring import thresholds


def _run(selector, study, values, times, *, workload="toy", metric="val_accuracy", target=0.9, status="ok"):
    n = len(values)
    frame = pd.DataFrame({"epoch": np.arange(1, n + 1, dtype=float), "step": np.arange(1, n + 1),
                          "train_time_s": np.asarray(times, dtype=float),
                          "samples_backpropagated": 100.0 * np.arange(1, n + 1), metric: np.asarray(values),
                          "val_loss": np.ones(n)})
    return record(workload, selector, study, frame, status=status, error=None, metrics=[metric.replace("val_", "")],
                  target_metric=metric, target={metric: target})


# The baseline meets 0.5, 0.6, 0.7, 0.8 and 0.9 at 1, 2, 3, 4 and 5 seconds (evaluations 1-5).
_BASE = ([0.5, 0.62, 0.72, 0.82, 0.92], [1, 2, 3, 4, 5])
# Grows: 0.5 at 1 s, everything else at 2.5 s -> speedups 1, 0.8, 1.2, 1.6, 2.0.
_GROW = ([0.5, 0.95], [1.0, 2.5])
# Shrinks: up to 0.7 at 0.5 s, 0.8 at 4 s, 0.9 at 10 s -> speedups 2, 4, 6, 1, 0.5.
_SHRINK = ([0.75, 0.8, 0.85, 0.95], [0.5, 4.0, 4.5, 10.0])


def _records(studies=5):
    records = []
    for study in range(studies):
        records.append(_run("Shuffle()", study, *_BASE))
        records.append(_run("Grow()", study, *_GROW))
        records.append(_run("Shrink()", study, *_SHRINK))
    return records


def test_the_easy_level_is_the_median_first_evaluation_of_the_baseline():
    records = [_run("Shuffle()", s, [first, 0.95], [1, 2]) for s, first in enumerate([0.3, 0.5, 0.4])]
    records.append(_run("Other()", 0, [0.9, 0.95], [1, 2]))          # not the baseline: ignored
    records.append(_run("Shuffle()", 9, [0.99], [1], status="failed"))  # failed: ignored
    assert thresholds.easy_level(records, "val_accuracy") == pytest.approx(0.4)
    levels = thresholds.threshold_levels(records, {"val_accuracy": (0.9, "max")}, count=6)
    assert levels == pytest.approx([0.4, 0.5, 0.6, 0.7, 0.8, 0.9])


def test_an_easy_level_that_already_meets_the_target_leaves_only_the_target():
    records = [_run("Shuffle()", s, [0.95, 0.96], [1, 2]) for s in range(3)]
    assert thresholds.threshold_levels(records, {"val_accuracy": (0.9, "max")}) == [0.9]


def test_known_times_give_known_speedups_at_every_level():
    table = thresholds.speedup_by_threshold(_records(), n_boot=200)
    assert list(table["level"].unique()) == [1, 2, 3, 4, 5]
    assert table.groupby("level")["threshold"].first().to_numpy() == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9])
    assert set(table["levels_from"]) == {"easy level to target"}
    grow = table[table["selector"] == "Grow()"].sort_values("level")
    assert grow["speedup"].to_numpy() == pytest.approx([1.0, 0.8, 1.2, 1.6, 2.0])
    assert grow["time_to_threshold_s"].to_numpy() == pytest.approx([1.0, 2.5, 2.5, 2.5, 2.5])
    assert list(grow["verdict"]) == ["no difference", "loss", "win", "win", "win"]  # identical seeds: [s, s]
    assert list(grow["reached"]) == [5] * 5 and list(grow["seeds"]) == [5] * 5
    assert list(grow["false_win_rate"]) == [1 / 32] * 5 and list(grow["paired_studies"]) == [5] * 5
    assert grow["ratios"].iloc[-1] == "2.00, 2.00, 2.00, 2.00, 2.00"
    few = thresholds.speedup_by_threshold(_records(studies=4), n_boot=200)
    assert set(few["verdict"]) == {"n/a (< 5 studies)"} and few["speedup_ci_low"].isna().all()
    shrink = table[table["selector"] == "Shrink()"].sort_values("level")
    assert shrink["speedup"].to_numpy() == pytest.approx([2.0, 4.0, 6.0, 1.0, 0.5])
    base = table[table["selector"] == "Shuffle()"]
    assert (base["speedup"] == 1.0).all() and (base["verdict"] == "no difference").all()
    # backpropagated samples: 100 per evaluation; the baseline meets 0.9 at its 5th, Grow at its 2nd
    assert grow["backprop_to_threshold"].iloc[-1] == 200 and grow["backprop_speedup"].iloc[-1] == pytest.approx(2.5)


def test_the_interval_is_the_order_statistic_interval_over_studies():
    records = _records(studies=8)
    for r in records:  # Grow's study 3 misses every level above the easiest: its ratio there is 0
        if r["selector"] == "Grow()" and r["study"] == 3:
            r["frame"]["val_accuracy"] = [0.5, 0.55]
    table = thresholds.speedup_by_threshold(records)
    last = table[(table["selector"] == "Grow()") & (table["level"] == 5)].iloc[0]
    assert last["reached"] == 7 and last["speedup"] == pytest.approx(2.0)  # median of 2 x 7 and 0
    # n = 8: k = 2, the interval [x_(2), x_(7)] = [2, 2]; 7 of 8 studies faster is a win (false-win rate 9/256)
    assert last["speedup_ci_low"] == pytest.approx(2.0) and last["speedup_ci_high"] == pytest.approx(2.0)
    assert last["verdict"] == "win" and last["false_win_rate"] == 9 / 256
    assert last["ratios"] == "2.00, 2.00, 2.00, 0, 2.00, 2.00, 2.00, 2.00"
    records = _records(studies=5)
    for r in records:  # with 5 studies one miss is enough to leave it undecided: k = 1, [min, max] = [0, 2]
        if r["selector"] == "Grow()" and r["study"] == 3:
            r["frame"]["val_accuracy"] = [0.5, 0.55]
    last = thresholds.speedup_by_threshold(records).query("selector == 'Grow()' and level == 5").iloc[0]
    assert (last["speedup_ci_low"], last["speedup_ci_high"]) == (0.0, pytest.approx(2.0))
    assert last["verdict"] == "no difference"


def test_each_level_takes_each_studys_own_fastest_trial():
    """Trial 0 meets the easy level first, trial 1 the target: the easy level reads trial 0's time."""
    def trial(selector, study, k, values, times):
        return dict(_run(selector, study, values, times), trial=k)

    records = []
    for study in range(5):
        records.append(trial("Shuffle()", study, 0, *_BASE))                                  # 1 s ... 5 s
        records.append(trial("Tuned()", study, 0, [0.55, 0.6, 0.7, 0.8, 0.85, 0.88], [0.5, 1, 2, 3, 4, 20]))
        records.append(trial("Tuned()", study, 1, [0.3, 0.95], [2.0, 2.5]))                  # the target at 2.5 s
    table = thresholds.speedup_by_threshold(records).set_index(["selector", "level"])
    # the easy level 0.5: trial 0 meets it at 0.5 s (trial 1 at 2.5 s); the target 0.9: only trial 1, at 2.5 s
    assert table.loc[("Tuned()", 1), "time_to_threshold_s"] == 0.5 and table.loc[("Tuned()", 1), "speedup"] == 2.0
    assert table.loc[("Tuned()", 5), "time_to_threshold_s"] == 2.5 and table.loc[("Tuned()", 5), "speedup"] == 2.0
    assert table.loc[("Tuned()", 4), "time_to_threshold_s"] == 2.5  # 0.8: trial 0 at 3 s, trial 1 at 2.5 s
    assert table.loc[("Tuned()", 2), "time_to_threshold_s"] == 1.0  # 0.6: trial 0 at 1 s
    assert (table.loc["Tuned()", "seeds"] == 5).all() and (table.loc["Tuned()", "reached"] == 5).all()
    # its backpropagated samples are the fastest trial's: 100 per evaluation, trial 0's first evaluation
    assert table.loc[("Tuned()", 1), "backprop_to_threshold"] == 100.0
    # the studies' winners alone (the target's fastest trial) give that trial's time at every level
    from loop.bench.scoring import studies

    winners = thresholds.speedup_by_threshold(studies.study_winners(records)).set_index(["selector", "level"])
    assert winners.loc[("Tuned()", 1), "time_to_threshold_s"] == 2.5
    # the levels come from the baseline's winners whichever records are passed
    assert list(winners.loc["Tuned()", "threshold"]) == list(table.loc["Tuned()", "threshold"])


def test_trends_say_which_advantage_grows_and_which_shrinks():
    table = thresholds.speedup_by_threshold(_records(), n_boot=100)
    trend = thresholds.trends(table).set_index("selector")
    assert "Shuffle()" not in trend.index
    assert trend.loc["Grow()", "trend"] == "grows" and trend.loc["Grow()", "ratio"] == pytest.approx(2.0)
    assert trend.loc["Grow()", "spearman"] == pytest.approx(0.9)
    assert trend.loc["Shrink()", "trend"] == "shrinks" and trend.loc["Shrink()", "ratio"] == pytest.approx(0.25)
    assert trend.loc["Shrink()", "spearman"] == pytest.approx(-0.6)
    assert trend.loc["Grow()", "verdicts"] == "no difference -> loss -> win -> win -> win"
    assert "summary" not in trend  # the numbers only; the readable line is formatting's
    line = formatting.with_summaries(trend.reset_index(), table).set_index("selector").loc["Grow()", "summary"]
    assert line.startswith("toy, Grow(): 1x at val_accuracy >= 0.5 -> 2x at 0.9: grows")


def test_a_lower_is_better_metric_counts_down_to_its_target():
    base = ([9.5, 7.5, 5.5, 3.5, 1.5], [1, 2, 3, 4, 5])
    fast = ([5.0, 1.5], [1, 2])
    records = [_run("Shuffle()", s, *base, metric="val_mae", target=2.0) for s in range(5)]
    records += [_run("Fast()", s, *fast, metric="val_mae", target=2.0) for s in range(5)]
    table = thresholds.speedup_by_threshold(records, n_boot=100)
    assert set(table["mode"]) == {"min"}
    assert table.groupby("level")["threshold"].first().to_numpy() == pytest.approx([9.5, 7.625, 5.75, 3.875, 2.0])
    fast_rows = table[table["selector"] == "Fast()"].sort_values("level")
    assert fast_rows["speedup"].to_numpy() == pytest.approx([1.0, 2.0, 3.0, 2.0, 2.5])
    fig = plot_speedup_by_threshold(table)
    assert fig.axes[0].xaxis_inverted()  # the target (the lowest value) on the right
    assert "val_mae <= x" in fig.axes[0].get_xlabel()


def test_explicit_levels_for_every_dataset_or_per_dataset():
    records = _records()
    table = thresholds.speedup_by_threshold(records, levels=[0.55, 0.9], n_boot=50)
    assert list(table["threshold"].unique()) == [0.55, 0.9] and set(table["levels_from"]) == {"given"}
    table = thresholds.speedup_by_threshold(records, levels={"other": [0.1]}, n_boot=50)
    assert len(table["threshold"].unique()) == 5  # "toy" not in the dict: the default levels
    with pytest.raises(ValueError, match="'x' is not a finite number"):
        thresholds.speedup_by_threshold(records, levels=[0.5, "x"], n_boot=50)
    with pytest.raises(ValueError, match="count=1"):
        thresholds.speedup_by_threshold(records, count=1, n_boot=50)


def test_a_target_on_two_metrics_is_a_clear_error():
    records = _records()
    targets = {None: {"val_accuracy": 0.9, "val_loss": 2.0}}
    with pytest.raises(ValueError, match="toy: the thresholds need a target on one metric"):
        thresholds.speedup_by_threshold(records, targets=targets, n_boot=50)


def test_without_a_baseline_run_there_is_no_easy_level_and_the_dataset_is_left_out():
    records = [r for r in _records() if r["selector"] != "Shuffle()"]
    with pytest.raises(ValueError, match="toy: no successful Shuffle\\(\\) run has 'val_accuracy'"):
        thresholds.easy_level(records, "val_accuracy")
    others = [dict(r, workload="other") for r in _records()]
    table = thresholds.speedup_by_threshold(records + others, n_boot=50)
    assert set(table["dataset"]) == {"other"}
    given = thresholds.speedup_by_threshold(records, levels=[0.9], n_boot=50)  # explicit levels: kept, no pairs
    assert set(given["verdict"]) == {"n/a"} and list(given["reached"]) == [5, 5]
    assert set(thresholds.trends(given)["trend"]) == {"n/a"}


def test_the_plot_has_a_log_axis_the_reference_line_and_the_legend_outside(tmp_path):
    records = _records() + [dict(r, workload="two") for r in _records()]
    for r in records:  # Shrink misses "two" entirely: its speedups are 0, drawn at the bottom edge
        if r["workload"] == "two" and r["selector"] == "Shrink()":
            r["frame"] = r["frame"].assign(val_accuracy=0.1)
    table = thresholds.speedup_by_threshold(records, n_boot=100)
    path = tmp_path / "plots" / "thresholds.png"
    fig = plot_speedup_by_threshold(table, str(path), columns=2)
    assert path.stat().st_size > 0
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["toy (up to 5 seeds)", "two (up to 5 seeds)"]
    for ax in panels:
        assert ax.get_yscale() == "log"
        reference = [line for line in ax.get_lines() if line.get_label() == "Shuffle() (= 1)"]
        assert len(reference) == 1 and np.allclose(reference[0].get_ydata(), 1.0)
    grow = next(line for line in panels[0].get_lines() if line.get_label() == "Grow()")
    assert np.allclose(grow.get_ydata(), [1.0, 0.8, 1.2, 1.6, 2.0])
    low = panels[1].get_ylim()[0]
    shrink = next(line for line in panels[1].get_lines() if line.get_label() == "Shrink()")
    assert (shrink.get_ydata() > low).all() and (shrink.get_ydata() < 1.0).all()  # 0 drawn at the edge
    legend = fig.legends[0]
    assert {t.get_text() for t in legend.get_texts()} == {"Grow()", "Shrink()", "Shuffle() (= 1)"}
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()  # the figure was closed once written
    box = legend.get_window_extent(renderer)
    assert not any(box.overlaps(ax.get_window_extent(renderer)) for ax in panels)


def test_plotting_only_the_baseline_is_a_clear_error():
    table = thresholds.speedup_by_threshold([r for r in _records() if r["selector"] == "Shuffle()"], n_boot=50)
    with pytest.raises(ValueError, match="no selector other than the baseline"):
        plot_speedup_by_threshold(table)
    assert math.isnan(thresholds.first_evaluation(pd.DataFrame({"a": [1.0]}), "val_accuracy"))
