"""``--seeds auto:MIN:MAX``: MIN studies for every workload and selector, then more where the speedup is undecided.

The campaign loop (:func:`loop.bench.campaign.run_campaign`) trains and stores the trials; this module only decides
which studies to add, from what a results directory holds.
"""

import dataclasses
import sys

from loop.bench import campaign, labels
from loop.bench.precision import DEFAULT_PRECISION


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
                         "(5 seeds, then up to 15 where the verdict is undecided)") from None
    if not 1 <= low <= high:
        raise ValueError(f"--seeds {text!r} needs 1 <= MIN <= MAX, got MIN={low}, MAX={high}; give e.g. "
                         "--seeds auto:5:15")
    return AutoSeeds(low, high)


def _stored_records(out, entries, labels_, precision):
    """The stored one-trial studies of ``entries`` (same workload and hyper-parameters) by the selector ``labels_``
    trained in ``precision``, as the tables load them."""
    from loop.bench import store

    configs = {item.name: (item.workload.config(), item.hyperparameters.config()) for item in entries}
    return [r for r in store.load(out)
            if configs.get(r["workload"]) == (r["workload_config"], r["hyperparameters"]) and r["trial"] == 0
            and r["selector"] in labels_ and r["precision"] == precision]


def undecided(records, *, min_seeds, max_seeds, targets=None, n_boot=10_000):
    """The next trials the auto-seed rule asks for, from stored one-trial studies (:func:`loop.bench.store.load`).

    Per workload, a selector other than the baseline whose paired wall-clock verdict
    (:func:`loop.bench.scoring.summarize`) is undecided ("no difference", or too few paired studies for the sign
    test) and that has fewer than ``max_seeds`` studies gets its next
    study (the smallest missing one); so does the baseline when it lacks that study, since the speedup is paired by
    study.  A pair with no interval (no paired study) gets none: there is nothing to decide.

    Returns:
        ``{(workload, study): [selector labels]}`` (the baseline first when it is listed); empty when every interval
        excludes 1 or every undecided pair has ``max_seeds`` studies.
    """
    from loop.bench import scoring

    applicable = [r for group in scoring.by_workload(records).values() for r in group]
    if not applicable:
        return {}
    table = scoring.summarize(applicable, targets=targets, n_boot=n_boot)
    seeds = {}
    for r in applicable:
        seeds.setdefault((r["workload"], r["selector"]), set()).add(int(r["study"]))
    todo = {}
    for row in table.itertuples(index=False):
        # Undecided: the sign test says "no difference", or there are too few paired studies for it.
        if row.selector == scoring.BASELINE or row.verdict not in ("no difference", scoring.TOO_FEW):
            continue
        have = seeds.get((row.dataset, row.selector), set())
        if len(have) >= max_seeds or len(have) < min_seeds:
            continue
        seed = min(set(range(len(have) + 1)) - have)
        chosen = todo.setdefault((row.dataset, seed), [])
        if seed not in seeds.get((row.dataset, scoring.BASELINE), set()) and scoring.BASELINE not in chosen:
            chosen.insert(0, scoring.BASELINE)
        chosen.append(row.selector)
    return todo


def run_auto(entries, selectors, seeds, out, *, targets=None, n_boot=10_000, data_dir=None, retry_failed=False,
             progress=True, stream=None, precision=DEFAULT_PRECISION, runner=None, jit_compile=False):
    """``--seeds auto:MIN:MAX``: the campaign with MIN studies, then rounds of one more study where undecided.

    Each round reads what ``out`` holds (so a killed run resumes where it stopped), asks :func:`undecided` which
    (workload, selector) pairs still have a wall-clock speedup interval that contains 1, and runs one more study of
    each, and of the baseline where it lacks that study.  It ends when every interval excludes 1 or every undecided
    pair has MAX studies (or a round could store nothing new, e.g. a dataset that does not load).

    Args:
        entries: suite entries (:class:`loop.bench.suites.Entry`).
        seeds: an :class:`AutoSeeds`.
        targets, n_boot: as :func:`loop.bench.scoring.summarize` takes them (the decisions use the tables' own
            intervals).
        runner: what trains each round, :func:`loop.bench.campaign.run_campaign` by default (a Ray campaign:
            ``functools.partial(loop.bench.cluster.run_campaign_on_ray, address)``).
        the rest: as :func:`loop.bench.campaign.run_campaign`.

    Returns:
        :func:`~loop.bench.campaign.run_campaign`'s summary summed over rounds, plus ``"rounds"`` (the rounds after
        the first MIN studies) and ``"seeds"`` (``{(workload, selector): studies stored}``).
    """
    from loop.bench import scoring

    if not isinstance(seeds, AutoSeeds):
        raise ValueError(f"run_auto takes AutoSeeds(min, max), got {seeds!r}; give a number of studies to "
                         "loop.bench.campaign.run_campaign for a fixed count")
    stream = stream or sys.stderr
    runner = runner or campaign.run_campaign
    entries = [campaign.as_entry(item) for item in entries]
    keyed = {labels.selector_key(spec)[0]: spec for spec in selectors}
    if scoring.BASELINE not in keyed:
        raise ValueError(f"auto seeds need the baseline {scoring.BASELINE} among the selectors: its speedups decide")
    total = runner(entries, selectors, seeds.min_seeds, out, data_dir=data_dir, retry_failed=retry_failed,
                   progress=progress, stream=stream, precision=precision, jit_compile=jit_compile)
    by_name = {item.name: item for item in entries}
    rounds = 0
    while True:
        todo = undecided(_stored_records(out, entries, set(keyed), precision), min_seeds=seeds.min_seeds,
                         max_seeds=seeds.max_seeds, targets=targets, n_boot=n_boot)
        if not todo:
            break
        rounds += 1
        if progress:
            pairs = "; ".join(f"{name} study {seed}: {', '.join(chosen)}" for (name, seed), chosen in todo.items())
            print(f"auto seeds, round {rounds}: verdict undecided -> {pairs}", file=stream, flush=True)
        ran = 0
        for (name, seed), chosen in todo.items():
            summary = runner([by_name[name]], [keyed[label] for label in chosen], [seed], out, data_dir=data_dir,
                             retry_failed=retry_failed, progress=progress, stream=stream, precision=precision,
                             jit_compile=jit_compile)
            ran += summary["ran"]
            for key, value in summary.items():
                total[key] += value
        if not ran:  # nothing new was stored (e.g. the dataset does not load): the same decisions would repeat
            break
    total["rounds"] = rounds
    total["seeds"] = {}
    for r in _stored_records(out, entries, set(keyed), precision):
        if r["status"] != "not_applicable":
            key = (r["workload"], r["selector"])
            total["seeds"][key] = total["seeds"].get(key, 0) + 1
    return total
