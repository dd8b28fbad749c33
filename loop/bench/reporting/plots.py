"""The figures: learning curves per workload, the wall-clock overview, the speedup by threshold, the profiles.

Each learning-curve figure (:func:`plot_dataset`, one PNG per workload by
:func:`plot_all`) has four panels: validation metric and validation loss,
against epochs and against training-plus-selection seconds (a log axis).  Per
selector the line is the median over studies (seeds) at each evaluation and the
band spans their minimum to maximum; Shuffle, the reference, is black and
thicker, and the legend (outside the panels) names the dashed target line.  On
the seconds axis each point sits at the median time of that evaluation across
studies.  :func:`plot_wallclock` draws the target metric of every workload in
one figure; :func:`plot_speedup_by_threshold` and :func:`plot_profiles` draw
:mod:`loop.bench.scoring.thresholds` and :mod:`loop.bench.scoring.profiles`.

The records are the ones the tables score: one per study (for tuned results
the studies' winners, :func:`loop.bench.scoring.studies.study_winners`).
"""

import os

import numpy as np

from loop.bench.scoring.grouping import by_workload
from loop.bench.scoring.profiles import TAU_MAX, score, steps
from loop.bench.scoring.targets import BASELINE, dataset_target


def _curves(runs, column):
    """Stacks ``column`` and the clocks of ``runs`` by evaluation index (NaN-padded)."""
    length = max(len(r["frame"]) for r in runs)
    values = np.full((len(runs), length), np.nan)
    seconds = np.full((len(runs), length), np.nan)
    epochs = np.full((len(runs), length), np.nan)
    for i, r in enumerate(runs):
        frame = r["frame"]
        n = len(frame)
        if column in frame:
            values[i, :n] = frame[column].to_numpy(dtype=float)
        seconds[i, :n] = frame["train_time_s"].to_numpy(dtype=float)
        epochs[i, :n] = frame["epoch"].to_numpy(dtype=float)
    return values, seconds, epochs


def _band(ax, group, column, axis, color, label, lw=1.5):
    """Draws one selector's median over seeds and its min-max band on ``ax``.

    Returns the finite medians drawn, or None when the runs have no ``column``.
    """
    import warnings

    values, seconds, epochs = _curves(group, column)
    if np.isnan(values).all():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an evaluation that only some seeds reached
        xs = np.nanmedian(epochs if axis == "epoch" else seconds, axis=0)
        mid = np.nanmedian(values, axis=0)
        low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
    short = np.isfinite(mid).sum() <= 3  # e.g. a run that met its target at the first evaluation: show the points
    ax.plot(xs, mid, color=color, lw=lw, label=label, marker="o" if short else None, markersize=4)
    ax.fill_between(xs, low, high, color=color, alpha=0.15, lw=0)
    return mid[np.isfinite(mid)]


def _target_label(metric, threshold, mode):
    """The legend entry of a target line: ``target val_accuracy >= 0.96``."""
    return f"target {metric} {'>=' if mode == 'max' else '<='} {threshold:.4g}"


