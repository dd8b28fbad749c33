"""The trial record: one layout, the machine it ran on, and the older layouts read in place."""

import json
import os

import pandas as pd
import pytest

from loop.bench import records, store
from loop.bench.workloads import Hyperparameters, Workload

FRAME = [{"epoch": 1.0, "step": 10, "train_time_s": 0.5, "val_accuracy": 0.9}]


def layout1_run():
    """A run as the untuned runner of layout 1 stored it."""
    return {"format": 1, "dataset": "iris", "selector": "Shuffle()", "seed": 3,
            "budget": {"dataset": "iris", "epochs": 8, "n_train": None, "n_test": None, "model": None,
                       "batch_size": None, "learning_rate": 0.06, "load_options": {},
                       "target": {"val_accuracy": 0.96}, "stop_at_target": True},
            "precision": "float32", "task": "classification", "metrics": ["accuracy"], "status": "ok",
            "error": None, "frame": FRAME, "wall_s": 1.25, "flops_per_sample": 100, "loop_epochs": 8}


def layout1_trial():
    """A tuning trial as layout 1 stored it: the run's keys, then the trial's."""
    raw = layout1_run()
    raw["budget"].update({"validation": "split", "warmup": 0.05, "horizon": 0.5, "workload": "iris_noisy",
                          "label_noise": 0.1})
    raw.update({"dataset": "iris_noisy", "selector": "RS2()", "trial_format": 1, "workload": "iris_noisy",
                "study": 2, "trial": 4, "untuned_selector": "RS2()", "trial_selector": "RS2(ratio=0.3)",
                "hyperparameters": {"learning_rate": 0.06, "schedule": "constant", "horizon": 0.5, "warmup": 0.05,
                                    "ratio": 0.3}, "time_limit_s": 2.5})
    return raw


def test_a_layout1_run_is_trial_0_of_its_seeds_study_with_the_same_identity_as_today():
    record = records.upgrade(layout1_run())
    assert record["layout"] == records.LAYOUT and record["upgraded_from"] == "run, layout 1"
    assert (record["workload"], record["selector"], record["study"], record["trial"]) == ("iris", "Shuffle()", 3, 0)
    assert record["costs"] == {"wall_s": 1.25, "flops_per_sample": 100}
    assert record["target"] == {"val_accuracy": 0.96} and record["machine"] is None
    today = records.new(Workload(dataset="iris", epochs=8, target={"val_accuracy": 0.96}, stop_at_target=True),
                        Hyperparameters(learning_rate=0.06), selector="Shuffle()", study=3)
    assert records.identity(record) == records.identity(today)


def test_a_layout1_tuning_trial_splits_its_hyperparameters_from_the_selectors_knobs():
    record = records.upgrade(layout1_trial())
    assert (record["workload"], record["selector"], record["trial_selector"]) == ("iris_noisy", "RS2()",
                                                                                 "RS2(ratio=0.3)")
    assert (record["study"], record["trial"], record["time_limit_s"]) == (2, 4, 2.5)
    assert record["knobs"] == {"ratio": 0.3}
    assert record["hyperparameters"] == Hyperparameters(learning_rate=0.06, warmup=0.05, horizon=0.5).config()
    assert record["workload_config"]["validation"] == "split" and record["workload_config"]["label_noise"] == 0.1


@pytest.mark.parametrize("raw", [None, [], {"format": 7}, {"layout": 99}, {"format": 1, "budget": "x"},
                                 {"format": 1, "budget": {"dataset": "iris", "epochs": 0}}])
def test_what_is_no_record_reads_as_none(raw):
    assert records.upgrade(raw) is None


def test_a_new_record_names_its_machine_after_training(tmp_path):
    machine = records.machine()
    assert {"host", "cpu", "instruction_set", "cores", "gpus", "tensorflow", "keras", "python"} <= set(machine)
    assert machine["tensorflow"] and isinstance(machine["gpus"], list) and machine["cores"] >= 1
    record = {**records.upgrade(layout1_run()), "machine": machine}
    assert machine["cpu"] in records.hardware(record)
    assert records.hardware(records.upgrade(layout1_run())) == "unknown"


def test_a_record_survives_the_store_round_trip(tmp_path):
    record = records.new(Workload(dataset="iris", epochs=2), Hyperparameters(), selector="Shuffle()", study=1)
    record["frame"] = FRAME
    path = store.Store(str(tmp_path)).save(record)
    (loaded,) = store.load(str(tmp_path))
    assert isinstance(loaded["frame"], pd.DataFrame) and loaded["frame"]["val_accuracy"].iloc[0] == 0.9
    assert records.identity(loaded) == records.identity(record)
    assert json.load(open(path))["layout"] == records.LAYOUT


def test_the_stored_results_of_every_older_layout_still_load(tmp_path):
    """Every stored run of results/full and trial of results/tuned-v2 upgrades (they are committed with the repo)."""
    root = os.path.join(os.path.dirname(__file__), "..", "..", "results")
    for name, least in (("full", 470), ("tuned-v2", 504)):
        files = store.result_files(os.path.join(root, name))
        assert len(files) >= least
        for path in files:
            record, problem = store.read(path)
            assert problem is None and record["layout"] == records.LAYOUT, path
