"""The learning-curve figures: one panel per workload, median over studies with a min-max band, the target drawn."""

import os

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from synthetic_records import record

from loop.bench.reporting import plots


def _run(workload, selector, study, accuracies, seconds_per_epoch, target=None, status="ok"):
    n = len(accuracies)
    frame = pd.DataFrame({"epoch": np.arange(1, n + 1), "val_accuracy": accuracies, "val_loss": np.ones(n),
                          "train_time_s": seconds_per_epoch * np.arange(1, n + 1)})
    return record(workload, selector, study, frame if status == "ok" else pd.DataFrame(), status=status,
                  target=target)


def test_one_panel_per_dataset_with_median_band_and_target(tmp_path):
    records = []
    for study, shift in enumerate((0.0, 0.02, 0.04)):  # three studies, stopping at the target (0.9)
        records.append(_run("a", "Shuffle()", study, [0.5 + shift, 0.8 + shift, 0.9 + shift], 2.0,
                            {"val_accuracy": 0.9}))
        records.append(_run("a", "Fast()", study, [0.7 + shift, 0.92], 1.0, {"val_accuracy": 0.9}))
        records.append(_run("b", "Shuffle()", study, [0.6, 0.7 + shift], 3.0, {"val_accuracy": 0.7}))
    records.append(_run("b", "NA()", 0, [], 1.0, status="not_applicable"))
    path = tmp_path / "plots" / "wallclock.png"
    fig = plots.plot_wallclock(records, str(path), columns=3)
    assert path.stat().st_size > 0
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["a (3 seeds)", "b (3 seeds)"]
    a = visible[0]
    lines = {line.get_label(): line for line in a.get_lines()}
    shuffle = lines["Shuffle()"]
    assert np.allclose(shuffle.get_xdata(), [2.0, 4.0, 6.0])  # the median time of each evaluation
    assert np.allclose(shuffle.get_ydata(), [0.52, 0.82, 0.92])  # the median over seeds
    assert shuffle.get_color() == "black"
    assert plots.plot_wallclock(records, unit="studies").axes[0].get_title() == "a (3 studies)"
    target_lines = [line for line in a.get_lines() if line.get_linestyle() == "--"]
    assert len(target_lines) == 1 and np.allclose(target_lines[0].get_ydata(), 0.9)
    band = a.collections[0].get_paths()[0].vertices[:, 1]
    assert np.isclose(band.min(), 0.5) and np.isclose(band.max(), 0.94)  # the seeds' minimum and maximum
    assert "NA()" not in {t.get_text() for t in fig.legends[0].get_texts()}  # not applicable: not drawn


def test_no_curves_is_a_clear_error():
    with pytest.raises(ValueError, match="no run with a learning curve"):
        plots.plot_wallclock([_run("a", "X()", 0, [], 1.0, status="failed")])


def test_dataset_figure_draws_shuffle_as_the_reference_with_the_legend_outside_and_every_curve_in_view(
        tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    records = []
    for study in range(2):
        records.append(_run("a", "Fast()", study, [0.7, 0.92], 0.05))  # sub-second curves ...
        records.append(_run("a", "Shuffle()", study, [0.5, 0.8, 0.92], 0.1))
        rho = _run("a", "RhoLoss()", study, [0.8, 0.95], 1.0)
        rho["frame"]["train_time_s"] += 8.0  # ... and one that starts after an 8 s set-up
        records.append(rho)
    captured = {}
    savefig = plt.Figure.savefig

    def keep(fig, *args, **kwargs):
        captured["fig"] = fig
        return savefig(fig, *args, **kwargs)

    monkeypatch.setattr(plt.Figure, "savefig", keep)  # keep the figure plot_dataset closes after writing it
    path = plots.plot_dataset(records, str(tmp_path / "a.png"), target={"val_accuracy": (0.9, "max")})
    assert (tmp_path / "a.png").stat().st_size > 0
    fig = captured["fig"]
    fig.canvas.draw()
    legend = fig.legends[0]
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts[0] == "Shuffle() (2 seeds)"  # the reference comes first
    assert texts[-1] == "target val_accuracy >= 0.9" and set(texts[1:3]) == {"Fast() (2 seeds)", "RhoLoss() (2 seeds)"}
    box = legend.get_window_extent()
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent()), "the legend must sit outside every panel"
    epoch_ax, seconds_ax = fig.axes[0], fig.axes[1]
    lines = {line.get_label(): line for line in seconds_ax.get_lines()}
    shuffle, fast = lines["Shuffle() (2 seeds)"], lines["Fast() (2 seeds)"]
    assert shuffle.get_color() == "black" and shuffle.get_linewidth() > fast.get_linewidth()
    assert all(line.get_color() != "black" for label, line in lines.items() if label.startswith(("Fast", "Rho")))
    assert lines["target val_accuracy >= 0.9"].get_linestyle() == "--"
    assert seconds_ax.get_xscale() == "log" and epoch_ax.get_xscale() == "linear"
    low, high = seconds_ax.get_xlim()
    for label in ("Shuffle() (2 seeds)", "Fast() (2 seeds)", "RhoLoss() (2 seeds)"):
        xs = lines[label].get_xdata()
        assert low <= min(xs) and max(xs) <= high, label
    assert path == str(tmp_path / "a.png")


def test_plot_all_draws_one_figure_per_workload_and_skips_not_applicable_records(tmp_path):
    records = [_run("a", "Shuffle()", s, [0.5, 0.9], 1.0, {"val_accuracy": 0.9}) for s in range(2)]
    records += [_run("b", "Shuffle()", s, [0.5, 0.9], 1.0) for s in range(2)]
    records.append(_run("c", "NA()", 0, [], 1.0, status="not_applicable"))  # nothing trained on "c"
    paths = plots.plot_all(records, str(tmp_path / "plots"), unit="studies")
    assert [os.path.basename(p) for p in paths] == ["a.png", "b.png"]
    assert all(os.path.getsize(p) > 0 for p in paths)
