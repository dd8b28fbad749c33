"""The stored results of the older layouts give the same tables through the one pipeline.

``tests/bench/data/table_{full,tuned}_layout1.csv`` are the tables the two pipelines before the redesign computed
(``tables.summarize`` on ``results/full``'s runs; on the study bests of ``results/tuned``'s trials), with 200
bootstrap resamples.  Loading the same files through the store and scoring each study's winner must give them back:
every column but the intervals and verdicts, which are now the order-statistic interval of the median and the sign
test (:mod:`loop.bench.scoring.speedups`), not a bootstrap's.  Those, and the columns added with them, are checked
against the rule recomputed here from the same trials.  The reference files are never regenerated from new code.
"""

import math
import os

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from loop.bench import scoring, store

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")

#: Where each reference's trials are stored now (the first that exists): ``results/tuned`` moved to
#: ``results/tuned-v2`` when the one-clock suite (v3) took ``results/tuned``.
RESULTS = {"full": ("full",), "tuned": ("tuned-v2",)}

#: The reference columns the verdict rule changed: not pinned, recomputed instead.
RULE_COLUMNS = ("speedup_ci_low", "speedup_ci_high", "verdict", "forward_speedup_ci_low", "forward_speedup_ci_high",
                "backprop_speedup_ci_low", "backprop_speedup_ci_high", "backprop_verdict")
#: The columns added with the rule.
NEW_COLUMNS = ("paired_studies", "false_win_rate", "ratios", "backprop_false_win_rate")


def _results(name):
    found = [os.path.join(ROOT, "results", d) for d in RESULTS[name] if os.path.isdir(os.path.join(ROOT, "results", d))]
    assert found, f"none of results/{{{', '.join(RESULTS[name])}}} exists: the reference's trials are gone"
    return found[0]


def _scored(name):
    records = store.load(_results(name))
    winners = [r for r in scoring.study_winners(records) if r["status"] != "not_applicable"]
    return winners, scoring.summarize(winners, n_boot=200)


def _reference(name):
    return pd.read_csv(os.path.join(os.path.dirname(__file__), "data", f"table_{name}_layout1.csv"),
                       keep_default_na=False, na_values=[""])


def _same(a, b):
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name", ["full", "tuned"])
def test_the_stored_results_give_the_same_tables_as_before(name):
    _, table = _scored(name)
    before = _reference(name)
    assert [c for c in table.columns if c in before.columns] == list(before.columns)  # the old ones, in order
    assert set(table.columns) - set(before.columns) == set(NEW_COLUMNS)
    assert len(table) == len(before)
    key = ["dataset", "selector"]
    table, before = table.sort_values(key).reset_index(drop=True), before.sort_values(key).reset_index(drop=True)
    for column in before.columns:
        if column in RULE_COLUMNS:
            continue
        old, new = before[column], table[column]
        if new.dtype.kind in "fi":
            for a, b in zip(old, new.astype(float)):
                assert _same(a, b), column
        else:
            assert list(old.astype(object).where(old.notna(), "").astype(str)) == list(
                new.fillna("").astype(str)), column  # a column of empty strings reads back as NaN


def _rule(ratios):
    """The verdict rule, written out again: ``(low, high, verdict, false-win rate)`` of paired ratios."""
    n = len(ratios)
    if n == 0:
        return math.nan, math.nan, "n/a", math.nan
    ks = [k for k in range(1, n + 1) if k <= n - k + 1 and binom.cdf(k - 1, n, 0.5) <= 0.05]
    if not ks:
        return math.nan, math.nan, "n/a (< 5 studies)", math.nan
    k = max(ks)
    ordered = sorted(ratios)
    low, high = ordered[k - 1], ordered[n - k]
    verdict = "win" if low > 1 else "loss" if high < 1 else "no difference"
    return low, high, verdict, float(binom.cdf(k - 1, n, 0.5))


def _paired(base, mine):
    """``{study: value}`` pairs as the tables score them: a selector miss 0, a hit where the baseline missed inf."""
    out = []
    for study in sorted(mine):
        if study in base:
            b, m = base[study], mine[study]
            out.append(0.0 if not math.isfinite(m) else math.inf if not math.isfinite(b) else b / max(m, 1e-12))
    return out


@pytest.mark.parametrize("name", ["full", "tuned"])
def test_the_new_intervals_and_verdicts_are_the_rule_on_the_same_ratios(name):
    winners, table = _scored(name)
    before = _reference(name).set_index(["dataset", "selector"])
    rows = 0
    for workload, recs in scoring.by_workload(winners).items():
        target, _ = scoring.dataset_target(recs)
        at = {}
        for r in recs:
            seconds, forwarded, backprop = scoring.time_to(r, target, ("seconds", "samples_forwarded",
                                                                       "samples_backpropagated"))
            at.setdefault(r["selector"], {})[r["study"]] = (seconds, forwarded, backprop)

        def values(label, k):
            found = {s: v[k] for s, v in at.get(label, {}).items()}
            return found if k == 0 else {s: v for s, v in found.items() if not math.isnan(v)}

        for row in table[table["dataset"] == workload].itertuples(index=False):
            rows += 1
            ratios = _paired(values(scoring.BASELINE, 0), values(row.selector, 0))
            low, high, verdict, rate = _rule(ratios)
            assert (row.verdict, row.paired_studies) == (verdict, len(ratios)), (workload, row.selector)
            assert _same(row.speedup_ci_low, low) and _same(row.speedup_ci_high, high), (workload, row.selector)
            assert _same(row.false_win_rate, rate)
            # the per-study ratios are those whose median the reference pins
            shown = [float(v) for v in row.ratios.split(", ")] if row.ratios else []
            assert shown == pytest.approx(ratios, rel=0.01, abs=0.006)
            if ratios:
                assert float(np.median(ratios)) == pytest.approx(before.loc[(workload, row.selector), "speedup"],
                                                                 rel=1e-9)
            for prefix, k in (("forward", 1), ("backprop", 2)):
                low, high, verdict, rate = _rule(_paired(values(scoring.BASELINE, k), values(row.selector, k)))
                assert _same(getattr(row, f"{prefix}_speedup_ci_low"), low), (workload, row.selector, prefix)
                assert _same(getattr(row, f"{prefix}_speedup_ci_high"), high), (workload, row.selector, prefix)
                if prefix == "backprop":
                    assert row.backprop_verdict == verdict and _same(row.backprop_false_win_rate, rate)
    assert rows == len(table) > 0
    decided = table[table["paired_studies"] >= 5]
    assert list(decided["false_win_rate"]) == [scoring.false_win_rate(n) for n in decided["paired_studies"]]
    assert (table.loc[table["paired_studies"].between(1, 4), "verdict"] == "n/a (< 5 studies)").all()
