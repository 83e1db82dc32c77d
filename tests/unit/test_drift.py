"""The drift comparison on hand-made frames: a feature null throughout is a finding, not a crash."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from churn_transform.drift import compare, describe
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
