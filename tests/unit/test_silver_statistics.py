"""A silver part file is cleared from its Parquet statistics only when Pandera would pass it:
every rule broken in a file keeps it from being cleared, and random files never get a clearance
Pandera would refuse."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.local import LocalFileSystem
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pandera import pandas as pa_schema

from churn_transform.etl.silver import statistics
from churn_transform.etl.silver.ids import ids_in_order
from churn_transform.etl.silver.read import as_pandas
from churn_transform.etl.validation import SILVER, check_frame
from tests.unit.test_validation import A, B
from tests.unit.test_validation import _transactions as transactions_rows

FS = LocalFileSystem()
#: Each part file a test wrote: the writer's footer and the rows it wrote, as compaction has them.
_WRITTEN: dict[str, tuple[pq.FileMetaData, pa.Table]] = {}


def _file(
    frame: pd.DataFrame,
    folder: Path,
    name: str = "part-00000.parquet",
    row_group: int | None = None,
) -> str:
    """``frame`` written as silver writes a part: Parquet's own types, statistics on, ``msno``
    from a sorted dictionary."""
    path = str(folder / name)
    rows = pa.Table.from_pandas(frame, preserve_index=False)
    if "msno" in rows.column_names:
        ids = pc.dictionary_encode(rows["msno"]).combine_chunks()
        rows = ids_in_order(rows.set_column(rows.schema.get_field_index("msno"), "msno", ids))
    written: list[pq.FileMetaData] = []
    pq.write_table(
        rows, path, store_schema=False, row_group_size=row_group, metadata_collector=written
    )
    _WRITTEN[path] = (written[0], rows)
    return path


def clears(schema: pa_schema.DataFrameSchema, path: str, fs: LocalFileSystem) -> bool:
    """``statistics.clears`` (the file read back), asserted to agree with ``clears_written``
    on the same part as compaction has it: the writer's footer and the rows in memory."""
    read_back = statistics.clears(schema, path, fs)
    assert statistics.clears_written(schema, *_WRITTEN[path]) == read_back
    return read_back


def _members() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "msno": pd.array([A, B], "string"),
            "city": pd.array([1, 22], "Int64"),
            "bd": pd.array([None, 30], "Int64"),
            "gender": pd.array(["female", None], "string"),
            "registered_via": pd.array([7, None], "Int64"),
            "registration_init_time": pd.to_datetime(["2004-01-01", "2016-05-02"]),
        }
    )


def _logs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "msno": pd.array([A, A, B], "string"),
            "date": pd.to_datetime(["2017-01-01", "2017-01-02", "2017-01-01"]),
            **{band: pd.array([0, 3, 1], "Int64") for band in ("num_25", "num_50", "num_75")},
            "num_985": pd.array([0, 0, 0], "Int64"),
            "num_100": pd.array([5, 0, 2], "Int64"),
            "num_unq": pd.array([1, 2, 1], "Int64"),
            "total_secs": [1200.5, None, 86_400.0],
        }
    )


def _labels(march: list[int | None]) -> pd.DataFrame:
    """Labels of two March users (a labelled cohort) and of one of them in April (not labelled
    yet): sorted by cohort, then user, as silver has them."""
    return pd.DataFrame(
        {
            "msno": pd.array([A, B, A], "string"),
            "cohort": pd.array(["2017-03", "2017-03", "2017-04"], "string"),
            "is_churn": pd.array([*march, None], "Int8"),
        }
    )


FRAMES = {
    "members": _members,
    "transactions": transactions_rows,
    "user_logs": _logs,
    "labels": lambda: _labels([1, 0]),
}


@pytest.mark.parametrize("table", sorted(FRAMES))
def test_a_valid_part_is_cleared_without_pandera(table: str, tmp_path: Path) -> None:
    frame = FRAMES[table]()
    assert check_frame(SILVER[table], table, frame) == []
    assert clears(SILVER[table], _file(frame, tmp_path), FS)


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("transactions", "actual_amount_paid", -149),
        ("transactions", "payment_plan_days", 451),
        ("transactions", "is_cancel", 2),  # a flag: between the bounds of no 0/1 set
        ("transactions", "transaction_date", pd.Timestamp("2014-12-31")),
        ("transactions", "membership_expire_date", pd.Timestamp("1970-01-01")),
        ("transactions", "msno", "not-a-user-id"),  # a string rule, from the dictionary
        ("transactions", "payment_method_id", None),  # null where none is allowed
        ("members", "city", 23),
        ("members", "gender", "other"),
        ("members", "registration_init_time", pd.Timestamp("2003-12-31")),
        ("user_logs", "num_unq", 0),
        ("user_logs", "total_secs", 86_401.0),
        ("user_logs", "total_secs", -1.0),
        ("labels", "cohort", "2017-13"),
        ("labels", "is_churn", 2),
        ("labels", "msno", A),  # (2017-03, A) twice
    ],
)
def test_a_part_breaking_a_rule_is_left_to_pandera(
    table: str, column: str, value: object, tmp_path: Path
) -> None:
    bad = FRAMES[table]()
    bad.loc[1, column] = value
    assert check_frame(SILVER[table], table, bad)  # Pandera refuses it, naming the row
    assert not clears(SILVER[table], _file(bad, tmp_path), FS)


