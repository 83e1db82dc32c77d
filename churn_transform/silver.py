"""Building one silver table from its bronze CSVs: two Dask passes, scatter then compact.

*Scatter* reads the CSVs in blocks (pyarrow's parser, inside Dask tasks), cleans each block
(``cleaning``) and writes its rows into one Arrow IPC file per user bucket. *Compact* merges a
bucket's files, drops exact duplicate rows (the v2 increments repeat some v1 rows), sorts by
user and date, and writes ``part-<b>.parquet`` (zstd). ``ingest`` decides when a table goes live.
"""

from __future__ import annotations

import io
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
from fsspec.core import url_to_fs

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
