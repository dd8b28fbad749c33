"""The campaign's studies on a Ray cluster: one study per task, one timed trial per device, results to the driver.

Who owns what: this module owns running :func:`loop.bench.campaign.run_campaign`'s studies as Ray Core tasks
(``python -m loop.bench --ray ADDRESS``, :func:`run_campaign_on_ray`).  The campaign's own logic stays where it is:
the points, the exact pruning and the skip rule (:mod:`loop.bench.campaign`), the trial (:mod:`loop.bench.training`),
the one store (:mod:`loop.bench.store`).

* **The unit is a study** (workload, selector, study): its trials run in order on one worker, because exact pruning
  reads the study's best time so far.
* **Timed alone.**  A study task asks for one GPU where the cluster has GPUs (Ray sets ``CUDA_VISIBLE_DEVICES``, so
  TensorFlow sees that GPU alone); on a CPU cluster it asks for all the cores of the smallest node, so no two timed
  trials share a node.  A local cluster (``local:N``) has N slots of one CPU each: N studies at once on one big
  machine, each timed beside the others (:func:`study_resources`).
* **One search space for all.**  A workload's calibration and range test run once, before its studies are
  dispatched, as a task on the cluster (so the unit is measured on the hardware that trains); the driver caches
  them in its results directory, and every study reads the same values.
* **Results come back to the driver.**  A :class:`Results` actor, pinned to the driver's node, holds the one store:
  a worker asks it whether each trial is stored (the skip rule, as in-process) and hands it each finished record,
  which it writes, once: a record whose trial is already stored is refused, so a retried task never stores a trial
  twice.  No shared file system is needed; workers read their data from their own ``LOOP_DATA_DIR`` and keep
  RhoLoss's irreducible losses in a local scratch directory.
* **Faults.**  A task whose worker dies is retried by Ray (``max_retries``); the retry skips the trials the driver
  has stored.  The driver's progress meter counts trials as the actor reports them, across the cluster.
* **Addresses.**  ``auto`` (the cluster this node belongs to), ``HOST:PORT`` (after ``ray start --head`` on one
  node and ``ray start --address HOST:PORT`` on the others) or ``local:N`` (a local cluster of N workers, started
  here, bound to 127.0.0.1).  A token-authenticated cluster (Ray's ``RAY_AUTH_MODE=token``) reads its token from
  ``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH`` (docs/scale.md).
"""

import contextlib
import hashlib
import os
import re
import tempfile
import time

from loop.bench import campaign as campaign_lib
from loop.bench import records as records_lib
from loop.bench import search as search_lib
from loop.bench import store as store_lib
from loop.bench.precision import DEFAULT_PRECISION
from loop.bench.progress import Progress

#: How often Ray retries a study task whose worker died (the retry skips what the driver stored).
MAX_RETRIES = 3

_LOCAL = re.compile(r"local:(\d+)")
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9.\-]+):(\d{1,5})")


def parse_address(text):
    """``("auto", None)``, ``("local", N)`` or ``("address", "HOST:PORT")`` for a ``--ray`` value.

    Raises:
        ValueError: anything else, naming the value and the three forms.
    """
    text = str(text).strip()
    if text == "auto":
        return "auto", None
    match = _LOCAL.fullmatch(text)
    if match:
        workers = int(match.group(1))
        if workers < 1:
            raise ValueError(f"--ray {text!r}: a local cluster needs at least one worker, e.g. local:2")
        return "local", workers
    match = _HOST_PORT.fullmatch(text)
    if match and 0 < int(match.group(2)) < 65536:
        return "address", text
    raise ValueError(f"--ray {text!r} is not a cluster address; give auto (this node's cluster), HOST:PORT (the head "
                     "node's GCS address, e.g. 127.0.0.1:6379 after `ray start --head --port 6379`) or local:N (a "
                     "local cluster of N workers)")


