"""The runner on tiny trainings: pairing by seed, atomic files, resumption, failures."""

import dataclasses
import json
import os

import keras
import numpy as np

from loop import datasets
from loop.bench import runner, tables
from loop.bench.suites import Budget
from loop.datasets.dataset import Dataset
from loop.datasets.models import mlp_regressor


def run_files(out):
    found = []
    for root, _, files in os.walk(os.path.join(out, "runs")):
        found += [os.path.join(root, f) for f in files]
    return sorted(found)


def test_tiny_bench_pairs_runs_by_seed_and_stores_full_histories(tmp_path, tiny_budget):
    out = str(tmp_path / "out")
    summary = runner.run_suite([tiny_budget], ["shuffle", "dybat:delta=0.3"], 2, out, progress=False)
    assert summary == {"ran": 4, "skipped": 0, "failed": 0, "not_applicable": 0, "unloadable": []}
    records = tables.load_runs(out)
    assert len(records) == 4
    for seed in (0, 1):
        prints = {r["init_fingerprint"] for r in records if r["seed"] == seed}
        assert len(prints) == 1, "every selector of a seed must start from the same weights"
    assert records[0]["init_fingerprint"] != [r for r in records if r["seed"] != records[0]["seed"]][0][
        "init_fingerprint"]
    for r in records:
        assert r["status"] == "ok" and len(r["frame"]) == r["loop_epochs"]
        assert (r["frame"]["train_time_s"] >= r["frame"]["selection_time_s"]).all()
    shuffle = [r for r in records if r["selector"] == "Shuffle()"]
    dybat = [r for r in records if r["selector"] != "Shuffle()"]
    assert all(list(r["frame"]["epoch"]) == [1.0, 2.0] for r in shuffle)
    # DyBAT trains a fraction of its (drop_last) batches per epoch; it gets about the baseline's gradient steps.
    assert all(r["loop_epochs"] > 2 and r["frame"]["step"].iloc[-1] >= 0.8 * shuffle[0]["frame"]["step"].iloc[-1]
               for r in dybat)
    assert all(r["budget"] == tiny_budget.config() for r in records)
    assert {r["selector"] for r in records} == {"Shuffle()", "DyBAT(delta=0.3)"}
    table = tables.summarize(records, n_boot=100)
    assert list(table["seeds"]) == [2, 2]


def test_resumption_runs_only_what_is_missing_and_ignores_temp_files(tmp_path, tiny_budget):
    out = str(tmp_path / "out")
    runner.run_suite([tiny_budget], ["shuffle", "freeze"], 2, out, progress=False)
    files = run_files(out)
    assert len(files) == 4
    before = {f: os.stat(f).st_mtime_ns for f in files}
    deleted = files[1]
    os.remove(deleted)
    with open(files[2] + ".tmp-12345", "w") as f:  # a run killed while writing
        f.write('{"format": 1, "trunc')
    summary = runner.run_suite([tiny_budget], ["shuffle", "freeze"], 2, out, progress=False)
    assert summary["ran"] == 1 and summary["skipped"] == 3
    for f in files:
        assert os.path.exists(f)
        if f != deleted:
            assert os.stat(f).st_mtime_ns == before[f]
    assert len(tables.load_runs(out)) == 4


def test_a_changed_budget_is_run_again(tmp_path, tiny_budget):
    out = str(tmp_path / "out")
    runner.run_suite([tiny_budget], ["shuffle"], 1, out, progress=False)
    longer = Budget(dataset="spirals", epochs=3, load_options=tiny_budget.load_options)
    assert runner.run_suite([longer], ["shuffle"], 1, out, progress=False)["ran"] == 1
    assert len(tables.load_runs(out)[0]["frame"]) == 3


def _diverging_regression(budget, data_dir=None):
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    y = (x.sum(axis=1) * 100).astype("float32")
    ds = Dataset(name="toy", x_train=x, y_train=y, x_test=x[:16], y_test=y[:16], task="regression",
                 num_classes=1, source="test", info="", models={"mlp": mlp_regressor}, default_model="mlp",
                 loss="mse", metrics=("mae",), batch_size=16, optimizer="sgd", learning_rate=1e6,
                 target_metric="val_mae")
    return ds, (ds.x_train, ds.y_train), (ds.x_test, ds.y_test)


