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
            values, seconds, epochs = _curves(group, column)
            if np.isnan(values).all():
                continue
            with np.errstate(all="ignore"):
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    xs = np.nanmedian(epochs if axis == "epoch" else seconds, axis=0)
                    mid = np.nanmedian(values, axis=0)
                    low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
            color = colors(k % colors.N)
            ax.plot(xs, mid, color=color, lw=1.5, label=f"{label} ({len(group)} seeds)")
            ax.fill_between(xs, low, high, color=color, alpha=0.15, lw=0)
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