def plot_dataset(records, path, *, target=None, title=None, dpi=80, baseline=None, unit="seeds"):
    """Draws the four-panel learning curves of one workload's records into ``path`` (PNG).

    Shuffle, the reference every speedup is measured against, is drawn in black,
    thicker, and comes first in the legend; the dashed line is the target, named
    in the legend.  The legend sits to the right of the panels, outside them, so
    it covers no curve.

    The seconds panels use a logarithmic time axis.  A selector with a set-up
    cost (RhoLoss fits an irreducible-loss model first, several seconds on the
    small datasets) starts its curve late; on a linear axis the other selectors
    then crowd into its first second.  Shifting that curve back by its set-up
    time would hide a cost that counts in the time to target, so every curve
    stays at its true time and the log axis gives both the sub-second and the
    slow ones room.

    Args:
        records: the records of one workload, one per study.
        path: the PNG file to write.
        target: ``{metric: (threshold, mode)}``; drawn as a dashed line.
        title: the figure title (default: the workload's name).
        dpi: resolution; 80 keeps a figure well under 200 KB.
        baseline: the reference selector's label (default: :data:`loop.bench.scoring.targets.BASELINE`).
        unit: what one record is, for the legend: ``"seeds"``, or ``"studies"`` for tuned winners.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    baseline = baseline or BASELINE
    runs = [r for r in records if not r["frame"].empty]
    metric = "val_" + (records[0]["metrics"][0] if records[0]["metrics"] else "loss")
    panels = [(metric, "epoch"), (metric, "seconds"), ("val_loss", "epoch"), ("val_loss", "seconds")]
    fig, axes = plt.subplots(2, 2, figsize=(13, 7.5), sharey="row")
    labels = list(dict.fromkeys(r["selector"] for r in runs))
    labels.sort(key=lambda label: label != baseline)  # the reference first (a stable sort keeps the others' order)
    others = [label for label in labels if label != baseline]
    colors = plt.get_cmap("tab10" if len(others) <= 10 else "tab20")
    handles = {}
    for k, label in enumerate(labels):
        group = [r for r in runs if r["selector"] == label]
        color, width = ("black", 2.6) if label == baseline else (colors(others.index(label) % colors.N), 1.4)
        for ax, (column, axis) in zip(axes.flat, panels):
            if _band(ax, group, column, axis, color, f"{label} ({len(group)} {unit})", lw=width) is not None:
                handles.setdefault(label, ax.get_lines()[-1])
    for ax, (column, axis) in zip(axes.flat, panels):
        ax.set_xlabel("epoch" if axis == "epoch" else "training + selection seconds, log scale (evaluation excluded)")
        if axis == "seconds" and ax.get_lines():
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda x, _: f"{x:g}"))  # 0.2, 0.5, 1, 2, ...
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_ylabel(column)
        ax.grid(alpha=0.3)
        if target and column in target:
            threshold, mode = target[column]
            line = ax.axhline(threshold, color="black", ls="--", lw=1, label=_target_label(column, threshold, mode))
            handles.setdefault(None, line)  # keyed apart from every selector label
    if handles:
        fig.legend(list(handles.values()), [h.get_label() for h in handles.values()], loc="center left",
                   bbox_to_anchor=(0.79, 0.5), fontsize=8, frameon=False)
    fig.suptitle(title or f"{records[0]['workload']}: median over {unit}, band = min-max", fontsize=11)
    fig.tight_layout(rect=(0, 0, 0.78, 1))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_all(records, directory, *, targets=None, baseline=None, unit="seeds"):
    """One figure per workload under ``directory`` (``<workload>.png``); returns the paths written."""
    paths = []
    for workload, recs in by_workload(records).items():
        if all(r["frame"].empty for r in recs):
            continue
        target, _ = dataset_target(recs, targets, baseline or BASELINE)
        paths.append(plot_dataset(recs, os.path.join(directory, f"{workload}.png"), target=target,
                                  baseline=baseline, unit=unit))
    return paths


def legend_below(fig, handles, *, top=0.95, columns=5):
    """Lays ``fig`` out and puts one legend of ``handles`` (``{label: artist}``) below its panels, off the curves."""
    ncol = max(1, min(len(handles), columns))
    legend_rows = -(-len(handles) // ncol)
    fig.tight_layout(rect=(0, (0.3 + 0.22 * legend_rows) / fig.get_figheight(), 1, top))
    return fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=ncol, fontsize=8,
                      frameon=False)


def plot_wallclock(records, path=None, *, targets=None, baseline=None, columns=3, dpi=80, unit="seeds"):
    """One panel per workload: the target metric against training seconds, median over studies, min-max band.

    The figure the results page leads with.  Trials that stop at their target end
    there, so a selector's line ends at the median time its studies reached it;
    the dashed line is the workload's target (:func:`loop.bench.scoring.targets.dataset_target`).

    Args:
        records: records of one or more workloads, one per study (``loop.bench.store.load(out)``).
        path: a PNG file to write, or None to only return the figure (e.g. in a notebook).
        targets, baseline: as for :func:`loop.bench.scoring.targets.dataset_target`.
        columns: panels per row.
        dpi: resolution of the PNG.
        unit: what one record is, for the titles: ``"seeds"``, or ``"studies"`` for tuned winners.

    Returns:
        The ``matplotlib`` figure (closed after writing when ``path`` is given).
    """
    import matplotlib.pyplot as plt

    by_dataset = {}
    for workload, recs in by_workload(records).items():
        curves = [r for r in recs if not r["frame"].empty]
        if curves:
            by_dataset[workload] = curves
    if not by_dataset:
        raise ValueError("plot_wallclock: no run with a learning curve among the records; run the suite first "
                         "(python -m loop.bench --out DIR) and pass loop.bench.store.load(DIR)")
    baseline = baseline or BASELINE
    labels = list(dict.fromkeys(r["selector"] for recs in by_dataset.values() for r in recs))
    others = [label for label in labels if label != baseline]
    colors = plt.get_cmap("tab10" if len(others) <= 10 else "tab20")
    color_of = {label: colors(k % colors.N) for k, label in enumerate(others)}
    color_of[baseline] = "black"
    rows = -(-len(by_dataset) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.6 * rows + 0.8), squeeze=False)
    drawn = {}
    for ax, (dataset, recs) in zip(axes.flat, by_dataset.items()):
        target, _ = dataset_target(recs, targets, baseline)
        metric = next(iter(target), "val_" + (recs[0]["metrics"][0] if recs[0]["metrics"] else "loss"))
        medians = []
        for label in dict.fromkeys(r["selector"] for r in recs):
            group = [r for r in recs if r["selector"] == label]
            mid = _band(ax, group, metric, "seconds", color_of[label], label, lw=2.2 if label == baseline else 1.3)
            if mid is not None and len(mid):
                drawn[label] = ax.get_lines()[-1]
                medians.append(mid)
        if metric in target:
            threshold, mode = target[metric]
            ax.axhline(threshold, color="black", ls="--", lw=1)
            if medians:  # zoom on the approach to the target, not on the first evaluations' spread
                values = np.concatenate(medians + [[threshold]])
                low, high = np.quantile(values, 0.1), values.max()
                if mode == "min":
                    low, high = values.min(), np.quantile(values, 0.9)
                pad = 0.05 * (high - low or abs(threshold) or 1.0)
                ax.set_ylim(low - pad, high + pad)
        studies = len({r["study"] for r in recs})
        ax.set_title(f"{dataset} ({studies} {unit})", fontsize=10)
        ax.set_xlabel("training + selection seconds")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(by_dataset):]:
        ax.set_visible(False)
    legend_below(fig, drawn, top=0.96)
    fig.suptitle(f"median over {unit}, band = min-max; dashed: the target", fontsize=11)
    if path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
    return fig


def plot_speedup_by_threshold(table, path=None, *, baseline=BASELINE, column="speedup", columns=3, dpi=80,
                              unit="seeds"):
    """One panel per workload: the paired speedup against the threshold, with the order-statistic interval of the
    median (none with fewer than 5 studies).

    The y axis is logarithmic with a solid line at 1 (the baseline, named in the legend).  Speedups of 0 (the
    selector's median run missed the level) and ``inf`` (the baseline's did) cannot sit on a log axis: they are
    drawn as downward and upward triangles at the panel's bottom and top edge, as are interval ends at 0 or
    ``inf``.  For a lower-is-better metric the x axis is reversed, so the target is on the right in every panel.
    The legend sits below the panels, outside every axes.

    Args:
        table: from :func:`loop.bench.scoring.thresholds.speedup_by_threshold`.
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
                         f"{baseline!r} in the table; build it with "
                         "loop.bench.scoring.thresholds.speedup_by_threshold(records) first")
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
    legend_below(fig, handles, top=0.95)
    what = "wall-clock speedup" if column == "speedup" else "backpropagated-samples saving"
    fig.suptitle(f"paired {what} by threshold, median over {unit}, bars = order-statistic interval of the median; "
                 "triangles: 0 or inf at the edge", fontsize=10)
    if path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
    return fig


