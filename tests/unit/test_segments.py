"""Segments: one label per user and segment, metrics per group, and the gate's comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn_transform.modelling.segments import (
    SEGMENTS,
    segment_labels,
    segment_metrics,
    segment_regressions,
)


def _gold() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "last_payment_method_id": [41.0, 38.0, np.nan, 41.0],
            "last_plan_days": [30.0, 7.0, 90.0, np.nan],
            "last_is_auto_renew": [1.0, 0.0, np.nan, 1.0],
            "tenure_days": [10.0, 100.0, 400.0, 800.0],
            "city": [1.0, 13.0, np.nan, 1.0],
            "gender": pd.array(["male", None, "female", "male"], dtype="string"),
            "bd": [19.0, 25.0, np.nan, 45.0],
            "registered_via": [7.0, 9.0, 4.0, np.nan],
        }
    )


def test_every_user_gets_one_readable_label_per_segment() -> None:
    labels = segment_labels(_gold())
    assert list(labels.columns) == list(SEGMENTS)
    assert labels.iloc[0].to_dict() == {
        "payment_method": "41",
        "plan_length": "30-31 days",
        "auto_renew": "on",
        "tenure_band": "under 90 days",
        "city": "1",
        "gender": "male",
        "age_band": "under 20",
        "registration_channel": "7",
    }
    assert (
        labels.iloc[2][["payment_method", "auto_renew", "city", "age_band"]].tolist()
        == ["unknown"] * 4
    )
    assert labels["plan_length"].tolist() == ["30-31 days", "under 30 days", "90+ days", "unknown"]
    assert labels["tenure_band"].tolist()[1:] == ["90-364 days", "1-2 years", "2+ years"]


def test_metrics_per_group_count_users_and_rank_within_the_group() -> None:
    gold = _gold()
    table = segment_metrics(gold, np.array([1, 0, 1, 0]), np.array([0.9, 0.2, 0.4, 0.6]))
    renew = table[table["segment"] == "auto_renew"].set_index("value")
    assert renew.loc["on", "users"] == 2 and renew.loc["on", "churners"] == 1
    assert renew.loc["on", "roc_auc"] == 1.0  # 0.9 (churner) above 0.6
    assert np.isnan(renew.loc["off", "roc_auc"])  # one class only
    assert table.groupby("segment")["users"].sum().eq(4).all()


def _table(auc: float, users: int = 1000) -> pd.DataFrame:
    return pd.DataFrame([{"segment": "auto_renew", "value": "off", "users": users, "roc_auc": auc}])


@pytest.mark.parametrize(
    ("candidate", "users", "refused"),
    [(0.80, 1000, False), (0.76, 1000, False), (0.74, 1000, True), (0.50, 99, False)],
)
def test_a_segment_with_enough_users_far_below_the_champion_is_named(
    candidate: float, users: int, refused: bool
) -> None:
    reasons = segment_regressions(_table(candidate, users), _table(0.80, users), 100, 0.05)
    assert bool(reasons) == refused
    if refused:
        assert "auto_renew=off" in reasons[0] and "0.7400" in reasons[0]
