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
    label, probability = np.array([1, 0, 1, 0]), np.array([0.9, 0.2, 0.4, 0.6])
    targeted = np.array([True, False, False, True])
    table = segment_metrics(gold, label, probability, targeted)
    assert table.iloc[0][["segment", "value", "users", "churners"]].tolist() == [
        "cohort",
        "all",
        4,
        2,
    ]
    assert table.iloc[0]["calibration_gap"] == pytest.approx(0.525 - 0.5)
    renew = table[table["segment"] == "auto_renew"].set_index("value")
    assert renew.loc["on", "users"] == 2 and renew.loc["on", "churners"] == 1
    assert renew.loc["on", "churner_share"] == 0.5
    assert renew.loc["on", "roc_auc"] == 1.0  # 0.9 (churner) above 0.6
    assert renew.loc["on", "recall"] == 1.0  # its churner is targeted
    assert renew.loc["on", "calibration_gap"] == pytest.approx(0.75 - 0.5)
    assert np.isnan(renew.loc["off", "roc_auc"])  # one class only
    assert np.isnan(renew.loc["off", "roc_auc_low"]) and np.isnan(renew.loc["off", "recall"])
    assert table.groupby("segment")["users"].sum().eq(4).all()


def _table(auc: float, low: float, high: float) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "segment": "auto_renew",
                "value": "off",
                "users": 300,
                "churners": 90,
                "roc_auc": auc,
                "roc_auc_low": low,
                "roc_auc_high": high,
            }
        ]
    )


@pytest.mark.parametrize(
    ("candidate", "refused"),
    [
        ((0.80, 0.78, 0.82), False),  # as good
        ((0.70, 0.60, 0.80), False),  # 0.10 below, but the interval cannot say so
        ((0.74, 0.73, 0.75), False),  # surely below, but by no more than 0.05 for all it says
        ((0.70, 0.68, 0.74), True),  # surely more than 0.05 below
    ],
)
def test_a_segment_is_named_only_when_its_interval_lies_far_below_the_champion(
    candidate: tuple[float, float, float], refused: bool
) -> None:
    reasons = segment_regressions(_table(*candidate), _table(0.80, 0.78, 0.82), 0.05)
    assert bool(reasons) == refused
    if refused:
        assert reasons[0].startswith("auto_renew=off (300 users, 90 churners): ROC AUC 0.7000")


@pytest.mark.parametrize(("users", "churners", "refused"), [(6, 2, False), (20, 10, True)])
def test_a_group_with_few_churners_or_stayers_holds_no_one_back(
    users: int, churners: int, refused: bool
) -> None:
    """Both churners of six users ranked last: every resample says 0.0, an interval that cannot
    be trusted; ten of each ranked so holds the candidate back."""
    candidate = _table(0.0, 0.0, 0.0).assign(users=users, churners=churners)
    champion = _table(0.5, 0.5, 0.5).assign(users=users, churners=churners)
    assert bool(segment_regressions(candidate, champion, 0.05)) == refused
