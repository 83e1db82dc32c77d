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
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churn_transform.etl.silver.layers import merge_layers
from churn_transform.etl.silver.tables import SOURCES
from churn_transform.lake import Lake

#: Arrow types read as pandas' nullable ones (what the Pandera schemas of silver declare).
PANDAS_TYPES = {
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
    """One published silver snapshot: its version name, raw snapshot id, bucket count, and the
    versions whose folders hold its rows, oldest first (itself alone, unless monthly increments
    were ingested on top of a base: ``layers``)."""

    version: str
    snapshot: str
    buckets: int
    layers: tuple[str, ...] = ()


def table_marker(version: str, buckets: int) -> bytes:
    return json.dumps({"version": version, "buckets": buckets}).encode()


def silver_snapshot(lake: Lake, version: str | None = None) -> SilverSnapshot:
    """The current silver snapshot (or ``version``), after checking that every table's folder
    of each of its layers was written for that layer, with its bucket count and no part file
    beyond it."""
    version = version or lake.current_version("silver", "members")
    manifest = _manifest(lake, version)
    snapshot = SilverSnapshot(
        version,
        manifest["snapshot"],
        int(manifest["buckets"]),
        tuple(manifest.get("layers", [version])),
    )
    for layer, table in ((layer, table) for layer in snapshot.layers for table in SOURCES):
        folder = lake.path_of(lake.version_url("silver", table, layer))
        marker_path = posixpath.join(folder, TABLE_MARKER)
        marker = json.loads(lake.fs.cat_file(marker_path)) if lake.fs.exists(marker_path) else {}
        parts = [int(m[1]) for p in lake.fs.glob(f"{folder}/part-*") if (m := _PART.search(p))]
        if marker != {"version": layer, "buckets": snapshot.buckets} or any(
            b >= snapshot.buckets for b in parts
        ):
            raise InconsistentSnapshotError(
                f"silver/{layer}/{table} does not belong to the snapshot: it records "
                f"{marker or 'nothing'} and has part files {sorted(parts)}, where the snapshot "
                f"is {version} with {snapshot.buckets} bucket(s); run ingest again"
            )
    return snapshot


def _manifest(lake: Lake, version: str) -> dict[str, Any]:
    return dict(json.loads(lake.fs.cat_file(lake.path_of(lake.url("silver", version, MANIFEST)))))


def snapshot_layers(lake: Lake, version: str) -> tuple[str, ...]:
    """The versions holding a snapshot's rows, oldest first (cached: a written version never
    changes)."""
    key = (lake.uri, version)
    if key not in _LAYERS:
        _LAYERS[key] = tuple(_manifest(lake, version).get("layers", [version]))
    return _LAYERS[key]


_LAYERS: dict[tuple[str, str], tuple[str, ...]] = {}


def silver_buckets(lake: Lake, version: str | None = None) -> int:
    """How many buckets the current silver snapshot (or ``version``) has."""
    return silver_snapshot(lake, version).buckets


def read_bucket_table(
    lake: Lake,
    table: str,
    bucket: int,
    coded_ids: bool = False,
    version: str | None = None,
    newest_layer_only: bool = False,
) -> pa.Table:
    """All rows of one bucket of a silver table of the current snapshot (or ``version``),
    merged over its layers (``layers.merge_layers``); ``newest_layer_only``: only the rows its
    newest layer added (what an increment's audit checks).

    ``coded_ids`` keeps ``msno`` dictionary-encoded, as Parquet stores it: reading then builds
    no strings, and ``features.user_codes`` gets integer user codes for free.
    """
    version = version or lake.current_version("silver", table)
    layers = snapshot_layers(lake, version)
    if newest_layer_only:
        layers = layers[-1:]
    found = [_read_part(lake, table, bucket, layer, coded_ids) for layer in layers]
    parts = [rows for rows in found if rows is not None]
    if len(parts) == 1:
        return parts[0]
    if parts:
        return merge_layers(table, parts, coded_ids)
    # no user of this bucket in this table: an empty table of the same schema
    for layer in snapshot_layers(lake, version):
        folder = lake.path_of(lake.version_url("silver", table, layer))
        any_part = sorted(lake.fs.glob(f"{folder}/part-*.parquet"))[:1]
        if any_part:
            return pq.read_schema(any_part[0], filesystem=lake.fs).empty_table()
    raise FileNotFoundError(f"silver/{version}/{table} has no part file in any layer")


def part_paths(
    lake: Lake, table: str, bucket: int, version: str, newest_layer_only: bool = False
) -> list[str]:
    """The part files holding one bucket of a silver table of ``version``, one per layer that
    has rows of it, oldest first (``newest_layer_only``: the newest layer's, if it has one)."""
    layers = snapshot_layers(lake, version)
    paths = [_part_path(lake, table, bucket, layer) for layer in layers]
    if newest_layer_only:
        paths = paths[-1:]
    return [path for path in paths if lake.fs.exists(path)]


def _part_path(lake: Lake, table: str, bucket: int, layer: str) -> str:
    folder = lake.path_of(lake.version_url("silver", table, layer))
    return f"{folder}/part-{bucket:05d}.parquet"


def _read_part(lake: Lake, table: str, bucket: int, layer: str, coded_ids: bool) -> pa.Table | None:
    path = _part_path(lake, table, bucket, layer)
    if not lake.fs.exists(path):
        return None
    return pq.read_table(
        path,
        filesystem=lake.fs,
        read_dictionary=["msno"] if coded_ids else None,
        use_threads=False,  # tasks read buckets in parallel already
    )


def read_bucket(
    lake: Lake,
    table: str,
    bucket: int,
    version: str | None = None,
    newest_layer_only: bool = False,
) -> pd.DataFrame:
    """``read_bucket_table`` as pandas (nullable types)."""
    rows = read_bucket_table(
        lake, table, bucket, version=version, newest_layer_only=newest_layer_only
    )
    return as_pandas(rows)


def as_pandas(rows: pa.Table) -> pd.DataFrame:
    """Silver rows as pandas with nullable types (``PANDAS_TYPES``), as validation reads them."""
    return rows.to_pandas(types_mapper=PANDAS_TYPES.get, ignore_metadata=True)
