"""Cohort features on a tiny history computed by hand (cohort 2017-03, cutoff 2017-03-01)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from churn_transform.etl.features import cohort_features, log_features
from churn_transform.schema import FEATURES, LOG_FEATURES, WINDOWS

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
    frame = pd.DataFrame(
        rows,
        columns=[
            "msno",
            "transaction_date",
            "payment_plan_days",
            "plan_list_price",
            "actual_amount_paid",
            "is_auto_renew",
            "membership_expire_date",
            "is_cancel",
            "payment_method_id",
        ],
    )
    for column in ("transaction_date", "membership_expire_date"):
        frame[column] = pd.to_datetime(frame[column])
    return frame


def _logs() -> pd.DataFrame:
    rows = [
        ("2017-02-28", 100.0),
        ("2017-02-20", 200.0),
        ("2017-01-20", 400.0),
        ("2016-12-31", None),
        ("2017-03-01", 1000.0),
    ]
    frame = pd.DataFrame(rows, columns=["date", "total_secs"]).assign(
        msno="u1", num_25=1, num_50=0, num_75=0, num_985=0, num_100=2, num_unq=3
    )
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


def _members() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "msno": ["u1"],
            "city": [5],
            "bd": pd.array([30], "Int64"),
            "gender": pd.array(["male"], "string"),
            "registered_via": [7],
            "registration_init_time": [T("2016-03-01")],
        }
    )


def _labels() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "msno": ["u1", "u2", "u3"],
            "cohort": ["2017-03", "2017-03", "2017-02"],
            "is_churn": pd.array([1, 0, 1], "Int8"),
        }
    )


@pytest.fixture
def gold() -> pd.DataFrame:
    return cohort_features(_labels(), _transactions(), _logs(), _members(), "2017-03").set_index(
        "msno"
    )


EXPECTED_U1 = {
    "tx_count": 4,
    "tx_count_90": 4,
    "cancel_count": 1,
    "cancel_count_365": 1,
    "days_since_last_cancel": 9,
    "last_is_auto_renew": 0,
    "last_is_cancel": 1,
    "last_payment_method_id": 38,
    "last_plan_days": 30,
    "last_list_price": 149,
    "last_amount_paid": 99,
    "days_to_expiry": 1,
    "days_since_last_transaction": 9,
    "tenure_days": 59,
    "total_paid": 248,
    "total_plan_days": 60,
    "discount_count": 1,
    "free_count": 0,
    "auto_renew_share": 0.75,
    "secs_7": 100,
    "secs_14": 300,
    "secs_30": 300,
    "secs_44": 700,
    "secs_60": 700,
    "active_days_7": 1,
    "active_days_14": 2,
    "active_days_30": 2,
    "active_days_44": 3,
    "active_days_60": 4,
    "songs_30": 6,
    "num_25_30": 2,
    "num_100_30": 4,
    "unq_30": 6,
    "days_since_last_log": 1,
    "log_days_total": 4,
    "secs_total": 700,
    "city": 5,
    "bd": 30,
    "gender": "male",
    "registered_via": 7,
    "registration_age_days": 365,
}


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
    later = pd.DataFrame(
        {
            "msno": ["u2"],
            "date": [T("2017-03-05")],
            "total_secs": [5.0],
            "num_25": [1],
            "num_50": [0],
            "num_75": [0],
            "num_985": [0],
            "num_100": [1],
            "num_unq": [1],
        }
    )
    after = cohort_features(
        _labels(), transactions, pd.concat([logs, later]), _members(), "2017-03"
    )
    pd.testing.assert_frame_equal(before, after)


def test_inputs_are_not_modified() -> None:
    transactions, logs = _transactions(), _logs()
    cohort_features(_labels(), transactions, logs, _members(), "2017-03")
    pd.testing.assert_frame_equal(transactions, _transactions())
    pd.testing.assert_frame_equal(logs, _logs())


def test_log_features_match_a_plain_groupby_in_any_row_order() -> None:
    rng = np.random.default_rng(7)
    size = 3000
    logs = pd.DataFrame(
        {
            "msno": rng.choice([f"u{i:02d}" for i in range(40)], size),
            "date": T("2016-12-01") + pd.to_timedelta(rng.integers(0, 120, size), "D"),
            **{
                band: rng.integers(0, 5, size)
                for band in ("num_25", "num_50", "num_75", "num_985", "num_100", "num_unq")
            },
            "total_secs": np.where(rng.random(size) < 0.05, np.nan, rng.uniform(0, 5000, size)),
        }
    ).drop_duplicates(["msno", "date"])
    cutoff = T("2017-03-01")
    past = logs[logs["date"] < cutoff]
    ago, secs, user = (cutoff - past["date"]).dt.days, past["total_secs"].fillna(0), past["msno"]
    expected = {
        "days_since_last_log": ago.groupby(user).min(),
        "log_days_total": ago.groupby(user).size(),
        "secs_total": secs.groupby(user).sum(),
    }
    for window in WINDOWS:
        expected[f"secs_{window}"] = secs.where(ago <= window, 0).groupby(user).sum()
        expected[f"active_days_{window}"] = (ago <= window).groupby(user).sum()
    songs = past[["num_25", "num_50", "num_75", "num_985", "num_100"]].sum(axis=1)
    for name, values in (
        ("songs_30", songs),
        ("num_25_30", past["num_25"]),
        ("num_100_30", past["num_100"]),
        ("unq_30", past["num_unq"]),
    ):
        expected[name] = values.where(ago <= 30, 0).groupby(user).sum()
    expected = pd.DataFrame(expected)[list(LOG_FEATURES)].astype("float64").rename_axis(None)

    silver_order = logs.sort_values(["msno", "date"])
    coded = pa.Table.from_pandas(silver_order, preserve_index=False)
    coded = coded.set_column(0, "msno", pc.dictionary_encode(coded["msno"]))
    for rows in (logs, silver_order, coded):
        got = log_features(rows, cutoff).sort_index()
        pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-12)
