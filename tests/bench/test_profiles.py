"""Performance profiles on a hand-made 3-selector x 3-workload example (no training), and write_analysis."""

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from synthetic_records import record

from loop.bench.reporting import analysis
from loop.bench.reporting.plots import plot_profiles
from loop.bench.scoring import profiles

INF = math.inf


def _run(workload, selector, study, seconds, *, backprop=None, status="ok"):
    """A run that meets val_accuracy >= 0.9 at ``seconds`` (its third evaluation), or never (``seconds=inf``)."""
    reached = math.isfinite(seconds)
    end = seconds if reached else 30.0
    per_eval = 100.0 if backprop is None else backprop / 3
    frame = pd.DataFrame({"epoch": [1.0, 2.0, 3.0], "step": [1, 2, 3], "train_time_s": [end / 3, 2 * end / 3, end],
                          "samples_backpropagated": [per_eval, 2 * per_eval, 3 * per_eval],
                          "val_accuracy": [0.5, 0.6, 0.95 if reached else 0.7], "val_loss": [1.0, 0.9, 0.8]})
    return record(workload, selector, study, frame, status=status, error=None, target={"val_accuracy": 0.9})


# Seconds per study.  The medians are           w1   w2   w3
#                                         A    10   30   12
#                                         B    20   15   36
#                                         C    10  inf   24
# w1: A and C tie (10); w2: C misses at 2 of 3 studies; A's w1 has one missing study of 3, which leaves a median.
_SECONDS = {
    "w1": {"A()": [8, 10, INF], "B()": [20, 20, 20], "C()": [10, 10, 10]},
    "w2": {"A()": [30, 30, 30], "B()": [15, 14, 16], "C()": [INF, 5, INF]},
    "w3": {"A()": [12, 12, 12], "B()": [36, 36, 36], "C()": [24, 20, 28]},
}


def _records():
    return [_run(w, m, study, s) for w, by in _SECONDS.items() for m, times in by.items() for study, s in
            enumerate(times)]


def test_costs_are_medians_with_a_miss_when_half_or_more_of_the_studies_miss():
    costs = profiles.workload_costs(_records(), baseline="A()")
    expected = pd.DataFrame({"w1": [10.0, 20.0, 10.0], "w2": [30.0, 15.0, INF], "w3": [12.0, 36.0, 24.0]},
                            index=["A()", "B()", "C()"])
    pd.testing.assert_frame_equal(costs, expected)
    even = [_run("w", "X()", s, t) for s, t in enumerate([5, 6, INF, INF])]      # exactly half missed: a miss
    even += [_run("w", "Y()", s, t) for s, t in enumerate([5, 6, 7, INF])]       # a quarter: median 6.5
    costs = profiles.workload_costs(even, baseline="X()")
    assert math.isinf(costs.loc["X()", "w"]) and costs.loc["Y()", "w"] == pytest.approx(6.5)


def test_the_profile_and_score_match_the_hand_computation():
    table, costs, ratios = profiles.profile_table(_records(), baseline="A()")
    expected_ratios = np.array([[1.0, 2.0, 1.0], [2.0, 1.0, 3.0], [1.0, INF, 2.0]])
    np.testing.assert_allclose(ratios.loc[["A()", "B()", "C()"]].to_numpy(), expected_ratios)
    table = table.set_index("selector")
    by_hand = {  # rho at 1, 1.25, 1.5, 2, 3, 4
        "A()": [2 / 3, 2 / 3, 2 / 3, 1.0, 1.0, 1.0],
        "B()": [1 / 3, 1 / 3, 1 / 3, 2 / 3, 1.0, 1.0],
        "C()": [1 / 3, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 2 / 3],
    }
    columns = ["rho(1)", "rho(1.25)", "rho(1.5)", "rho(2)", "rho(3)", "rho(4)"]
    for selector, values in by_hand.items():
        np.testing.assert_allclose(table.loc[selector, columns].to_numpy(dtype=float), values)
    # area from 1 to 4 over 3: A (3 + 2 + 3) / 9, B (2 + 3 + 1) / 9, C (3 + 0 + 2) / 9
    assert table["score(tau<=4)"].to_numpy() == pytest.approx([8 / 9, 6 / 9, 5 / 9])
    assert list(table.index) == ["A()", "B()", "C()"]  # best score first
    assert list(table["fastest"]) == [2, 1, 1] and list(table["missed"]) == [0, 0, 1]
    assert set(table["workloads"]) == {3} and set(table["measure"]) == {"time"}


def test_the_exact_score_is_the_area_under_the_step_function():
    _, _, ratios = profiles.profile_table(_records(), baseline="A()")
    grid = np.linspace(1.0, 4.0, 30_001)
    curve = profiles.rho(ratios, tuple(grid)).to_numpy()
    area = ((curve[:, 1:] + curve[:, :-1]) / 2 * np.diff(grid)).sum(axis=1) / 3.0  # the trapezoid rule
    np.testing.assert_allclose(profiles.score(ratios).to_numpy(), area, atol=1e-3)
    assert profiles.score(ratios, tau_max=2.0).to_numpy() == pytest.approx([(1 + 0 + 1) / 3, (0 + 1 + 0) / 3,
                                                                             (1 + 0 + 0) / 3])


