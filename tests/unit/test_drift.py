"""The drift comparison on hand-made frames: replayed traffic is one population, the placeholder
record is nobody, a moved feature the model uses is the drift and ranks first; a feature null
throughout is a finding, not a crash."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from churn_transform.monitoring.drift import (
    TooFewRows,
    compare,
    describe,
    reference_cohort,
    subscribers,
)
from churn_transform.monitoring.effect import effects, restored
from churn_transform.schema import EXAMPLE_RECORD, FEATURES

#: What the test model reads; every other feature it ignores.
USED = ["secs_30", "last_is_auto_renew"]
THRESHOLD = 0.3


def _traffic(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.gamma(2.0, 10.0, rows) for name in FEATURES})
    for name in ("last_is_auto_renew", "last_is_cancel"):
        frame[name] = rng.choice([0.0, 1.0], rows)
    frame["last_payment_method_id"] = rng.choice([38.0, 41.0], rows)
    frame["registered_via"] = rng.choice([7.0, 9.0], rows)
    frame["city"] = rng.choice([1.0, 5.0, np.nan], rows)
    frame["gender"] = rng.choice(["male", "female", None], rows)
    return frame.assign(msno=[f"user-{seed}-{i}" for i in range(rows)], ts=1.0)


def _churned(frame: pd.DataFrame, seed: int) -> np.ndarray:
    """Labels drawn from a known logistic rule: quiet listeners without auto-renew churn."""
    logit = 1.5 - 0.12 * frame["secs_30"] - 1.0 * frame["last_is_auto_renew"]
    chance = 1 / (1 + np.exp(-logit))
    return np.random.default_rng(seed).random(len(frame)) < chance


@pytest.fixture(scope="module")
def model() -> Pipeline:
    """A logistic regression on two features, fitted on labels of the rule above."""
    train = _traffic(4000, seed=9)
    features = ColumnTransformer([("used", "passthrough", USED)])
    fitted = Pipeline([("features", features), ("model", LogisticRegression())])
    return fitted.fit(train[list(FEATURES)], _churned(train, seed=10))


def _compare(model: Pipeline, reference: pd.DataFrame, current: pd.DataFrame, **change: float):
    limits = {"auc_drop": 0.02, "min_rows": 1000, **change}
    return compare(reference, current, model=model, threshold=THRESHOLD, **limits)


def test_a_cohort_replayed_seven_times_with_the_placeholder_record_is_no_drift(
    model: Pipeline,
) -> None:
    """Issue 34: the demo's cohort replayed by the load test, and the OpenAPI page's example
    sent by hand, made 14 of 41 features 'drift' with no shift at all."""
    cohort = _traffic(1200, seed=2)
    replays = [cohort.assign(ts=float(n)) for n in range(7)]
    placeholder = pd.DataFrame([EXAMPLE_RECORD] * 50).assign(ts=9.0)
    current = pd.concat([*replays, placeholder], ignore_index=True)
    summary = _compare(model, _traffic(1500, seed=1), current).summary
    assert summary["drift_detected"] is False
    assert summary["current_rows"] == 1200 and summary["placeholder_rows"] == 50
    assert summary["current_predictions"] == 7 * 1200 + 50
    assert abs(summary["estimated_roc_auc_drop"]) < 0.02
    assert 0.7 < summary["estimated_roc_auc"] < 1
    assert "no drift that costs the model" in describe(summary)
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary


def test_a_moved_feature_the_model_uses_is_the_drift_and_ranks_first(model: Pipeline) -> None:
    current = _traffic(1200, seed=2)
    # listening squeezed towards its mean: the model tells churners from stayers less well
    current["secs_30"] = 20 + (current["secs_30"] - 20) * 0.15
    current["bd"] = current["bd"] + 30  # moved too, but the model never reads it
    summary = _compare(model, _traffic(1500, seed=1), current).summary
    assert summary["drift_detected"] is True
    assert summary["estimated_roc_auc_drop"] >= 0.02
    assert summary["drifted_columns"][0] == "secs_30"
    assert "bd" in summary["drifted_columns"]
    first, *_ = summary["columns"]
    assert first["column"] == "secs_30" and first["effect"]["roc_auc"] < -0.02
    bd = next(c for c in summary["columns"] if c["column"] == "bd")
    assert bd["drifted"] and bd["effect"]["size"] == 0.0
    shown = describe(summary)
    assert shown.startswith("DRIFT: estimated ROC AUC")
    assert shown.index("secs_30") < shown.index("bd ")


def test_the_alarm_is_the_estimated_roc_auc_drop_not_the_count_of_drifted_columns(
    model: Pipeline,
) -> None:
    """Every feature the model ignores moved: many drifted columns, nothing lost."""
    current = _traffic(1200, seed=2)
    ignored = [f for f in FEATURES if f not in USED and current[f].dtype == float]
    current[ignored] = current[ignored] * 3
    summary = _compare(model, _traffic(1500, seed=1), current).summary
    assert summary["drift_share"] > 0.5 and summary["drift_detected"] is False
    assert all(c["effect"]["size"] == 0.0 for c in summary["columns"] if c["drifted"])


def test_restoring_a_feature_gives_the_reference_distribution_and_keeps_each_rank() -> None:
    current = pd.Series([30.0, 10.0, np.nan, 20.0], name="secs_30")
    reference = pd.Series([1.0, np.nan, 3.0, 2.0])
    back = restored(current, reference)
    assert back.dtype == "float64" and back.fillna(-1).tolist() == [3.0, 1.0, -1, 2.0]
    bigger = pd.Series([5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0])
    # quantiles 1/8, 3/8, 5/8, 7/8 of eight values: the 2nd, 4th, 6th and 8th
    assert restored(current, bigger).tolist() == [10.0, 6.0, 12.0, 8.0]
    genders = pd.Series(["male", None, "female"], name="gender")
    assert restored(genders, pd.Series(["female"] * 3)).tolist() == ["female"] * 3
    nulls = pd.Series(["male", pd.NA, pd.NA], dtype="string")
    assert restored(genders, nulls).tolist() == [None, None, "male"]  # "female" ranks first


def test_the_effect_of_a_feature_is_the_move_it_causes_in_the_estimated_figures(
    model: Pipeline,
) -> None:
    reference = _traffic(1500, seed=1)
    same = effects(model, THRESHOLD, reference, reference, ["secs_30", "bd"])
    assert all(e.size == 0.0 for e in same)
    raised = reference.assign(last_is_auto_renew=1.0)  # everyone on auto-renew
    moved = effects(model, THRESHOLD, raised, reference, ["bd", "last_is_auto_renew"])
    assert [e.column for e in moved] == ["last_is_auto_renew", "bd"] and moved[0].size > 0


@pytest.mark.parametrize(
    ("trained_on", "reference"),
    [
        ("2017-02", "2017-02"),
        ("2017-05,2017-06", "2017-06"),
        ("2017-06,2017-05", "2017-06"),
        ("", None),
    ],
)
def test_the_reference_is_the_newest_training_cohort(
    trained_on: str, reference: str | None
) -> None:
    assert reference_cohort(trained_on) == reference


def test_the_placeholder_record_is_left_out_only_when_it_is_the_example_exactly() -> None:
    example = pd.DataFrame([EXAMPLE_RECORD, {**EXAMPLE_RECORD, "secs_30": 1.0}]).assign(
        ts=[1.0, 2.0]
    )
    window, left_out = subscribers(example)
    assert left_out == 1 and window["secs_30"].tolist() == [1.0]


def test_a_feature_null_in_every_logged_record_is_reported_as_drifted(model: Pipeline) -> None:
    current = _traffic(1200, seed=2)
    current["secs_7"] = np.nan
    result = _compare(model, _traffic(1500, seed=1), current)
    assert result.summary["drifted_columns"] == ["secs_7"]
    finding = next(c for c in result.summary["columns"] if c["column"] == "secs_7")
    assert finding["method"] == "null throughout" and finding["statistic"] == 1.0
    assert result.summary["drift_share"] == 1 / len(FEATURES)
    assert "secs_7" in describe(result.summary)
    # as the drift step writes it (issue 30: a JSON TypeError once the finding was made)
    assert json.loads(json.dumps(result.summary, allow_nan=False)) == result.summary


def test_a_feature_null_on_both_sides_is_not_drift(model: Pipeline) -> None:
    reference, current = _traffic(1500, seed=1), _traffic(1200, seed=2)
    reference["secs_7"] = current["secs_7"] = np.nan
    result = _compare(model, reference, current)
    assert result.summary["drifted_columns"] == []
    assert len(result.summary["columns"]) == len(FEATURES)
    assert json.loads(json.dumps(result.summary, allow_nan=False)) == result.summary


def test_each_subscriber_counts_once_with_their_newest_prediction(model: Pipeline) -> None:
    """Issue 30: repeated identical records raised the drift share to 0.88 and forced retrains."""
    reference = _traffic(1500, seed=1)
    honest = _traffic(1200, seed=2)
    odd = honest.iloc[[0]].assign(secs_30=1e9, last_is_auto_renew=0.0, ts=2.0)
    flood = pd.concat([honest, *[odd] * 5000], ignore_index=True)
    result = _compare(model, reference, flood)
    assert result.summary["current_rows"] == 1200
    assert result.summary["current_predictions"] == 6200
    assert result.summary["drift_detected"] is False
    alone = pd.concat([odd] * 5000, ignore_index=True)
    with pytest.raises(TooFewRows, match=r"1 subscriber\(s\) in the window \(5000 prediction"):
        _compare(model, reference, alone)


def test_the_summary_says_how_many_clients_sent_the_window_and_the_largest_share(
    model: Pipeline,
) -> None:
    reference = _traffic(1500, seed=1)
    current = _traffic(1200, seed=2)
    current["client"] = ["alice"] * 900 + ["bob"] * 200 + [None] * 100
    summary = _compare(model, reference, current).summary
    assert summary["clients"] == 3 and summary["top_client_share"] == 0.75
    unknown = _compare(model, reference, current.drop(columns="client")).summary
    assert unknown["clients"] is None and unknown["top_client_share"] is None
