"""Raw KKBox CSVs into the lake: an as-is copy in bronze, then typed Parquet in silver, with Dask.

Silver tables are bucketed by user: ``part-<b>.parquet`` holds every row of the users whose id
hashes to bucket ``b`` (``cleaning.bucket_of``), sorted by user and date. That keeps a user's
history in one file (so features and uniqueness checks need no shuffle, and memory is bounded by
a bucket) and makes Parquet's dictionary and zstd compression effective on ``msno``.

Each table is built in two Dask passes inside its new version folder: *scatter* reads the CSVs
in blocks, cleans each block (``cleaning``) and writes one file per bucket; *compact* merges
each bucket's files, drops exact duplicate rows (v2 repeats some v1 rows) and sorts. Only then
is the version made current (``lake.Lake.publish``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import posixpath
from collections import Counter
from dataclasses import dataclass, field

import dask
import dask.dataframe as dd
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fsspec.core import url_to_fs

from churn_transform.cleaning import CLEANERS, bucket_of, clean_labels
from churn_transform.lake import Lake
from churn_transform.schema import LABEL_FILES, RAW_DTYPES, RAW_FILES

log = logging.getLogger(__name__)

#: Bump when cleaning or layout changes: a new silver version is written for the same input.
SILVER_FORMAT = "1"
SOURCES: dict[str, tuple[str, ...]] = {
    "members": ("members_v3.csv",),
    "transactions": ("transactions.csv", "transactions_v2.csv"),
    "user_logs": ("user_logs.csv", "user_logs_v2.csv"),
    "labels": tuple(LABEL_FILES),
}
SORT_KEYS: dict[str, list[str]] = {
    "members": ["msno"],
    "transactions": ["msno", "transaction_date", "is_cancel", "membership_expire_date"],
    "user_logs": ["msno", "date"],
    "labels": ["cohort", "msno"],
}
BUCKET_BYTES = 64 * 2**20
_PARQUET = {"compression": "zstd", "dictionary_pagesize_limit": 8 * 2**20}


@dataclass(frozen=True)
class Snapshot:
    """The raw files as found: name -> (bytes, fingerprint), and an id derived from them."""

    files: dict[str, tuple[int, str]]

    @property
    def id(self) -> str:
        text = json.dumps(self.files, sort_keys=True).encode()
        return hashlib.sha256(text).hexdigest()[:16]

    @property
    def bytes(self) -> int:
        return sum(size for size, _ in self.files.values())


@dataclass
class TableReport:
    rows_in: int = 0
    rows_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    cleaned: dict[str, int] = field(default_factory=dict)


def snapshot_of(raw_url: str, storage_options: dict[str, object]) -> Snapshot:
    """Fingerprint the eight raw files (size and modification time or ETag); names a missing one."""
    fs, root = url_to_fs(raw_url, **storage_options)
    files = {}
    for name in RAW_FILES:
        path = posixpath.join(root, name)
        if not fs.exists(path):
            raise FileNotFoundError(f"raw file {name} is missing from {raw_url}")
        info = fs.info(path)
        stamp = (
            info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified")
        )
        files[name] = (int(info["size"]), str(stamp))
    return Snapshot(files)


def auto_buckets(snapshot: Snapshot) -> int:
    """One bucket per 64 MB of raw user logs: a bucket is what one task holds in memory."""
    logs = sum(snapshot.files[name][0] for name in SOURCES["user_logs"])
    return max(1, math.ceil(logs / BUCKET_BYTES))


def copy_to_bronze(
    lake: Lake, raw_url: str, storage_options: dict[str, object], snapshot: Snapshot
) -> str:
    """Stream the raw files, as they are, into ``bronze/raw/<snapshot>``."""

    def copy(url: str) -> None:
        source_fs, root = url_to_fs(raw_url, **storage_options)
        lake.fs.makedirs(lake.path_of(url), exist_ok=True)
        for name in RAW_FILES:
            target = posixpath.join(lake.path_of(url), name)
            with (
                source_fs.open(posixpath.join(root, name), "rb") as src,
                lake.fs.open(target, "wb") as dst,
            ):
                while block := src.read(16 * 2**20):
                    dst.write(block)

    return lake.publish("bronze", "raw", snapshot.id, copy)


def _read_csv(urls: list[str], options: dict[str, object], blocksize: str) -> dd.DataFrame:
    columns = RAW_FILES[posixpath.basename(urls[0])]
    return dd.read_csv(
        urls,
        dtype={c: RAW_DTYPES[c] if RAW_DTYPES[c] != "int64" else "float64" for c in columns},
        usecols=list(columns),
        blocksize=blocksize,
        storage_options=options or None,
    )


def _scatter(
    frame: pd.DataFrame, table: str, index: int, out: str, buckets: int, options: dict[str, object]
) -> dict[str, int]:
    """Clean one block and write its rows into one file per bucket."""
    counts: Counter[str] = Counter(rows_in=len(frame))
    if table == "labels":
        cohorts = frame.pop("cohort_file")
        parts = []
        for name, rows in frame.groupby(cohorts, sort=False):
            cleaned, _ = clean_labels(rows, LABEL_FILES[name], name != "sample_submission_v2.csv")
            parts.append(cleaned)
        frame = pd.concat(parts) if parts else clean_labels(frame, "", True)[0]
    else:
        frame, found = CLEANERS[table](_as_integers(frame))
        counts.update(found)
    fs, root = url_to_fs(out, **options)
    for bucket, rows in frame.groupby(bucket_of(frame["msno"], buckets), sort=False):
        path = posixpath.join(root, "_scatter", f"bucket={bucket}", f"part-{index}.parquet")
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
        pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), path, filesystem=fs)
    return dict(counts)


def _as_integers(frame: pd.DataFrame) -> pd.DataFrame:
    """Integer columns were read as floats (a blank would break an int parse); make them Int64."""
    return frame.astype({c: "Int64" for c in frame.columns if RAW_DTYPES.get(c) == "int64"})


def _compact(table: str, bucket: int, out: str, options: dict[str, object]) -> dict[str, int]:
    """Merge a bucket's scattered files, drop exact duplicates, sort, write ``part-<b>``."""
    fs, root = url_to_fs(out, **options)
    folder = posixpath.join(root, "_scatter", f"bucket={bucket}")
    if not fs.exists(folder):
        return {"rows_out": 0}
    rows = pq.read_table(folder, filesystem=fs)
    unique = drop_exact_duplicates(rows, SORT_KEYS[table])
    target = posixpath.join(root, f"part-{bucket:05d}.parquet")
    pq.write_table(unique, target, filesystem=fs, **_PARQUET)
    return {"duplicates_removed": len(rows) - len(unique), "rows_out": len(unique)}


