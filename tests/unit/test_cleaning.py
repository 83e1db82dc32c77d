"""Each documented cleaning rule, on inline tables: what it changes and what it counts."""

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from churn_transform.etl.cleaning import (
    _fnv1a,
    bucket_of,
    clean_labels,
    clean_members,
    clean_transactions,
    clean_user_logs,
)
from churn_transform.etl.silver.dedup import drop_exact_duplicates


def test_members_ages_and_registration() -> None:
    members = pa.table(
        {
            "msno": ["a", "b", "c", "d", "e"],
            "bd": pa.array([0, 27, -7168, 2016, None], pa.int64()),
            "registered_via": pa.array([7, -1, 9, 3, None], pa.int64()),
            "registration_init_time": pa.array(
                [20040326, 20170429, 20170230, None, 20040326], pa.int64()
            ),
        }
    )
    cleaned, counts = clean_members(members)
    assert cleaned["bd"].to_pylist() == [None, 27, None, None, None]
    assert cleaned["registered_via"].to_pylist() == [7, None, 9, 3, None]
    assert cleaned["registration_init_time"].to_pylist()[:4] == [
        dt.datetime(2004, 3, 26),
        dt.datetime(2017, 4, 29),
        None,
        None,
    ]
    assert counts == {
        "bd_out_of_range": 3,
        "registered_via_negative": 1,
        "registration_invalid_date": 1,
    }
    assert cleaned.schema.field("registration_init_time").type == pa.timestamp("ns")
    ids, before = cleaned["msno"].chunk(0), members["msno"].chunk(0)
    assert ids.buffers()[2].address == before.buffers()[2].address  # untouched: not copied
    assert members["bd"].to_pylist() == [0, 27, -7168, 2016, None]  # the input is not modified


def test_transactions_epoch_expiry_becomes_null() -> None:
    transactions = pa.table(
        {
            "transaction_date": pa.array([20170101, 20170131, 20170131], pa.int64()),
            "membership_expire_date": pa.array([19700101, 20170302, 20171301], pa.int64()),
        }
    )
    cleaned, counts = clean_transactions(transactions)
    assert cleaned["membership_expire_date"].to_pylist() == [None, dt.datetime(2017, 3, 2), None]
    assert cleaned["transaction_date"].to_pylist() == [
        dt.datetime(2017, 1, 1),
        dt.datetime(2017, 1, 31),
        dt.datetime(2017, 1, 31),
    ]
    assert counts == {
        "expire_19700101": 1,
        "transaction_date_invalid_date": 0,
        "expire_invalid_date": 1,
    }


@pytest.mark.parametrize(
    ("secs", "expected", "negative", "over"),
    [
        (-9.2e15, None, 1, 0),
        (0.001, 0.001, 0, 0),
        (86_400.0, 86_400.0, 0, 0),
        (9.2e6, 86_400.0, 0, 1),
        (None, None, 0, 0),
    ],
)
def test_user_logs_total_secs(
    secs: float | None, expected: float | None, negative: int, over: int
) -> None:
    logs = pa.table(
        {"date": pa.array([20170301], pa.int64()), "total_secs": pa.array([secs], pa.float64())}
    )
    cleaned, counts = clean_user_logs(logs)
    assert cleaned["total_secs"].to_pylist() == [expected]
    assert cleaned["date"].to_pylist() == [dt.datetime(2017, 3, 1)]
    assert (counts["total_secs_negative"], counts["total_secs_over_a_day"]) == (negative, over)


def test_scoring_labels_are_unknown() -> None:
    rows = pd.DataFrame({"msno": ["a", "b"], "is_churn": [0, 0]})
    known, _ = clean_labels(rows, "2017-03", known=True)
    unknown, _ = clean_labels(rows, "2017-04", known=False)
    assert known["is_churn"].tolist() == [0, 0]
    assert unknown["is_churn"].isna().all()
    assert unknown["cohort"].tolist() == ["2017-04", "2017-04"]


def test_buckets_are_stable_and_spread() -> None:
    ids = pd.Series([f"user-{i}" for i in range(2000)])
    first, again = bucket_of(ids, 8), bucket_of(ids.copy(), 8)
    assert (first == again).all()
    assert set(first) == set(range(8))
    assert bucket_of(pd.Series(["user-1"]), 8)[0] == first[1]


def test_ids_of_one_length_hash_as_fnv1a_like_any_others() -> None:
    same_length = [f"{i:044d}" for i in range(300)]
    mixed = pa.array([*same_length, "a"], pa.large_string())  # takes the general path
    assert (_fnv1a(pa.array(same_length, pa.large_string())) == _fnv1a(mixed)[:-1]).all()
    assert _fnv1a(mixed)[-1] == 0xAF63DC4C8601EC8C  # the published FNV-1a 64 of "a"
    sliced = pa.array(["zz", *same_length], pa.large_string()).slice(1)
    assert (_fnv1a(sliced) == _fnv1a(pa.array(same_length, pa.large_string()))).all()


def test_exact_duplicates_only_are_dropped() -> None:
    rows = pa.table(
        {
            "msno": ["b", "a", "a", "a", None, None],
            "day": [1, 2, 2, 2, None, None],
            "x": [1.0, None, None, 3.0, 1.0, 1.0],
        }
    )
    unique = drop_exact_duplicates(rows, ["msno", "day"]).to_pydict()
    # sorted by the keys (nulls first), equal keys in input order, the one repeat gone
    assert unique == {
        "msno": [None, "a", "a", "b"],
        "day": [None, 2, 2, 1],
        "x": [1.0, None, 3.0, 1.0],
    }


def test_duplicates_are_found_whatever_the_input_order() -> None:
    # a user's days out of order: sorting by user alone is not enough, all keys are sorted
    rows = pa.table(
        {"msno": ["a", "b", "a", "a", "b"], "day": [3, 1, 1, 3, 1], "x": [1, 2, 3, 1, 2]}
    )
    unique = drop_exact_duplicates(rows, ["msno", "day"]).to_pydict()
    assert unique == {"msno": ["a", "a", "b"], "day": [1, 3, 1], "x": [3, 1, 2]}


@pytest.mark.parametrize("seed", range(5))
def test_duplicate_removal_matches_pandas_on_random_rows(seed: int) -> None:
    # few distinct values: many ties in the first keys, so both sort paths and the tie narrowing
    # are exercised; with every column a key, the result is pandas' sorted drop_duplicates
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.integers(0, 4, 300) for name in ("u", "d", "x", "y")})
    keys = ["u", "d", "x", "y"]
    if seed % 2:  # already in order, as raw logs mostly are: the path without a full sort
        frame = frame.sort_values(keys, kind="stable", ignore_index=True)
    unique = drop_exact_duplicates(pa.Table.from_pandas(frame), keys).to_pandas()
    expected = frame.drop_duplicates().sort_values(keys, kind="stable", ignore_index=True)
    pd.testing.assert_frame_equal(unique, expected)
