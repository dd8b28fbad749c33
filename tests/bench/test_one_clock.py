"""The benchmark on one clock: the calibration, the seconds-clock trial, RhoLoss's amortized set-up, its report."""

import dataclasses
import json
import os

import numpy as np
import pandas as pd
import pytest

from loop.bench import calibration, records, store, training
from loop.bench.campaign import run_campaign
from loop.bench.reporting import formatting
from loop.bench.scoring.studies import WITH_SETUP, costs, with_setup
from loop.bench.suites import entry

TARGET = {"val_accuracy": 0.99}


@pytest.fixture
def clocked():
    """Tiny spirals on the seconds clock: 2 Shuffle epochs of budget, an evaluation every half epoch."""
    return entry("spirals", 2, load_options={"n_samples": 300}, validation="split", clock="seconds",
                 eval_period=0.5, target=TARGET, stop_at_target=True)


def _data(item):
    return lambda: training.prepare_dataset(item.workload)


def test_the_calibration_is_cached_and_applies_the_budget_on_every_read(clocked, tmp_path):
    out = str(tmp_path)
    first = calibration.calibrate(clocked.workload, clocked.hyperparameters, _data(clocked), out)
    assert first["seconds_per_epoch"] > 0 and len(first["epoch_seconds"]) >= calibration.MIN_EPOCHS
    assert first["budget_s"] == pytest.approx(2 * first["seconds_per_epoch"])
    assert first["eval_period_s"] == pytest.approx(0.5 * first["seconds_per_epoch"])
    assert first["machine"]["cpu"] == records.machine()["cpu"]

    def no_data():
        raise AssertionError("a cached calibration trained again")

    longer = dataclasses.replace(clocked.workload, epochs=8, eval_period=2.0)
    again = calibration.calibrate(longer, clocked.hyperparameters, no_data, out)
    assert again["seconds_per_epoch"] == first["seconds_per_epoch"]  # the same unit for another budget
    assert again["budget_s"] == pytest.approx(8 * first["seconds_per_epoch"])
    assert again["eval_period_s"] == pytest.approx(2 * first["seconds_per_epoch"])


def test_a_unit_measured_on_other_hardware_warns(clocked, tmp_path):
    out = str(tmp_path)
    calibration.calibrate(clocked.workload, clocked.hyperparameters, _data(clocked), out)
    path = os.path.join(out, "calibration", "spirals.json")
    with open(path) as f:
        stored = json.load(f)
    stored["machine"]["cpu"] = "Some Other CPU"
    store.write_json_atomic(path, stored)
    with pytest.warns(RuntimeWarning, match="measured on Some Other CPU"):
        calibration.calibrate(clocked.workload, clocked.hyperparameters, _data(clocked), out)


def test_a_seconds_clock_trial_is_evaluated_on_the_grid_within_the_budget(clocked, tmp_path):
    unit = calibration.calibrate(clocked.workload, clocked.hyperparameters, _data(clocked), str(tmp_path))
    ds, train, test = training.prepare_dataset(clocked.workload)
    hp = dataclasses.replace(clocked.hyperparameters, learning_rate=0.01, schedule="cosine", horizon=0.5)
    planned = records.new(clocked.workload, hp, selector="Shuffle()", study=0)
    from loop.selectors import Shuffle

    record = training.train_one(ds, train, test, clocked.workload, hp, planned, Shuffle, calibration=unit)
    assert record["status"] == records.OK, record.get("error")
    frame = pd.DataFrame(record["frame"])
    assert record["clock"]["horizon_s"] == pytest.approx(0.5 * unit["budget_s"])
    on_grid = frame.dropna(subset=["eval_grid_k"])
    assert len(on_grid) >= 1 and (on_grid["eval_overshoot_s"] >= 0).all()
    k = on_grid["eval_grid_k"].to_numpy()
    assert (np.diff(k) > 0).all()  # one evaluation per grid point, in order
    assert np.allclose(on_grid["train_time_s"] - k * unit["eval_period_s"], on_grid["eval_overshoot_s"])
    # The budget ends the trial at the first chunk boundary past it (a chunk is an epoch here: 2 steps).
    assert frame["train_time_s"].iloc[-1] <= unit["budget_s"] + 4 * unit["seconds_per_epoch"]


def test_a_seconds_clock_workload_needs_its_calibration(clocked):
    ds, train, test = training.prepare_dataset(clocked.workload)
    planned = records.new(clocked.workload, clocked.hyperparameters, selector="Shuffle()", study=0)
    from loop.selectors import Shuffle

    with pytest.raises(ValueError, match="a workload on the seconds clock trains with a calibration"):
        training.train_one(ds, train, test, clocked.workload, clocked.hyperparameters, planned, Shuffle)


def test_a_seconds_clock_trial_past_its_limit_is_pruned_on_the_clock(clocked, tmp_path):
    unit = calibration.calibrate(clocked.workload, clocked.hyperparameters, _data(clocked), str(tmp_path))
    ds, train, test = training.prepare_dataset(clocked.workload)
    limit = unit["seconds_per_epoch"] * 0.2
    planned = records.new(clocked.workload, clocked.hyperparameters, selector="Shuffle()", study=0,
                          time_limit_s=limit)
    from loop.selectors import Shuffle

    record = training.train_one(ds, train, test, clocked.workload, clocked.hyperparameters, planned, Shuffle,
                                time_limit_s=limit, calibration=unit)
    assert record["status"] == records.PRUNED and "passed the limit" in record["error"]
    assert record["frame"][-1]["train_time_s"] >= limit


