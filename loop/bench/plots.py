"""Learning-curve figures of stored runs: one PNG per dataset.

Each figure has four panels: validation metric and validation loss, against
epochs and against training-plus-selection seconds.  Per selector the line is
the median over seeds at each evaluation and the band spans the seeds' minimum
to maximum.  On the seconds axis each point sits at the median time of that
evaluation across seeds.
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


def plot_dataset(records, path, *, target=None, title=None, dpi=80):
    """Draws the four-panel learning curves of one dataset's runs into ``path`` (PNG).

    Args:
        records: the runs of one dataset (from :func:`loop.bench.tables.load_runs`).
        path: the PNG file to write.
        target: ``{metric: (threshold, mode)}``; drawn as a dashed line.
        title: the figure title (default: the dataset's name).
        dpi: resolution; 80 keeps a figure well under 200 KB.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in records if not r["frame"].empty]
    metric = "val_" + (records[0]["metrics"][0] if records[0]["metrics"] else "loss")
    panels = [(metric, "epoch"), (metric, "seconds"), ("val_loss", "epoch"), ("val_loss", "seconds")]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharey="row")
    labels = list(dict.fromkeys(r["selector"] for r in runs))
    colors = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    for k, label in enumerate(labels):
        group = [r for r in runs if r["selector"] == label]
        for ax, (column, axis) in zip(axes.flat, panels):
            _band(ax, group, column, axis, colors(k % colors.N), f"{label} ({len(group)} seeds)")
    for ax, (column, axis) in zip(axes.flat, panels):
        ax.set_xlabel("epoch" if axis == "epoch" else "training + selection seconds (evaluation excluded)")
        ax.set_ylabel(column)
        ax.grid(alpha=0.3)
        if target and column in target:
            ax.axhline(target[column][0], color="black", ls="--", lw=1)
    axes[0, 0].legend(fontsize=7, loc="best")
    fig.suptitle(title or f"{records[0]['dataset']}: median over seeds, band = min-max", fontsize=11)
    fig.tight_layout()
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
        paths.append(plot_dataset(recs, os.path.join(directory, f"{dataset}.png"), target=target))
    return paths


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
    ncol = min(len(drawn), 5)
    legend_rows = -(-len(drawn) // ncol)
    fig.tight_layout(rect=(0, (0.3 + 0.22 * legend_rows) / fig.get_figheight(), 1, 0.96))
    fig.legend(list(drawn.values()), list(drawn), loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    fig.suptitle("median over seeds, band = min-max; dashed: the target", fontsize=11)
    if path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
    return fig
