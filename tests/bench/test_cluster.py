"""The benchmark's studies on a Ray cluster bound to 127.0.0.1: the same trials as in-process, faults, addresses.

Every cluster here is local and closed to others: a head node started with ``ray start --head`` as a separate
process, bound to 127.0.0.1 (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) with token authentication on
(``RAY_AUTH_MODE=token`` and a fresh ``RAY_AUTH_TOKEN``), or a ``local:N`` cluster the driver starts itself.  The
drivers run as subprocesses (``python -m loop.bench ... --ray ...``), so no Ray state stays in the test process.
"""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from loop.bench import store
from loop.bench.cluster import parse_address

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: A tiny tuned suite: spirals on its validation split and the one clock, two selectors, two studies, two trials.
TINY = ["--datasets", "spirals", "--selectors", "shuffle,infobatch", "--seeds", "2", "--tune", "2", "--epochs", "3",
        "--n-train", "300", "--no-plots"]


def test_parse_address_takes_the_three_forms_and_names_a_bad_one():
    assert parse_address("auto") == ("auto", None)
    assert parse_address("local:3") == ("local", 3)
    assert parse_address("127.0.0.1:6379") == ("address", "127.0.0.1:6379")
    assert parse_address("head-node.cluster:10001") == ("address", "head-node.cluster:10001")
    for bad in ("local:0", "127.0.0.1", "localhost:99999", "ray://x", ""):
        with pytest.raises(ValueError, match="--ray"):
            parse_address(bad)


def test_a_bad_address_exits_2_before_training(tmp_path):
    done = subprocess.run([sys.executable, "-m", "loop.bench", *TINY, "--out", str(tmp_path / "out"), "--ray",
                           "127.0.0.1"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 2 and "is not a cluster address" in done.stderr
    assert not (tmp_path / "out" / "runs").exists()


ray = pytest.importorskip("ray", reason="the cluster tests need Ray (pip install -e '.[dev]')")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _environment(token, **extra):
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
               RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=os.pathsep.join(
                   [ROOT, os.path.join(ROOT, "tests")] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    env.update(extra)
    return env


@pytest.fixture
def head(tmp_path):
    """A Ray head node on 127.0.0.1 with token authentication, started by ``ray start --head``; stopped after."""
    ray_bin = shutil.which("ray") or os.path.join(os.path.dirname(sys.executable), "ray")
    port, token = _free_port(), secrets.token_hex(16)
    temp = tmp_path / "ray"
    env = _environment(token)
    started = subprocess.run([ray_bin, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                              "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats",
                              f"--temp-dir={temp}"], env=env, capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield f"127.0.0.1:{port}", token, env
    finally:
        subprocess.run([ray_bin, "stop", "--force"], env=env, capture_output=True, timeout=120)


def _bench(args, env, timeout=600):
    return subprocess.run([sys.executable, "-m", "loop.bench", *args], env=env, capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


def _trials(out):
    """``{(workload, selector, study, trial): (hyper-parameters, trial selector, status)}`` of a results directory."""
    return {(r["workload"], r["selector"], r["study"], r["trial"]): (json.dumps(r["hyperparameters"], sort_keys=True),
                                                                    r["trial_selector"], r["status"])
            for r in store.load(out)}


def test_a_token_cluster_stores_the_same_trials_as_the_in_process_run(head, tmp_path):
    address, token, env = head
    on_ray = _bench([*TINY, "--out", str(tmp_path / "ray"), "--ray", address], env)
    assert on_ray.returncode == 0, on_ray.stderr[-3000:]
    here = _bench([*TINY, "--out", str(tmp_path / "here")], env)
    assert here.returncode == 0, here.stderr[-3000:]
    remote, local = _trials(str(tmp_path / "ray")), _trials(str(tmp_path / "here"))
    assert len(remote) == 2 * 2 * 2  # two selectors, two studies, two trials
    assert remote.keys() == local.keys()
    assert {k: v[:2] for k, v in remote.items()} == {k: v[:2] for k, v in local.items()}  # the same points
    assert all(status in ("ok", "pruned") for _, _, status in remote.values())
    machines = {r["machine"]["host"] for r in store.load(str(tmp_path / "ray"))}
    assert machines == {socket.gethostname()}  # every stored trial names its machine
    # The cached calibration and range test came back to the driver's results directory.
    assert (tmp_path / "ray" / "calibration" / "spirals.json").exists()
    assert (tmp_path / "ray" / "lr_range" / "spirals.json").exists()
    # Resuming on the cluster trains nothing: the driver's store answers every trial.
    again = _bench([*TINY, "--out", str(tmp_path / "ray"), "--ray", address], env)
    assert again.returncode == 0 and _trials(str(tmp_path / "ray")) == remote


def test_a_driver_without_the_token_is_refused(head, tmp_path):
    address, token, env = head
    wrong = _environment(secrets.token_hex(16))
    refused = _bench([*TINY, "--out", str(tmp_path / "out"), "--ray", address], wrong, timeout=300)
    assert refused.returncode != 0
    assert not store.load(str(tmp_path / "out"))


def _network_namespaces():
    """Why a second node cannot join from a network namespace of this test's own, or None when it can."""
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        return "no `ip` or `unshare` command here"
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"this process may not create network namespaces ({probe.stderr.strip()[:120]})"
    return "a node in a namespace of its own would need a veth pair routed to 127.0.0.1, which Ray's loopback " \
           "binding (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0) does not accept from another address"


def test_a_second_node_from_a_network_namespace():
    pytest.skip(_network_namespaces())


def test_killing_a_worker_mid_study_still_stores_every_trial_once(tmp_path):
    out = tmp_path / "out"
    env = _environment(secrets.token_hex(16), LOOP_TEST_SLOW_S="0.4")
    args = ["--datasets", "spirals", "--selectors", "shuffle,slow_selector:Slow", "--seeds", "1", "--tune", "3",
            "--epochs", "3", "--n-train", "300", "--no-plots", "--out", str(out), "--ray", "local:1"]
    driver = subprocess.Popen([sys.executable, "-m", "loop.bench", *args], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        slow = out / "runs" / "spirals"
        while time.monotonic() < deadline and not list(slow.glob("Slow*/study_0/trial_0.json")):
            assert driver.poll() is None, driver.communicate()[1][-3000:]
            time.sleep(0.2)
        first = list(slow.glob("Slow*/study_0/trial_0.json"))
        assert first, "the slow study never stored its first trial"
        stamp = first[0].stat().st_mtime_ns
        killed = subprocess.run(["pkill", "-9", "-f", "ray::_study_task"], capture_output=True)
        assert killed.returncode == 0, "no study worker to kill"
        _, err = driver.communicate(timeout=600)
    finally:
        if driver.poll() is None:
            driver.send_signal(signal.SIGINT)
            driver.communicate(timeout=60)
    assert driver.returncode == 0, err[-3000:]
    trials = _trials(str(out))
    assert len(trials) == 2 * 3 and all(status in ("ok", "pruned") for _, _, status in trials.values())
    assert first[0].stat().st_mtime_ns == stamp  # the trial stored before the kill was not trained again
