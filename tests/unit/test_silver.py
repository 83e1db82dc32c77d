"""Silver's two passes on hand-made CSVs, and how a block groups its ids by bucket."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from churn_transform.etl.cleaning import bucket_of
from churn_transform.etl.silver import build_silver_tables
from churn_transform.etl.silver.ids import ids_by_bucket
from churn_transform.etl.silver.scatter import parse_block, scatter_block
from churn_transform.schema import RAW_FILES

HEADER = ",".join(RAW_FILES["user_logs.csv"])


def test_a_block_too_wide_for_int32_is_parsed_as_int64() -> None:
    narrow = parse_block(b"a=,20170101,1,0,0,0,5,6,100.5\n", "user_logs.csv", False)
    wide = parse_block(b"a=,20170101,3000000000,0,0,0,5,6,100.5\n", "user_logs.csv", False)
    assert narrow.schema.field("num_25").type == pa.int32()
    assert wide.schema.field("num_25").type == pa.int64()
    assert wide["num_25"].to_pylist() == [3_000_000_000]
    assert pa.types.is_dictionary(wide.schema.field("msno").type)


def test_a_quoted_block_parses_to_the_same_values_as_a_plain_one() -> None:
    plain = b"a=,20170101,1,0,0,0,5,6,100.5\nb=,20170102,2,0,0,0,5,6,1.0\n"
    quoted = b'"a=",20170101,1,0,0,0,5,6,"100.5"\nb=,"20170102",2,0,0,0,5,6,1.0\n'
    expected = parse_block(plain, "user_logs.csv", False)
    assert parse_block(quoted, "user_logs.csv", False).equals(expected)
    assert expected["msno"].to_pylist() == ["a=", "b="]


def test_blocks_of_both_widths_meet_in_one_bucket_with_every_value(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "user_logs.csv").write_text(
        f"{HEADER}\nu1=,20170101,3000000000,0,0,0,5,6,100.5\nu2=,20170102,1,0,0,0,2,3,50.0\n"
    )
    (raw / "user_logs_v2.csv").write_text(
        f"{HEADER}\nu1=,20170301,7,0,0,0,1,1,10.0\nu2=,20170102,1,0,0,0,2,3,50.0\n"
    )  # fits int32: this file's block is parsed narrow, the other's wide
    out = tmp_path / "silver"
    counts = build_silver_tables({"user_logs": str(out)}, str(raw), {}, 1, {}).counts
    rows = pq.read_table(out / "part-00000.parquet").to_pylist()
    assert counts["user_logs"]["duplicates_removed"] == 1  # v2 repeats a v1 row exactly
    assert [(r["msno"], r["num_25"]) for r in rows] == [
        ("u1=", 3_000_000_000),
        ("u1=", 7),
        ("u2=", 1),
    ]
    assert pq.read_schema(out / "part-00000.parquet").field("num_25").type == pa.int64()
    assert not (out / "_scatter").exists()


def test_each_bucket_uses_one_slice_of_the_block_dictionary() -> None:
    names = [f"user-{i:04d}" for i in range(500)]
    ids = pc.dictionary_encode(pa.array([names[i % 500] for i in range(3000)] + [None]))
    grouped, buckets = ids_by_bucket(ids, 7)
    assert grouped.to_pylist() == ids.to_pylist()  # the same ids, re-coded
    assert (buckets == bucket_of(ids, 7)).all()
    codes = grouped.indices.to_numpy(zero_copy_only=False)[:-1]
    for b in range(7):
        used = np.unique(codes[buckets[:-1] == b])
        assert used.max() - used.min() + 1 == len(used)  # contiguous


def test_an_unparsable_value_names_the_file_block_column_and_value(tmp_path: Path) -> None:
    block = b"a=,20170101,1,0,0,0,5,6,100.5\nb=,20170102,lots,0,0,0,5,6,1.0\n"
    with pytest.raises(ValueError, match=r"user_logs\.csv, block 3 \(column num_25\).*'lots'"):
        scatter_block(block, "user_logs.csv", False, "user_logs", 3, str(tmp_path), 2, {})
    assert not list(tmp_path.iterdir())  # nothing written
