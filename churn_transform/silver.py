"""Building one silver table from its raw CSVs: two Dask passes, scatter then compact.

*Scatter* reads the CSVs in blocks (pyarrow's parser, inside Dask tasks) and writes each block
as one Arrow IPC file of raw-typed rows, one record batch per user bucket. *Compact* reads a
bucket's batch from every block file, cleans it (``cleaning``), drops exact duplicate rows (the
v2 increments repeat some v1 rows), sorts by user and date, and writes ``part-<b>.parquet``
(zstd). ``ingest`` decides where the CSVs are read from and when a table goes live.
"""

from __future__ import annotations

import posixpath
from collections import Counter

import dask
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from dask.bytes import read_bytes
from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from churn_transform.cleaning import CLEANERS, bucket_of, clean_labels
from churn_transform.schema import LABEL_FILES, RAW_DTYPES, RAW_FILES

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
_PARQUET = {"compression": "zstd"}
#: Columns Parquet should not try to dictionary-encode: high-cardinality floats, where the
#: attempt costs time and falls back to plain encoding anyway.
_PLAIN = {"total_secs"}


_ARROW_TYPES = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64()}
_SCATTER = "_scatter"


def _parse_block(block: bytes, name: str, first: bool) -> pa.Table:
    """One block of a raw CSV, parsed by pyarrow (multithreaded, no GIL), with the raw types."""
    columns = RAW_FILES[name]
    return pacsv.read_csv(
        pa.BufferReader(block),  # zero-copy: no Python file object, no GIL
        read_options=pacsv.ReadOptions(column_names=list(columns), skip_rows=int(first)),
        convert_options=pacsv.ConvertOptions(
            column_types={c: _ARROW_TYPES[RAW_DTYPES[c]] for c in columns},
            strings_can_be_null=True,
        ),
    )


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
    """Parse one block and write it, grouped by bucket, as one Arrow IPC file.

    The file holds one record batch per bucket (empty ones too), so the compaction of bucket
    ``b`` reads batch ``b`` of every block file. ``msno`` is stored dictionary-encoded (one
    dictionary per block): a block repeats each user several times, and the 44-byte ids are
    most of the bytes this pass writes.
    """
    try:
        rows = _parse_block(block, name, first)
    except pa.ArrowInvalid as err:
        raise ValueError(f"{name}, block {index}: {err}") from err
    rows_in = rows.num_rows
    if table == "labels":  # the cohort comes from the file's name: known here only
        frame, _ = clean_labels(
            rows.to_pandas(types_mapper=pd.ArrowDtype),
            LABEL_FILES[name],
            name != "sample_submission_v2.csv",
        )
        rows = pa.Table.from_pandas(frame, preserve_index=False)
    ids = pc.dictionary_encode(rows["msno"].combine_chunks())
    bucket = bucket_of(ids, buckets)
    order = _argsort(bucket)
    rows = rows.set_column(rows.schema.get_field_index("msno"), "msno", ids).take(order)
    bounds = np.searchsorted(bucket[order], np.arange(buckets + 1))
    fs, root = url_to_fs(out, **options)
    path = posixpath.join(root, _SCATTER, f"part-{index:05d}.arrow")
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    batch = rows.combine_chunks().to_batches()[0] if rows.num_rows else None
    with fs.open(path, "wb") as sink, pa.ipc.new_file(sink, rows.schema) as writer:
        for b in range(buckets):  # Arrow IPC: the fastest to write and to read back
            if batch is None:
                writer.write_batch(pa.RecordBatch.from_pylist([], schema=rows.schema))
            else:
                writer.write_batch(batch.slice(bounds[b], bounds[b + 1] - bounds[b]))
    return {"rows_in": rows_in}


def _bucket_rows(root: str, fs: AbstractFileSystem, bucket: int) -> pa.Table | None:
    """Batch ``bucket`` of every block file of a table, ids decoded; None when all are empty."""
    local = isinstance(fs, LocalFileSystem)
    batches = []
    for path in sorted(fs.glob(posixpath.join(root, _SCATTER, "part-*.arrow"))):
        with pa.memory_map(path) if local else fs.open(path, "rb") as source:
            batch = pa.ipc.open_file(source).get_batch(bucket)
        if batch.num_rows:
            batches.append(batch)
    if not batches:
        return None
    rows = pa.Table.from_batches(batches)
    msno = rows.schema.get_field_index("msno")
    return rows.set_column(msno, "msno", rows["msno"].cast(pa.string()))


