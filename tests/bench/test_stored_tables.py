"""The stored results of the older layouts give the same tables through the one pipeline.

``tests/bench/data/table_{full,tuned}_layout1.csv`` are the tables the two pipelines before the redesign computed
(``tables.summarize`` on ``results/full``'s runs; on the study bests of ``results/tuned``'s trials), with 200
bootstrap resamples.  Loading the same files through the store and scoring each study's winner must give them back.
"""

import math
import os

import pandas as pd
import pytest

from loop.bench import scoring, store

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


@pytest.mark.parametrize("name", ["full", "tuned"])
def test_the_stored_results_give_the_same_tables_as_before(name):
    records = store.load(os.path.join(ROOT, "results", name))
    winners = [r for r in scoring.study_winners(records) if r["status"] != "not_applicable"]
    table = scoring.summarize(winners, n_boot=200)
    before = pd.read_csv(os.path.join(os.path.dirname(__file__), "data", f"table_{name}_layout1.csv"),
                         keep_default_na=False, na_values=[""])
    assert list(table.columns) == list(before.columns)
    assert len(table) == len(before)
    key = ["dataset", "selector"]
    table, before = table.sort_values(key).reset_index(drop=True), before.sort_values(key).reset_index(drop=True)
    for column in before.columns:
        old, new = before[column], table[column]
        if new.dtype.kind in "fi":
            for a, b in zip(old, new.astype(float)):
                assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-12), column
        else:
            assert list(old.astype(object).where(old.notna(), "").astype(str)) == list(
                new.fillna("").astype(str)), column  # a column of empty strings reads back as NaN