def drop_exact_duplicates(rows: pa.Table, keys: list[str]) -> pa.Table:
    """Rows sorted by ``keys`` (then every other column) with exact repeats removed.

    In pyarrow, not pandas: no Python objects for the 44-byte ids, and sorting then comparing
    neighbours needs far less memory than hashing whole rows.
    """
    order = keys + [c for c in rows.column_names if c not in keys]
    rows = rows.sort_by([(c, "ascending") for c in order])
    if rows.num_rows < 2:
        return rows
    differs = pa.array([False] * (rows.num_rows - 1))
    for column in rows.columns:
        column = column.combine_chunks()
        here, before = column[1:], column[:-1]
        one_null = pc.xor(pc.is_null(here), pc.is_null(before))
        either_null = pc.or_(pc.is_null(here), pc.is_null(before))
        changed = pc.if_else(either_null, one_null, pc.not_equal(here, before))
        differs = pc.or_(differs, changed)
    return rows.filter(pa.concat_arrays([pa.array([True]), differs]))


def build_silver_table(
    table: str,
    bronze_url: str,
    out: str,
    buckets: int,
    options: dict[str, object],
    blocksize: str = "32MB",
) -> dict[str, int]:
    """Both passes for one table, writing into the version folder ``out``."""
    urls = [f"{bronze_url}/{name}" for name in SOURCES[table]]
    if table == "labels":
        raw = dd.concat(
            [
                _read_csv([u], options, blocksize).assign(cohort_file=posixpath.basename(u))
                for u in urls
            ]
        )
    else:
        raw = _read_csv(urls, options, blocksize)
    scattered = [
        dask.delayed(_scatter)(part, table, i, out, buckets, options)
        for i, part in enumerate(raw.to_delayed())
    ]
    counts: Counter[str] = Counter()
    for found in dask.compute(*scattered):
        counts.update(found)
    compacted = [dask.delayed(_compact)(table, b, out, options) for b in range(buckets)]
    for found in dask.compute(*compacted):
        counts.update(found)
    fs, root = url_to_fs(out, **options)
    fs.rm(posixpath.join(root, "_scatter"), recursive=True)
    return dict(counts)


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
    bronze = copy_to_bronze(lake, raw_url, storage_options, snapshot)
    version = f"{snapshot.id}-f{SILVER_FORMAT}-b{buckets}"
    report = IngestReport(snapshot.id, buckets, version)
    for table, sources in SOURCES.items():

        def write(url: str, table: str = table) -> None:
            counts = build_silver_table(
                table, bronze, url, buckets, lake.storage_options, blocksize
            )
            lake.fs.pipe_file(f"{lake.path_of(url)}/_counts.json", json.dumps(counts).encode())

        url = lake.publish("silver", table, version, write, point=False)
        counts = json.loads(lake.fs.cat_file(f"{lake.path_of(url)}/_counts.json"))
        report.tables[table] = TableReport(
            rows_in=counts.pop("rows_in", 0),
            rows_out=counts.pop("rows_out", 0),
            bytes_in=sum(snapshot.files[name][0] for name in sources),
            bytes_out=sum(
                size
                for path, size in lake.fs.du(lake.path_of(url), total=False).items()
                if path.endswith(".parquet")
            ),
            cleaned=counts,
        )
        log.info(
            "silver/%s: %s rows in, %s out",
            table,
            report.tables[table].rows_in,
            report.tables[table].rows_out,
        )
    for table in SOURCES:  # only now, with every table written, does the new snapshot go live
        lake.point("silver", table, version)
    return report


def read_bucket(lake: Lake, table: str, bucket: int) -> pd.DataFrame:
    """All rows of one bucket of the current version of a silver table."""
    path = f"{lake.path_of(lake.current('silver', table))}/part-{bucket:05d}.parquet"
    if not lake.fs.exists(path):
        return (
            pq.read_schema(next(iter(_parts(lake, table))), filesystem=lake.fs)
            .empty_table()
            .to_pandas()
        )
    return pq.read_table(path, filesystem=lake.fs).to_pandas()


def _parts(lake: Lake, table: str) -> list[str]:
    return sorted(lake.fs.glob(f"{lake.path_of(lake.current('silver', table))}/part-*.parquet"))
