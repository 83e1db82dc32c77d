"""Cohort features on a tiny history computed by hand (cohort 2017-03, cutoff 2017-03-01)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from churn_transform.features import FEATURES, cohort_features

T = pd.Timestamp


def _transactions() -> pd.DataFrame:
    rows = [  # msno, date, plan, list, paid, auto, expire, cancel, method
        ("u1", "2017-01-01", 30, 149, 149, 1, "2017-01-31", 0, 41),
        ("u1", "2017-01-31", 30, 149, 99, 1, "2017-03-02", 0, 41),
        ("u1", "2017-01-31", 0, 0, 0, 1, "2017-03-02", 0, 41),  # 0-day row, same day
        ("u1", "2017-02-20", 30, 149, 149, 0, "2017-03-02", 1, 38),  # cancel
        ("u1", "2017-03-02", 30, 149, 149, 1, "2017-04-01", 0, 41),  # after the cutoff
        ("u2", "2017-02-10", 30, 149, 149, 1, "2017-03-12", 0, 41),
    ]
    frame = pd.DataFrame(rows, columns=[
        "msno", "transaction_date", "payment_plan_days", "plan_list_price",
        "actual_amount_paid", "is_auto_renew", "membership_expire_date", "is_cancel",
        "payment_method_id"])  # fmt: skip
    for column in ("transaction_date", "membership_expire_date"):
        frame[column] = pd.to_datetime(frame[column])
    return frame


def _logs() -> pd.DataFrame:
    rows = [("2017-02-28", 100.0), ("2017-02-20", 200.0), ("2017-01-20", 400.0),
            ("2016-12-31", None), ("2017-03-01", 1000.0)]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["date", "total_secs"]).assign(
        msno="u1", num_25=1, num_50=0, num_75=0, num_985=0, num_100=2, num_unq=3
    )
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


def _members() -> pd.DataFrame:
    return pd.DataFrame({"msno": ["u1"], "city": [5], "bd": pd.array([30], "Int64"),
                         "gender": pd.array(["male"], "string"), "registered_via": [7],
                         "registration_init_time": [T("2016-03-01")]})  # fmt: skip


def _labels() -> pd.DataFrame:
    return pd.DataFrame({"msno": ["u1", "u2", "u3"], "cohort": ["2017-03", "2017-03", "2017-02"],
                         "is_churn": pd.array([1, 0, 1], "Int8")})  # fmt: skip


@pytest.fixture
def gold() -> pd.DataFrame:
    return cohort_features(_labels(), _transactions(), _logs(), _members(), "2017-03").set_index(
        "msno"
    )


EXPECTED_U1 = {
    "tx_count": 4, "tx_count_90": 4, "cancel_count": 1, "cancel_count_365": 1,
    "days_since_last_cancel": 9, "last_is_auto_renew": 0, "last_is_cancel": 1,
    "last_payment_method_id": 38, "last_plan_days": 30, "last_list_price": 149,
    "last_amount_paid": 99, "days_to_expiry": 1, "days_since_last_transaction": 9,
    "tenure_days": 59, "total_paid": 248, "total_plan_days": 60, "discount_count": 1,
    "free_count": 0, "auto_renew_share": 0.75,
    "secs_7": 100, "secs_14": 300, "secs_30": 300, "secs_44": 700, "secs_60": 700,
    "active_days_7": 1, "active_days_14": 2, "active_days_30": 2, "active_days_44": 3,
    "active_days_60": 4, "songs_30": 6, "num_25_30": 2, "num_100_30": 4, "unq_30": 6,
    "days_since_last_log": 1, "log_days_total": 4, "secs_total": 700,
    "city": 5, "bd": 30, "gender": "male", "registered_via": 7, "registration_age_days": 365,
}  # fmt: skip


def test_hand_computed_values(gold: pd.DataFrame) -> None:
    assert list(gold.columns) == [*FEATURES, "is_churn"]
    assert set(EXPECTED_U1) == set(FEATURES)
    row = gold.loc["u1"]
    wrong = {k: row[k] for k, v in EXPECTED_U1.items() if row[k] != v}
    assert wrong == {}


def test_only_the_cohort_is_kept_with_its_label(gold: pd.DataFrame) -> None:
    assert gold.index.tolist() == ["u1", "u2"]
    assert gold["is_churn"].tolist() == [1, 0]


def test_user_without_logs_or_profile(gold: pd.DataFrame) -> None:
    row = gold.loc["u2"]
    assert row["secs_30"] == 0 and row["active_days_60"] == 0 and row["log_days_total"] == 0
    assert math.isnan(row["days_since_last_log"])
    assert pd.isna(row["city"]) and pd.isna(row["gender"])
    assert row["days_to_expiry"] == 11
    assert math.isnan(row["days_since_last_cancel"])


def test_rows_on_or_after_the_cutoff_change_nothing() -> None:
    before = cohort_features(_labels(), _transactions(), _logs(), _members(), "2017-03")
    transactions, logs = _transactions(), _logs()
    transactions.loc[transactions["transaction_date"] >= T("2017-03-01"), "actual_amount_paid"] = 0
    logs = logs[logs["date"] < T("2017-03-01")]
    later = pd.DataFrame({"msno": ["u2"], "date": [T("2017-03-05")], "total_secs": [5.0],
                          "num_25": [1], "num_50": [0], "num_75": [0], "num_985": [0],
                          "num_100": [1], "num_unq": [1]})  # fmt: skip
    after = cohort_features(
        _labels(), transactions, pd.concat([logs, later]), _members(), "2017-03"
    )
    pd.testing.assert_frame_equal(before, after)


def test_inputs_are_not_modified() -> None:
    transactions, logs = _transactions(), _logs()
    cohort_features(_labels(), transactions, logs, _members(), "2017-03")
    pd.testing.assert_frame_equal(transactions, _transactions())
    pd.testing.assert_frame_equal(logs, _logs())