def connect(address):
    """Connects this process to the cluster ``address`` (see :func:`parse_address`); returns the ``ray`` module.

    ``local:N`` starts a local cluster of N one-CPU workers bound to 127.0.0.1, without the dashboard.  Ray reads an
    authentication token from the environment (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``).

    Raises:
        ImportError: Ray is not installed (``pip install "ray[default]"``, or this package's ``[dev]`` extras).
        ConnectionError: no cluster answers at the address (Ray's message, with the address).
    """
    kind, value = parse_address(address)
    try:
        import ray
    except ImportError:
        raise ImportError("--ray runs studies on a Ray cluster and needs Ray: pip install ray (it is in this "
                          "package's dev extras)") from None
    if ray.is_initialized():
        return ray
    options = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if kind == "local":
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # on Linux: bind the node to 127.0.0.1
        ray.init(num_cpus=value, num_gpus=0, _node_ip_address="127.0.0.1", **options)
    else:
        options.pop("include_dashboard")
        try:
            ray.init(address=value or "auto", **options)
        except ConnectionError as err:
            raise ConnectionError(f"--ray {address}: no Ray cluster answered ({err}); start one with `ray start "
                                  "--head` and pass its address, or use local:N") from None
    return ray


def study_resources(ray, local):
    """The resources one study task asks for: ``{"num_gpus": 1}`` where the cluster has GPUs, else all the cores of
    its smallest node (one CPU on a local cluster)."""
    total = ray.cluster_resources()
    if total.get("GPU", 0) >= 1:
        return {"num_gpus": 1, "num_cpus": 1}
    if local:
        return {"num_cpus": 1}
    cores = [node["Resources"].get("CPU", 0) for node in ray.nodes() if node.get("Alive")]
    return {"num_cpus": max(1, int(min(c for c in cores if c > 0))) if any(cores) else 1}


class Results:
    """The driver's side of a Ray campaign: the one store, and the events the progress meter reads (a Ray actor).

    Args:
        out: the results directory.
        retry_failed: a failed trial may be stored again.
    """

    def __init__(self, out, retry_failed=False):
        self.store = store_lib.Store(out)
        self.retry_failed = retry_failed
        self.events = []
        self.refused = 0

    def find(self, planned):
        return self.store.find(planned)

    def save(self, record):
        """Stores ``record`` unless its trial is stored already (a retried task's duplicate); returns whether."""
        stored = self.store.find(record)
        if stored is not None and not (stored["status"] == records_lib.FAILED and self.retry_failed):
            self.refused += 1
            return False
        self.store.save(record)
        return True

    def event(self, workload, selector, status=None, wall_s=0.0, how="trained", where=None):
        self.events.append((workload, selector, status, wall_s, how, where))

    def note(self, text):
        self.events.append((None, None, text, 0.0, "note", None))

    def drain(self):
        events, self.events = self.events, []
        return events

    def counts(self):
        return {"refused": self.refused}


class _RemoteStore:
    """A worker's view of the driver's store: find and save through the :class:`Results` actor; no file locks (the
    driver dispatches each study once).  A saved record also names its Ray node (``cluster``: ``node_ip``,
    ``node_id``)."""

    def __init__(self, ray, results):
        self.ray, self.results = ray, results

    def find(self, planned):
        return self.ray.get(self.results.find.remote(planned))

    @contextlib.contextmanager
    def claim(self, planned):
        yield True

    def save(self, record):
        context = self.ray.get_runtime_context()
        record["cluster"] = {"node_ip": self.ray.util.get_node_ip_address(), "node_id": context.get_node_id()}
        return self.ray.get(self.results.save.remote(record))


