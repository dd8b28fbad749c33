"""The throughput benchmark: analytic FLOP counts, the printed report, exit codes and argument checks."""

import keras
import pytest

from loop.bench.perf import throughput
from loop.bench.__main__ import main


def test_forward_flops_counts_conv_and_dense_multiply_adds():
    model = keras.Sequential([
        keras.Input((4, 4, 1)),
        keras.layers.Conv2D(3, 2, padding="same"),  # 4*4 outputs * 3 filters * (2*2*1) weights * 2
        keras.layers.Flatten(),
        keras.layers.Dense(2),  # 48 inputs * 2 units * 2
    ])
    assert throughput.forward_flops(model) == 2 * 4 * 4 * 3 * 4 + 2 * 48 * 2


def test_fashion_cnn_forward_flops_match_a_hand_count():
    model = throughput.fashion_cnn()
    convs = 2 * (28 * 28 * 4 * 1 * 64 + 14 * 14 * 4 * 64 * 128 + 7 * 7 * 4 * 128 * 64)
    dense = 2 * (4 * 4 * 64 * 256 + 256 * 10)
    assert throughput.forward_flops(model) == convs + dense


def test_report_times_both_ways_and_exits_0(capsys):
    result = throughput.measure(throughput.parse_args(["--samples", "256", "--pairs", "2", "--matmul-size", "64"]))
    printed = capsys.readouterr().out
    assert printed.count("pair ") == 2 and "fit outside epoch" in printed
    assert "median ratio loop/fit" in printed and "epoch only" in printed and "GFLOP/s" in printed
    assert len(result["loop_call_s"]) == len(result["fit_epoch_s"]) == 2
    # The whole call contains the epoch.
    assert all(c >= e for c, e in zip(result["loop_call_s"], result["loop_epoch_s"]))
    assert all(c >= e for c, e in zip(result["fit_call_s"], result["fit_epoch_s"]))
    assert result["ratio"] > 0 and result["peak_gflops"] > 0
    assert main(["throughput", "--samples", "128", "--pairs", "1", "--epochs-per-call", "1",
                 "--matmul-size", "64"]) == 0


@pytest.mark.parametrize("args, message", [
    (["--pairs", "0"], "--pairs must be at least 1, got 0"),
    (["--samples", "10", "--batch-size", "64"], "--samples (10) must be at least --batch-size (64)"),
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--epochs-per-call", "0"], "--epochs-per-call must be at least 1, got 0"),
    (["--seed", "-1"], "--seed must be a non-negative integer, got -1"),
    (["--intra-op-threads", "0"], "--intra-op-threads must be at least 1, got 0"),
    (["--inter-op-threads", "-2"], "--inter-op-threads must be at least 1, got -2"),
    (["--streaming", "--memory"], "--streaming and --memory are two separate runs"),
    (["--memory", "--memory-gib", "0"], "--memory-gib must be positive, got 0.0"),
    (["--memory", "--resident-gib", "-1"], "--resident-gib must be 0 (skip) or positive, got -1.0"),
    (["--memory", "--staging-mib", "0"], "--staging-mib must be positive, got 0.0"),
    (["--memory", "--memory-batch-sizes", "32,x"], "--memory-batch-sizes must be positive integers"),
])
def test_bad_arguments_exit_2_with_a_message(args, message, capsys):
    assert main(["throughput"] + args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_thread_flags_default_to_tensorflows_choice_and_parse():
    args = throughput.parse_args([])
    assert args.intra_op_threads is None and args.inter_op_threads is None
    args = throughput.parse_args(["--intra-op-threads", "2", "--inter-op-threads", "1"])
    assert (args.intra_op_threads, args.inter_op_threads) == (2, 1)


def test_apply_threads_sets_only_the_flags_given(monkeypatch):
    calls = []
    threading = throughput.tf.config.threading
    monkeypatch.setattr(threading, "get_intra_op_parallelism_threads", lambda: 0)
    monkeypatch.setattr(threading, "get_inter_op_parallelism_threads", lambda: 1)
    monkeypatch.setattr(threading, "set_intra_op_parallelism_threads", lambda n: calls.append(("intra", n)))
    monkeypatch.setattr(threading, "set_inter_op_parallelism_threads", lambda n: calls.append(("inter", n)))
    throughput.apply_threads(throughput.parse_args([]))
    assert calls == []
    throughput.apply_threads(throughput.parse_args(["--intra-op-threads", "2", "--inter-op-threads", "1"]))
    assert calls == [("intra", 2)]  # inter is already 1

    def refuse(n):
        raise RuntimeError("Intra op parallelism cannot be modified after initialization.")

    monkeypatch.setattr(threading, "set_intra_op_parallelism_threads", refuse)
    with pytest.raises(RuntimeError, match="--intra-op-threads 1: TensorFlow has already started"):
        throughput.apply_threads(throughput.parse_args(["--intra-op-threads", "1"]))


def test_streaming_against_resident_prints_the_throughput_ratio(capsys):
    assert main(["throughput", "--streaming", "--samples", "256", "--pairs", "1", "--epochs-per-call", "1"]) == 0
    printed = capsys.readouterr().out
    assert "pair 0: epoch resident" in printed and "median throughput streaming/resident" in printed