def plot_profiles(profiles, path=None, *, tau_max=TAU_MAX, log_x=False, dpi=80):
    """Draws ``rho_m(tau)`` for tau in [1, ``tau_max``] as step functions, one panel per measure.

    Args:
        profiles: ``{measure: ratios}`` (ratios from :func:`loop.bench.scoring.profiles.performance_ratios` or
            :func:`~loop.bench.scoring.profiles.profile_table`), e.g.
            ``{"time": ratios_time, "backprop": ratios_backprop}``.
        path: a PNG file to write, or None to only return the figure.
        tau_max: the right end of the x axis.
        log_x: a logarithmic x axis (base 2).
        dpi: resolution of the PNG.

    Returns:
        The ``matplotlib`` figure (closed after writing when ``path`` is given).  One legend right of the
        panels, outside every axes (the PNG is cropped to include it); each entry carries the selector's scores.

    Raises:
        ValueError: ``profiles`` is empty or a ratios frame has no workload.
    """
    import matplotlib.pyplot as plt

    if not profiles:
        raise ValueError("plot_profiles: no profile to draw; pass {'time': ratios} from profile_table(records)")
    labels = list(dict.fromkeys(label for ratios in profiles.values() for label in ratios.index))
    colors = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    styles = ("-", "--", "-.", ":")
    fig, axes = plt.subplots(1, len(profiles), figsize=(5.2 * len(profiles), 4.2), squeeze=False)
    titles = {"time": "time to target", "backprop": "samples backpropagated to target"}
    scores, handles = {}, {}
    for ax, (measure, ratios) in zip(axes.flat, profiles.items()):
        if ratios.shape[1] == 0:
            raise ValueError(f"plot_profiles: the {measure!r} profile has no workload")
        scores[measure] = score(ratios, tau_max)
        for k, label in enumerate(labels):
            if label not in ratios.index:
                continue
            xs, ys = steps(ratios.loc[label].to_numpy(dtype=float), tau_max)
            handles[label], = ax.step(xs, ys, where="post", color=colors(k % colors.N), lw=1.6,
                                      ls=styles[(k // colors.N) % len(styles)], label=label)
        if log_x:
            ax.set_xscale("log", base=2)
        ax.set_xlim(1.0, tau_max)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("tau: ratio to the fastest selector")
        ax.set_ylabel("fraction of workloads within tau")
        ax.set_title(f"{titles.get(measure, measure)} ({ratios.shape[1]} workloads)", fontsize=10)
        ax.grid(alpha=0.3)
    fig.suptitle(f"performance profiles (Dolan & More); score = area up to tau = {tau_max:g} / {tau_max - 1:g}",
                 fontsize=10)
    fig.tight_layout()
    texts = [label + " (score " + ", ".join(f"{measure} {scores[measure][label]:.2f}" for measure in scores
                                             if label in scores[measure].index) + ")" for label in handles]
    fig.legend(list(handles.values()), texts, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
               frameon=False)
    if path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        plt.close(fig)
    return fig
