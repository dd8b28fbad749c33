"""``--seeds auto:MIN:MAX``: MIN seeds for every dataset and selector, then more where the speedup is undecided.

Split from :mod:`loop.bench.runner`, which runs and stores the runs; this
module only decides which seeds to add, from what a results directory holds.
"""

import dataclasses
import sys

from loop.bench import runner


@dataclasses.dataclass(frozen=True)
class AutoSeeds:
    """``--seeds auto:MIN:MAX``: MIN seeds everywhere, then more (up to MAX) where the speedup is undecided."""

    min_seeds: int
    max_seeds: int

    def __post_init__(self):
        for name in ("min_seeds", "max_seeds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if not 1 <= self.min_seeds <= self.max_seeds:
            raise ValueError(f"auto seeds need 1 <= MIN <= MAX, got MIN={self.min_seeds}, MAX={self.max_seeds}; "
                             "e.g. auto:5:15")

    def __str__(self):
        return f"auto:{self.min_seeds}:{self.max_seeds}"


def parse_seeds(text):
    """``"5"`` -> 5; ``"auto:5:15"`` -> ``AutoSeeds(5, 15)``.

    Raises:
        ValueError: neither an integer nor ``auto:MIN:MAX`` with integers ``1 <= MIN <= MAX``, naming the value.
    """
    text = str(text).strip()
    if not text.lower().startswith("auto"):
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"--seeds {text!r} is neither a number of seeds nor auto:MIN:MAX; give e.g. "
                             "--seeds 5 or --seeds auto:5:15") from None
    parts = text.split(":")
    try:
        if len(parts) != 3 or parts[0].lower() != "auto":
            raise ValueError
        low, high = int(parts[1]), int(parts[2])
    except ValueError:
        raise ValueError(f"--seeds {text!r} is not auto:MIN:MAX with two integers; give e.g. --seeds auto:5:15 "
                         "(5 seeds, then up to 15 where the speedup interval contains 1)") from None
    if not 1 <= low <= high:
        raise ValueError(f"--seeds {text!r} needs 1 <= MIN <= MAX, got MIN={low}, MAX={high}; give e.g. "
                         "--seeds auto:5:15")
    return AutoSeeds(low, high)


def _stored_records(out, budgets, labels, precision):
    """The stored runs of ``budgets`` (same budget and precision) and selector ``labels``, as the tables load them."""
    from loop.bench import tables

    configs = {b.name: b.config() for b in budgets}
    return [r for r in tables.load_runs(out)
            if configs.get(r.get("dataset")) == r.get("budget") and r.get("selector") in labels
            and runner.run_precision(r) == precision]


def undecided(records, *, min_seeds, max_seeds, targets=None, n_boot=10_000):
    """The next runs the auto-seed rule asks for, from stored ``records`` (:func:`loop.bench.tables.load_runs`).

    Per dataset, a selector other than the baseline whose paired wall-clock
    speedup's 95% interval (:func:`loop.bench.tables.summarize`) contains 1
    and that has fewer than ``max_seeds`` seeds gets its next seed (the
    smallest missing one); so does the baseline when it lacks that seed, since
    the speedup is paired by seed.  A pair with no interval (no paired seed)
    gets none: there is nothing to decide.

    Returns:
        ``{(dataset, seed): [selector labels]}`` (the baseline first when it is
        listed); empty when every interval excludes 1 or every undecided pair
        has ``max_seeds`` seeds.
    """
    from loop.bench import tables

    applicable = [r for r in records if r["status"] != tables.NOT_APPLICABLE]
    if not applicable:
        return {}
    table = tables.summarize(applicable, targets=targets, n_boot=n_boot)
    seeds = {}
    for r in applicable:
        seeds.setdefault((r["dataset"], r["selector"]), set()).add(int(r["seed"]))
    todo = {}
    for row in table.itertuples(index=False):
        if row.selector == tables.BASELINE or tables.verdict(row.speedup_ci_low, row.speedup_ci_high) != \
                "no difference":
            continue
        have = seeds.get((row.dataset, row.selector), set())
        if len(have) >= max_seeds or len(have) < min_seeds:
            continue
        seed = min(set(range(len(have) + 1)) - have)
        labels = todo.setdefault((row.dataset, seed), [])
        if seed not in seeds.get((row.dataset, tables.BASELINE), set()) and tables.BASELINE not in labels:
            labels.insert(0, tables.BASELINE)
        labels.append(row.selector)
    return todo


