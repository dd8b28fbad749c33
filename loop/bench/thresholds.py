"""Speedup across thresholds: does a selector's advantage grow or shrink as the target rises?

Definitions (also in ``docs/bench.md``, "Speedup across thresholds"):

* **Levels.**  Per dataset, ``count`` (default 5) evenly spaced thresholds of
  the target metric from an *easy level* up to the dataset's target
  (:func:`loop.bench.tables.dataset_target`, so the direction, ``"min"`` for
  ``val_mae`` or ``val_loss``, comes from :func:`loop.history.parse_target`).
  The last level is the target itself.  ``levels=`` overrides them.
* **Easy level.**  The median, over the baseline's successful runs, of the
  target metric at each run's first evaluation: validation data only, and a
  level about half of the baseline's runs meet at once.  When it already
  meets the target the dataset has one level, the target.
* **Time to a level** of a run: :func:`loop.bench.tables.time_to_target` with
  the level as the target (the first evaluation that meets it; ``inf`` when
  none does or the run failed).  Backpropagated samples likewise, with
  :func:`loop.bench.tables.counts_to_target`.  The runs are the stored ones: a
  run that stopped at its target cannot meet a level beyond it.
* **Speedup, interval, verdict** at each level exactly as in the main table
  (:func:`loop.bench.tables.paired_speedups`, :func:`~loop.bench.tables.bootstrap_ci`,
  :func:`~loop.bench.tables.verdict`): paired by seed against the baseline.
* **Trend** (:func:`trends`): per dataset x selector, the ratio of the speedup
  at the last level to that at the first and the Spearman rank correlation of
  the speedup with the level's rank; "grows" when both say up, "shrinks" when
  both say down, "flat" when every level's speedup is equal, else "mixed".
  The levels share their runs, so this describes the curve; it is not a test.
"""

import math
import os

import numpy as np
import pandas as pd

from loop.bench import plots, tables

#: Thresholds per dataset unless ``count=`` says otherwise.
DEFAULT_COUNT = 5


def first_evaluation(frame, metric):
    """The value of ``metric`` at a run's first evaluation that has it (NaN when none does)."""
    if frame is None or metric not in frame or frame[metric].dropna().empty:
        return math.nan
    return float(frame[metric].dropna().iloc[0])


def easy_level(records, metric, baseline=tables.BASELINE):
    """The easy level of one dataset: the median over the baseline's successful runs of ``metric`` at their first
    evaluation.

    Args:
        records: the runs of one dataset (:func:`loop.bench.tables.load_runs`).
        metric: a validation column, e.g. ``"val_accuracy"`` or ``"val_mae"``.
        baseline: the label of the baseline selector.

    Returns:
        The level, a float.

    Raises:
        ValueError: no successful baseline run has ``metric``.
    """
    firsts = [first_evaluation(r["frame"], metric) for r in records if r["selector"] == baseline
              and r["status"] == "ok"]
    firsts = [v for v in firsts if math.isfinite(v)]
    if not firsts:
        dataset = records[0]["dataset"] if records else "?"
        raise ValueError(f"{dataset}: no successful {baseline} run has {metric!r} to set the easy level from; "
                         "run the baseline or pass levels= explicitly")
    return float(np.median(firsts))


