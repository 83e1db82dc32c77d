"""Each validation rule fires on a crafted bad input, and the report names rule, count and row."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from churn_transform.etl.validation import NOT_EMPTY, SILVER, check_frame, merge, validate_gold
from churn_transform.lake import Lake
from churn_transform.schema import FEATURES, gold_schema

A, B = "a" * 43 + "=", "b" * 43 + "="


def _transactions() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "msno": pd.array([A, B], "string"),
            "payment_method_id": pd.array([41, 39], "Int64"),
            "payment_plan_days": pd.array([30, 0], "Int64"),
            "plan_list_price": pd.array([149, 0], "Int64"),
            "actual_amount_paid": pd.array([149, 0], "Int64"),
            "is_auto_renew": pd.array([1, 0], "Int64"),
            "transaction_date": pd.to_datetime(["2017-01-01", "2017-03-31"]),
            "membership_expire_date": pd.to_datetime(["2017-01-31", None]),
            "is_cancel": pd.array([0, 1], "Int64"),
        }
    )


def _logs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "msno": pd.array([A, A], "string"),
            "date": pd.to_datetime(["2017-01-01", "2017-01-02"]),
            **{
                band: pd.array([0, 3], "Int64")
                for band in ("num_25", "num_50", "num_75", "num_985")
            },
            "num_100": pd.array([5, 0], "Int64"),
            "num_unq": pd.array([1, 2], "Int64"),
            "total_secs": [1200.5, None],
        }
    )


def _labels() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "msno": pd.array([A, B], "string"),
            "cohort": pd.array(["2017-03", "2017-04"], "string"),
            "is_churn": pd.array([1, None], "Int8"),
        }
    )


def _rules(failures: list) -> set[tuple[str, str]]:
    return {(f.column, f.check.split("(")[0]) for f in failures}


def test_valid_silver_passes() -> None:
    assert check_frame(SILVER["transactions"], "t", _transactions()) == []
    assert check_frame(SILVER["user_logs"], "l", _logs()) == []
    assert check_frame(SILVER["labels"], "y", _labels()) == []


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        ("actual_amount_paid", -149, "in_range"),  # a negative payment
        ("payment_plan_days", 451, "in_range"),
        ("is_cancel", 2, "isin"),
        ("transaction_date", pd.Timestamp("2014-12-31"), "in_range"),  # before the data
        ("transaction_date", pd.Timestamp.now() + pd.Timedelta(days=2), "in_range"),  # future
        ("membership_expire_date", pd.Timestamp("1970-01-01"), "in_range"),
        ("msno", "not-a-user-id", "str_length"),
    ],
)
def test_transaction_rules(column: str, value: object, rule: str) -> None:
    bad = _transactions()
    bad.loc[1, column] = value
    failures = check_frame(SILVER["transactions"], "silver.transactions", bad)
    assert _rules(failures) == {(column, rule)}
    assert failures[0].count == 1
    assert "value=" in failures[0].examples[0]


def test_a_shifted_column_breaks_several_rules() -> None:
    shifted = _transactions()
    numbers = [
        "payment_method_id",
        "payment_plan_days",
        "plan_list_price",
        "actual_amount_paid",
        "is_auto_renew",
    ]
    values = shifted.loc[0, numbers].tolist()  # one row slid one column to the right
    shifted.loc[0, numbers[1:]] = values[:-1]
    failures = check_frame(SILVER["transactions"], "silver.transactions", shifted)
    assert [f.column for f in failures] == ["is_auto_renew"]  # 149 slid into a 0/1 flag


def test_duplicate_user_day_in_logs() -> None:
    logs = _logs()
    logs.loc[1, "date"] = logs.loc[0, "date"]
    failures = check_frame(SILVER["user_logs"], "silver.user_logs", logs)
    assert {f.check for f in failures} == {"multiple_fields_uniqueness"}
    assert failures[0].count == 2  # both rows of the repeated (msno, date) are named


def test_a_key_repeated_in_many_rows_is_one_failure_counting_every_row() -> None:
    logs = pd.concat([_logs()] * 2_000, ignore_index=True)  # every user-day 2,000 times
    failures = check_frame(SILVER["user_logs"], "silver.user_logs", logs)
    assert [(f.column, f.check, f.count) for f in failures] == [
        ("msno, date", "multiple_fields_uniqueness", len(logs))
    ]
    assert len(failures[0].examples) == 5


def test_label_of_two_and_missing_label() -> None:
    labels = _labels()
    labels.loc[0, "is_churn"] = 2
    labels.loc[1, "cohort"] = "2017-03"  # a labelled cohort with no label
    failures = check_frame(SILVER["labels"], "silver.labels", labels)
    checks = {f.check for f in failures}
    assert any(c.startswith("isin") for c in checks)
    assert "label present for a labelled cohort" in checks


def _gold() -> pd.DataFrame:
    row = {name: 1.0 for name in FEATURES}
    row.update(gender="male", days_to_expiry=3.0, city=1.0, bd=25.0)
    gold = pd.DataFrame([row, row]).assign(msno=pd.array([A, B], "string"))
    gold["gender"] = gold["gender"].astype("string")
    gold["is_churn"] = pd.array([0, 1], "Int8")
    return gold


def test_gold_rules() -> None:
    assert check_frame(gold_schema(scoring=False), "gold", _gold()) == []
    future = _gold()
    future.loc[0, "days_since_last_log"] = 0.0  # a listen on the cutoff day itself
    future.loc[1, "msno"] = A  # the same user twice
    failures = check_frame(gold_schema(scoring=False), "gold", future)
    assert {f.column for f in failures} >= {"days_since_last_log"}
    assert any("msno" in f.column or "unique" in f.check for f in failures)
    unlabelled = _gold()
    unlabelled["is_churn"] = pd.array([None, None], "Int8")
    assert check_frame(gold_schema(scoring=True), "gold", unlabelled) == []
    assert check_frame(gold_schema(scoring=False), "gold", unlabelled) != []


def test_reports_merge_counts_across_buckets() -> None:
    bad = _transactions()
    bad.loc[:, "actual_amount_paid"] = -1
    part = check_frame(SILVER["transactions"], "silver.transactions", bad)
    report = merge([part, part], {"silver.transactions": 4})
    assert not report.ok
    assert report.failures[0].count == 4
    assert "silver.transactions.actual_amount_paid" in report.text()
    assert "in_range" in report.text()


@pytest.mark.parametrize("users", [0, 2])
def test_a_cohort_without_users_is_refused_naming_the_cohort_and_the_rule(
    tmp_path: Path, users: int
) -> None:
    lake = Lake(str(tmp_path))
    url = lake.url("gold", "features_2017-05", "v1")
    folder = Path(lake.path_of(url))
    folder.mkdir(parents=True)
    _gold().head(users).to_parquet(folder / "part-00000.parquet", index=False)
    report = validate_gold(lake, "2017-05", url)
    assert report.ok is bool(users)
    if not users:
        (failure,) = report.failures
        assert (failure.table, failure.check) == ("gold.2017-05", NOT_EMPTY)
        assert "gold.2017-05: cohort_not_empty failed: cohort 2017-05 has no user" in report.text()
        assert "cohort_2017-05.csv" in report.text()
