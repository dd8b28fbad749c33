"""loop.history: targets, their direction, and time-, epochs- and steps-to-target."""

import math

import pandas as pd
import pytest

from loop import History
from loop.history import first_reached, infer_mode, parse_target, reached


def scripted_history():
    rows = [dict(epoch=e, step=10 * e, train_time_s=1.5 * e, val_accuracy=a, val_loss=l)
            for e, a, l in [(1, 0.5, 1.0), (2, 0.7, 0.8), (3, 0.91, 0.6), (4, 0.89, 0.4), (5, 0.95, 0.3)]]
    return rows


def test_time_to_target_arithmetic():
    hist = History(scripted_history(), target={"val_accuracy": 0.9})
    assert (hist.time_to_target, hist.epochs_to_target, hist.steps_to_target) == (4.5, 3.0, 30)
    hist = History(scripted_history(), target={"val_loss": 0.5})
    assert hist.epochs_to_target == 4.0
    hist = History(scripted_history(), target={"val_accuracy": 0.9, "val_loss": 0.5})
    assert hist.epochs_to_target == 5.0
    hist = History(scripted_history(), target={"val_accuracy": 0.99})
    assert hist.time_to_target is None and hist.epochs_to_target is None and hist.steps_to_target is None
    hist = History(scripted_history(), target={"val_loss": (0.85, "max")})
    assert hist.epochs_to_target == 1.0
    assert infer_mode("val_mae") == "min" and infer_mode("val_accuracy") == "max"
    assert parse_target({"val_mae": 3}) == {"val_mae": (3.0, "min")}
    with pytest.raises(ValueError, match="not in the history"):
        first_reached(pd.DataFrame(scripted_history()), {"val_f1": 0.2})



@pytest.mark.parametrize("target,message", [
    ("val_accuracy", "must be a non-empty dict"),
    ({"val_accuracy": "high"}, "is not a number"),
    ({"val_accuracy": math.inf}, "is not finite"),
    ({"val_accuracy": (0.9, "up")}, "use 'min'"),
    ({"val_accuracy": (0.9,)}, "give a threshold or a"),
])
def test_bad_targets_are_refused(target, message):
    with pytest.raises(ValueError, match=message):
        parse_target(target)


def test_reached_needs_every_metric_and_finite_values():
    target = parse_target({"val_accuracy": 0.9, "val_loss": 0.5})
    assert reached({"val_accuracy": 0.95, "val_loss": 0.4}, target)
    assert not reached({"val_accuracy": 0.95}, target)
    assert not reached({"val_accuracy": math.nan, "val_loss": 0.1}, target)
    assert not reached({"val_accuracy": 1.0}, {})


def test_frame_keras_history_and_best():
    hist = History(scripted_history(), target={"val_accuracy": 0.9}, selector="Shuffle()")
    assert list(hist.frame.columns[:3]) == ["epoch", "step", "train_time_s"]
    assert hist.history["val_accuracy"] == [0.5, 0.7, 0.91, 0.89, 0.95]
    assert hist.best("val_accuracy") == 0.95 and hist.best("val_loss") == 0.3
    assert len(hist) == 5 and "Shuffle()" in repr(hist) and "time_to_target=4.5" in repr(hist)
