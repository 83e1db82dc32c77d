"""Raw KKBox CSVs into the lake: an as-is copy in bronze, then typed Parquet in silver, with Dask.

Under the lake's lock, one run: removes what earlier runs left unpublished; fingerprints the raw
folder and checks each file's header and that no file lost its rows (``audit``); writes the new
silver snapshot, all four tables, in its own folder (two Dask passes, ``silver``); checks that no
table shrank beyond the allowed share and validates the snapshot (Pandera); and only then points
``silver/CURRENT`` at it, in one atomic write. A snapshot that fails stays unpublished, with its
report. The bronze copy runs beside the conversion, which reads the raw files itself, when
Dask's tasks can read them (in-process scheduler, or raw files on S3); a cluster's workers read
the bronze copy.
"""

from __future__ import annotations

import json
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.local
import dask.threaded
from dask.base import get_scheduler
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from churn_transform.etl.audit import (
    AuditError,
    DataLossError,
    RawHead,
    check_files_kept,
    check_headers,
    check_increment_kept,
    check_tables_kept,
    files_record,
    read_heads,
    usual_month,
)
from churn_transform.etl.bronze import (
    check_increments_kept,
    copy_increment_to_bronze,
    copy_to_bronze,
)
from churn_transform.etl.fingerprint import RawFingerprint, fingerprint_of
from churn_transform.etl.increments import INCREMENTS, Increment, landed_increments, layer_version
from churn_transform.etl.silver import SOURCES, build_silver_tables
from churn_transform.etl.silver.read import MANIFEST, TABLE_MARKER, table_marker
from churn_transform.etl.silver.write import WrittenTables
from churn_transform.etl.validation import (
    Failure,
    ValidationReport,
    check_written,
    validate_silver,
    written_report,
)
from churn_transform.lake import Lake, TableNotFoundError

log = logging.getLogger(__name__)

#: Bump when cleaning or layout changes: a new silver version is written for the same input.
SILVER_FORMAT = "5"
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
    #: Data losses let through by ``allow_shrink``.
    warnings: list[str] = field(default_factory=list)
    #: The monthly increments on top of the base snapshot, oldest first (``version`` is then
    #: the newest's layer).
    increments: list[str] = field(default_factory=list)

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


def auto_buckets(snapshot: RawFingerprint) -> int:
    """One bucket per 64 MB of raw user logs: a bucket is what one task holds in memory."""
    return max(1, math.ceil(_raw_bytes(snapshot, "user_logs") / BUCKET_BYTES))


def ingest(
    lake: Lake,
    raw_url: str,
    storage_options: dict[str, object],
    buckets: int = 0,
    blocksize: str = "32MB",
    max_shrink: float = 0.5,
    allow_shrink: bool = False,
) -> IngestReport:
    """Bronze copy and silver snapshot of the raw files at ``raw_url``, audited, then published;
    idempotent per snapshot.

    Raises ``audit.RawHeaderError`` for a header that is not the expected one,
    ``audit.DataLossError`` for a file that lost every row or a table that shrank by more than
    ``max_shrink`` (unless ``allow_shrink``) or an ingested increment that has not landed any
    more (likewise), ``audit.ChangedIncrementError`` for an increment whose files changed after
    it was ingested, ``audit.AuditError`` when validation fails, and
    ``lake.LakeLockedError`` when another writer holds the lake.
    """
    with lake.lock("ingest"):
        for area, table in (("silver", ""), ("bronze", "raw"), ("bronze", INCREMENTS)):
            lake.remove_unpublished(area, table)
        snapshot = fingerprint_of(raw_url, storage_options)
        buckets = buckets or auto_buckets(snapshot)
        report = IngestReport(snapshot.id, buckets, f"{snapshot.id}-f{SILVER_FORMAT}-b{buckets}")
        previous = _current_manifest(lake)
        check_increments_kept(
            lake,
            previous.get("increments", {}),
            landed_increments(raw_url, storage_options),
            storage_options,
            allow_shrink,
        )
        if previous.get("version") != report.version:
            _write_and_audit(
                lake,
                report,
                snapshot,
                raw_url,
                storage_options,
                blocksize,
                previous,
                max_shrink,
                allow_shrink,
            )
            if fingerprint_of(raw_url, storage_options) != snapshot:
                raise RuntimeError(
                    f"the raw files at {raw_url} changed during ingest; run it again"
                )
        else:
            _fill_tables(lake, report, snapshot)
        _ingest_increments(
            lake, report, raw_url, storage_options, blocksize, max_shrink, allow_shrink
        )
        lake.point("silver", "", report.version)  # the whole snapshot goes live at once
        lake.point("bronze", "raw", snapshot.id)
    return report


