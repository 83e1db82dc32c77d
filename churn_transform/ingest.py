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
import io
import json
import logging
import math
import posixpath
import shutil
from collections import Counter
from dataclasses import dataclass, field

import dask
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from dask.bytes import read_bytes
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from churn_transform.cleaning import CLEANERS, bucket_of, clean_labels
from churn_transform.lake import Lake
from churn_transform.schema import LABEL_FILES, RAW_DTYPES, RAW_FILES

log = logging.getLogger(__name__)

#: Bump when cleaning or layout changes: a new silver version is written for the same input.
SILVER_FORMAT = "2"
SOURCES: dict[str, tuple[str, ...]] = {
    "members": ("members_v3.csv",),
    "transactions": ("transactions.csv", "transactions_v2.csv"),
    "user_logs": ("user_logs.csv", "user_logs_v2.csv"),
    "labels": tuple(LABEL_FILES),
}
SORT_KEYS: dict[str, list[str]] = {
    "members": ["msno"],
    # every column: repeats of a row must end up next to each other to be found
    "transactions": [
        "msno",
        "transaction_date",
        "is_cancel",
        "membership_expire_date",
        "payment_plan_days",
        "plan_list_price",
        "actual_amount_paid",
        "is_auto_renew",
        "payment_method_id",
    ],
    "user_logs": ["msno", "date"],
    "labels": ["cohort", "msno"],
}
BUCKET_BYTES = 64 * 2**20
_PARQUET = {"compression": "zstd"}


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
        local = isinstance(source_fs, LocalFileSystem) and isinstance(lake.fs, LocalFileSystem)
        for name in RAW_FILES:
            source, target = posixpath.join(root, name), posixpath.join(lake.path_of(url), name)
            if local:  # a kernel-side copy (copy_file_range/sendfile), not through Python
                shutil.copyfile(source, target)
                continue
            with source_fs.open(source, "rb") as src, lake.fs.open(target, "wb") as dst:
                while block := src.read(16 * 2**20):
                    dst.write(block)

    return lake.publish("bronze", "raw", snapshot.id, copy)


_ARROW_TYPES = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64()}


def _parse_block(block: bytes, name: str, first: bool) -> pd.DataFrame:
    """One block of a raw CSV, parsed by pyarrow (multithreaded, no GIL), as Arrow-backed pandas."""
    columns = RAW_FILES[name]
    table = pacsv.read_csv(
        io.BytesIO(block),
        read_options=pacsv.ReadOptions(column_names=list(columns), skip_rows=int(first)),
        convert_options=pacsv.ConvertOptions(
            column_types={c: _ARROW_TYPES[RAW_DTYPES[c]] for c in columns},
            strings_can_be_null=True,
        ),
    )
    return table.to_pandas(types_mapper=pd.ArrowDtype)


def _scatter(
    block: bytes,
    name: str,
    first: bool,
    table: str,
    index: int,
    out: str,
    buckets: int,
    options: dict[str, object],
) -> dict[str, int]:
    """Parse and clean one block, then write its rows into one file per bucket."""
    try:
        frame = _parse_block(block, name, first)
    except pa.ArrowInvalid as err:
        raise ValueError(f"{name}, block {index}: {err}") from err
    counts: Counter[str] = Counter(rows_in=len(frame))
    if table == "labels":
        frame, _ = clean_labels(frame, LABEL_FILES[name], name != "sample_submission_v2.csv")
    else:
        frame, found = CLEANERS[table](frame)
        counts.update(found)
    rows = pa.Table.from_pandas(frame, preserve_index=False)
    bucket = bucket_of(rows["msno"], buckets)
    order = np.argsort(bucket, kind="stable")
    rows, bucket = rows.take(order), bucket[order]
    bounds = np.searchsorted(bucket, np.arange(buckets + 1))
    fs, root = url_to_fs(out, **options)
    for b in range(buckets):
        if bounds[b + 1] > bounds[b]:
            path = posixpath.join(root, "_scatter", f"bucket={b}", f"part-{index}.arrow")
            fs.makedirs(posixpath.dirname(path), exist_ok=True)
            part = rows.slice(bounds[b], bounds[b + 1] - bounds[b])
            with fs.open(path, "wb") as sink, pa.ipc.new_file(sink, part.schema) as writer:
                writer.write_table(part)  # Arrow IPC: the fastest to write and read back
    return dict(counts)


