"""Studies on synthetic trials (no training): each study's winner, the winning hyper-parameters, the tuning cost,
and the table that scores the winners as runs."""

import math

import pandas as pd
import pytest
from synthetic_records import curve, record

from loop.bench.scoring import studies, summary, time_to

TARGET = {"val_accuracy": 0.9}


def _trial(selector, study, trial, values, *, seconds_per_eval=1.0, status="ok", workload="spirals", wall_s=2.0,
           knobs=None, learning_rate=0.01, epochs=10):
    return record(workload, selector, study, curve(values, seconds_per_eval=seconds_per_eval), trial=trial,
                  status=status, error=None if status == "ok" else f"{status}: stopped", target=TARGET,
                  wall_s=wall_s, knobs=knobs, learning_rate=learning_rate, epochs=epochs)


def test_the_winner_is_the_trial_with_the_shortest_time_to_the_target():
    trials = [_trial("RS2()", 0, 0, [0.5, 0.95], seconds_per_eval=3.0, knobs={"ratio": 0.2}),   # 6 s
              _trial("RS2()", 0, 1, [0.95], seconds_per_eval=4.0, knobs={"ratio": 0.4}),        # 4 s: wins
              _trial("RS2()", 0, 2, [0.5, 0.6], seconds_per_eval=1.0, status="pruned"),         # never met it
              _trial("RS2()", 1, 0, [0.5, 0.5, 0.95], seconds_per_eval=1.0)]                    # 3 s, alone
    winners = studies.study_winners(trials)
    assert [(w["study"], w["winner"], w["trials"]) for w in winners] == [(0, 1, 3), (1, 0, 1)]
    assert winners[0]["tuning_s"] == pytest.approx(6.0) and winners[1]["tuning_s"] == pytest.approx(2.0)
    assert time_to(winners[0], TARGET) == min(time_to(t, TARGET) for t in trials[:3]) == 4.0
    # the record is the winning trial's, nothing rewritten: its method label, study and knobs stay
    assert winners[0]["selector"] == "RS2()" and winners[0]["trial_selector"] == "RS2(ratio=0.4)"
    assert winners[0]["knobs"] == {"ratio": 0.4} and "seed" not in winners[0]
    assert "winner" not in trials[1]  # the trials themselves are not patched
    assert studies.trials_per_study(trials) == 3 and studies.trials_per_study([]) == 0


def test_a_study_without_a_hit_is_won_by_its_best_metric_and_scores_as_a_miss():
    trials = [_trial("Shuffle()", 0, k, values) for k, values in enumerate(([0.5, 0.7], [0.6, 0.85], [0.8, 0.6]))]
    winner, = studies.study_winners(trials)
    assert winner["winner"] == 1 and winner["trials"] == 3  # best val_accuracy 0.85
    table = summary.summarize([winner], n_boot=100)
    assert table["reached"].iloc[0] == 0.0 and math.isinf(table["time_to_target_s"].iloc[0])
    assert table["target_source"].iloc[0] == "fixed in the suite"


def test_a_one_trial_study_is_won_by_its_trial_and_a_not_applicable_study_keeps_it():
    untuned = [_trial("Shuffle()", s, 0, [0.5, 0.6]) for s in range(3)]  # never met the target, one trial each
    na = record("spirals", "Homogeneous()", 0, pd.DataFrame(), status="not_applicable", error="regression")
    winners = studies.study_winners(untuned + [na])
    assert [w["study"] for w in winners] == [0, 1, 2, 0] and all(w["trials"] == 1 for w in winners)
    assert [w["frame"] is t["frame"] for w, t in zip(winners, untuned)] == [True] * 3
    assert winners[-1]["status"] == "not_applicable"


