"""plot_wallclock: one panel per dataset, median over seeds with a min-max band, the target drawn."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from loop.bench import plots


def _run(dataset, selector, seed, accuracies, seconds_per_epoch, target=None, status="ok"):
    n = len(accuracies)
    frame = pd.DataFrame({"epoch": np.arange(1, n + 1), "val_accuracy": accuracies, "val_loss": np.ones(n),
                          "train_time_s": seconds_per_epoch * np.arange(1, n + 1)})
    return {"dataset": dataset, "selector": selector, "seed": seed, "status": status, "metrics": ["accuracy"],
            "target_metric": "val_accuracy", "frame": frame if status == "ok" else pd.DataFrame(),
            "budget": {"target": target} if target else {}}


def test_one_panel_per_dataset_with_median_band_and_target(tmp_path):
    records = []
    for seed, shift in enumerate((0.0, 0.02, 0.04)):  # three seeds, stopping at the target (0.9)
        records.append(_run("a", "Shuffle()", seed, [0.5 + shift, 0.8 + shift, 0.9 + shift], 2.0,
                            {"val_accuracy": 0.9}))
        records.append(_run("a", "Fast()", seed, [0.7 + shift, 0.92], 1.0, {"val_accuracy": 0.9}))
        records.append(_run("b", "Shuffle()", seed, [0.6, 0.7 + shift], 3.0, {"val_accuracy": 0.7}))
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
    target_lines = [line for line in a.get_lines() if line.get_linestyle() == "--"]
    assert len(target_lines) == 1 and np.allclose(target_lines[0].get_ydata(), 0.9)
    band = a.collections[0].get_paths()[0].vertices[:, 1]
    assert np.isclose(band.min(), 0.5) and np.isclose(band.max(), 0.94)  # the seeds' minimum and maximum
    assert "NA()" not in {t.get_text() for t in fig.legends[0].get_texts()}  # not applicable: not drawn


def test_no_curves_is_a_clear_error():
    with pytest.raises(ValueError, match="no run with a learning curve"):
        plots.plot_wallclock([_run("a", "X()", 0, [], 1.0, status="failed")])
