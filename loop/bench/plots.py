"""Learning-curve figures of stored runs: one PNG per dataset.

Each figure has four panels: validation metric and validation loss, against
epochs and against training-plus-selection seconds (a log axis, see
:func:`plot_dataset`).  Per selector the line is the median over seeds at each
evaluation and the band spans the seeds' minimum to maximum; Shuffle, the
reference, is black and thicker, and the legend (outside the panels) names the
dashed target line.  On the seconds axis each point sits at the median time of
that evaluation across seeds.  :func:`plot_wallclock` draws the target metric of
every dataset in one figure.
"""

import os

import numpy as np


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


def plot_dataset(records, path, *, target=None, title=None, dpi=80, baseline=None):
    """Draws the four-panel learning curves of one dataset's runs into ``path`` (PNG).

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
        records: the runs of one dataset (from :func:`loop.bench.tables.load_runs`).
        path: the PNG file to write.
        target: ``{metric: (threshold, mode)}``; drawn as a dashed line.
        title: the figure title (default: the dataset's name).
        dpi: resolution; 80 keeps a figure well under 200 KB.
        baseline: the reference selector's label (default: :data:`loop.bench.tables.BASELINE`).

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    from loop.bench import tables

    baseline = baseline or tables.BASELINE
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
            if _band(ax, group, column, axis, color, f"{label} ({len(group)} seeds)", lw=width) is not None:
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
    fig.suptitle(title or f"{records[0]['dataset']}: median over seeds, band = min-max", fontsize=11)
    fig.tight_layout(rect=(0, 0, 0.78, 1))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_all(records, directory, *, targets=None, baseline=None):
    """One figure per dataset under ``directory``; returns the paths written."""
    from loop.bench import tables

    by_dataset = {}
    for r in records:
        by_dataset.setdefault(r["dataset"], []).append(r)
    paths = []
    for dataset, recs in by_dataset.items():
        if all(r["frame"].empty for r in recs):
            continue
        target, _ = tables.dataset_target(recs, targets, baseline or tables.BASELINE)
        paths.append(plot_dataset(recs, os.path.join(directory, f"{dataset}.png"), target=target,
                                  baseline=baseline))
    return paths


def legend_below(fig, handles, *, top=0.95, columns=5):
    """Lays ``fig`` out and puts one legend of ``handles`` (``{label: artist}``) below its panels, off the curves."""
    ncol = max(1, min(len(handles), columns))
    legend_rows = -(-len(handles) // ncol)
    fig.tight_layout(rect=(0, (0.3 + 0.22 * legend_rows) / fig.get_figheight(), 1, top))
    return fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=ncol, fontsize=8,
                      frameon=False)


def plot_wallclock(records, path=None, *, targets=None, baseline=None, columns=3, dpi=80):
    """One panel per dataset: the target metric against training seconds, median over seeds, min-max band.

    The figure the results page leads with.  Runs that stop at their target end
    there, so a selector's line ends at the median time its seeds reached it;
    the dashed line is the dataset's target (:func:`loop.bench.tables.dataset_target`).

    Args:
        records: stored runs of one or more datasets (:func:`loop.bench.tables.load_runs`).
        path: a PNG file to write, or None to only return the figure (e.g. in a notebook).
        targets, baseline: as for :func:`loop.bench.tables.dataset_target`.
        columns: panels per row.
        dpi: resolution of the PNG.

    Returns:
        The ``matplotlib`` figure (closed after writing when ``path`` is given).
    """
    import matplotlib.pyplot as plt

    from loop.bench import tables

    by_dataset = {}
    for r in records:
        if r["status"] != tables.NOT_APPLICABLE and not r["frame"].empty:
            by_dataset.setdefault(r["dataset"], []).append(r)
    if not by_dataset:
        raise ValueError("plot_wallclock: no run with a learning curve among the records; run the suite first "
                         "(python -m loop.bench --out DIR) and pass tables.load_runs(DIR)")
    baseline = baseline or tables.BASELINE
    labels = list(dict.fromkeys(r["selector"] for recs in by_dataset.values() for r in recs))
    others = [label for label in labels if label != baseline]
    colors = plt.get_cmap("tab10" if len(others) <= 10 else "tab20")
    color_of = {label: colors(k % colors.N) for k, label in enumerate(others)}
    color_of[baseline] = "black"
    rows = -(-len(by_dataset) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.6 * rows + 0.8), squeeze=False)
    drawn = {}
    for ax, (dataset, recs) in zip(axes.flat, by_dataset.items()):
        target, _ = tables.dataset_target(recs, targets, baseline)
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
        seeds = len({r["seed"] for r in recs})
        ax.set_title(f"{dataset} ({seeds} seeds)", fontsize=10)
        ax.set_xlabel("training + selection seconds")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(by_dataset):]:
        ax.set_visible(False)
    legend_below(fig, drawn, top=0.96)
    fig.suptitle("median over seeds, band = min-max; dashed: the target", fontsize=11)
    if path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
    return fig