def test_the_tables_score_the_winners_paired_by_study_against_tuned_shuffle():
    trials = []
    for study in range(5):
        trials += [_trial("Shuffle()", study, 0, [0.5, 0.95], seconds_per_eval=2.0),      # 4 s
                   _trial("Shuffle()", study, 1, [0.5, 0.6, 0.95], seconds_per_eval=1.0),  # 3 s: wins
                   _trial("Knobbed()", study, 0, [0.95], seconds_per_eval=1.5),            # 1.5 s: wins
                   _trial("Knobbed()", study, 1, [0.5, 0.95], seconds_per_eval=5.0)]
    table = summary.summarize(studies.study_winners(trials), n_boot=200).set_index("selector")
    assert list(table.index) == ["Shuffle()", "Knobbed()"] and list(table["seeds"]) == [5, 5]
    assert table.loc["Shuffle()", "time_to_target_s"] == 3.0 and table.loc["Shuffle()", "speedup"] == 1.0
    assert table.loc["Knobbed()", "speedup"] == pytest.approx(2.0) and table.loc["Knobbed()", "verdict"] == "win"


def test_winners_lists_the_winning_hyperparameters_and_knobs_per_study():
    trials = [_trial("RS2()", 0, 0, [0.95], seconds_per_eval=5.0, knobs={"ratio": 0.2}, learning_rate=0.01),
              _trial("RS2()", 0, 1, [0.95], seconds_per_eval=2.0, knobs={"ratio": 0.4}, learning_rate=0.003),
              _trial("Shuffle()", 0, 0, [0.5], learning_rate=0.02),
              record("spirals", "Homogeneous()", 0, pd.DataFrame(), status="not_applicable", error="regression")]
    won = studies.winners(trials).set_index("selector")
    assert list(won.index) == ["Homogeneous()", "RS2()", "Shuffle()"]  # sorted by workload, selector, study
    assert {"workload", "study", "trial", "time_to_target_s", "learning_rate", "schedule", "warmup", "horizon",
            "ratio"} <= set(won.columns) and "batch_size" not in won  # an unset hyper-parameter is no column
    assert won.loc["RS2()", "trial"] == 1 and won.loc["RS2()", "ratio"] == 0.4
    assert won.loc["RS2()", "learning_rate"] == 0.003 and won.loc["RS2()", "time_to_target_s"] == 2.0
    assert math.isinf(won.loc["Shuffle()", "time_to_target_s"]) and math.isnan(won.loc["Homogeneous()",
                                                                                      "time_to_target_s"])
    assert studies.winners([]).empty


def test_costs_count_the_trials_and_what_exact_pruning_saved():
    # Two finished trials at 1 s per epoch (the rate), two pruned after 2 and 3 epochs of a 10-epoch cap: they
    # ran 2 + 3 s and would have run 10 + 10 s, so pruning saved at most 15 s.
    trials = [_trial("Shuffle()", 0, 0, [0.5, 0.95], wall_s=3.0),
              _trial("Shuffle()", 0, 1, [0.5, 0.6, 0.7, 0.8, 0.95], wall_s=6.0),
              _trial("Shuffle()", 0, 2, [0.5, 0.6], status="pruned", wall_s=2.5),
              _trial("Shuffle()", 1, 0, [0.5, 0.6, 0.7], status="pruned", wall_s=3.5),
              _trial("Shuffle()", 1, 1, [0.1], status="failed", wall_s=1.0),
              _trial("RS2()", 0, 0, [0.95], wall_s=1.0, workload="mnist"),
              record("mnist", "Homogeneous()", 0, pd.DataFrame(), status="not_applicable", error="regression")]
    cost = studies.costs(trials)
    assert list(zip(cost["workload"], cost["selector"])) == [("mnist", "RS2()"), ("spirals", "Shuffle()")]
    row = cost.set_index("selector").loc["Shuffle()"]
    assert (row["trials"], row["ok"], row["pruned"], row["failed"]) == (5, 2, 2, 1)
    assert row["tuning_s"] == pytest.approx(16.0)
    assert row["pruned_s"] == pytest.approx(5.0) and row["pruned_full_s"] == pytest.approx(20.0)
    assert row["saved_s"] == pytest.approx(15.0) == row["pruned_full_s"] - row["pruned_s"]
    rs2 = cost.set_index("selector").loc["RS2()"]
    assert rs2["pruned"] == 0 and rs2["saved_s"] == 0.0 and rs2["pruned_full_s"] == 0.0


