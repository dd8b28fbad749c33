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
