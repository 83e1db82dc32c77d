"""The rules across a gold row's fields: each one refuses a row that breaks it, and no row that
``features`` builds from silver that passes validation breaks any of them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from churn_transform.etl import validation
from churn_transform.etl.features import cohort_features
from churn_transform.schema import EXAMPLE_RECORD, MSNO_LENGTH, SECONDS_PER_DAY, WINDOWS
from churn_transform.serving import plausibility
from churn_transform.serving.plausibility import RULES, broken_rules
from churn_transform.serving.records import as_records

#: The example with no listening at all, as gold has a member without a log day.
SILENT: dict[str, Any] = {
    **EXAMPLE_RECORD,
    **{f"secs_{w}": 0.0 for w in WINDOWS},
    **{f"active_days_{w}": 0.0 for w in WINDOWS},
    **{name: 0.0 for name in ("songs_30", "num_25_30", "num_100_30", "unq_30")},
    "log_days_total": 0.0,
    "secs_total": 0.0,
    "days_since_last_log": None,
}
#: The example with one cancel, 40 days before the cutoff.
CANCELLED: dict[str, Any] = {
    **EXAMPLE_RECORD,
    "cancel_count": 1.0,
    "cancel_count_365": 1.0,
    "days_since_last_cancel": 40.0,
}

#: A member whose one log day was 100 days before the cutoff.
LONG_AGO = {"days_since_last_log": 100.0, "log_days_total": 1.0, "secs_total": 100.0}

# (rule, the example changed to break it and no other rule). The example: 29 transactions, 3 in
# the last 90 days, the last 27 days and the first 777 days before the cutoff, no cancel, 30-day
# plans at 119 paid in full, renewing; listening 1, 3 and 4 days of the last 30, 44 and 60
# days, the last 24 days before the cutoff, 174 days in all.
BREAKS: list[tuple[str, dict[str, Any]]] = [
    ("whole_numbers", {"tx_count_90": 2.5}),
    ("whole_numbers", {"days_to_expiry": 3.5}),
    ("counts_within_transactions", {"tx_count_90": 30.0}),
    ("counts_within_transactions", {"discount_count": 30.0}),
    ("counts_within_transactions", {**CANCELLED, "free_count": 29.0}),
    ("transaction_days_in_order", {**CANCELLED, "days_since_last_cancel": 10.0}),
    (
        "transaction_days_in_order",
        {**CANCELLED, "cancel_count_365": 0.0, "days_since_last_cancel": 800.0},
    ),
    ("last_cancel_iff_cancels", {"days_since_last_cancel": 400.0}),
    ("last_cancel_iff_cancels", {"cancel_count": 1.0}),
    ("recent_counts_agree_with_days", {"tx_count_90": 0.0}),
    ("recent_counts_agree_with_days", {**CANCELLED, "cancel_count_365": 0.0}),
    ("auto_renew_share_of_transactions", {"auto_renew_share": 0.5}),
    ("auto_renew_share_of_transactions", {"last_is_auto_renew": 0.0}),
    ("plan_days_within_kkbox_plans", {"last_plan_days": 451.0}),
    ("plan_days_within_kkbox_plans", {"total_plan_days": 20.0}),
    ("prices_within_kkbox_prices", {"last_list_price": 2001.0}),
    ("prices_within_kkbox_prices", {"total_paid": 100.0}),
    ("last_payment_counted", {"last_amount_paid": 0.0}),
    ("last_payment_counted", {"last_list_price": 149.0, "discount_count": 0.0}),
    ("expiry_within_kkbox_dates", {"days_to_expiry": 9000.0}),
    ("windows_nest", {"secs_44": 1000.0}),
    ("windows_nest", {"log_days_total": 3.0, "secs_total": 8046.956}),
    ("listening_within_active_days", {"secs_30": 9e4, "secs_44": 9e4, "secs_60": 9e4}),
    ("listening_within_active_days", {"secs_44": 2e5, "secs_60": 2e5}),
    ("silent_since_last_log", {"days_since_last_log": 40.0}),
    ("silent_since_last_log", {**SILENT, **LONG_AGO, "unq_30": 1.0}),
    ("active_days_since_last_log", {"days_since_last_log": 10.0}),
    (
        "active_days_since_last_log",
        {
            **{f"active_days_{w}": 8.0 for w in (30, 44, 60)},
            **{f"secs_{w}": 8046.956 for w in (30, 44, 60)},
            "unq_30": 8.0,
        },
    ),
    ("last_log_iff_log_days", {**SILENT, "days_since_last_log": 100.0}),
    ("last_log_iff_log_days", {**SILENT, "log_days_total": 5.0}),
    ("songs_30_add_up", {"num_25_30": 5.0}),
    ("songs_30_add_up", {"unq_30": 0.0}),
]


def test_the_example_and_a_silent_or_cancelled_member_keep_every_rule() -> None:
    assert broken_rules(EXAMPLE_RECORD) == []
    assert broken_rules(SILENT) == []
    assert broken_rules(CANCELLED) == []


@pytest.mark.parametrize(
    ("rule", "change"), BREAKS, ids=[f"{rule}-{i}" for i, (rule, _) in enumerate(BREAKS)]
)
def test_each_rule_refuses_a_row_that_breaks_it_alone(rule: str, change: dict[str, Any]) -> None:
    broken = broken_rules({**EXAMPLE_RECORD, **change})
    assert [name for name, _ in broken] == [rule], broken


def test_every_rule_has_rows_that_break_it() -> None:
    assert {rule for rule, _ in BREAKS} == set(RULES)


def test_a_fault_names_the_fields_and_their_values() -> None:
    [(rule, fault)] = broken_rules({**EXAMPLE_RECORD, "days_since_last_log": 40.0})
    assert fault == "secs_30 1,884.728 but the last log was 40 days before the cutoff"
    [(rule, fault)] = broken_rules({**EXAMPLE_RECORD, "tx_count_90": 30.0})
    assert fault == "tx_count_90 30 > tx_count 29"


def test_a_null_is_unknown_to_every_rule_but_the_two_that_mean_never() -> None:
    unknown = {name: None for name in ("tx_count", "tenure_days", "total_paid", "secs_30")}
    assert broken_rules({**EXAMPLE_RECORD, **unknown}) == []
    never_listened = {**EXAMPLE_RECORD, "days_since_last_log": None}
    assert {name for name, _ in broken_rules(never_listened)} == {
        "silent_since_last_log",
        "last_log_iff_log_days",
    }


def test_the_sums_of_seconds_may_differ_in_their_last_bits() -> None:
    listening = {"secs_30": 1884.728, "secs_44": 1884.728 * (1 - 1e-12), "secs_60": 1884.728}
    assert broken_rules({**EXAMPLE_RECORD, **listening}) == []


def test_kkbox_s_limits_are_silver_validation_s() -> None:
    transactions = validation.SILVER["transactions"].columns
    logs = validation.SILVER["user_logs"].columns

    def bounds(column: Any) -> dict[str, Any]:
        [check] = column.checks
        return check.statistics

    assert bounds(transactions["payment_plan_days"])["max_value"] == plausibility.MAX_PLAN_DAYS
    assert bounds(transactions["plan_list_price"])["max_value"] == plausibility.MAX_PRICE
    assert bounds(transactions["actual_amount_paid"])["max_value"] == plausibility.MAX_PRICE
    assert pd.Timestamp(plausibility.FIRST_TRANSACTION) == validation.FIRST_DAY
    assert bounds(transactions["transaction_date"])["min_value"] == validation.FIRST_DAY
    assert pd.Timestamp(plausibility.LAST_EXPIRY) == validation.MAX_EXPIRY
    assert bounds(transactions["membership_expire_date"])["max_value"] == validation.MAX_EXPIRY
    assert bounds(logs["total_secs"])["max_value"] == SECONDS_PER_DAY
    assert bounds(logs["num_unq"])["min_value"] == 1


# -- gold built from random silver that passes validation ------------------------------------

COHORT, CUTOFF = "2017-03", pd.Timestamp("2017-03-01")
DAY = pd.Timedelta(days=1)


def _days(rng: np.random.Generator, first: str, last: str, size: int) -> pd.Series:
    span = (pd.Timestamp(last) - pd.Timestamp(first)).days
    return pd.Series(pd.Timestamp(first) + rng.integers(0, span + 1, size) * DAY)


def _transactions(rng: np.random.Generator, ids: np.ndarray, size: int) -> pd.DataFrame:
    """Any mix KKBox allows: 0-day rows, cancels, free and discounted plans, several rows a day,
    expiry dates from 2014 to 2040 or none, rows on or after the cutoff."""
    price = rng.choice([0, 99, 149, 180, 1788, 2000], size)
    paid = np.where(rng.random(size) < 0.7, price, rng.integers(0, 2001, size))
    expire = _days(rng, "2014-01-01", "2040-12-31", size)
    frame = pd.DataFrame(
        {
            "msno": pd.array(rng.choice(ids, size), "string"),
            "payment_method_id": rng.integers(1, 42, size),
            "payment_plan_days": rng.choice([0, 0, 1, 7, 30, 30, 90, 180, 410, 450], size),
            "plan_list_price": price,
            "actual_amount_paid": paid,
            "is_auto_renew": rng.integers(0, 2, size),
            "transaction_date": _days(rng, "2015-01-01", "2017-04-15", size),
            "membership_expire_date": expire.where(rng.random(size) > 0.05),
            "is_cancel": (rng.random(size) < 0.15).astype(int),
        }
    )
    close = rng.random(size) < 0.5  # half of them in the year before the cutoff
    frame.loc[close, "transaction_date"] = CUTOFF - rng.integers(1, 400, close.sum()) * DAY
    return frame.astype({c: "Int64" for c in frame.columns if frame[c].dtype == "int64"})


def _logs(rng: np.random.Generator, ids: np.ndarray, size: int) -> pd.DataFrame:
    """Days of listening, most of them in the windows, some on or after the cutoff; seconds
    from none (null) to a whole day."""
    secs = rng.choice([0.0, 86_400.0, np.nan, 1.0], size)
    secs = np.where(rng.random(size) < 0.8, rng.uniform(0, 86_400, size), secs)
    frame = pd.DataFrame(
        {
            "msno": pd.array(rng.choice(ids, size), "string"),
            "date": CUTOFF - pd.to_timedelta(rng.geometric(1 / 40, size) - 8, "D"),
            **{
                band: pd.array(rng.integers(0, 30, size), "Int64")
                for band in ("num_25", "num_50", "num_75", "num_985", "num_100")
            },
            "num_unq": pd.array(rng.integers(1, 30, size), "Int64"),
            "total_secs": secs,
        }
    )
    return frame.drop_duplicates(["msno", "date"]).sort_values(["msno", "date"])


def _members(rng: np.random.Generator, ids: np.ndarray) -> pd.DataFrame:
    known = ids[rng.random(len(ids)) < 0.9]
    size = len(known)
    return pd.DataFrame(
        {
            "msno": pd.array(known, "string"),
            "city": pd.array(rng.integers(1, 23, size), "Int64"),
            "bd": pd.Series(rng.integers(1, 101, size), dtype="Int64").where(
                rng.random(size) > 0.3
            ),
            "gender": pd.array(rng.choice(["male", "female", None], size), "string"),
            "registered_via": pd.array(rng.integers(1, 14, size), "Int64"),
            "registration_init_time": _days(rng, "2004-01-01", "2017-06-30", size),
        }
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_gold_row_built_from_valid_silver_breaks_a_rule(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ids = np.array([f"u{i:0{MSNO_LENGTH - 2}d}=" for i in range(300)])
    silver = {
        "transactions": _transactions(rng, ids[:280], 3000),  # some without any
        "user_logs": _logs(rng, ids[20:], 20_000),
        "members": _members(rng, ids),
    }
    for table, rows in silver.items():
        assert validation.check_frame(validation.SILVER[table], table, rows) == []
    labels = pd.DataFrame({"msno": ids, "cohort": COHORT, "is_churn": rng.integers(0, 2, 300)})
    gold = cohort_features(
        labels, silver["transactions"], silver["user_logs"], silver["members"], COHORT
    )
    # members without transactions, without listening, with cancels, with every day listened
    assert gold["tx_count"].isna().any() and gold["days_since_last_log"].isna().any()
    assert (gold["cancel_count"] > 0).any() and (gold["active_days_7"] == 7).any()
    broken = {row["msno"]: broken_rules(row) for row in as_records(gold)}
    assert {msno: faults for msno, faults in broken.items() if faults} == {}