def test_a_repeated_key_is_not_cleared(tmp_path: Path) -> None:
    logs = _logs()
    logs.loc[1, "date"] = logs.loc[0, "date"]
    assert not clears(SILVER["user_logs"], _file(logs, tmp_path), FS)
    members = _members()
    members.loc[1, "msno"] = A
    assert not clears(SILVER["members"], _file(members, tmp_path), FS)


def test_a_dictionary_with_a_repeated_id_is_not_cleared_in_memory(tmp_path: Path) -> None:
    """Codes that rise over a dictionary naming one id twice hide a repeated key."""
    members = _members()
    members.loc[1, "msno"] = A
    path = _file(members, tmp_path)
    written, rows = _WRITTEN[path]
    twice = pa.DictionaryArray.from_arrays(pa.array([0, 1], pa.int32()), pa.array([A, A]))
    rows = rows.set_column(rows.schema.get_field_index("msno"), "msno", twice)
    assert check_frame(SILVER["members"], "members", members)  # Pandera refuses the repeat
    assert not statistics.clears_written(SILVER["members"], written, rows)


def test_keys_out_of_order_are_left_to_pandera_which_passes_them(tmp_path: Path) -> None:
    """Unique but unsorted: not decided from the order, and Pandera finds nothing wrong."""
    logs = _logs().iloc[[1, 0, 2]]
    assert not clears(SILVER["user_logs"], _file(logs, tmp_path), FS)
    assert check_frame(SILVER["user_logs"], "user_logs", logs) == []


def test_a_missing_column_or_another_type_is_not_cleared(tmp_path: Path) -> None:
    assert not clears(SILVER["user_logs"], _file(_logs().drop(columns="num_unq"), tmp_path), FS)
    wide = _logs().astype({"num_unq": "float64"})
    assert not clears(SILVER["user_logs"], _file(wide, tmp_path), FS)


def test_a_part_breaking_a_rule_over_the_whole_frame_is_left_to_pandera(tmp_path: Path) -> None:
    labels = _labels([1, None])  # a March user without a label
    failures = check_frame(SILVER["labels"], "labels", labels)
    assert {f.check for f in failures} == {"label present for a labelled cohort"}
    assert not clears(SILVER["labels"], _file(labels, tmp_path), FS)


# mostly valid values, so that both outcomes are frequent; each list ends with rule breakers
IDS = st.sampled_from([A, B, "c" * 44, A, B, "d" * 43, ""])
DAYS = st.sampled_from(
    list(pd.to_datetime(["2015-01-01", "2016-06-30", "2017-03-31", "2017-02-01", "2014-12-31"]))
)
COUNTS = st.sampled_from([0, 1, 2, 3, -1])
UNIQUE = st.sampled_from([1, 2, 3, 0])
SECONDS = st.one_of(
    st.none(), st.sampled_from([0.0, 3600.0, 86_400.0, float("nan"), -0.5, 86_400.5])
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.tuples(IDS, DAYS, COUNTS, UNIQUE, SECONDS), min_size=1, max_size=5),
    sort=st.booleans(),
    row_group=st.sampled_from([1, 2, 64]),
)
def test_a_cleared_part_always_passes_pandera(
    rows: list[tuple[str, pd.Timestamp, int, int, float | None]],
    sort: bool,
    row_group: int,
    tmp_path: Path,
) -> None:
    """Soundness: whatever the values, order and row groups, a file cleared from its statistics
    is one Pandera, reading its rows, would pass."""
    frame = pd.DataFrame(
        {
            "msno": pd.array([r[0] for r in rows], "string"),
            "date": pd.to_datetime([r[1] for r in rows]),
            **{band: pd.array([r[2] for r in rows], "Int64") for band in ("num_25", "num_50")},
            **{band: pd.array([0] * len(rows), "Int64") for band in ("num_75", "num_985")},
            "num_100": pd.array([r[2] for r in rows], "Int64"),
            "num_unq": pd.array([r[3] for r in rows], "Int64"),
            "total_secs": pd.array([r[4] for r in rows], "float64"),
        }
    )
    if sort:
        frame = frame.sort_values(["msno", "date"], kind="stable")
    path = _file(frame, tmp_path, "part.parquet", row_group)
    cleared = clears(SILVER["user_logs"], path, FS)
    event(f"cleared: {cleared}")  # both outcomes occur: pytest --hypothesis-show-statistics
    if cleared:
        read = as_pandas(pq.read_table(path))
        assert check_frame(SILVER["user_logs"], "user_logs", read) == []
