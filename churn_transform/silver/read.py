"""Reading silver back: one bucket of the current version of a table, as Arrow or as pandas."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churn_transform.lake import Lake

_PANDAS_TYPES = {
    pa.int64(): pd.Int64Dtype(),
    pa.int8(): pd.Int8Dtype(),
    pa.string(): pd.StringDtype(),
    pa.large_string(): pd.StringDtype(),
}


def silver_buckets(lake: Lake) -> int:
    """How many buckets the current silver tables have (the version name records it)."""
    return int(lake.current_version("silver", "labels").rsplit("-b", 1)[1])


def read_bucket_table(lake: Lake, table: str, bucket: int, coded_ids: bool = False) -> pa.Table:
    """All rows of one bucket of the current version of a silver table, as an Arrow table.

    ``coded_ids`` keeps ``msno`` dictionary-encoded, as Parquet stores it: reading then builds
    no strings, and ``features.user_codes`` gets integer user codes for free.
    """
    folder = lake.path_of(lake.current("silver", table))
    path = f"{folder}/part-{bucket:05d}.parquet"
    if lake.fs.exists(path):
        return pq.read_table(
            path,
            filesystem=lake.fs,
            read_dictionary=["msno"] if coded_ids else None,
            use_threads=False,  # tasks read buckets in parallel already
        )
    # no user of this bucket in this table: an empty table of the same schema
    any_part = sorted(lake.fs.glob(f"{folder}/part-*.parquet"))[0]
    return pq.read_schema(any_part, filesystem=lake.fs).empty_table()


def read_bucket(lake: Lake, table: str, bucket: int) -> pd.DataFrame:
    """All rows of one bucket of the current version of a silver table (nullable pandas types)."""
    rows = read_bucket_table(lake, table, bucket)
    return rows.to_pandas(types_mapper=_PANDAS_TYPES.get, ignore_metadata=True)