def _compact(table: str, bucket: int, out: str, options: dict[str, object]) -> dict[str, int]:
    """Merge a bucket's scattered files, drop exact duplicates, sort, write ``part-<b>``."""
    fs, root = url_to_fs(out, **options)
    folder = posixpath.join(root, "_scatter", f"bucket={bucket}")
    if not fs.exists(folder):
        return {"rows_out": 0}
    parts = []
    for path in sorted(fs.glob(posixpath.join(folder, "*.arrow"))):
        with fs.open(path, "rb") as source:
            parts.append(pa.ipc.open_file(source).read_all())
    rows = pa.concat_tables(parts)
    unique = drop_exact_duplicates(rows, SORT_KEYS[table])
    target = posixpath.join(root, f"part-{bucket:05d}.parquet")
    pq.write_table(unique, target, filesystem=fs, **_PARQUET)
    return {"duplicates_removed": len(rows) - len(unique), "rows_out": len(unique)}


def _sortable(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A numpy array that orders and compares like ``column``, nulls as a value of their own."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        encoded = column.dictionary_encode()
        ranks = pc.rank(encoded.dictionary, sort_keys="ascending", tiebreaker="dense")
        values = pc.take(ranks, encoded.indices)
        return pc.fill_null(values, 0).to_numpy().astype(np.int64)
    if pa.types.is_timestamp(column.type) or pa.types.is_date(column.type):
        column = column.cast(pa.int64())
    if pa.types.is_floating(column.type):
        return pc.fill_null(column, -np.inf).to_numpy(zero_copy_only=False)
    return pc.fill_null(column.cast(pa.int64()), np.iinfo(np.int64).min).to_numpy()


def drop_exact_duplicates(rows: pa.Table, keys: list[str]) -> pa.Table:
    """Rows sorted by ``keys``, with rows identical to their predecessor in every column removed.

    Exact repeats are adjacent when ``keys`` identify a row (user_logs: msno, date) or name every
    column (transactions). Sorting and comparing numpy views of the columns (strings as ranks)
    costs far less than hashing whole rows, and no Python objects are made for the 44-byte ids.
    """
    if rows.num_rows < 2:
        return rows
    views = {name: _sortable(rows[name]) for name in rows.column_names}
    order = np.lexsort([views[k] for k in reversed(keys)])
    differs = np.zeros(rows.num_rows - 1, dtype=bool)
    for view in views.values():
        ordered = view[order]
        differs |= ordered[1:] != ordered[:-1]
    keep = order[np.concatenate([[True], differs])]
    return rows.take(pa.array(keep))


def build_silver_table(
    table: str,
    bronze_url: str,
    out: str,
    buckets: int,
    options: dict[str, object],
    blocksize: str = "32MB",
) -> dict[str, int]:
    """Both passes for one table, writing into the version folder ``out``."""
    scattered = []
    for name in SOURCES[table]:
        _, blocks = read_bytes(
            f"{bronze_url}/{name}", delimiter=b"\n", blocksize=blocksize, sample=False, **options
        )
        for i, block in enumerate(blocks[0]):
            scattered.append(
                dask.delayed(_scatter)(
                    block, name, i == 0, table, len(scattered), out, buckets, options
                )
            )
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


_PANDAS_TYPES = {
    pa.int64(): pd.Int64Dtype(),
    pa.int8(): pd.Int8Dtype(),
    pa.string(): pd.StringDtype(),
    pa.large_string(): pd.StringDtype(),
}


def silver_buckets(lake: Lake) -> int:
    """How many buckets the current silver tables have (the version name records it)."""
    return int(lake.current_version("silver", "labels").rsplit("-b", 1)[1])


def read_bucket_table(lake: Lake, table: str, bucket: int) -> pa.Table:
    """All rows of one bucket of the current version of a silver table, as an Arrow table."""
    folder = lake.path_of(lake.current("silver", table))
    path = f"{folder}/part-{bucket:05d}.parquet"
    if lake.fs.exists(path):
        return pq.read_table(path, filesystem=lake.fs)
    # no user of this bucket in this table: an empty table of the same schema
    any_part = sorted(lake.fs.glob(f"{folder}/part-*.parquet"))[0]
    return pq.read_schema(any_part, filesystem=lake.fs).empty_table()


def read_bucket(lake: Lake, table: str, bucket: int) -> pd.DataFrame:
    """All rows of one bucket of the current version of a silver table (nullable pandas types)."""
    rows = read_bucket_table(lake, table, bucket)
    return rows.to_pandas(types_mapper=_PANDAS_TYPES.get, ignore_metadata=True)
