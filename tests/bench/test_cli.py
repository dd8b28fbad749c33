"""The command line: clean errors, a tiny end-to-end run, and resumption after SIGKILL."""

import os
import signal
import subprocess
import sys
import time

import pytest

from loop.bench import tables
from loop.bench.__main__ import main, split_specs


def run_files(out):
    found = []
    for root, _, files in os.walk(os.path.join(out, "runs")):
        found += [os.path.join(root, f) for f in files]
    return sorted(found)


def test_split_specs_keeps_hyper_parameters_with_their_selector():
    assert split_specs("shuffle, dybat:delta=0.5,shuffle=False,infobatch") == [
        "shuffle", "dybat:delta=0.5,shuffle=False", "infobatch"]
    assert split_specs("shuffle,dynamic:base='dybat:delta=0.5,shuffle=True',k0=16,loss_sorted") == [
        "shuffle", "dynamic:base='dybat:delta=0.5,shuffle=True',k0=16", "loss_sorted"]


@pytest.mark.parametrize("args, message", [
    (["--selectors", "nope"], "unknown selector 'nope'"),
    (["--selectors", "dybat:gamma=2"], "unknown hyper-parameter 'gamma'"),
    (["--datasets", "mnsit"], "unknown dataset 'mnsit'"),
    (["--target", "val_accuracy"], "bad target"),
])
def test_bad_arguments_exit_2_with_a_message(args, message, capsys, tmp_path):
    assert main(args + ["--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not os.path.exists(tmp_path / "x")


def test_help_states_the_protocol(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "same weights" in text and "99% of the median best" in text and "scores 0" in text


def test_tiny_cli_run_writes_tables_and_plots(tmp_path, capsys):
    out = str(tmp_path / "out")
    code = main(["--datasets", "spirals", "--selectors", "heterogeneous", "--seeds", "2", "--epochs", "2",
                 "--n-train", "200", "--n-test", "100", "--out", out, "--bootstrap", "200"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| spirals | Shuffle() |" in printed and "| spirals | Heterogeneous() |" in printed
    for name in ("table.csv", "table.md", "seed000.csv", os.path.join("plots", "spirals.png")):
        assert os.path.getsize(os.path.join(out, name)) > 0
    assert main(["report", "--out", out, "--no-plots", "--target", "val_accuracy=0.99"]) == 0
    assert "val_accuracy >= 0.99" in capsys.readouterr().out


def test_a_suite_killed_with_sigkill_loses_no_completed_run(tmp_path):
    out = str(tmp_path / "out")
    cmd = [sys.executable, "-m", "loop.bench", "--datasets", "spirals", "--selectors", "shuffle,freeze",
           "--seeds", "3", "--epochs", "2", "--n-train", "200", "--n-test", "100", "--out", out, "--no-plots"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len([f for f in run_files(out) if f.endswith(".json")]) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = {f: open(f).read() for f in run_files(out) if f.endswith(".json")}
    assert 2 <= len(done) < 6, "the suite must be killed mid-run"
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"skipped {len(done)} already stored" in rerun.stderr
    for path, content in done.items():
        assert open(path).read() == content
    records = tables.load_runs(out)
    assert len(records) == 6 and all(r["status"] == "ok" for r in records)


def test_overhead_benchmark_reports_each_selector(capsys):
    assert main(["overhead", "--selectors", "dybat", "--n-samples", "400", "--epochs", "3",
                 "--model", "spirals_mlp"]) == 0
    printed = capsys.readouterr().out
    assert "| Shuffle() |" in printed and "| DyBAT() |" in printed  # Shuffle is added as the reference
    assert "epoch_ratio" in printed and "step_ratio" in printed and "selection_share" in printed
    assert main(["overhead", "--selectors", "nope"]) == 2