def test_rho_loss_trains_its_irreducible_losses_once_per_study_off_the_clock(clocked, tmp_path, monkeypatch):
    out = str(tmp_path / "out")
    spec = "rho_loss:irreducible_epochs=2"
    run_campaign([clocked], ["shuffle", spec], 1, out, trials=2, progress=False)
    files = sorted(os.listdir(os.path.join(out, "irreducible", "spirals")))
    assert len(files) == 1 and files[0].startswith("study_0-") and files[0].endswith(".npz")
    rho = [r for r in store.load(out) if r["selector"].startswith("RhoLoss")]
    assert len(rho) == 2 and all(r["status"] in (records.OK, records.PRUNED) for r in rho)
    assert len({r["irreducible"]["fingerprint"] for r in rho}) == 1  # both trials reuse one file
    seconds = {r["costs"]["irreducible_s"] for r in rho}
    assert len(seconds) == 1 and next(iter(seconds)) > 0
    for r in rho:  # the set-up is off the training clock
        assert r["frame"]["setup_time_s"].iloc[-1] < 0.5 * r["costs"]["irreducible_s"]
    # Scored both ways: the amortized row, and one that pays the set-up once per study.
    both = with_setup(store.load(out))
    paid = [r for r in both if r["selector"].endswith(WITH_SETUP)]
    assert len(paid) == 2
    for plain, shifted in zip(rho, paid):
        assert np.allclose(shifted["frame"]["train_time_s"], plain["frame"]["train_time_s"]
                           + plain["costs"]["irreducible_s"])
    table = costs(store.load(out)).set_index("selector")
    assert table.loc[rho[0]["selector"], "setup_s"] == pytest.approx(next(iter(seconds)))
    assert table.loc["Shuffle()", "setup_s"] == 0
    # A resumed campaign reads the cached losses: nothing is computed again.
    monkeypatch.setattr(training, "irreducible_losses", lambda *a, **k: pytest.fail("computed again"))
    summary = run_campaign([clocked], ["shuffle", spec], 1, out, trials=2, progress=False)
    assert summary["ran"] == 0


def test_the_protocol_line_says_what_was_run(clocked, tmp_path):
    out = str(tmp_path / "out")
    run_campaign([clocked], ["shuffle"], 1, out, trials=2, progress=False)
    line = formatting.protocol_line(store.load(out))
    assert line.startswith("Protocol: tuned on one clock: 2 trials per study, 1 study, targets and stops on "
                           "validation splits; every method evaluated every ")
    assert "decayed over training seconds" in line
    untuned = entry("spirals", 1, load_options={"n_samples": 300})
    run_campaign([untuned], ["shuffle"], 2, str(tmp_path / "plain"), progress=False)
    assert formatting.protocol_line(store.load(str(tmp_path / "plain"))) == (
        "Protocol: untuned: 2 seeds, targets and stops on the test set; each method evaluated once per loop epoch.")


def test_kakurenbo_trains_through_the_benchmark_with_its_rate_hook(clocked, tmp_path):
    out = str(tmp_path / "out")
    run_campaign([clocked], ["kakurenbo"], 1, out, trials=2, progress=False)
    mine = [r for r in store.load(out) if r["selector"].startswith("KAKURENBO")]
    assert len(mine) == 2 and all(r["status"] in (records.OK, records.PRUNED) for r in mine), \
        [r.get("error") for r in mine]
    assert all(r["trial_selector"].startswith("KAKURENBO(fraction=") for r in mine)  # its knob is searched


@pytest.mark.parametrize("spec,name,knob", [("gradmatch_pb", "GradMatchPB", "fraction"),
                                            ("craig_pb", "CRAIGPB", "fraction"), ("divbs", "DivBS", "ratio")])
def test_the_gradient_methods_train_through_the_tuned_benchmark(clocked, tmp_path, spec, name, knob):
    out = str(tmp_path / "out")
    run_campaign([clocked], [spec], 1, out, trials=2, progress=False)
    mine = [r for r in store.load(out) if r["selector"].startswith(name)]
    assert len(mine) == 2 and all(r["status"] in (records.OK, records.PRUNED) for r in mine), \
        [r.get("error") for r in mine]
    assert all(r["trial_selector"].startswith(f"{name}({knob}=") for r in mine)  # its knob is searched


def test_jit_compile_is_one_option_for_every_method_and_part_of_a_trials_identity(clocked, tmp_path):
    out = str(tmp_path / "out")
    run_campaign([clocked], ["shuffle", "infobatch"], 1, out, trials=1, progress=False, jit_compile=True)
    stored = store.load(out)
    assert len(stored) == 2 and all(r["jit_compile"] is True for r in stored)
    assert all(r["status"] in (records.OK, records.PRUNED) for r in stored), [r.get("error") for r in stored]
    again = run_campaign([clocked], ["shuffle"], 1, out, trials=1, progress=False, jit_compile=True)
    assert again["ran"] == 0  # stored with the same identity
    with pytest.raises(ValueError, match="holds trials trained with XLA compilation.*resume this one with "
                                         "--jit-compile"):
        run_campaign([clocked], ["shuffle"], 1, out, trials=1, progress=False)  # never mixed in one --out
