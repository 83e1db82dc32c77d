"""The drift comparison on hand-made frames: a feature null throughout is a finding, not a crash."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from churn_transform.monitoring.drift import TooFewRows, compare, describe
from churn_transform.schema import FEATURES


def _traffic(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.gamma(2.0, 10.0, rows) for name in FEATURES})
    for name in ("last_is_auto_renew", "last_is_cancel"):
        frame[name] = rng.choice([0.0, 1.0], rows)
    frame["last_payment_method_id"] = rng.choice([38.0, 41.0], rows)
    frame["registered_via"] = rng.choice([7.0, 9.0], rows)
    frame["city"] = rng.choice([1.0, 5.0, np.nan], rows)
    frame["gender"] = rng.choice(["male", "female", None], rows)
    return frame


def test_a_feature_null_in_every_logged_record_is_reported_as_drifted() -> None:
    current = _traffic(1200, seed=2)
    current["secs_7"] = np.nan
    result = compare(_traffic(1500, seed=1), current, drift_share=0.5, min_rows=1000)
    assert result.summary["drifted_columns"] == ["secs_7"]
    finding = result.summary["columns"][0]
    assert finding["method"] == "null throughout" and finding["statistic"] == 1.0
    assert result.summary["drift_share"] == 1 / len(FEATURES)
    assert "secs_7" in describe(result.summary)
    # as the drift step writes it (issue 30: a JSON TypeError once the finding was made)
    assert json.loads(json.dumps(result.summary, allow_nan=False)) == result.summary


def test_a_feature_null_on_both_sides_is_not_drift() -> None:
    reference, current = _traffic(1500, seed=1), _traffic(1200, seed=2)
    reference["secs_7"] = current["secs_7"] = np.nan
    result = compare(reference, current, drift_share=0.5, min_rows=1000)
    assert result.summary["drifted_columns"] == []
    assert len(result.summary["columns"]) == len(FEATURES)
    assert json.loads(json.dumps(result.summary, allow_nan=False)) == result.summary


def test_each_subscriber_counts_once_with_their_newest_prediction() -> None:
    """Issue 30: repeated identical records raised the drift share to 0.88 and forced retrains."""
    reference = _traffic(1500, seed=1)
    honest = _traffic(1200, seed=2).assign(msno=[f"user-{i}" for i in range(1200)], ts=1.0)
    odd = honest.iloc[[0]].assign(secs_30=1e9, last_is_auto_renew=0.0, ts=2.0)
    flood = pd.concat([honest, *[odd] * 5000], ignore_index=True)
    result = compare(reference, flood, drift_share=0.5, min_rows=1000)
    assert result.summary["current_rows"] == 1200
    assert result.summary["current_predictions"] == 6200
    assert result.summary["dataset_drift"] is False
    alone = pd.concat([odd] * 5000, ignore_index=True)
    with pytest.raises(TooFewRows, match=r"1 subscriber\(s\) in the window \(5000 prediction"):
        compare(reference, alone, drift_share=0.5, min_rows=1000)


def test_the_summary_says_how_many_clients_sent_the_window_and_the_largest_share() -> None:
    reference = _traffic(1500, seed=1)
    current = _traffic(1200, seed=2).assign(msno=[f"user-{i}" for i in range(1200)], ts=1.0)
    current["client"] = ["alice"] * 900 + ["bob"] * 200 + [None] * 100
    summary = compare(reference, current, drift_share=0.5, min_rows=1000).summary
    assert summary["clients"] == 3 and summary["top_client_share"] == 0.75
    unknown = compare(reference, current.drop(columns="client"), 0.5, 1000).summary
    assert unknown["clients"] is None and unknown["top_client_share"] is None