def test_a_failed_trial_never_wins_even_where_its_history_met_the_target():
    trials = [_trial("Shuffle()", 0, 0, [0.5, 0.95], seconds_per_eval=2.0),
              _trial("Shuffle()", 0, 1, [0.95, math.nan], seconds_per_eval=1.0, status="failed")]  # NaN loss later
    assert time_to(trials[1], TARGET) == math.inf
    assert studies.study_winners(trials)[0]["winner"] == 0


def _searched(selector, study, trial, values, units, *, seconds_per_eval=1.0, workload="spirals"):
    space = {"learning_rate": ["log-uniform", [0.001, 0.03]], "schedule": ["choice", ["constant", "cosine"]],
             "horizon": ["uniform", [0.3, 1.0]]}
    if "ratio" in units:
        space["ratio"] = ["uniform", [0.1, 0.5]]
    return dict(_trial(selector, study, trial, values, seconds_per_eval=seconds_per_eval, workload=workload),
                search_units=dict(units), search_space=space)


def test_edge_hits_count_the_winners_near_either_end_of_each_searched_range():
    trials = []
    for study in range(5):
        # trial 1 wins every study (1 s to the target); its learning rate sits at the top edge in studies 0-2,
        # its horizon at the bottom edge in study 4 only; trial 0 (a loser) is always at an edge and never counts
        lr = 0.95 if study < 3 else 0.5
        horizon = 0.05 if study == 4 else 0.5
        trials += [_searched("Shuffle()", study, 0, [0.5, 0.95], {"learning_rate": 0.0, "schedule": 0.99,
                                                                  "horizon": 0.99}, seconds_per_eval=3.0),
                   _searched("Shuffle()", study, 1, [0.95], {"learning_rate": lr, "schedule": 0.0,
                                                            "horizon": horizon})]
        trials.append(_searched("RS2()", study, 0, [0.95], {"learning_rate": 0.5, "schedule": 0.5, "horizon": 0.5,
                                                           "ratio": 0.1 if study == 0 else 0.5}))
    edges = studies.edge_hits(trials)
    assert set(edges.columns) == {"workload", "selector", "dimension", "kind", "at_low", "at_high", "edge",
                                  "studies"}
    assert "schedule" not in set(edges["dimension"])  # a choice has no edge
    shuffle = edges[edges["selector"] == "Shuffle()"].set_index("dimension")
    assert list(shuffle.index) == ["learning_rate", "horizon"]
    assert (shuffle.loc["learning_rate", "at_high"], shuffle.loc["learning_rate", "edge"]) == (3, 3)
    assert (shuffle.loc["horizon", "at_low"], shuffle.loc["horizon", "at_high"]) == (1, 0)
    assert set(shuffle["studies"]) == {5} and shuffle.loc["horizon", "kind"] == "uniform"
    rs2 = edges[edges["selector"] == "RS2()"].set_index("dimension")
    assert rs2.loc["ratio", "edge"] == 1 and rs2.loc["learning_rate", "edge"] == 0  # u = 0.1: within the margin
    assert studies.edge_hits(trials, margin=0.05).set_index(["selector", "dimension"]).loc[
        ("RS2()", "ratio"), "edge"] == 0
    # older results (no search_units) give no rows and no error
    assert studies.edge_hits([_trial("Shuffle()", 0, 0, [0.95])]).empty and studies.edge_hits([]).empty
    with pytest.raises(ValueError, match="margin=0.5"):
        studies.edge_hits(trials, margin=0.5)