def test_a_workload_nobody_reached_is_a_miss_for_everyone():
    costs = pd.DataFrame({"w": [INF, INF], "v": [2.0, 1.0]}, index=["A()", "B()"])
    ratios = profiles.performance_ratios(costs)
    assert np.isinf(ratios["w"]).all() and list(ratios["v"]) == [2.0, 1.0]
    assert list(profiles.rho(ratios, (1.0, 2.0))[2.0]) == [0.5, 0.5]


def test_the_backprop_profile_reads_samples_backpropagated_at_the_target():
    records = [_run("w", "A()", s, 10.0, backprop=300) for s in range(3)]
    records += [_run("w", "B()", s, 20.0, backprop=150) for s in range(3)]  # slower, but half the samples
    time_table, _, _ = profiles.profile_table(records, baseline="A()")
    samples_table, costs, _ = profiles.profile_table(records, baseline="A()", measure="backprop")
    assert list(costs["w"]) == [300.0, 150.0]
    assert time_table.iloc[0]["selector"] == "A()" and samples_table.iloc[0]["selector"] == "B()"
    for r in records:  # runs stored before the column existed: the workload is left out
        r["frame"] = r["frame"].drop(columns="samples_backpropagated")
    assert profiles.workload_costs(records, baseline="A()", measure="backprop").shape == (2, 0)


def test_a_selector_without_runs_on_a_workload_misses_it_or_drops_it():
    records = [r for r in _records() if not (r["selector"] == "B()" and r["workload"] == "w3")]
    records.append(dict(_run("w3", "B()", 0, 1.0), status="not_applicable"))
    costs = profiles.workload_costs(records, baseline="A()")
    assert math.isinf(costs.loc["B()", "w3"])
    dropped = profiles.workload_costs(records, baseline="A()", unrun="drop")
    assert list(dropped.columns) == ["w1", "w2"]


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="measure='flops'"):
        profiles.workload_costs(_records(), measure="flops")
    with pytest.raises(ValueError, match="unrun='skip'"):
        profiles.workload_costs(_records(), unrun="skip")
    _, _, ratios = profiles.profile_table(_records(), baseline="A()")
    with pytest.raises(ValueError, match="tau=0.5"):
        profiles.rho(ratios, (0.5,))
    with pytest.raises(ValueError, match="tau_max=1"):
        profiles.score(ratios, tau_max=1)
    with pytest.raises(ValueError, match="at least one workload"):
        profiles.rho(ratios[[]])


def test_the_steps_of_a_profile_are_its_ratios_up_to_tau_max():
    xs, ys = profiles.steps(np.array([1.0, 2.0, INF, 5.0]), tau_max=4.0)
    assert list(xs) == [1.0, 1.0, 2.0, 4.0] and list(ys) == [0.25, 0.25, 0.5, 0.5]


def test_the_profile_plot_is_a_step_function_with_the_legend_outside(tmp_path):
    _, _, time_ratios = profiles.profile_table(_records(), baseline="A()")
    path = tmp_path / "profiles.png"
    fig = plot_profiles({"time": time_ratios, "backprop": time_ratios}, str(path))
    assert path.stat().st_size > 0
    ax = fig.axes[0]
    assert ax.get_xlim() == pytest.approx((1.0, 4.0))
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert lines["A()"].get_drawstyle() == "steps-post"
    assert np.allclose(lines["A()"].get_xdata(), [1, 1, 1, 2, 4])
    assert np.allclose(lines["A()"].get_ydata(), [2 / 3, 2 / 3, 2 / 3, 1, 1])
    assert np.allclose(lines["C()"].get_ydata()[-1], 2 / 3)  # the miss never counts
    legend = fig.legends[0]
    assert legend.get_texts()[0].get_text() == "A() (score time 0.89, backprop 0.89)"
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    box = legend.get_window_extent(renderer)
    assert not any(box.overlaps(a.get_window_extent(renderer)) for a in fig.axes)


def test_write_analysis_writes_the_tables_and_figures_and_returns_the_frames(tmp_path):
    records = _records()
    for r in records:  # a baseline named Shuffle() for the threshold speedups
        r["selector"] = r["selector"].replace("A()", "Shuffle()")
    found = analysis.write_analysis(records, str(tmp_path / "analysis"), n_boot=100)
    for name in analysis.FILES:
        assert (tmp_path / "analysis" / name).stat().st_size > 0, name
    assert found["profile_time"].iloc[0]["selector"] == "Shuffle()"
    assert found["profile_backprop"] is not None and found["costs_time"].shape == (3, 3)
    assert set(found["thresholds"]["dataset"]) == {"w1", "w2", "w3"}
    text = (tmp_path / "analysis" / "analysis.md").read_text()
    assert "## Speedup across thresholds" in text and "## Performance profiles" in text
    assert "| Shuffle() | time | 3 | 2 | 0 |" in text
    reread = pd.read_csv(tmp_path / "analysis" / "profiles.csv")
    assert set(reread["measure"]) == {"time", "backprop"}
    trends = pd.read_csv(tmp_path / "analysis" / "threshold_trends.csv")
    assert set(trends["measure"]) == {"time", "backprop"} and trends["summary"].str.contains(" -> ").all()
    assert "Cost per selector and workload: median over seeds" in text