def _ingest_increments(
    lake: Lake,
    report: IngestReport,
    raw_url: str,
    storage_options: dict[str, object],
    blocksize: str,
    max_shrink: float,
    allow_shrink: bool,
) -> None:
    """Put each landed monthly increment, oldest first, as a layer on the base snapshot
    ``report.version`` (written once: a layer already in the lake is reused, a new one first
    checked like the base files, against what a month usually brings), and make
    ``report.version`` the top one. Every layer below the top is marked published (kept by
    ``remove_unpublished``) but not made current: readers see the base and all increments go
    live at once."""
    increments = landed_increments(raw_url, storage_options)
    for increment in increments:
        version = layer_version(report.version, increment, SILVER_FORMAT, report.buckets)
        if not lake.has_version("silver", "", version):
            heads = read_heads(increment.url, storage_options, increment.files)
            check_headers(heads)
            sizes = {name: size for name, (size, _) in increment.files.items()}
            usual = usual_month(_manifest_of(lake, report.version))
            for warning in check_increment_kept(
                increment.month, heads, sizes, usual, max_shrink, allow_shrink
            ):
                log.warning("allowed by allow_shrink: %s", warning)
                report.warnings.append(warning)
            written = _write_layer(lake, report, version, increment, storage_options, blocksize)
            audited = _audit(lake, version, written)
        else:  # written by an earlier run: audited then, or read back now
            audited = lake.audit_of("silver", "", version) or _audit(lake, version)
        if not audited["ok"]:
            raise AuditError(
                f"silver {version} (the increment of {increment.month}) failed its audit and "
                "was not published",
                audited,
                audited.get("text", ""),
            )
        lake.mark_published("silver", "", report.version)
        report.version = version
        report.increments.append(increment.month)
    if landed_increments(raw_url, storage_options) != increments:
        raise RuntimeError(f"the increments at {raw_url} changed during ingest; run it again")


def _write_layer(
    lake: Lake,
    report: IngestReport,
    version: str,
    increment: Increment,
    storage_options: dict[str, object],
    blocksize: str,
) -> ValidationReport:
    """Write the silver layer of ``increment`` on top of ``report.version`` (unpublished):
    only the increment's rows, bucketed like the base, each table's counts and marker, and
    a manifest naming every layer of the new snapshot; the audit of its part files, made as
    they were written."""
    previous = _manifest_of(lake, report.version)
    urls = lake.stage("silver", list(SOURCES), version)
    files = increment.sources()
    source, source_options = increment.url, storage_options
    bronze = copy_increment_to_bronze(lake, increment, storage_options)
    if not _tasks_read(increment.url):  # the workers read the lake's bronze copy
        source, source_options = bronze, lake.storage_options
    written = build_silver_tables(
        {table: url for table, url in urls.items() if files[table]},
        {name: f"{source}/{name}" for names in files.values() for name in names},
        source_options,
        report.buckets,
        lake.storage_options,
        blocksize,
        files=files,
        check=check_written,
    )
    found = written.counts
    for table, url in urls.items():
        folder = lake.path_of(url)
        lake.fs.makedirs(folder, exist_ok=True)
        counts = found.get(table, {"rows_in": 0, "rows_out": 0})
        lake.fs.pipe_file(f"{folder}/_counts.json", json.dumps(counts).encode())
        lake.fs.pipe_file(f"{folder}/{TABLE_MARKER}", table_marker(version, report.buckets))
    manifest = {
        **previous,
        "version": version,
        "layers": [*previous.get("layers", [report.version]), version],
        "increments": {**previous.get("increments", {}), increment.month: increment.id},
        "increment_bytes": {
            **previous.get("increment_bytes", {}),
            increment.month: {name: size for name, (size, _) in increment.files.items()},
        },
        "increment_rows_in": {
            **previous.get("increment_rows_in", {}),
            increment.month: {table: counts.get("rows_in", 0) for table, counts in found.items()},
        },
    }
    manifest_path = lake.path_of(lake.url("silver", version, MANIFEST))
    lake.fs.pipe_file(manifest_path, json.dumps(manifest, indent=1).encode())
    lake.complete("silver", "", version)
    return written_report(written.checked)


def _write_and_audit(
    lake: Lake,
    report: IngestReport,
    snapshot: RawFingerprint,
    raw_url: str,
    storage_options: dict[str, object],
    blocksize: str,
    previous: dict[str, Any],
    max_shrink: float,
    allow_shrink: bool,
) -> None:
    """Check the raw files, write the snapshot (unless written and audited before), check what
    it lost and validate it; raises, leaving it unpublished with its report, when it fails."""
    heads = read_heads(raw_url, storage_options)
    check_headers(heads)
    sizes = {name: size for name, (size, _) in snapshot.files.items()}
    report.warnings += check_files_kept(
        heads, previous.get("files", {}), allow_shrink, sizes, max_shrink
    )
    written = None
    if not lake.has_version("silver", "", report.version):
        written = _write_snapshot(
            lake, report, snapshot, heads, raw_url, storage_options, blocksize
        )
    _fill_tables(lake, report, snapshot)
    audited = lake.audit_of("silver", "", report.version)
    rows = {table: found.rows_in for table, found in report.tables.items()}
    try:
        report.warnings += check_tables_kept(
            rows, previous.get("rows_in", {}), max_shrink, allow_shrink
        )
    except DataLossError as loss:
        if audited is None:
            lake.record_audit("silver", "", report.version, {"ok": False, "text": str(loss)})
        raise
    audited = audited or _audit(lake, report.version, written)
    if not audited["ok"]:
        raise AuditError(
            f"silver {report.version} failed its audit and was not published",
            audited,
            audited.get("text", ""),
        )
    for warning in report.warnings:
        log.warning("allowed by allow_shrink: %s", warning)