def threshold_levels(records, target, *, count=DEFAULT_COUNT, baseline=tables.BASELINE):
    """``count`` evenly spaced thresholds from the easy level (:func:`easy_level`) to the target.

    Args:
        records: the runs of one dataset.
        target: ``{metric: (threshold, mode)}`` with one metric (from :func:`loop.bench.tables.dataset_target`).
        count: the number of levels, at least 2.
        baseline: the label of the baseline selector.

    Returns:
        The thresholds, easiest first, ending at the target's; just ``[target]`` when the easy level already
        meets it.

    Raises:
        ValueError: ``count`` is not an integer >= 2, ``target`` does not have exactly one metric, or the easy
            level cannot be computed.
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 2:
        raise ValueError(f"count={count!r}: give an integer >= 2 (the number of thresholds per dataset)")
    metric, threshold, mode = _single(target, records)
    easy = easy_level(records, metric, baseline)
    if (easy >= threshold) if mode == "max" else (easy <= threshold):
        return [float(threshold)]
    return [float(v) for v in np.linspace(easy, threshold, count)]


def _single(target, records):
    if len(target) != 1:
        dataset = records[0]["dataset"] if records else "?"
        raise ValueError(f"{dataset}: the thresholds need a target on one metric, got {sorted(target)}; "
                         "pass targets= with one metric for this dataset, e.g. {'val_accuracy': 0.9}")
    (metric, (threshold, mode)), = target.items()
    return metric, float(threshold), mode


def _levels_for(dataset, levels):
    """The explicit levels for ``dataset`` (a list applies to every dataset; a dict per dataset), or None."""
    if levels is None:
        return None
    chosen = levels.get(dataset) if isinstance(levels, dict) else levels
    if chosen is None:
        return None
    values = []
    for v in chosen:
        try:
            number = float(v)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise ValueError(f"{dataset}: threshold level {v!r} is not a finite number; pass numbers, "
                             "e.g. levels=[0.8, 0.85, 0.9] or levels={'mnist': [0.98, 0.99]}")
        values.append(number)
    if not values:
        raise ValueError(f"{dataset}: levels= gives no threshold; pass at least one number or leave it out")
    return values


def _paired(base, mine, n_boot):
    ratios = tables.paired_speedups(base, mine)
    low, high = tables.bootstrap_ci(ratios, n_boot=n_boot) if ratios else (math.nan, math.nan)
    return (float(np.median(ratios)) if ratios else math.nan), low, high


def speedup_by_threshold(records, *, targets=None, levels=None, count=DEFAULT_COUNT, baseline=tables.BASELINE,
                         n_boot=10_000):
    """The speedup table across thresholds: one row per dataset x threshold x selector.

    Args:
        records: stored runs (:func:`loop.bench.tables.load_runs`); not-applicable runs are left out.
        targets: from :func:`loop.bench.tables.parse_targets`; None uses each dataset's own target.
        levels: explicit thresholds, a list for every dataset or ``{dataset: [thresholds]}`` (datasets not in
            the dict get the default levels); None for the default (:func:`threshold_levels`).
        count: thresholds per dataset for the default levels.
        baseline: the label of the selector speedups are measured against.
        n_boot: bootstrap resamples per interval.

    Returns:
        A ``pandas.DataFrame`` with columns ``dataset, metric, mode, level`` (1 = easiest), ``threshold``,
        ``levels_from`` ("easy level to target" or "given"), ``selector, seeds, reached`` (runs that met the
        threshold), ``time_to_threshold_s`` (median over seeds, ``inf`` when half or more missed),
        ``speedup, speedup_ci_low, speedup_ci_high, verdict``, and the same for backpropagated samples
        (``backprop_to_threshold, backprop_speedup, backprop_speedup_ci_low, backprop_speedup_ci_high,
        backprop_verdict``).  Datasets without a target are left out, and so are those without a successful
        baseline run unless ``levels`` gives theirs (no easy level; every speedup would be n/a).

    Raises:
        ValueError: a dataset's target has more than one metric, a level is not a finite number, or ``count``
            is invalid.
    """
    rows = []
    by_dataset = {}
    for r in records:
        if r["status"] != tables.NOT_APPLICABLE:
            by_dataset.setdefault(r["dataset"], []).append(r)
    for dataset, recs in by_dataset.items():
        target, _ = tables.dataset_target(recs, targets, baseline)
        if not target:
            continue
        metric, _, mode = _single(target, recs)
        given = _levels_for(dataset, levels)
        if given is None and not any(r["selector"] == baseline and r["status"] == "ok" for r in recs):
            continue  # no baseline run: no easy level, and no speedup to measure
        thresholds = given if given is not None else threshold_levels(recs, target, count=count, baseline=baseline)
        order = list(dict.fromkeys([baseline] * any(r["selector"] == baseline for r in recs)
                                   + [r["selector"] for r in recs]))
        for level, threshold in enumerate(thresholds, start=1):
            goal = {metric: (threshold, mode)}
            times, backprop = {}, {}
            for r in recs:
                times.setdefault(r["selector"], {})[r["seed"]] = tables.time_to_target(r, goal)[0]
                backprop.setdefault(r["selector"], {})[r["seed"]] = tables.counts_to_target(
                    r, goal, ("samples_backpropagated",))[0]
            base_times = times.get(baseline, {})
            base_counts = {s: v for s, v in backprop.get(baseline, {}).items() if not math.isnan(v)}
            for label in order:
                secs = times[label]
                counts = {s: v for s, v in backprop[label].items() if not math.isnan(v)}
                speedup, low, high = _paired(base_times, secs, n_boot)
                saving, b_low, b_high = _paired(base_counts, counts, n_boot)
                rows.append({
                    "dataset": dataset, "metric": metric, "mode": mode, "level": level, "threshold": threshold,
                    "levels_from": "given" if given is not None else "easy level to target",
                    "selector": label, "seeds": len(secs),
                    "reached": sum(math.isfinite(t) for t in secs.values()),
                    "time_to_threshold_s": float(np.median(list(secs.values()))),
                    "speedup": speedup, "speedup_ci_low": low, "speedup_ci_high": high,
                    "verdict": tables.verdict(low, high),
                    "backprop_to_threshold": float(np.median(list(counts.values()))) if counts else math.nan,
                    "backprop_speedup": saving, "backprop_speedup_ci_low": b_low,
                    "backprop_speedup_ci_high": b_high, "backprop_verdict": tables.verdict(b_low, b_high),
                })
    return pd.DataFrame(rows)


def _trend_word(speedups, rho, ratio):
    if not speedups:
        return "n/a"
    if len(speedups) < 2:
        return "one level"
    if all(s == speedups[0] for s in speedups):
        return "flat"
    if rho > 0 and ratio > 1:
        return "grows"
    if rho < 0 and ratio < 1:
        return "shrinks"
    return "mixed"


def trends(table, *, baseline=tables.BASELINE, column="speedup"):
    """One line per dataset x selector (baseline excluded): how the speedup moves from the easiest level to the
    target.

    Args:
        table: from :func:`speedup_by_threshold`.
        baseline: the baseline's label (its rows are 1 by construction and left out).
        column: ``"speedup"`` (wall-clock) or ``"backprop_speedup"``.

    Returns:
        A ``pandas.DataFrame`` with ``dataset, selector, levels, first, last`` (the speedups at the easiest level
        and at the hardest), ``ratio`` (last / first; ``inf`` from 0 to more, NaN when undefined), ``spearman``
        (rank correlation of the speedup with the level's rank; NaN when constant), ``trend`` ("grows",
        "shrinks", "flat", "mixed", "one level", "n/a" without any speedup), ``verdicts`` (per level, easiest
        first) and ``summary`` (one readable line).

    Raises:
        ValueError: ``column`` is not in ``table``.
    """
    if table.empty:
        return pd.DataFrame()
    if column not in table:
        raise ValueError(f"column={column!r} is not in the table; use 'speedup' or 'backprop_speedup'")
    verdict_column = "verdict" if column == "speedup" else column.replace("speedup", "verdict")
    rows = []
    for (dataset, selector), group in table.groupby(["dataset", "selector"], sort=False):
        if selector == baseline:
            continue
        group = group.sort_values("level")
        defined = group[group[column].notna()]
        speedups = list(defined[column])
        first, last = (speedups[0], speedups[-1]) if speedups else (math.nan, math.nan)
        if not speedups:
            ratio = math.nan
        elif first == last:
            ratio = 1.0
        elif first == 0:
            ratio = math.inf
        elif math.isinf(first):
            ratio = 0.0 if math.isfinite(last) else math.nan
        else:
            ratio = last / first
        if len(speedups) >= 2 and len(set(speedups)) > 1:
            rho = float(pd.Series(speedups).corr(pd.Series(list(defined["level"])), method="spearman"))
        else:
            rho = math.nan
        word = _trend_word(speedups, rho, ratio)
        verdicts = " -> ".join(defined[verdict_column])
        mode = group["mode"].iloc[0]
        lo, hi = group["threshold"].iloc[0], group["threshold"].iloc[-1]
        summary = (f"{dataset}, {selector}: {tables._cell(first, 2)}x at {group['metric'].iloc[0]} "
                   f"{'>=' if mode == 'max' else '<='} {lo:.4g} -> {tables._cell(last, 2)}x at {hi:.4g}: {word}"
                   + (f" (last/first {tables._cell(ratio, 2)}, Spearman {rho:+.2f})" if math.isfinite(rho) else "")
                   + f"; {verdicts}")
        rows.append({"dataset": dataset, "selector": selector, "levels": len(group), "first": first, "last": last,
                     "ratio": ratio, "spearman": rho, "trend": word, "verdicts": verdicts, "summary": summary})
    return pd.DataFrame(rows)


def display(table):
    """The threshold table as people read it: reached as k/n, the speedup with its interval and verdict."""
    if table.empty:
        return table
    shown = pd.DataFrame({"dataset": table["dataset"], "level": table["level"].astype(int)})
    shown["threshold"] = [f"{m} {'>=' if mode == 'max' else '<='} {t:.4g}"
                          for m, mode, t in zip(table["metric"], table["mode"], table["threshold"])]
    shown["selector"] = table["selector"]
    shown["reached"] = [f"{k}/{n}" for k, n in zip(table["reached"], table["seeds"])]
    shown["time (s)"] = [("not reached" if math.isinf(t) else tables._cell(t, 2)) for t in table["time_to_threshold_s"]]
    for prefix, title, verdict_title in (("", "speedup", "verdict"), ("backprop_", "bwd saving", "bwd verdict")):
        shown[f"{title} [95% CI]"] = [
            f"{tables._cell(s, 2)} [{tables._cell(lo, 2)}, {tables._cell(hi, 2)}]"
            for s, lo, hi in zip(table[f"{prefix}speedup"], table[f"{prefix}speedup_ci_low"],
                                 table[f"{prefix}speedup_ci_high"])]
        shown[verdict_title] = table[f"{prefix}verdict"]
    return shown


def plot_speedup_by_threshold(table, path=None, *, baseline=tables.BASELINE, column="speedup", columns=3, dpi=80,
                              unit="seeds"):
    """One panel per dataset: the paired speedup against the threshold, with its 95% bootstrap interval.

    The y axis is logarithmic with a solid line at 1 (the baseline, named in the legend).  Speedups of 0 (the
    selector's median run missed the level) and ``inf`` (the baseline's did) cannot sit on a log axis: they are
    drawn as downward and upward triangles at the panel's bottom and top edge, as are interval ends at 0 or
    ``inf``.  For a lower-is-better metric the x axis is reversed, so the target is on the right in every panel.
    The legend sits below the panels, outside every axes.

    Args:
        table: from :func:`speedup_by_threshold`.
        path: a PNG file to write, or None to only return the figure.
        baseline: the baseline's label.
        column: ``"speedup"`` (wall-clock) or ``"backprop_speedup"`` (backpropagated samples).
        columns: panels per row.
        dpi: resolution of the PNG.
        unit: what one paired value is, for the titles: ``"seeds"``, or ``"studies"`` for tuned winners.

    Returns:
        The ``matplotlib`` figure (closed after writing when ``path`` is given).

    Raises:
        ValueError: the table has no selector other than the baseline, or ``column`` is not in it.
    """
    import matplotlib.pyplot as plt

    if column not in table:
        raise ValueError(f"column={column!r} is not in the table; use 'speedup' or 'backprop_speedup'")
    shown = table[table["selector"] != baseline] if not table.empty else table
    if shown.empty:
        raise ValueError("plot_speedup_by_threshold: no selector other than the baseline "
                         f"{baseline!r} in the table; build it with speedup_by_threshold(records) first")
    low_col, high_col = f"{column}_ci_low", f"{column}_ci_high"
    datasets = list(dict.fromkeys(shown["dataset"]))
    labels = list(dict.fromkeys(shown["selector"]))
    colors = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    color_of = {label: colors(k % colors.N) for k, label in enumerate(labels)}
    columns = max(1, min(columns, len(datasets)))
    rows = -(-len(datasets) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.6 * rows + 1.0), squeeze=False)
    handles = {}
    for ax, dataset in zip(axes.flat, datasets):
        part = shown[shown["dataset"] == dataset]
        values = np.concatenate([part[c].to_numpy(dtype=float) for c in (column, low_col, high_col)])
        finite = values[np.isfinite(values) & (values > 0)]
        floor = min(finite.min() if finite.size else 1.0, 1.0) / 2.0
        ceiling = max(finite.max() if finite.size else 1.0, 1.0) * 2.0
        thresholds = np.sort(part["threshold"].unique())
        # the selectors' points side by side within 30% of the gap between levels (or of 2% of a lone level)
        step = np.diff(thresholds).min() if len(thresholds) > 1 else 0.02 * (abs(thresholds[0]) or 1.0)
        present = [label for label in labels if (part["selector"] == label).any()]
        for k, label in enumerate(present):
            rows_of = part[part["selector"] == label].sort_values("level")
            dodge = step * 0.3 * (k - (len(present) - 1) / 2) / len(present)
            xs = rows_of["threshold"].to_numpy(dtype=float) + dodge
            mid = np.clip(rows_of[column].to_numpy(dtype=float), floor, ceiling)
            lo = np.clip(rows_of[low_col].to_numpy(dtype=float), floor, ceiling)
            hi = np.clip(rows_of[high_col].to_numpy(dtype=float), floor, ceiling)
            ok = np.isfinite(rows_of[low_col].to_numpy(dtype=float))
            color = color_of[label]
            line, = ax.plot(xs, mid, color=color, lw=1.4, marker="o", markersize=4, label=label)
            ax.vlines(xs[ok], lo[ok], hi[ok], color=color, lw=1.0, alpha=0.8)
            raw = rows_of[column].to_numpy(dtype=float)
            ax.plot(xs[raw == 0], mid[raw == 0], "v", color=color, markersize=7, ls="none")
            ax.plot(xs[np.isposinf(raw)], mid[np.isposinf(raw)], "^", color=color, markersize=7, ls="none")
            handles[label] = line
        reference = ax.axhline(1.0, color="black", lw=1.2, label=f"{baseline} (= 1)")
        handles.setdefault(f"{baseline} (= 1)", reference)
        ax.set_yscale("log")
        ax.set_ylim(floor / 1.1, ceiling * 1.1)
        metric, mode = part["metric"].iloc[0], part["mode"].iloc[0]
        if mode == "min":
            ax.invert_xaxis()
        seeds = int(part["seeds"].max())
        ax.set_title(f"{dataset} (up to {seeds} {unit})", fontsize=10)
        ax.set_xlabel(f"threshold: {metric} {'>=' if mode == 'max' else '<='} x (target on the right)")
        ax.set_ylabel(("speedup" if column == "speedup" else "backprop saving") + f" vs {baseline}")
        ax.grid(alpha=0.3, which="both")
    for ax in list(axes.flat)[len(datasets):]:
        ax.set_visible(False)
    plots.legend_below(fig, handles, top=0.95)
    what = "wall-clock speedup" if column == "speedup" else "backpropagated-samples saving"
    fig.suptitle(f"paired {what} by threshold, median over {unit}, bars = 95% bootstrap interval; "
                 "triangles: 0 or inf at the edge", fontsize=10)
    if path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
    return fig