class _RemoteMeter:
    """A worker's progress meter: every finished trial becomes an event the driver's meter counts (sent before the
    next trial starts, so a finished task's events are all with the actor).  An event names its study and trial, so
    the driver counts a trial once when a retried task skips it again."""

    def __init__(self, ray, results):
        self.ray, self.results = ray, results
        self.current = None

    def begin(self, workload, selector, study, trial):
        self.current = (study, trial)

    def end(self, workload, selector, record=None, *, how="trained"):
        status = record.get("status") if record else None
        wall_s = float(((record or {}).get("costs") or {}).get("wall_s") or 0.0)
        where = (record["study"], record["trial"]) if record and "study" in record else None
        self.ray.get(self.results.event.remote(workload, selector, status, wall_s, how, where))

    def note(self, text):
        self.ray.get(self.results.note.remote(text))


def _scratch(out):
    """A worker-local directory for what a task caches (irreducible losses, a calibration measured there)."""
    name = hashlib.sha1(os.path.abspath(out).encode()).hexdigest()[:12]
    path = os.path.join(tempfile.gettempdir(), "loop-ray", name)
    os.makedirs(path, exist_ok=True)
    return path


def _prepare_task(item, trials, out, precision, data_dir):
    """On a worker: the workload's calibration and range test (cached in a worker-local copy of ``out``); returns
    ``{relative path: cached JSON}`` for the driver to store."""
    import json

    scratch = _scratch(out)
    campaign_lib.prepare(item, trials, campaign_lib.WorkloadData(item.workload, data_dir), scratch, precision)
    found = {}
    for relative in _cache_files(item, trials):
        with open(os.path.join(scratch, relative)) as f:
            found[relative] = json.load(f)
    return found


def _study_task(item, trials, calibration, centre, spec, label, study, precision, data_dir, out, results,
                retry_failed, jit_compile=False):
    """On a worker: one study's trials, through the driver's store; returns the study's summary counts."""
    import ray

    summary = campaign_lib.empty_summary()
    meter = _RemoteMeter(ray, results)
    irreducible = os.path.join(_scratch(out), "irreducible", item.workload.label) \
        if item.workload.clock == "seconds" else None
    context = campaign_lib.StudyContext(item, trials, campaign_lib.WorkloadData(item.workload, data_dir), precision, meter,
                                    calibration, centre, irreducible, jit_compile)
    try:
        campaign_lib.run_study(context, spec, label, study, _RemoteStore(ray, results), summary,
                                retry_failed=retry_failed)
    except campaign_lib.Unloadable as err:
        summary["unloadable"].append((item.name, str(err)))
    return summary


def run_campaign_on_ray(address, entries, selectors, studies, out, *, trials=None, data_dir=None, retry_failed=False,
                        progress=True, stream=None, precision=DEFAULT_PRECISION, jit_compile=False, poll_s=0.5):
    """:func:`loop.bench.campaign.run_campaign` with every study a Ray task on the cluster at ``address``.

    Stores the same trials, with the same hyper-parameters, as the in-process campaign; the driver's store is the
    only writer.  Arguments and return value as :func:`~loop.bench.campaign.run_campaign`, plus ``address`` (see
    :func:`parse_address`).

    Raises:
        ValueError: what :func:`~loop.bench.campaign.run_campaign` refuses, or a bad ``address``; before anything
            trains.
    """
    parse_address(address)
    plan = campaign_lib.checked_plan(entries, selectors, studies, out, trials, precision, jit_compile)
    entries, studies, keyed, per_entry = plan.entries, plan.studies, plan.keyed, plan.per_entry
    out = os.path.abspath(out)
    ray = connect(address)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
    results = ray.remote(Results).options(scheduling_strategy=here, num_cpus=0).remote(out, retry_failed)
    resources = study_resources(ray, parse_address(address)[0] == "local")
    prepare = ray.remote(_prepare_task).options(max_retries=MAX_RETRIES, **resources)
    study_task = ray.remote(_study_task).options(max_retries=MAX_RETRIES, **resources)
    meter = Progress(plan.planned, stream, enabled=progress)
    summary = campaign_lib.empty_summary()
    pending, counted = {}, set()

    def dispatch(item, calibration, centre):
        for study in studies:
            for spec, label in keyed:
                if item.runs(spec):
                    ref = study_task.remote(item, per_entry[item.name], calibration, centre, spec, label, study,
                                            precision, data_dir, out, results, retry_failed, jit_compile)
                    pending[ref] = ("study", item, label, study)

    try:
        for item in entries:  # the workloads whose calibration and range test are cached start at once
            if _cached(item, per_entry[item.name], out, precision):
                dispatch(item, *campaign_lib.prepare(item, per_entry[item.name], None, out, precision, meter, False))
            else:
                pending[prepare.remote(item, per_entry[item.name], out, precision, data_dir)] = ("prepare", item,
                                                                                                 None, None)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=poll_s)
            _forward(ray, results, meter, counted)
            for ref in done:
                kind, item, label, study = pending.pop(ref)
                if kind == "prepare":
                    unloadable = _store_prepared(ray, ref, out)
                    if unloadable is not None:
                        chosen = [(spec, name) for spec, name in keyed if item.runs(spec)]
                        campaign_lib.skip_unloadable(item, chosen, unloadable, summary, meter)
                    else:
                        dispatch(item, *campaign_lib.prepare(item, per_entry[item.name], None, out, precision,
                                                             meter, False))
                    continue
                found = ray.get(ref)
                for key, value in found.items():
                    summary[key] = summary[key] + value
                if found["unloadable"]:
                    meter.note(f"cannot load {item.name}, skipping study {study} of {label}: "
                               f"{found['unloadable'][0][1]}")
        _forward(ray, results, meter, counted)
    finally:
        meter.close()
    summary["unloadable"] = sorted(set(summary["unloadable"]))
    return summary


