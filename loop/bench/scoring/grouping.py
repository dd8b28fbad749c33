"""Grouping records: by workload, without the not-applicable ones, and the selectors' order within a workload."""

from loop.bench.records import NOT_APPLICABLE


def by_workload(records):
    """``{workload: [records]}`` in first-seen order, the not-applicable records left out (nothing trained).

    The one place the tables, thresholds, profiles and figures group records.
    """
    grouped = {}
    for r in records:
        if r["status"] != NOT_APPLICABLE:
            grouped.setdefault(r["workload"], []).append(r)
    return grouped


def not_applicable(records):
    """``{selector: [workloads]}`` of the records stored as not applicable (a selector that does not support the
    workload's task); the tables leave these out."""
    found = {}
    for r in records:
        if r["status"] == NOT_APPLICABLE:
            workloads = found.setdefault(r["selector"], [])
            if r["workload"] not in workloads:
                workloads.append(r["workload"])
    return found


def selector_order(records, baseline):
    """The selectors of one workload's records as the tables list them: ``baseline`` first (when it has
    records), then the others in first-seen order."""
    labels = [r["selector"] for r in records]
    return list(dict.fromkeys([baseline] * (baseline in labels) + labels))


class MixedHardwareError(ValueError):
    """One workload's studies ran on different hardware, whose times do not pair (:func:`one_machine`)."""


def one_machine(records, *, allow_mixed=False):
    """``records`` checked to pair studies measured on one machine per workload.

    A record's machine is :func:`loop.bench.records.hardware` (CPU model and instruction set, cores, GPUs; the host
    name may differ).  Records from before machines were recorded (``"unknown"``) pair with any.  AlgoPerf's rule:
    a time comparison needs the same hardware for every trial.

    Args:
        records: trial records.
        allow_mixed: report each machine apart instead: the records of a workload measured on several machines get
            the workload ``"<workload> @ <machine>"`` (copies; the others are returned as they are).

    Returns:
        The records (relabelled where mixed and allowed).

    Raises:
        MixedHardwareError: a workload measured on more than one machine, without ``allow_mixed``; naming the
            workload and each machine with its trial count.
    """
    from loop.bench.records import hardware

    machines = {}
    for r in records:
        found = hardware(r)
        if found != "unknown":
            counts = machines.setdefault(r["workload"], {})
            counts[found] = counts.get(found, 0) + 1
    mixed = {w: counts for w, counts in machines.items() if len(counts) > 1}
    if not mixed:
        return list(records)
    if not allow_mixed:
        workload, counts = next(iter(mixed.items()))
        listed = "; ".join(f"{machine}: {n} trials" for machine, n in counts.items())
        raise MixedHardwareError(
            f"{workload}: its trials ran on {len(counts)} machines ({listed}); times measured on different hardware "
            "do not pair. Run its studies on one machine (another --out per machine), or pass "
            "--allow-mixed-hardware to report each machine's studies as a workload of its own")
    return [{**r, "workload": f"{r['workload']} @ {hardware(r)}"} if r["workload"] in mixed else r
            for r in records]
