"""Silver: the raw tables typed, cleaned and bucketed by user, as Parquet; written and read here.

``part-<b>.parquet`` holds every row of the users whose id hashes to bucket ``b``
(``cleaning.bucket_of``), sorted by user and date. That keeps a user's history in one file (so
features and uniqueness checks need no shuffle, and memory is bounded by a bucket) and makes
Parquet's dictionary and zstd compression effective on ``msno``.

``write`` builds the tables in two Dask passes, ``scatter`` then ``compaction`` (with ``ids``
and ``dedup``); ``read`` gives a bucket back; ``tables`` says what each table is made of.
``ingest`` decides where the CSVs are read from and when the snapshot goes live.
"""

from churn_transform.etl.silver.read import (
    InconsistentSnapshotError,
    SilverSnapshot,
    read_bucket,
    read_bucket_table,
    silver_buckets,
    silver_snapshot,
    snapshot_layers,
)
from churn_transform.etl.silver.tables import SOURCES
from churn_transform.etl.silver.write import build_silver_tables

__all__ = [
    "SOURCES",
    "InconsistentSnapshotError",
    "SilverSnapshot",
    "build_silver_tables",
    "read_bucket",
    "read_bucket_table",
    "silver_buckets",
    "silver_snapshot",
    "snapshot_layers",
]