def run_auto(budgets, selectors, seeds, out, *, targets=None, n_boot=10_000, data_dir=None, retry_failed=False,
             progress=True, stream=None, precision=runner.DEFAULT_PRECISION):
    """``--seeds auto:MIN:MAX``: :func:`runner.run_suite` with MIN seeds, then rounds of one more seed where undecided.

    Each round reads what ``out`` holds (so a killed run resumes where it
    stopped), asks :func:`undecided` which (dataset, selector) pairs still
    have a wall-clock speedup interval that contains 1, and runs one more seed
    of each, and of the baseline where it lacks that seed.  It ends when every
    interval excludes 1 or every undecided pair has MAX seeds (or a round
    could store nothing new, e.g. a dataset that does not load).

    Args:
        seeds: an :class:`AutoSeeds`.
        targets, n_boot: as :func:`loop.bench.tables.summarize` takes them
            (the decisions use the tables' own intervals).
        the rest: as :func:`runner.run_suite`.

    Returns:
        :func:`runner.run_suite`'s summary summed over rounds, plus ``"rounds"`` (the
        rounds after the first MIN seeds) and ``"seeds"``
        (``{(dataset, selector): seeds stored}``).
    """
    from loop.bench import tables

    if not isinstance(seeds, AutoSeeds):
        raise ValueError(f"run_auto takes AutoSeeds(min, max), got {seeds!r}; use runner.run_suite for a fixed count")
    stream = stream or sys.stderr
    keyed = {label: spec for spec, (label, _) in zip(selectors, (runner.selector_key(s) for s in selectors))}
    if tables.BASELINE not in keyed:
        raise ValueError(f"auto seeds need the baseline {tables.BASELINE} among the selectors: its speedups decide")
    total = runner.run_suite(budgets, selectors, seeds.min_seeds, out, data_dir=data_dir, retry_failed=retry_failed,
                             progress=progress, stream=stream, precision=precision)
    by_name = {b.name: b for b in budgets}
    rounds = 0
    while True:
        records = _stored_records(out, budgets, set(keyed), precision)
        todo = undecided(records, min_seeds=seeds.min_seeds, max_seeds=seeds.max_seeds, targets=targets,
                         n_boot=n_boot)
        if not todo:
            break
        rounds += 1
        if progress:
            pairs = "; ".join(f"{dataset} seed {seed}: {', '.join(labels)}" for (dataset, seed), labels in todo.items())
            print(f"auto seeds, round {rounds}: speedup interval contains 1 -> {pairs}", file=stream, flush=True)
        ran = 0
        for (dataset, seed), labels in todo.items():
            summary = runner.run_suite([by_name[dataset]], [keyed[label] for label in labels], [seed], out,
                                       data_dir=data_dir, retry_failed=retry_failed, progress=progress,
                                       stream=stream, precision=precision)
            ran += summary["ran"]
            for key in ("ran", "skipped", "failed", "not_applicable"):
                total[key] += summary[key]
            total["unloadable"] += summary["unloadable"]
        if not ran:  # nothing new was stored (e.g. the dataset does not load): the same decisions would repeat
            break
    records = _stored_records(out, budgets, set(keyed), precision)
    total["rounds"] = rounds
    total["seeds"] = {}
    for r in records:
        if r["status"] != tables.NOT_APPLICABLE:
            total["seeds"][(r["dataset"], r["selector"])] = total["seeds"].get((r["dataset"], r["selector"]), 0) + 1
    return total
