"""The benchmark's studies on a Ray cluster bound to 127.0.0.1: the same trials as in-process, faults, addresses.

Every cluster here is local and closed to others: a head node started with ``ray start --head`` as a separate
process, bound to 127.0.0.1 (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) with token authentication on
(``RAY_AUTH_MODE=token`` and a fresh ``RAY_AUTH_TOKEN``), or a ``local:N`` cluster the driver starts itself.  The
drivers run as subprocesses (``python -m loop.bench ... --ray ...``), so no Ray state stays in the test process.
"""

import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

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


def _record(study=0, trial=0, status="ok"):
    from loop.bench import records
    from loop.bench.workloads import Hyperparameters, Workload

    record = records.new(Workload(dataset="iris", epochs=1), Hyperparameters(), selector="Shuffle()", study=study,
                         trial=trial)
    record["status"] = status
    return record


def test_the_driver_stores_a_trial_once_and_a_failed_one_again_only_when_asked(tmp_path):
    from loop.bench.cluster import Results

    results = Results(str(tmp_path))
    assert results.find(_record()) is None
    assert results.save(_record()) is True
    assert results.find(_record())["status"] == "ok"
    assert results.save(_record()) is False  # a retried task's second record of a stored trial
    assert results.counts() == {"refused": 1}
    assert results.save(_record(trial=1, status="failed")) is True
    assert results.save(_record(trial=1)) is False  # failed, but retry_failed is off
    retrying = Results(str(tmp_path), retry_failed=True)
    assert retrying.save(_record(trial=1)) is True and retrying.find(_record(trial=1))["status"] == "ok"
    assert len(store.load(str(tmp_path))) == 2


def test_the_meter_counts_a_trial_once_when_a_retried_task_reports_it_again():
    from loop.bench import cluster
    from loop.bench.progress import Progress

    class Ray:  # the two calls _forward makes
        def __init__(self, batches):
            self.batches = batches

        def get(self, value):
            return self.batches.pop(0)

    class Actor:
        class drain:
            @staticmethod
            def remote():
                return None

    first = [("spirals", "Shuffle()", "ok", 1.0, "trained", (0, 0)), ("spirals", "Shuffle()", "ok", 1.0, "trained",
                                                                       (0, 1))]
    retried = [("spirals", "Shuffle()", None, 0.0, "stored", (0, 0)), ("spirals", "Shuffle()", None, 0.0, "stored",
                                                                      (0, 1)),
               ("spirals", "Shuffle()", "ok", 1.0, "trained", (0, 2))]
    meter = Progress({("spirals", "Shuffle()"): 3}, enabled=False)
    counted = set()
    ray = Ray([first, retried])
    cluster._forward(ray, Actor, meter, counted)
    cluster._forward(ray, Actor, meter, counted)
    assert meter.left[("spirals", "Shuffle()")] == 0 and meter.trained == 3
    assert meter.counts[("spirals", "Shuffle()")]["stored"] == 0