def _compact(table: str, bucket: int, out: str, options: dict[str, object]) -> dict[str, int]:
    """Clean a bucket's rows, drop exact duplicates, sort, write ``part-<b>.parquet``."""
    fs, root = url_to_fs(out, **options)
    rows = _bucket_rows(root, fs, bucket)
    if rows is None:
        return {"rows_out": 0}
    counts: dict[str, int] = {}
    if table in CLEANERS:
        frame, counts = CLEANERS[table](rows.to_pandas(types_mapper=pd.ArrowDtype))
        rows = pa.Table.from_pandas(frame, preserve_index=False)
    unique = drop_exact_duplicates(rows, SORT_KEYS[table])
    target = posixpath.join(root, f"part-{bucket:05d}.parquet")
    dictionary = [c for c in unique.column_names if c not in _PLAIN]
    pq.write_table(unique, target, filesystem=fs, use_dictionary=dictionary, **_PARQUET)
    return {**counts, "duplicates_removed": len(rows) - len(unique), "rows_out": len(unique)}


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


def _argsort(values: np.ndarray) -> np.ndarray:
    """A stable order; ranks below 2**16 sort as uint16, which numpy radix-sorts (8x faster)."""
    if len(values) and values.min() >= 0 and values.max() < 2**16:
        values = values.astype(np.uint16)
    return np.argsort(values, kind="stable")


def _sort_order(keys: list[np.ndarray]) -> np.ndarray:
    """The order that sorts rows by ``keys`` (stable), cheaply when the input is nearly sorted.

    Rows arrive in file order, and the raw files list each user's days (or transactions) in
    date order, so sorting stably by the first key (the user) usually sorts the rest too: that
    is checked, and only when it fails are all keys sorted together.
    """
    order = _argsort(keys[0])
    first = keys[0][order]
    tied = first[1:] == first[:-1]  # rows equal to their predecessor in the keys so far
    for key in keys[1:]:
        ordered = key[order]
        if np.any(tied & (ordered[1:] < ordered[:-1])):
            return np.lexsort(list(reversed(keys)))
        tied &= ordered[1:] == ordered[:-1]
    return order


def drop_exact_duplicates(rows: pa.Table, keys: list[str]) -> pa.Table:
    """Rows sorted by ``keys``, with rows identical to their predecessor in every column removed.

    Exact repeats are adjacent when ``keys`` identify a row (user_logs: msno, date) or name every
    column (transactions). Sorting and comparing numpy views of the columns (strings as ranks)
    costs far less than hashing whole rows, and no Python objects are made for the 44-byte ids.
    The keys are compared first; the other columns only while some row still equals its
    predecessor.
    """
    if rows.num_rows < 2:
        return rows
    views = {name: _sortable(rows[name]) for name in keys}
    order = _sort_order([views[k] for k in keys])
    same = np.ones(rows.num_rows - 1, dtype=bool)
    for name in [*keys, *(c for c in rows.column_names if c not in views)]:
        if not same.any():
            break
        view = views[name] if name in views else _sortable(rows[name])
        ordered = view[order]
        same &= ordered[1:] == ordered[:-1]
    keep = order if not same.any() else order[np.concatenate([[True], ~same])]
    return rows.take(pa.array(keep))


def build_silver_table(
    table: str,
    source: str,
    source_options: dict[str, object],
    out: str,
    buckets: int,
    options: dict[str, object],
    blocksize: str = "32MB",
) -> dict[str, int]:
    """Both passes for one table: CSVs under ``source`` into the version folder ``out``."""
    scattered = []
    for name in SOURCES[table]:
        _, blocks = read_bytes(
            f"{source}/{name}", delimiter=b"\n", blocksize=blocksize, sample=False, **source_options
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
    fs.rm(posixpath.join(root, _SCATTER), recursive=True)
    return dict(counts)
