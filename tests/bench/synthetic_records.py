"""Synthetic trial records (layout 2, ``frame`` already a ``pandas.DataFrame``) for the scoring and reporting tests.

Importable as ``synthetic_records`` from the tests in this directory (pytest puts it on the path).
"""

import numpy as np
import pandas as pd


def record(workload, selector, study, frame, *, status="ok", trial=0, target=None, metrics=("accuracy",),
           target_metric="val_accuracy", error=None, flops=None, wall_s=1.0, knobs=None, learning_rate=0.01,
           epochs=10, precision="float32", **extra):
    """One layout-2 record of ``workload`` x ``selector``, study ``study`` (trial ``trial``), history ``frame``."""
    frame = frame if isinstance(frame, pd.DataFrame) else pd.DataFrame(frame)
    knobs = dict(knobs or {})
    label = selector if not knobs else selector[:-1] + ", ".join(f"{k}={v}" for k, v in knobs.items()) + ")"
    found = {
        "layout": 2, "workload": workload, "dataset": workload,
        "workload_config": {"name": workload, "dataset": workload, "epochs": epochs, "target": target},
        "hyperparameters": {"learning_rate": learning_rate, "batch_size": None, "schedule": "constant",
                            "warmup": 0.0, "horizon": 1.0},
        "knobs": knobs, "selector": selector, "trial_selector": label, "study": study, "trial": trial,
        "precision": precision, "target": target, "status": status,
        "error": error if error is not None or status == "ok" else "FloatingPointError: nan",
        "task": "classification", "metrics": list(metrics), "loss": "sparse_categorical_crossentropy",
        "target_metric": target_metric, "n_train": 100, "n_test": 50, "n_val": None, "model": "mlp",
        "compute_dtype": "float32", "loop_epochs": epochs, "schedule": None, "time_limit_s": None,
        "costs": {"wall_s": wall_s, "flops_per_sample": flops}, "machine": None, "frame": frame,
    }
    found.update(extra)
    return found


def curve(values, *, seconds_per_eval=1.0, metric="val_accuracy", selection_s=0.1, backprop_per_eval=None,
          forwarded_per_eval=None):
    """A history with one evaluation per epoch: ``metric`` takes ``values``, the clocks tick evenly."""
    n = len(values)
    epochs = np.arange(1, n + 1, dtype=float)
    values = np.asarray(values, dtype=float)
    frame = {"epoch": epochs, "step": np.arange(1, n + 1), "train_time_s": seconds_per_eval * epochs,
             "selection_time_s": selection_s * epochs, "setup_time_s": np.zeros(n), "eval_time_s": 0.5 * epochs,
             "loss": 1.0 - values, "accuracy": values + 0.01, "val_loss": 1.0 - values, metric: values}
    if backprop_per_eval is not None:
        frame["samples_backpropagated"] = backprop_per_eval * epochs
    if forwarded_per_eval is not None:
        frame["samples_forwarded"] = forwarded_per_eval * epochs
    return pd.DataFrame(frame)