def test_a_bad_address_exits_2_before_training(tmp_path):
    done = subprocess.run([sys.executable, "-m", "loop.bench", *TINY, "--out", str(tmp_path / "out"), "--ray",
                           "127.0.0.1"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 2 and "is not a cluster address" in done.stderr
    assert not (tmp_path / "out" / "runs").exists()


needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="the cluster tests need Ray (pip install -e '.[dev]')")


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


def _ray_bin():
    return shutil.which("ray") or os.path.join(os.path.dirname(sys.executable), "ray")


def _stop(temp):
    """Kills the Ray processes of the session under ``temp`` (their command lines name it), and only those: ``ray
    stop`` would stop every Ray process on the machine.  Workers exit once their raylet is gone."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
        except OSError:
            continue
        if str(temp) in cmdline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(pid), signal.SIGKILL)
    shutil.rmtree(temp, ignore_errors=True)


def _start_head(env, port, temp, ip="127.0.0.1", prefix=()):
    started = subprocess.run([*prefix, _ray_bin(), "start", "--head", f"--port={port}", f"--node-ip-address={ip}",
                              "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats",
                              f"--temp-dir={temp}"], env=env, capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr


@pytest.fixture
def head():
    """A Ray head node on 127.0.0.1 with token authentication, started by ``ray start --head``; stopped after."""
    port, token = _free_port(), secrets.token_hex(16)
    temp = tempfile.mkdtemp(prefix="lr", dir="/tmp")  # short: Ray's socket paths live under it
    env = _environment(token)
    try:
        _start_head(env, port, temp)
        yield f"127.0.0.1:{port}", token, env
    finally:
        _stop(temp)


def _bench(args, env, timeout=600):
    return subprocess.run([sys.executable, "-m", "loop.bench", *args], env=env, capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


def _trials(out):
    """``{(workload, selector, study, trial): (hyper-parameters, trial selector, status)}`` of a results directory."""
    return {(r["workload"], r["selector"], r["study"], r["trial"]): (json.dumps(r["hyperparameters"], sort_keys=True),
                                                                    r["trial_selector"], r["status"])
            for r in store.load(out)}


@needs_ray
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


@needs_ray
def test_a_driver_without_the_token_is_refused(head, tmp_path):
    address, token, env = head
    wrong = _environment(secrets.token_hex(16))
    refused = _bench([*TINY, "--out", str(tmp_path / "out"), "--ray", address], wrong, timeout=300)
    assert refused.returncode != 0
    assert not store.load(str(tmp_path / "out"))


def _namespaces_unavailable():
    """Why this test cannot make network namespaces of its own, or None when it can."""
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        return "no `ip` or `unshare` command on this machine"
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"this process may not create network namespaces: {probe.stderr.strip()[:160]}"
    name = f"loopprobe{uuid.uuid4().hex[:6]}"
    probe = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"`ip netns add` is refused here: {probe.stderr.strip()[:160]}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


@contextlib.contextmanager
def _two_namespaces():
    """Two network namespaces joined by a veth pair, 10.231.0.1 and 10.231.0.2; removed after."""
    tag = uuid.uuid4().hex[:6]
    a, b = f"loopa{tag}", f"loopb{tag}"

    def ip(*args):
        done = subprocess.run(["ip", *args], capture_output=True, text=True)
        assert done.returncode == 0, f"ip {' '.join(args)}: {done.stderr}"

    try:
        ip("netns", "add", a)
        ip("netns", "add", b)
        ip("link", "add", f"va{tag}", "netns", a, "type", "veth", "peer", "name", f"vb{tag}", "netns", b)
        for ns, dev, address in ((a, f"va{tag}", "10.231.0.1/24"), (b, f"vb{tag}", "10.231.0.2/24")):
            ip("-n", ns, "addr", "add", address, "dev", dev)
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "link", "set", dev, "up")
        yield a, b
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@needs_ray
def test_a_second_node_joins_from_a_network_namespace_and_the_run_spreads(tmp_path):
    why = _namespaces_unavailable()
    if why:
        pytest.skip(f"a second node needs a network namespace of this test's own, and {why}")
    port, token = _free_port(), secrets.token_hex(16)
    env = _environment(token)
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")  # the nodes talk over the test's own veth pair, not loopback
    temps = [tempfile.mkdtemp(prefix="lr", dir="/tmp") for _ in range(2)]
    out = tmp_path / "out"
    try:
        with _two_namespaces() as (a, b):
            _start_head(env, port, temps[0], ip="10.231.0.1", prefix=("ip", "netns", "exec", a))
            joined = subprocess.run(["ip", "netns", "exec", b, _ray_bin(), "start", "--address=10.231.0.1:" + str(port),
                                     "--node-ip-address=10.231.0.2", "--num-cpus=2", "--num-gpus=0",
                                     "--disable-usage-stats", f"--temp-dir={temps[1]}"], env=env, capture_output=True,
                                    text=True, timeout=180)
            assert joined.returncode == 0, joined.stdout + joined.stderr
            args = ["--datasets", "spirals", "--selectors", "shuffle,infobatch,rs2", "--seeds", "2", "--tune", "2",
                    "--epochs", "3", "--n-train", "300", "--no-plots", "--out", str(out),
                    "--ray", f"10.231.0.1:{port}"]
            done = subprocess.run(["ip", "netns", "exec", a, sys.executable, "-m", "loop.bench", *args], env=env,
                                  capture_output=True, text=True, cwd=ROOT, timeout=900)
            assert done.returncode == 0, done.stderr[-3000:]
    finally:
        for temp in temps:
            _stop(temp)
    stored = store.load(str(out))
    assert len(stored) == 3 * 2 * 2
    nodes = {r["cluster"]["node_ip"] for r in stored}
    assert nodes == {"10.231.0.1", "10.231.0.2"}, nodes  # the studies ran on both nodes


@needs_ray
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
