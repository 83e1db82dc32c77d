"""Merging a bucket's layers (``silver.layers``) and finding landed increments (``increments``)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from churn_transform.etl.audit import RawHeaderError, check_headers, read_heads
from churn_transform.etl.increments import landed_increment, landed_increments, layer_version
from churn_transform.etl.silver.layers import merge_layers


def _logs(rows: list[tuple[str, int, float]]) -> pa.Table:
    msno, date, secs = zip(*rows, strict=True) if rows else ([], [], [])
    return pa.table(
        {
            "msno": pa.array(msno, pa.string()),
            "date": pa.array(date, pa.int64()),
            "total_secs": pa.array(secs, pa.float64()),
        }
    )


def test_event_rows_repeated_by_a_later_layer_are_dropped_and_the_rest_sorted() -> None:
    base = _logs([("a", 1, 10.0), ("b", 1, 5.0)])
    month = _logs([("b", 2, 7.0), ("a", 1, 10.0), ("a", 3, 1.0), ("a", 1, 11.0)])
    merged = merge_layers("user_logs", [base, month])
    assert merged.to_pylist() == [
        {"msno": "a", "date": 1, "total_secs": 10.0},
        {"msno": "a", "date": 1, "total_secs": 11.0},  # not a repeat: kept
        {"msno": "a", "date": 3, "total_secs": 1.0},
        {"msno": "b", "date": 1, "total_secs": 5.0},
        {"msno": "b", "date": 2, "total_secs": 7.0},
    ]


def test_the_newest_layer_wins_for_members_and_labels() -> None:
    members = [
        pa.table({"msno": ["b", "a"], "city": [1, 2]}),
        pa.table({"msno": ["c"], "city": [3]}),
        pa.table({"msno": ["a"], "city": [9]}),
    ]
    assert merge_layers("members", members).to_pylist() == [
        {"msno": "a", "city": 9},
        {"msno": "b", "city": 1},
        {"msno": "c", "city": 3},
    ]
    listed = pa.table(
        {
            "msno": ["a", "b"],
            "cohort": ["2017-04"] * 2,
            "is_churn": pa.array([None, None], pa.int8()),
        }
    )
    labelled = pa.table(
        {"msno": ["b"], "cohort": ["2017-04"], "is_churn": pa.array([1], pa.int8())}
    )
    assert merge_layers("labels", [listed, labelled])["is_churn"].to_pylist() == [None, 1]


def test_coded_ids_come_back_dictionary_encoded_in_sorted_order() -> None:
    first = _logs([("b", 1, 1.0)])
    second = _logs([("a", 1, 1.0), ("c", 1, 1.0)])
    coded = [t.set_column(0, "msno", t["msno"].dictionary_encode()) for t in (first, second)]
    merged = merge_layers("user_logs", coded, coded_ids=True)
    msno = merged["msno"].combine_chunks()
    assert pa.types.is_dictionary(msno.type)
    assert msno.dictionary.to_pylist() == ["a", "b", "c"]
    assert msno.indices.to_pylist() == [0, 1, 2]


def test_empty_layers_merge_to_an_empty_table_of_the_schema() -> None:
    merged = merge_layers("user_logs", [_logs([]), _logs([])])
    assert merged.num_rows == 0 and merged.column_names == ["msno", "date", "total_secs"]


def test_increments_are_found_in_month_order_and_strangers_named(tmp_path: Path) -> None:
    for month, name in (("2017-05", "user_logs.csv"), ("2017-04", "transactions.csv")):
        (tmp_path / "increments" / month).mkdir(parents=True)
        (tmp_path / "increments" / month / name).write_text("x\n")
    (tmp_path / "increments" / "2017-06").mkdir()  # nothing landed yet: not an increment
    found = landed_increments(str(tmp_path), {})
    assert [i.month for i in found] == ["2017-04", "2017-05"]
    assert found[0].sources()["transactions"] == ("transactions.csv",)
    assert found[1].sources() == {
        "members": (),
        "transactions": (),
        "user_logs": ("user_logs.csv",),
        "labels": (),
    }
    # a version depends on what it is put on, and on the increment's files
    assert layer_version("a", found[0], "5", 3) != layer_version("b", found[0], "5", 3)
    (tmp_path / "increments" / "2017-04" / "transactions.csv").write_text("x,y\n")
    assert landed_increments(str(tmp_path), {})[0].id != found[0].id

    (tmp_path / "increments" / "2017-05" / "train_v2.csv").write_text("x\n")
    with pytest.raises(ValueError, match=r"2017-05/train_v2.csv is not a file of an increment"):
        landed_increments(str(tmp_path), {})
    (tmp_path / "increments" / "2017-05" / "train_v2.csv").unlink()
    (tmp_path / "increments" / "may").mkdir()
    with pytest.raises(ValueError, match="increments/may: .* named YYYY-MM"):
        landed_increments(str(tmp_path), {})


def test_a_campaign_log_lands_with_its_month_and_feeds_no_table(tmp_path: Path) -> None:
    month = tmp_path / "increments" / "2017-04"
    month.mkdir(parents=True)
    (month / "cohort_2017-05.csv").write_text("msno,is_churn\nAAAA=,0\n")
    (month / "campaigns.csv").write_text(
        "msno,campaign_id,offered_date,treated\nAAAA=,retention-2017-04,20170401,1\n"
    )
    increment = landed_increment(str(tmp_path), {}, "2017-04")
    assert set(increment.files) == {"cohort_2017-05.csv", "campaigns.csv"}
    assert increment.sources() == {
        "members": (),
        "transactions": (),
        "user_logs": (),
        "labels": ("cohort_2017-05.csv",),
    }
    check_headers(read_heads(increment.url, {}, increment.files))  # its columns are the log's
    (month / "campaigns.csv").write_text("msno,treated\nAAAA=,1\n")
    with pytest.raises(RawHeaderError, match="campaigns.csv: expected columns"):
        check_headers(read_heads(increment.url, {}, increment.files))