def _audit(lake: Lake, version: str, written: ValidationReport | None = None) -> dict[str, Any]:
    """Keep the audit of the written, unpublished ``version`` beside it: ``written``, the
    verdicts on its part files made as compaction wrote them, or else (a version written by an
    earlier run that stopped before its audit) its newest layer's part files read back and
    validated."""
    validation = written or validate_silver(lake, version, newest_layer_only=True)
    audited = {**validation.as_dict(), "text": validation.text()}
    where = lake.record_audit("silver", "", version, audited)
    log.info("silver %s: %s (report: %s)", version, validation.text().splitlines()[0], where)
    return audited


def _current_manifest(lake: Lake) -> dict[str, Any]:
    """The current silver snapshot's manifest; empty when there is none."""
    try:
        return _manifest_of(lake, lake.current_version("silver", ""))
    except TableNotFoundError:
        return {}


def _manifest_of(lake: Lake, version: str) -> dict[str, Any]:
    path = lake.path_of(lake.url("silver", version, MANIFEST))
    return dict(json.loads(lake.fs.cat_file(path))) if lake.fs.exists(path) else {}


def _write_snapshot(
    lake: Lake,
    report: IngestReport,
    snapshot: RawFingerprint,
    heads: dict[str, RawHead],
    raw_url: str,
    storage_options: dict[str, object],
    blocksize: str,
) -> ValidationReport:
    """Bronze copy and every silver table of the snapshot, marked complete (not yet current);
    the audit of its part files, made as they were written."""
    urls = lake.stage("silver", list(SOURCES), report.version)
    raw = {name: f"{raw_url}/{name}" for names in SOURCES.values() for name in names}
    if _tasks_read(raw_url):  # convert from the raw files while they are copied
        with ThreadPoolExecutor(1, thread_name_prefix="bronze") as copier:
            copying = copier.submit(
                copy_to_bronze, lake, raw_url, storage_options, snapshot, cached=False
            )
            written = _convert(lake, report, urls, snapshot, raw, storage_options, blocksize)
            copying.result()
    else:  # the workers may not see the raw folder: they read the lake's bronze copy
        bronze = copy_to_bronze(lake, raw_url, storage_options, snapshot)
        written = _convert(lake, report, urls, snapshot, bronze, lake.storage_options, blocksize)
    manifest = {
        "version": report.version,
        "snapshot": snapshot.id,
        "buckets": report.buckets,
        "format": SILVER_FORMAT,
        "files": files_record(snapshot, heads),
        "rows_in": {table: counts.get("rows_in", 0) for table, counts in written.counts.items()},
    }
    manifest_path = lake.path_of(lake.url("silver", report.version, MANIFEST))
    lake.fs.pipe_file(manifest_path, json.dumps(manifest, indent=1).encode())
    lake.complete("silver", "", report.version)
    return written_report(written.checked)


def _tasks_read(raw_url: str) -> bool:
    """Whether Dask's tasks can read ``raw_url``: they run in this process, or it is not local."""
    in_process = get_scheduler() in (None, dask.threaded.get, dask.local.get_sync)
    return in_process or not isinstance(url_to_fs(raw_url)[0], LocalFileSystem)


def _raw_bytes(snapshot: RawFingerprint, table: str) -> int:
    return sum(snapshot.files[name][0] for name in SOURCES[table])


def _convert(
    lake: Lake,
    report: IngestReport,
    urls: dict[str, str],
    snapshot: RawFingerprint,
    sources: dict[str, str],
    source_options: dict[str, object],
    blocksize: str,
) -> WrittenTables[tuple[list[Failure], int]]:
    """Write every silver table of ``report.version`` into ``urls`` from the raw files at
    ``sources`` (name -> URL), each part file checked as it is written."""
    biggest_first = dict(sorted(urls.items(), key=lambda item: -_raw_bytes(snapshot, item[0])))
    written = build_silver_tables(
        biggest_first,
        sources,
        source_options,
        report.buckets,
        lake.storage_options,
        blocksize,
        check=check_written,
    )
    for table, counts in written.counts.items():
        folder = lake.path_of(urls[table])
        lake.fs.makedirs(folder, exist_ok=True)
        lake.fs.pipe_file(f"{folder}/_counts.json", json.dumps(counts).encode())
        lake.fs.pipe_file(f"{folder}/{TABLE_MARKER}", table_marker(report.version, report.buckets))
    return written


def _fill_tables(lake: Lake, report: IngestReport, snapshot: RawFingerprint) -> None:
    for table in SOURCES:
        url = lake.version_url("silver", table, report.version)
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
