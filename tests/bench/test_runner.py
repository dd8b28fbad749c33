"""The runner on tiny trainings: pairing by seed, atomic files, resumption, failures."""

import dataclasses
import json
import os
import re

import keras
import numpy as np
import pytest

from loop import datasets
from loop.bench import auto_seeds, runner, tables
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
    specs = ["shuffle", "homogeneous", "heterogeneous", "loss_sorted:per_class=True", "loss_sorted", "ordered_sgd",
             "ordered_sgd:q=16"]
    summary = runner.run_suite([Budget(dataset="toy", epochs=2)], specs, 2, out, progress=False)
    assert summary["ran"] == 14 and summary["failed"] == 0 and summary["not_applicable"] == 8
    records = tables.load_runs(out)
    skipped = [r for r in records if r["status"] == "not_applicable"]
    # OrderedSGD's default rule follows the train accuracy; with a fixed q it trains on regression too.
    assert {r["selector"] for r in skipped} == {"Homogeneous()", "Heterogeneous()", "LossSorted(per_class=True)",
                                                "OrderedSGD()"}
    assert all(r["frame"].empty and "regression" in r["error"] for r in skipped)  # never trained
    assert tables.not_applicable(records) == {s: ["toy"] for s in ("Heterogeneous()", "Homogeneous()",
                                                                   "LossSorted(per_class=True)", "OrderedSGD()")}
    table = report(out, plots=False, n_boot=50)
    assert sorted(table["selector"]) == ["LossSorted()", "OrderedSGD(q=16)", "Shuffle()"]
    assert (table["failed"] == 0).all()
    assert "Not applicable (not trained): " in capsys.readouterr().out
    # Stored as not applicable: a re-run, even retrying failures, trains nothing again.
    again = runner.run_suite([Budget(dataset="toy", epochs=2)], specs, 2, out, progress=False, retry_failed=True)
    assert again["ran"] == 0 and again["skipped"] == 14


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


# ----------------------------------------------------------------------------------------- --seeds auto:MIN:MAX
#: Seconds to target of the stubbed runs, per selector label and seed: Freeze() is clearly twice as fast,
#: Homogeneous() is as fast as Shuffle() up to noise on either side of 1.
def _fake_seconds(label, seed):
    base = 10.0 + 0.3 * ((seed * 7) % 5)
    if label == "Freeze()":
        return base / (2.0 + 0.05 * (-1) ** seed)
    if label == "Homogeneous()":
        return base * (1.0 + 0.08 * (-1) ** seed * (1 + seed % 3))
    return base


class FakeRuns:
    """Stands in for ``runner.train_one`` and ``runner.prepare_dataset``: no training, a record per call."""

    def __init__(self, monkeypatch, stop_after=None):
        self.calls, self.stop_after = [], stop_after
        monkeypatch.setattr(runner, "prepare_dataset", lambda budget, data_dir=None: (None, None, None))
        monkeypatch.setattr(runner, "train_one", self.train_one)

    def train_one(self, ds, train, test, budget, label, make_selector, seed, precision=runner.DEFAULT_PRECISION):
        if self.stop_after is not None and len(self.calls) >= self.stop_after:
            raise KeyboardInterrupt("killed")
        self.calls.append((label, seed))
        seconds = _fake_seconds(label, seed)
        frame = [{"epoch": 1.0, "step": 10, "samples_seen": 100, "samples_forwarded": 100,
                  "samples_backpropagated": 100, "train_time_s": seconds, "selection_time_s": 0.0,
                  "setup_time_s": 0.0, "eval_time_s": 0.1, "loss": 0.3, "accuracy": 0.9, "val_loss": 0.3,
                  "val_accuracy": 0.95}]
        return {"format": runner.RUN_FORMAT, "dataset": budget.dataset, "selector": label, "seed": seed,
                "budget": budget.config(), "precision": precision, "task": "classification",
                "metrics": ["accuracy"], "loss": "sparse_categorical_crossentropy", "target_metric": "val_accuracy",
                "n_train": 100, "n_test": 20, "status": "ok", "error": None, "frame": frame, "wall_s": seconds}


AUTO_SPECS = ["shuffle", "freeze", "homogeneous"]


