"""Raw KKBox CSVs into the lake: an as-is copy in bronze, then typed Parquet in silver, with Dask.

The tables are built together by two Dask passes (``silver``), each inside its new version
folder; only when every table is written does the new version become current
(``lake.Lake.publish_set``). The bronze copy runs beside the conversion, which reads the raw
files itself, when Dask's tasks can read them (in-process scheduler, or raw files on S3); a
cluster's workers read the bronze copy.
"""

from __future__ import annotations

import json
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import dask
import dask.local
import dask.threaded
from dask.base import get_scheduler
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from churn_transform.bronze import copy_to_bronze
from churn_transform.lake import Lake
from churn_transform.silver import SOURCES, build_silver_tables
from churn_transform.snapshot import Snapshot, snapshot_of

log = logging.getLogger(__name__)

#: Bump when cleaning or layout changes: a new silver version is written for the same input.
SILVER_FORMAT = "4"
BUCKET_BYTES = 64 * 2**20


@dataclass
class TableReport:
    rows_in: int = 0
    rows_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    cleaned: dict[str, int] = field(default_factory=dict)


@dataclass
class IngestReport:
    snapshot: str
    buckets: int
    version: str
    tables: dict[str, TableReport] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for table, report in self.tables.items():
            metrics[f"{table}.rows_in"] = report.rows_in
            metrics[f"{table}.rows_out"] = report.rows_out
            metrics[f"{table}.bytes_in"] = report.bytes_in
            metrics[f"{table}.bytes_out"] = report.bytes_out
            if report.bytes_in:
                metrics[f"{table}.size_reduction"] = 1 - report.bytes_out / report.bytes_in
            for rule, count in report.cleaned.items():
                metrics[f"{table}.cleaned.{rule}"] = count
        return metrics


def auto_buckets(snapshot: Snapshot) -> int:
    """One bucket per 64 MB of raw user logs: a bucket is what one task holds in memory."""
    return max(1, math.ceil(_raw_bytes(snapshot, "user_logs") / BUCKET_BYTES))


def ingest(
    lake: Lake,
    raw_url: str,
    storage_options: dict[str, object],
    buckets: int = 0,
    blocksize: str = "32MB",
) -> IngestReport:
    """Bronze copy and silver tables of the raw files at ``raw_url``; idempotent per snapshot."""
    snapshot = snapshot_of(raw_url, storage_options)
    buckets = buckets or auto_buckets(snapshot)
    version = f"{snapshot.id}-f{SILVER_FORMAT}-b{buckets}"
    report = IngestReport(snapshot.id, buckets, version)
    if _tasks_read(raw_url):  # convert from the raw files while they are copied
        with ThreadPoolExecutor(1, thread_name_prefix="bronze") as copier:
            copying = copier.submit(
                copy_to_bronze, lake, raw_url, storage_options, snapshot, cached=False
            )
            _convert(lake, report, snapshot, raw_url, storage_options, blocksize)
            copying.result()
    else:  # the workers may not see the raw folder: they read the lake's bronze copy
        bronze = copy_to_bronze(lake, raw_url, storage_options, snapshot)
        _convert(lake, report, snapshot, bronze, lake.storage_options, blocksize)
    if snapshot_of(raw_url, storage_options) != snapshot:
        raise RuntimeError(f"the raw files at {raw_url} changed during ingest; run it again")
    for table in SOURCES:  # only now, with every table written, does the new snapshot go live
        lake.point("silver", table, version)
    return report


def _tasks_read(raw_url: str) -> bool:
    """Whether Dask's tasks can read ``raw_url``: they run in this process, or it is not local."""
    in_process = get_scheduler() in (None, dask.threaded.get, dask.local.get_sync)
    return in_process or not isinstance(url_to_fs(raw_url)[0], LocalFileSystem)


def _raw_bytes(snapshot: Snapshot, table: str) -> int:
    return sum(snapshot.files[name][0] for name in SOURCES[table])


def _convert(
    lake: Lake,
    report: IngestReport,
    snapshot: Snapshot,
    source: str,
    source_options: dict[str, object],
    blocksize: str,
) -> None:
    """Write every silver table of ``report.version`` (not yet current) from ``source``."""

    def write(urls: dict[str, str]) -> None:
        biggest_first = dict(sorted(urls.items(), key=lambda item: -_raw_bytes(snapshot, item[0])))
        found = build_silver_tables(
            biggest_first, source, source_options, report.buckets, lake.storage_options, blocksize
        )
        for table, counts in found.items():
            lake.fs.pipe_file(
                f"{lake.path_of(urls[table])}/_counts.json", json.dumps(counts).encode()
            )

    urls = lake.publish_set("silver", list(SOURCES), report.version, write, point=False)
    for table, url in urls.items():
        report.tables[table] = _table_report(lake, url, _raw_bytes(snapshot, table))
        log.info(
            "silver/%s: %s rows in, %s out",
            table,
            report.tables[table].rows_in,
            report.tables[table].rows_out,
        )


def _table_report(lake: Lake, url: str, bytes_in: int) -> TableReport:
    """What the silver version folder ``url`` records of its table, and its Parquet bytes."""
    counts = json.loads(lake.fs.cat_file(f"{lake.path_of(url)}/_counts.json"))
    return TableReport(
        rows_in=counts.pop("rows_in", 0),
        rows_out=counts.pop("rows_out", 0),
        bytes_in=bytes_in,
        bytes_out=sum(
            size
            for path, size in lake.fs.du(lake.path_of(url), total=False).items()
            if path.endswith(".parquet")
        ),
        cleaned=counts,
    )
