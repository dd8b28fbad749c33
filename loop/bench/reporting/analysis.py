"""The verdict beyond one target, written to files: speedups across thresholds and performance profiles.

:func:`write_analysis` is what the report calls for ``<out>/analysis``; the
arithmetic is :mod:`loop.bench.scoring.thresholds` (speedup against
threshold) and :mod:`loop.bench.scoring.profiles` (performance profiles over
workloads).
"""

import os

import pandas as pd

from loop.bench.records import NOT_APPLICABLE
from loop.bench.reporting import formatting
from loop.bench.scoring import profiles as profiles_lib
from loop.bench.scoring import thresholds as thresholds_lib
from loop.bench.scoring.studies import study_winners
from loop.bench.scoring.targets import BASELINE

#: The files :func:`write_analysis` writes under its ``out_dir``.
FILES = ("thresholds.csv", "threshold_trends.csv", "profiles.csv", "profile_costs.csv", "analysis.md",
         "speedup_by_threshold.png", "backprop_by_threshold.png", "profiles.png")


def write_analysis(records, out_dir, targets=None, *, baseline=BASELINE, levels=None,
                   count=thresholds_lib.DEFAULT_COUNT, taus=profiles_lib.TAUS, tau_max=profiles_lib.TAU_MAX,
                   unrun="miss", n_boot=10_000, plots=True, unit="seeds"):
    """Writes the threshold and profile tables (CSV and one Markdown file) and their figures under ``out_dir``.

    Files: ``thresholds.csv`` (:func:`loop.bench.scoring.thresholds.speedup_by_threshold`),
    ``threshold_trends.csv`` (:func:`loop.bench.scoring.thresholds.trends`, wall-clock and backprop, with the
    readable ``summary`` of :func:`loop.bench.reporting.formatting.trend_summaries`), ``profiles.csv`` (the
    profile tables of time and backpropagated samples, :func:`loop.bench.scoring.profiles.profile_table`),
    ``profile_costs.csv`` (the costs ``t[m, w]`` both profiles came from), ``analysis.md`` (all of it for
    people) and, with ``plots``, ``speedup_by_threshold.png``, ``backprop_by_threshold.png`` and
    ``profiles.png``.

    Args:
        records: trial records, every trial of every study: the thresholds take each study's fastest trial to
            each level, the profiles each study's winner at the target
            (:func:`loop.bench.scoring.studies.study_winners`, chosen here).  Passing the winners alone gives the
            winners' times at every level.
        out_dir: the directory to write into (created), e.g. ``<out>/analysis``.
        targets: from :func:`loop.bench.scoring.targets.parse_targets`; None uses each workload's own target.
        baseline: the selector speedups are measured against.
        levels, count: the thresholds (:func:`loop.bench.scoring.thresholds.speedup_by_threshold`).
        taus, tau_max, unrun: the profiles (:func:`loop.bench.scoring.profiles.profile_table`).
        n_boot: unused (the intervals are order statistics now); kept for callers.
        plots: also draw the PNGs.
        unit: what one paired value is, for the text and titles: ``"seeds"``, or ``"studies"`` for tuned
            results.

    Returns:
        ``{"thresholds", "trends", "backprop_trends", "profile_time", "profile_backprop", "costs_time",
        "costs_backprop"}``: the ``pandas.DataFrame`` behind each file (a profile and its costs are None when no
        workload qualifies, e.g. no trial recorded ``samples_backpropagated``).

    Raises:
        ValueError: as the functions named above, for bad ``levels``, ``count``, ``taus``, ``tau_max`` or
            ``unrun``.
    """
    os.makedirs(out_dir, exist_ok=True)
    by_threshold = thresholds_lib.speedup_by_threshold(records, targets=targets, levels=levels, count=count,
                                                       baseline=baseline, n_boot=n_boot)
    won = [w for w in study_winners(records) if w["status"] != NOT_APPLICABLE]
    trend = formatting.with_summaries(thresholds_lib.trends(by_threshold, baseline=baseline), by_threshold)
    backprop_trend = formatting.with_summaries(
        thresholds_lib.trends(by_threshold, baseline=baseline, column="backprop_speedup"), by_threshold)
    found = {"thresholds": by_threshold, "trends": trend, "backprop_trends": backprop_trend}
    profile_frames, cost_frames, ratio_frames = [], [], {}
    for measure in profiles_lib.MEASURES:
        costs = profiles_lib.workload_costs(won, targets=targets, baseline=baseline, measure=measure,
                                            unrun=unrun)
        if costs.shape[1] == 0:
            found[f"profile_{measure}"] = found[f"costs_{measure}"] = None
            continue
        table, costs, ratios = profiles_lib.profile_from_costs(costs, measure=measure, taus=taus, tau_max=tau_max)
        found[f"profile_{measure}"], found[f"costs_{measure}"] = table, costs
        profile_frames.append(table)
        cost_frames.append(costs.rename_axis("selector").reset_index().assign(measure=measure))
        ratio_frames[measure] = ratios
    by_threshold.to_csv(os.path.join(out_dir, "thresholds.csv"), index=False)
    pd.concat([trend.assign(measure="time"), backprop_trend.assign(measure="backprop")]).to_csv(
        os.path.join(out_dir, "threshold_trends.csv"), index=False)
    (pd.concat(profile_frames) if profile_frames else pd.DataFrame()).to_csv(
        os.path.join(out_dir, "profiles.csv"), index=False)
    (pd.concat(cost_frames) if cost_frames else pd.DataFrame()).to_csv(
        os.path.join(out_dir, "profile_costs.csv"), index=False)
    note = formatting.interval_note(by_threshold, unit=unit, baseline=baseline)
    text = ["## Speedup across thresholds", "",
            f"Per dataset, {count} levels from the easy level (median of {baseline}'s first validation "
            "evaluation) to the target unless given; at each level each study's fastest trial to it; paired "
            "speedup vs the baseline with the order-statistic interval of the median and the sign-test verdict."
            + (" " + " ".join(note) if note else ""), "",
            formatting.to_markdown(formatting.threshold_display(by_threshold)), "", "### Trend (wall-clock)", ""]
    text += [f"- {line}" for line in (trend["summary"] if not trend.empty else [])] + [""]
    text += ["### Trend (backpropagated samples)", ""]
    text += [f"- {line}" for line in (backprop_trend["summary"] if not backprop_trend.empty else [])] + [""]
    text += ["## Performance profiles", "",
             f"Cost per selector and workload: median over {unit} (a miss is infinite; infinite when half or more "
             f"of the {unit} missed); selectors without runs on a workload: {unrun}. Score: area under the profile "
             f"from 1 to {tau_max:g}, divided by {tau_max - 1:g}.", ""]
    for measure in profiles_lib.MEASURES:
        table = found[f"profile_{measure}"]
        text += [f"### {measure}", "", formatting.to_markdown(table) if table is not None else "(no workload)", ""]
    with open(os.path.join(out_dir, "analysis.md"), "w") as f:
        f.write("\n".join(text))
    if plots:
        from loop.bench.reporting import plots as plots_lib  # matplotlib, only when drawing

        shown = by_threshold[by_threshold["selector"] != baseline] if not by_threshold.empty else by_threshold
        if not shown.empty:
            for column, name in (("speedup", "speedup_by_threshold.png"),
                                 ("backprop_speedup", "backprop_by_threshold.png")):
                plots_lib.plot_speedup_by_threshold(by_threshold, os.path.join(out_dir, name),
                                                    baseline=baseline, column=column, unit=unit)
        if ratio_frames:
            plots_lib.plot_profiles(ratio_frames, os.path.join(out_dir, "profiles.png"), tau_max=tau_max)
    return found
