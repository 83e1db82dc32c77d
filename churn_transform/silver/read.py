"""Reading silver back: the snapshot its pointer names, checked whole, and one bucket of a table.

Readers resolve the snapshot once (``silver_snapshot``) and read every bucket of it by name, so
a new snapshot published meanwhile cannot mix into their reads; and they refuse a snapshot whose
tables disagree on the snapshot or the bucket layout (a table left from another snapshot would
silently drop most users' rows at a join).
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churn_transform.lake import Lake
from churn_transform.silver.tables import SOURCES

_PANDAS_TYPES = {
    pa.int64(): pd.Int64Dtype(),
    pa.int8(): pd.Int8Dtype(),
    pa.string(): pd.StringDtype(),
    pa.large_string(): pd.StringDtype(),
}
#: The snapshot's description, beside its tables.
MANIFEST = "_manifest.json"
#: In each table's folder: the snapshot version and bucket count it was written for.
TABLE_MARKER = "_SNAPSHOT"
_PART = re.compile(r"part-(\d+)\.parquet$")


class InconsistentSnapshotError(RuntimeError):
    """Silver tables (or gold and silver) that do not belong to one snapshot."""


@dataclass(frozen=True)
class SilverSnapshot:
    """One published silver snapshot: its version name, raw snapshot id and bucket count."""

    version: str
    snapshot: str
    buckets: int


def table_marker(version: str, buckets: int) -> bytes:
    return json.dumps({"version": version, "buckets": buckets}).encode()


def silver_snapshot(lake: Lake, version: str | None = None) -> SilverSnapshot:
    """The current silver snapshot (or ``version``), after checking that every table's folder
    was written for it, with its bucket count and no part file beyond it."""
    version = version or lake.current_version("silver", "members")
    manifest = json.loads(lake.fs.cat_file(lake.path_of(lake.url("silver", version, MANIFEST))))
    snapshot = SilverSnapshot(version, manifest["snapshot"], int(manifest["buckets"]))
    for table in SOURCES:
        folder = lake.path_of(lake.version_url("silver", table, version))
        marker_path = posixpath.join(folder, TABLE_MARKER)
        marker = json.loads(lake.fs.cat_file(marker_path)) if lake.fs.exists(marker_path) else {}
        parts = [int(m[1]) for p in lake.fs.glob(f"{folder}/part-*") if (m := _PART.search(p))]
        if marker != {"version": version, "buckets": snapshot.buckets} or any(
            b >= snapshot.buckets for b in parts
        ):
            raise InconsistentSnapshotError(
                f"silver/{version}/{table} does not belong to the snapshot: it records "
                f"{marker or 'nothing'} and has part files {sorted(parts)}, where the snapshot "
                f"is {version} with {snapshot.buckets} bucket(s); run ingest again"
            )
    return snapshot


def silver_buckets(lake: Lake, version: str | None = None) -> int:
    """How many buckets the current silver snapshot (or ``version``) has."""
    return silver_snapshot(lake, version).buckets


def read_bucket_table(
    lake: Lake, table: str, bucket: int, coded_ids: bool = False, version: str | None = None
) -> pa.Table:
    """All rows of one bucket of a silver table of the current snapshot (or ``version``).

    ``coded_ids`` keeps ``msno`` dictionary-encoded, as Parquet stores it: reading then builds
    no strings, and ``features.user_codes`` gets integer user codes for free.
    """
    version = version or lake.current_version("silver", table)
    folder = lake.path_of(lake.version_url("silver", table, version))
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


def read_bucket(lake: Lake, table: str, bucket: int, version: str | None = None) -> pd.DataFrame:
    """``read_bucket_table`` as pandas (nullable types)."""
    rows = read_bucket_table(lake, table, bucket, version=version)
    return rows.to_pandas(types_mapper=_PANDAS_TYPES.get, ignore_metadata=True)