def _cached(item, trials, out, precision):
    """Whether the driver's results directory holds the workload's calibration and range test (with their keys)."""
    from loop.bench import calibration as calibration_lib

    wanted = []
    if item.workload.clock == "seconds":
        wanted.append((os.path.join("calibration", f"{item.workload.label}.json"),
                       calibration_lib.cache_key(item.workload, item.hyperparameters, precision)))
    if trials is not None:
        wanted.append((os.path.join("lr_range", f"{item.workload.label}.json"),
                       search_lib.cache_key(item.workload, item.hyperparameters, precision)))
    return all(store_lib.read_cached(os.path.join(out, relative), key) is not None for relative, key in wanted)


def _store_prepared(ray, ref, out):
    """Writes a prepare task's cache files into the driver's ``out``; returns the error of an unloadable dataset, or
    None."""
    try:
        found = ray.get(ref)
    except Exception as err:  # the task's own error, wrapped by Ray
        cause = getattr(err, "cause", None)
        if isinstance(cause, campaign_lib.Unloadable):
            return str(cause)
        raise
    for relative, payload in found.items():
        store_lib.write_json_atomic(os.path.join(out, relative), payload)
    return None


def _cache_files(item, trials):
    files = []
    if item.workload.clock == "seconds":
        files.append(os.path.join("calibration", f"{item.workload.label}.json"))
    if trials is not None:
        files.append(os.path.join("lr_range", f"{item.workload.label}.json"))
    return files


def _forward(ray, results, meter, counted):
    """Moves the actor's events to the driver's meter; ``counted`` holds the trials counted so far (a retried
    task reports its stored trials again)."""
    for workload, selector, status, wall_s, how, where in ray.get(results.drain.remote()):
        if how == "note":
            meter.note(status)
            continue
        if where is not None:
            if (workload, selector, *where) in counted:
                continue
            counted.add((workload, selector, *where))
        if how == "trained":
            meter.end(workload, selector, {"status": status, "costs": {"wall_s": wall_s}})
        else:
            meter.end(workload, selector, how=how)


def wait_for(ray, seconds=30.0):
    """Waits up to ``seconds`` for the cluster to list at least one alive node (a freshly started head)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any(node.get("Alive") for node in ray.nodes()):
            return True
        time.sleep(0.2)
    return False


__all__ = ["MAX_RETRIES", "Results", "connect", "parse_address", "run_campaign_on_ray", "study_resources"]