def seeds_of(out, label):
    return sorted(r["seed"] for r in tables.load_runs(out) if r["selector"] == label)


def test_parse_seeds():
    assert auto_seeds.parse_seeds("5") == 5 and auto_seeds.parse_seeds(" 3 ") == 3
    assert auto_seeds.parse_seeds("auto:5:15") == auto_seeds.AutoSeeds(5, 15)
    assert auto_seeds.parse_seeds("AUTO:2:2") == auto_seeds.AutoSeeds(2, 2)
    assert str(auto_seeds.AutoSeeds(5, 15)) == "auto:5:15"
    for bad, message in [("auto:0:3", "needs 1 <= MIN <= MAX, got MIN=0, MAX=3"),
                         ("auto:6:5", "needs 1 <= MIN <= MAX, got MIN=6, MAX=5"),
                         ("auto:5", "is not auto:MIN:MAX with two integers"),
                         ("auto:a:b", "is not auto:MIN:MAX with two integers"),
                         ("auto:1:2:3", "is not auto:MIN:MAX"),
                         ("autox:1:2", "is not auto:MIN:MAX"),
                         ("five", "is neither a number of seeds nor auto:MIN:MAX")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            auto_seeds.parse_seeds(bad)
    with pytest.raises(ValueError, match="1 <= MIN <= MAX"):
        auto_seeds.AutoSeeds(3, 2)


def test_auto_seeds_add_seeds_only_where_the_interval_contains_1_and_stop_at_max(tmp_path, monkeypatch):
    fake = FakeRuns(monkeypatch)
    out = str(tmp_path / "out")
    budget = Budget(dataset="toy", epochs=1)
    summary = auto_seeds.run_auto([budget], AUTO_SPECS, auto_seeds.AutoSeeds(3, 7), out, n_boot=500, progress=False)
    assert seeds_of(out, "Freeze()") == [0, 1, 2]                        # a clear win after the first 3 seeds
    assert seeds_of(out, "Homogeneous()") == list(range(7))              # undecided: up to MAX
    assert seeds_of(out, "Shuffle()") == list(range(7))                  # paired by seed with the undecided pair
    assert summary["rounds"] == 4 and summary["ran"] == 3 * 3 + 2 * 4 and summary["skipped"] == 0
    assert summary["seeds"] == {("toy", "Shuffle()"): 7, ("toy", "Freeze()"): 3, ("toy", "Homogeneous()"): 7}
    assert len(fake.calls) == len(set(fake.calls)) == 17                 # no run twice
    table = tables.summarize(tables.load_runs(out), n_boot=500).set_index("selector")
    assert table.loc["Freeze()", "verdict"] == "win"
    assert table.loc["Homogeneous()", "verdict"] == "no difference"
    # Everything is stored: running it again trains nothing and decides the same.
    again = auto_seeds.run_auto([budget], AUTO_SPECS, auto_seeds.AutoSeeds(3, 7), out, n_boot=500, progress=False)
    assert again["ran"] == 0 and len(fake.calls) == 17 and again["seeds"] == summary["seeds"]


def test_auto_seeds_with_min_equal_max_is_a_fixed_count(tmp_path, monkeypatch):
    fake = FakeRuns(monkeypatch)
    out = str(tmp_path / "out")
    summary = auto_seeds.run_auto([Budget(dataset="toy", epochs=1)], AUTO_SPECS, auto_seeds.AutoSeeds(2, 2), out,
                              n_boot=200, progress=False)
    assert summary["rounds"] == 0 and len(fake.calls) == 6


def test_undecided_pairs_the_baseline_and_picks_the_smallest_missing_seed(tmp_path, monkeypatch):
    FakeRuns(monkeypatch)
    out = str(tmp_path / "out")
    budget = Budget(dataset="toy", epochs=1)
    runner.run_suite([budget], AUTO_SPECS, [0, 1, 3], out, progress=False)
    records = tables.load_runs(out)
    assert auto_seeds.undecided(records, min_seeds=3, max_seeds=10, n_boot=200) == {
        ("toy", 2): ["Shuffle()", "Homogeneous()"]}
    assert auto_seeds.undecided(records, min_seeds=3, max_seeds=3, n_boot=200) == {}  # at MAX: no more
    baseline_has_it = [r for r in records if not (r["selector"] == "Homogeneous()" and r["seed"] == 3)]
    runner.run_suite([budget], ["shuffle"], [2], out, progress=False)
    baseline_has_it += [r for r in tables.load_runs(out) if r["selector"] == "Shuffle()" and r["seed"] == 2]
    assert auto_seeds.undecided(baseline_has_it, min_seeds=2, max_seeds=10, n_boot=200) == {
        ("toy", 2): ["Homogeneous()"]}  # Shuffle() already has seed 2


def test_a_killed_auto_run_resumes_from_what_is_stored(tmp_path, monkeypatch):
    out = str(tmp_path / "out")
    budget = Budget(dataset="toy", epochs=1)
    killed = FakeRuns(monkeypatch, stop_after=11)  # killed in the second added round
    with pytest.raises(KeyboardInterrupt):
        auto_seeds.run_auto([budget], AUTO_SPECS, auto_seeds.AutoSeeds(3, 7), out, n_boot=500, progress=False)
    assert len(tables.load_runs(out)) == 11
    resumed = FakeRuns(monkeypatch)
    summary = auto_seeds.run_auto([budget], AUTO_SPECS, auto_seeds.AutoSeeds(3, 7), out, n_boot=500, progress=False)
    assert not set(resumed.calls) & set(killed.calls)                   # nothing stored is run again
    assert len(killed.calls) + len(resumed.calls) == 17                  # the same runs as without the kill
    assert summary["seeds"] == {("toy", "Shuffle()"): 7, ("toy", "Freeze()"): 3, ("toy", "Homogeneous()"): 7}


def test_auto_seeds_need_the_baseline(tmp_path):
    with pytest.raises(ValueError, match="need the baseline Shuffle()"):
        auto_seeds.run_auto([Budget(dataset="toy", epochs=1)], ["freeze"], auto_seeds.AutoSeeds(1, 2), str(tmp_path),
                        progress=False)


def test_a_fixed_target_stops_runs_and_is_the_tables_target(tmp_path, tiny_budget):
    out = str(tmp_path / "out")
    budget = dataclasses.replace(tiny_budget, epochs=30, target={"val_accuracy": 0.3}, stop_at_target=True)
    runner.run_suite([budget], ["shuffle"], 1, out, progress=False)
    (record,) = tables.load_runs(out)
    frame = record["frame"]
    assert len(frame) < 30 and frame["val_accuracy"].iloc[-1] >= 0.3  # stopped at its first evaluation past 0.3
    assert (frame["val_accuracy"].iloc[:-1] < 0.3).all()
    assert record["budget"]["target"] == {"val_accuracy": 0.3} and record["budget"]["stop_at_target"]
    table = tables.summarize([record], n_boot=10)
    assert table["target"].iloc[0] == "val_accuracy >= 0.3" and table["target_source"].iloc[0] == "fixed in the suite"
    assert table["reached"].iloc[0] == 1
    given = tables.summarize([record], targets=tables.parse_targets(["val_accuracy=0.2"]), n_boot=10)
    assert given["target"].iloc[0] == "val_accuracy >= 0.2"  # --target still overrides the suite's


@pytest.mark.parametrize("kwargs, message", [
    (dict(target={"val_accuracy": "high"}), "spirals: target\\['val_accuracy'\\] threshold 'high' is not a number"),
    (dict(stop_at_target=True), "spirals: stop_at_target=True needs a target"),
])
def test_budget_refuses_a_bad_target(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Budget(dataset="spirals", epochs=2, **kwargs)


def test_a_budget_runs_only_its_selectors_and_the_list_is_not_its_identity(tmp_path, tiny_budget):
    out = str(tmp_path / "out")
    budget = dataclasses.replace(tiny_budget, selectors=("shuffle", "freeze"), note="few selectors")
    summary = runner.run_suite([budget], ["shuffle", "freeze", "homogeneous"], 1, out, progress=False)
    assert summary["ran"] == 2
    assert {r["selector"] for r in tables.load_runs(out)} == {"Shuffle()", "Freeze()"}
    assert "selectors" not in budget.config() and "note" not in budget.config()
    wider = dataclasses.replace(budget, selectors=None)
    summary = runner.run_suite([wider], ["shuffle", "freeze", "homogeneous"], 1, out, progress=False)
    assert summary == {"ran": 1, "skipped": 2, "failed": 0, "not_applicable": 0, "unloadable": []}


def test_the_full_suite_has_fixed_targets_caps_and_known_selectors():
    from loop.bench.suites import FULL, FULL_SELECTORS
    from loop.selectors import from_string

    assert FULL.seeds == 5 and FULL.selectors == FULL_SELECTORS
    for spec in FULL_SELECTORS:
        from_string(spec)  # every name is registered
    names = {b.dataset for b in FULL.budgets}
    assert names == {"spirals", "iris", "wine", "boston", "music_genre", "sentiment140", "mnist", "fashion_mnist",
                     "cifar10"}
    for budget in FULL.budgets:
        assert budget.target and budget.stop_at_target and budget.learning_rate and budget.n_train is None
        assert budget.n_test is None  # the complete test sets
        if budget.selectors is not None:
            assert "shuffle" in budget.selectors and set(budget.selectors) <= set(FULL_SELECTORS)
            assert budget.note.startswith("left out")
    mnist = [b for b in FULL.budgets if b.dataset == "mnist"][0]
    assert mnist.target == {"val_accuracy": 0.99}


def test_the_full_suite_budgets_are_the_committed_pilot_results():
    """Each budget's learning rate, target and cap are what benchmarks/full_pilot.py chose (results/full-pilot)."""
    from loop.bench.suites import FULL

    pilot_dir = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "results", "full-pilot")
    for budget in FULL.budgets:
        with open(os.path.join(pilot_dir, f"{budget.dataset}.json")) as f:
            pilot = json.load(f)
        assert budget.learning_rate == pilot["learning_rate"], budget.dataset
        assert budget.target == {pilot["metric"]: pilot["target"]}, budget.dataset
        assert budget.epochs == pilot["epoch_cap"], budget.dataset
        assert budget.model in (None, pilot["model"]), budget.dataset


def test_a_validation_split_budget_validates_on_the_split_and_reports_the_test_set(tmp_path, tiny_budget):
    out = str(tmp_path / "out")
    budget = dataclasses.replace(tiny_budget, epochs=30, validation="split", target={"val_accuracy": 0.3},
                                 stop_at_target=True)
    ds, train, test = runner.prepare_dataset(budget)
    plain, plain_train, plain_test = runner.prepare_dataset(tiny_budget)
    assert len(ds.y_val) == 48 and len(train[1]) == 192 and len(plain_train[1]) == 240  # 20% of spirals' 240
    assert np.array_equal(test[1], plain_test[1])  # the test set is untouched
    runner.run_suite([budget], ["shuffle"], 1, out, progress=False)
    (record,) = tables.load_runs(out)
    frame = record["frame"]
    assert record["n_val"] == 48 and record["n_test"] == len(test[1]) and record["n_train"] == 192
    assert record["validation"] == "split" and record["budget"]["validation"] == "split"
    assert {"test_loss", "test_accuracy", "val_accuracy"} <= set(frame.columns)
    assert frame["val_accuracy"].iloc[-1] >= 0.3 and (frame["val_accuracy"].iloc[:-1] < 0.3).all()
    table = tables.summarize([record], n_boot=10)
    assert table["test_at_target"].iloc[0] == pytest.approx(frame["test_accuracy"].iloc[-1])
    assert table["test_at_end"].iloc[0] == pytest.approx(frame["test_accuracy"].iloc[-1])
    assert table["best_test"].iloc[0] == pytest.approx(frame["test_accuracy"].max())
    assert "test at target" in tables.display(table).columns


def test_new_budget_fields_leave_the_older_identity_alone():
    old = Budget(dataset="spirals", epochs=2)
    assert set(old.config()) == {"dataset", "epochs", "n_train", "n_test", "model", "batch_size", "learning_rate",
                                 "load_options", "target", "stop_at_target"}
    split = Budget(dataset="spirals", epochs=2, validation="split", n_val=0.25)
    assert split.config()["validation"] == "split" and split.config()["n_val"] == 0.25
    assert split.config() != old.config() and split.name == "spirals"


@pytest.mark.parametrize("kwargs, message", [
    (dict(validation="holdout"), "validation='holdout'"),
    (dict(n_val=100), "n_val=100 needs validation='split'"),
    (dict(label_noise=1.5, workload="noisy"), "label_noise=1.5"),
    (dict(label_noise=0.2), "give it a name"),
    (dict(workload="not a name"), "workload='not a name'"),
])
def test_budget_refuses_bad_validation_and_workload_fields(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Budget(dataset="spirals", epochs=2, **kwargs)


def test_a_noisy_label_workload_is_stored_under_its_name_with_clean_validation_labels(tmp_path, monkeypatch):
    out = str(tmp_path / "out")
    budget = Budget(dataset="iris", epochs=2, validation="split", workload="iris_noisy20", label_noise=0.2)
    ds, train, _ = runner.prepare_dataset(budget)
    clean = datasets.validation_split(datasets.load("iris"))
    assert np.array_equal(ds.y_val, clean.y_val) and np.array_equal(ds.x_train, clean.x_train)
    assert ds.extras["label_noise"]["replaced"] == round(0.2 * 96) and not np.array_equal(train[1], clean.y_train)
    runner.run_suite([budget], ["shuffle"], 1, out, progress=False)
    assert os.path.exists(runner.run_path(out, "iris_noisy20", "Shuffle()", 0))
    (record,) = tables.load_runs(out)
    assert record["dataset"] == "iris_noisy20" and record["source_dataset"] == "iris"
    assert record["label_noise"]["fraction"] == 0.2 and record["label_noise"]["replaced"] == 19
    assert tables.summarize([record], n_boot=10)["dataset"].iloc[0] == "iris_noisy20"


def test_the_variant_workloads_are_workloads_of_their_own():
    from loop.bench.suites import FULL, SUITES, VARIANTS
    from loop.selectors import from_string

    assert SUITES["variants"] is VARIANTS
    by_name = {b.name: b for b in VARIANTS.budgets}
    assert set(by_name) == {"mnist_noisy20", "fashion_mnist_half_width"}
    assert not set(by_name) & {b.name for b in FULL.budgets}
    noisy, narrow = by_name["mnist_noisy20"], by_name["fashion_mnist_half_width"]
    assert noisy.dataset == "mnist" and noisy.label_noise == 0.2 and noisy.config()["workload"] == "mnist_noisy20"
    assert narrow.dataset == "fashion_mnist" and narrow.model_kwargs == {"width": 0.5}
    assert all(b.validation == "split" for b in VARIANTS.budgets)
    for spec in VARIANTS.selectors:
        from_string(spec)


def test_model_kwargs_reach_the_reference_model(tmp_path, tiny_budget):
    out = str(tmp_path / "out")
    budget = dataclasses.replace(tiny_budget, workload="spirals_narrow", model_kwargs={"hidden": [8]})
    runner.run_suite([budget, tiny_budget], ["shuffle"], 1, out, progress=False)
    narrow, plain = sorted(tables.load_runs(out), key=lambda r: r["dataset"] != "spirals_narrow")
    assert narrow["status"] == plain["status"] == "ok" and narrow["dataset"] == "spirals_narrow"
    assert narrow["budget"]["model_kwargs"] == {"hidden": [8]} and "model_kwargs" not in plain["budget"]
    assert narrow["flops_per_sample"] < plain["flops_per_sample"]  # one hidden layer of 8 units, not 64 and 64


class _PlainSampler:
    """A selector object without a repr of its own (Python's default repr holds a memory address)."""

    def __init__(self, power):
        self.power = power

    def __call__(self, state):
        return [np.arange(state.num_samples)]


def test_an_object_with_the_default_repr_gets_a_stable_label_so_resumed_runs_are_found():
    label, factory = runner.selector_key(_PlainSampler(2))
    assert " at 0x" not in label and label.endswith(")") and "_PlainSampler(#" in label
    assert runner.selector_key(_PlainSampler(2))[0] == label  # another object, the same attributes: the same label
    assert runner.selector_key(_PlainSampler(3))[0] != label  # other attributes: another label
    assert isinstance(factory(), _PlainSampler) and factory().power == 2