def test_failed_runs_are_recorded_and_the_suite_goes_on(tmp_path, monkeypatch, tiny_budget):
    out = str(tmp_path / "out")

    def broken(state):
        raise KeyError("no such thing")

    summary = runner.run_suite([tiny_budget], ["shuffle", broken], 1, out, progress=False)
    assert summary["ran"] == 2 and summary["failed"] == 1
    monkeypatch.setattr(runner, "prepare_dataset", _diverging_regression)
    summary = runner.run_suite([Budget(dataset="toy", epochs=2)], ["shuffle"], 1, out, progress=False)
    assert summary["failed"] == 1
    records = {(r["dataset"], r["selector"]): r for r in tables.load_runs(out)}
    assert records[("spirals", "Shuffle()")]["status"] == "ok"
    assert records[("spirals", "broken")]["status"] == "failed"
    assert "KeyError" in records[("spirals", "broken")]["error"]
    nan = records[("toy", "Shuffle()")]
    assert nan["status"] == "failed" and nan["error"].startswith("FloatingPointError")
    table = tables.summarize(list(records.values()), n_boot=50).set_index(["dataset", "selector"])
    assert table.loc[("spirals", "broken"), "reached"] == 0.0
    assert table.loc[("spirals", "broken"), "speedup"] == 0.0
    assert table.loc[("toy", "Shuffle()"), "failed"] == 1


def _sane_regression(budget, data_dir=None):
    ds, train, test = _diverging_regression(budget, data_dir)
    return dataclasses.replace(ds, learning_rate=1e-3), train, test


def test_class_based_selectors_are_not_applicable_to_regression(tmp_path, monkeypatch, capsys):
    from loop.bench.__main__ import report

    out = str(tmp_path / "out")
    monkeypatch.setattr(runner, "prepare_dataset", _sane_regression)
    specs = ["shuffle", "homogeneous", "heterogeneous", "loss_sorted:per_class=True", "loss_sorted"]
    summary = runner.run_suite([Budget(dataset="toy", epochs=2)], specs, 2, out, progress=False)
    assert summary["ran"] == 10 and summary["failed"] == 0 and summary["not_applicable"] == 6
    records = tables.load_runs(out)
    skipped = [r for r in records if r["status"] == "not_applicable"]
    assert {r["selector"] for r in skipped} == {"Homogeneous()", "Heterogeneous()", "LossSorted(per_class=True)"}
    assert all(r["frame"].empty and "regression" in r["error"] for r in skipped)  # never trained
    assert tables.not_applicable(records) == {s: ["toy"] for s in
                                               ("Heterogeneous()", "Homogeneous()", "LossSorted(per_class=True)")}
    table = report(out, plots=False, n_boot=50)
    assert list(table["selector"]) == ["Shuffle()", "LossSorted()"] and (table["failed"] == 0).all()
    assert "Not applicable (not trained): " in capsys.readouterr().out
    # Stored as not applicable: a re-run, even retrying failures, trains nothing again.
    again = runner.run_suite([Budget(dataset="toy", epochs=2)], specs, 2, out, progress=False, retry_failed=True)
    assert again["ran"] == 0 and again["skipped"] == 10


def test_write_json_atomic_leaves_no_temp_file(tmp_path):
    path = str(tmp_path / "a" / "b.json")
    runner.write_json_atomic(path, {"x": np.float32(1.5), "y": [np.int64(2)]})
    assert os.listdir(tmp_path / "a") == ["b.json"]
    with open(path) as f:
        assert json.load(f) == {"x": 1.5, "y": [2]}


def test_subsets_are_shared_and_seeded(tiny_budget):
    budget = Budget(dataset="spirals", epochs=1, n_train=50, n_test=20, load_options=tiny_budget.load_options)
    _, (x1, _), (t1, _) = runner.prepare_dataset(budget)
    _, (x2, _), _ = runner.prepare_dataset(budget)
    assert len(x1) == 50 and len(t1) == 20 and np.array_equal(x1, x2)
    assert len(datasets.load("spirals", n_samples=300).y_train) > 50
    keras.backend.clear_session()
