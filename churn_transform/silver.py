"""Silver tables from their raw CSVs: two Dask passes, scatter then compact.

*Scatter* reads the CSVs in blocks (pyarrow's parser, inside Dask tasks) and writes each block
as one file of raw-typed rows, one Arrow IPC stream per user bucket, and returns where each
stream lies. *Compact* reads a bucket's stream from every block file of a table, cleans it
(``cleaning``), drops exact duplicate rows (the v2 increments repeat some v1 rows), sorts by
user and date, and writes ``part-<b>.parquet`` (zstd). One Dask computation scatters the
blocks of every table, and one compacts every bucket of every table (``build_silver_tables``).
``ingest`` decides where the CSVs are read from and when the tables go live.
"""

from __future__ import annotations

import posixpath
import re
from collections import Counter

import dask
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from dask.base import tokenize
from dask.bytes import read_bytes
from dask.delayed import Delayed
from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from churn_transform.cleaning import CLEANERS, clean_labels, id_buckets
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
#: The daily song counts, written BYTE_STREAM_SPLIT (each byte position of the int64s stored
#: together, mostly zeros for zstd): faster to write than dictionary encoding and smaller.
#: Readers need Parquet 2.11's integer support: Arrow >= 17, DuckDB >= 1.1, parquet-java >= 1.14.
_SPLIT = {"num_25", "num_50", "num_75", "num_985", "num_100", "num_unq"}


_ARROW_TYPES = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64()}
#: The parse types of the first try: ids dictionary-encoded by the parser (a block names each
#: user many times, and the bucketing then hashes each id once), integers as int32 (the raw
#: counts, codes and YYYYMMDD dates fit: half the bytes to reorder and to write to disk).
_NARROW = {"string": pa.string(), "int64": pa.int32(), "float64": pa.float64()}
_IDS = pa.dictionary(pa.int32(), pa.string())
_SCATTER = "_scatter"


def _parse_block(block: bytes, name: str, first: bool) -> pa.Table:
    """One block of a raw CSV, parsed by pyarrow (no GIL).

    Integers are parsed as int32 first; a block with a value that does not fit is parsed
    again as int64, so no value is lost (the compaction widens every block to int64). A block
    without a double quote (KKBox's files have none) is parsed without quoting: the same
    values, without the parser tracking quoted fields (a scan for the byte is cheaper).
    """
    columns = RAW_FILES[name]
    quoting = pacsv.ParseOptions(quote_char='"' if b'"' in block else False)

    def parse(types: dict[str, pa.DataType]) -> pa.Table:
        return pacsv.read_csv(
            pa.BufferReader(block),  # zero-copy: no Python file object, no GIL
            read_options=pacsv.ReadOptions(
                column_names=list(columns),
                skip_rows=int(first),
                use_threads=False,  # Dask runs blocks in parallel: threads here only cost CPU
                block_size=4 << 20,  # fewer, larger chunks than the default 1 MB: fewer to unify
            ),
            parse_options=quoting,
            convert_options=pacsv.ConvertOptions(
                column_types={c: _IDS if c == "msno" else types[RAW_DTYPES[c]] for c in columns},
                strings_can_be_null=True,
            ),
        )

    try:
        return parse(_NARROW)
    except pa.ArrowInvalid:
        return parse(_ARROW_TYPES)


#: Where each bucket's rows of one block file lie: (path, [(offset, length) per bucket]).
Segments = tuple[str, list[tuple[int, int]]]


def _scatter(
    block: bytes,
    name: str,
    first: bool,
    table: str,
    index: int,
    out: str,
    buckets: int,
    options: dict[str, object],
) -> tuple[int, Segments]:
    """Parse one block and write it, grouped by bucket, as one file; its row count and segments.

    Each bucket's rows are one Arrow IPC stream (schema, dictionary, one record batch) at an
    offset the task returns, so the compaction of bucket ``b`` reads exactly segment ``b`` of
    every block file: no footer to parse, no empty bucket to open. ``msno`` stays as the parser
    encoded it, cut to the slice of the dictionary each bucket uses (``_ids_by_bucket``): a
    block repeats each user several times, and the 44-byte ids would be most of the bytes.
    """
    try:
        rows = _parse_block(block, name, first)
    except pa.ArrowInvalid as err:
        column = re.search(r"CSV column #(\d+)", str(err))  # pyarrow names it by position only
        field = f" (column {RAW_FILES[name][int(column[1])]})" if column else ""
        raise ValueError(f"{name}, block {index}{field}: {err}") from err
    rows_in = rows.num_rows
    rows = rows.unify_dictionaries()
    if table == "labels":  # the cohort comes from the file's name: known here only
        frame, _ = clean_labels(
            rows.set_column(0, "msno", rows["msno"].cast(pa.string())).to_pandas(
                types_mapper=pd.ArrowDtype
            ),
            LABEL_FILES[name],
            name != "sample_submission_v2.csv",
        )
        rows = pa.Table.from_pandas(frame, preserve_index=False)
        rows = rows.set_column(0, "msno", pc.dictionary_encode(rows["msno"]))
    ids, bucket = _ids_by_bucket(rows["msno"].combine_chunks(), buckets)
    order = _argsort(bucket)
    msno = rows.schema.get_field_index("msno")
    rows = pc.take(rows.set_column(msno, "msno", ids), pa.array(order), boundscheck=False)
    bounds = np.searchsorted(bucket[order], np.arange(buckets + 1))
    fs, root = url_to_fs(out, **options)
    path = posixpath.join(root, _SCATTER, f"part-{index:05d}.arrows")
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    batch = rows.combine_chunks().to_batches()[0] if rows.num_rows else None
    segments = []
    local = isinstance(fs, LocalFileSystem)
    with pa.OSFile(path, "wb") if local else fs.open(path, "wb") as sink:
        for b in range(buckets):  # Arrow IPC: the fastest to write and to read back
            start = sink.tell()
            if batch is not None and bounds[b + 1] > bounds[b]:
                part = batch.slice(bounds[b], bounds[b + 1] - bounds[b])
                part = part.set_column(msno, "msno", _used_ids(part.column(msno)))
                with pa.ipc.new_stream(sink, part.schema) as writer:
                    writer.write_batch(part)
            segments.append((start, sink.tell() - start))
    return rows_in, (path, segments)


def _ids_by_bucket(ids: pa.DictionaryArray, buckets: int) -> tuple[pa.DictionaryArray, np.ndarray]:
    """``ids`` with their dictionary ordered by bucket (``cleaning.id_buckets``), and each row's
    bucket (a null id: the bucket of the first distinct id, as ``cleaning.bucket_of`` has it).

    A bucket's rows then use one contiguous slice of the block's dictionary, which is all the
    compaction of that bucket reads (in a file ordered by date, each block names most users).
    """
    per_id = id_buckets(ids.dictionary, buckets)
    if not len(per_id):  # no id at all
        return ids, np.zeros(len(ids), np.int32)
    indices = pc.fill_null(ids.indices, 0).to_numpy(zero_copy_only=False)
    return _recoded(ids, _argsort(per_id)), per_id[indices]


def _recoded(ids: pa.DictionaryArray, order: np.ndarray) -> pa.DictionaryArray:
    """The same ids, with dictionary entry ``order[k]`` moved to position ``k``."""
    position = np.empty(len(order), dtype=np.int32)
    position[order] = np.arange(len(order), dtype=np.int32)
    codes = pc.take(pa.array(position), ids.indices)  # nulls stay null
    return pa.DictionaryArray.from_arrays(codes, ids.dictionary.take(pa.array(order)))


def _bucket_rows(parts: list[tuple[str, int, int]], fs: AbstractFileSystem) -> pa.Table | None:
    """One bucket's rows from every block file, as one table; None when it has none.

    ``parts`` are its non-empty segments (path, offset, length). Integers stay as narrow as the
    blocks have them (int32, or int64 where a block had to be parsed wide): cleaning, sorting
    and reordering then move half the bytes, and ``_widened`` casts them at the end. ``msno``
    stays dictionary-encoded, with one dictionary of this bucket's ids: each segment holds only
    the ids it uses, so only those are unified (a few thousand strings hashed, not every row's).
    """
    local = isinstance(fs, LocalFileSystem)
    batches = []
    for path, offset, length in parts:
        if local:  # pread into an Arrow buffer, without the GIL
            with pa.OSFile(path) as source:
                data = source.read_at(length, offset)
        else:
            data = fs.cat_file(path, start=offset, end=offset + length)
        batches.append(pa.ipc.open_stream(data).read_next_batch())
    if not batches:
        return None
    tables = [pa.Table.from_batches([batch]) for batch in batches]
    # a block parsed as int64 widens that column for the whole bucket
    return (
        pa.concat_tables(tables, promote_options="permissive").unify_dictionaries().combine_chunks()
    )


def _widened(rows: pa.Table) -> pa.Table:
    """Every int32 column as int64, the type silver has for the raw integers."""
    wide = pa.schema([f.with_type(pa.int64()) if f.type == pa.int32() else f for f in rows.schema])
    return rows.cast(wide)


def _used_ids(ids: pa.DictionaryArray) -> pa.DictionaryArray:
    """``ids`` with a dictionary of only the slice its rows use (``_ids_by_bucket``)."""
    valid = ids.indices.drop_null()
    if not len(valid):
        return pa.DictionaryArray.from_arrays(ids.indices, ids.dictionary.slice(0, 0))
    low, high = pc.min_max(valid).values()
    low, high = low.as_py(), high.as_py() + 1
    return pa.DictionaryArray.from_arrays(
        pc.subtract(ids.indices, pa.scalar(low, pa.int32())), ids.dictionary.slice(low, high - low)
    )


def _compact(
    table: str,
    bucket: int,
    parts: list[tuple[str, int, int]],
    out: str,
    options: dict[str, object],
) -> dict[str, int]:
    """Clean a bucket's rows (its segments ``parts``), drop exact duplicates, sort, write
    ``part-<b>.parquet``.

    ``msno`` is written from its dictionary encoding. Neither the Arrow schema nor pandas
    metadata is stored: readers see Parquet's types (``msno`` a plain string column).
    """
    fs, root = url_to_fs(out, **options)
    rows = _bucket_rows(parts, fs)
    if rows is None:
        return {"rows_out": 0}
    counts: dict[str, int] = {}
    if table in CLEANERS:
        rows, counts = CLEANERS[table](rows)
    unique = _widened(_ids_in_order(drop_exact_duplicates(rows, SORT_KEYS[table])))
    target = posixpath.join(root, f"part-{bucket:05d}.parquet")
    dictionary = [c for c in unique.column_names if c not in _PLAIN | _SPLIT]
    pq.write_table(
        unique.replace_schema_metadata(None),  # Parquet's own types only, as any engine reads
        target,
        filesystem=fs,
        use_dictionary=dictionary,
        column_encoding={c: "BYTE_STREAM_SPLIT" for c in unique.column_names if c in _SPLIT},
        store_schema=False,
        **_PARQUET,
    )
    return {**counts, "duplicates_removed": len(rows) - len(unique), "rows_out": len(unique)}


def _ids_in_order(rows: pa.Table) -> pa.Table:
    """``msno``'s dictionary sorted, so the codes rise with the rows (sorted by user) as readers
    see them: ``features.log_features`` relies on it to find each user's run without sorting."""
    ids = rows["msno"].combine_chunks()
    ordered = _recoded(ids, pc.array_sort_indices(ids.dictionary).to_numpy())
    return rows.set_column(rows.schema.get_field_index("msno"), "msno", ordered)


def _sortable(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A numpy array that orders and compares like ``column``, nulls as a value of their own."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        column = column.dictionary_encode()
    if pa.types.is_dictionary(column.type):  # rank the distinct values only
        ranks = pc.rank(column.dictionary, sort_keys="ascending", tiebreaker="dense")
        values = pc.take(ranks, column.indices)
        return pc.fill_null(values, 0).to_numpy().astype(np.int64)
    if pa.types.is_timestamp(column.type) or pa.types.is_date(column.type):
        column = column.cast(pa.int64())
    if pa.types.is_floating(column.type):
        return pc.fill_null(column, -np.inf).to_numpy(zero_copy_only=False)
    return pc.fill_null(column.cast(pa.int64()), np.iinfo(np.int64).min).to_numpy()


def _argsort(values: np.ndarray) -> np.ndarray:
    """A stable order; ranks below 2**16 sort as uint16, which numpy radix-sorts."""
    if len(values) and values.min() >= 0 and values.max() < 2**16:
        values = values.astype(np.uint16)
    return np.argsort(values, kind="stable")


def _sort_order(keys: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The order that sorts rows by ``keys`` (stable), and the positions in it of the rows equal
    to the row before in every key.

    Rows arrive in file order, and the raw files list each user's days in date order, so sorting
    stably by the first key (the user) usually sorts the rest too: that is checked, and only when
    it fails are all keys sorted together (Arrow's multi-key sort, also stable).
    """
    order = _argsort(keys[0])
    tied = _tied(keys[0], order, np.ones(len(order) - 1, dtype=bool))
    for key in keys[1:]:
        ordered = key[order]
        if np.any(tied & (ordered[1:] < ordered[:-1])):
            order = pc.sort_indices(
                pa.table({str(i): key for i, key in enumerate(keys)}),
                sort_keys=[(str(i), "ascending") for i in range(len(keys))],
            ).to_numpy()
            tied = np.ones(len(order) - 1, dtype=bool)
            for key in keys:
                tied = _tied(key, order, tied)
            return order, np.flatnonzero(tied) + 1
        tied &= ordered[1:] == ordered[:-1]
    return order, np.flatnonzero(tied) + 1


def _tied(key: np.ndarray, order: np.ndarray, tied: np.ndarray) -> np.ndarray:
    """``tied`` (sorted row ``i + 1`` equals row ``i`` in the keys so far), now in ``key`` too."""
    ordered = key[order]
    return tied & (ordered[1:] == ordered[:-1])


def drop_exact_duplicates(rows: pa.Table, keys: list[str]) -> pa.Table:
    """Rows sorted by ``keys``, with rows identical to their predecessor in every column removed.

    Exact repeats are adjacent when ``keys`` identify a row (user_logs: msno, date) or name every
    column (transactions). Sorting numpy views of the key columns (strings as ranks) costs far
    less than hashing whole rows, and no Python objects are made for the 44-byte ids. The other
    columns are compared only at the rows that tie with their predecessor in every key.
    """
    if rows.num_rows < 2:
        return rows
    order, later = _sort_order([_sortable(rows[name]) for name in keys])
    for name in (c for c in rows.column_names if c not in keys):
        if not len(later):
            break
        pair = _sortable(rows[name].take(pa.array(np.r_[order[later], order[later - 1]])))
        later = later[pair[: len(later)] == pair[len(later) :]]
    keep = np.ones(rows.num_rows, dtype=bool)
    keep[later] = False
    kept = order if not len(later) else order[keep]
    return pc.take(rows, pa.array(kept), boundscheck=False)  # a permutation: in bounds


def build_silver_tables(
    outs: dict[str, str],
    source: str,
    source_options: dict[str, object],
    buckets: int,
    options: dict[str, object],
    blocksize: str = "32MB",
) -> dict[str, dict[str, int]]:
    """Both passes for the tables of ``outs`` (table -> version folder), from CSVs under ``source``.

    One Dask computation scatters the blocks of every table, one compacts every bucket of every
    table and then deletes the table's block files: the small tables' tasks fill the cores the
    big one leaves idle at its end, instead of each table waiting for the one before. Tasks are
    named so that the in-process scheduler, which runs equal-priority tasks last key first,
    starts with the table first in ``outs`` (put the biggest first).
    """
    token = tokenize(outs, source, buckets)
    scattered: list[tuple[str, Delayed]] = []
    for table, out in outs.items():
        blocks = [
            (name, i == 0, block)
            for name in SOURCES[table]
            for i, block in enumerate(
                read_bytes(
                    f"{source}/{name}",
                    delimiter=b"\n",
                    blocksize=blocksize,
                    sample=False,
                    **source_options,
                )[1][0]
            )
        ]
        for index, (name, first, block) in enumerate(blocks):
            key = f"scatter-{token}-{10**6 - len(scattered):07d}"
            task = dask.delayed(_scatter)(
                block, name, first, table, index, out, buckets, options, dask_key_name=key
            )
            scattered.append((table, task))
    counts: dict[str, Counter[str]] = {table: Counter() for table in outs}
    segments: dict[str, list[Segments]] = {table: [] for table in outs}
    for (table, _), (rows_in, found) in zip(
        scattered, dask.compute(*[t for _, t in scattered]), strict=True
    ):
        counts[table]["rows_in"] += rows_in
        segments[table].append(found)
    compacted, removed = [], []
    for n, (table, out) in enumerate(outs.items()):
        tasks = []
        for b in range(buckets):
            key = f"compact-{token}-{10**6 - n * buckets - b:07d}"
            parts = [(path, *at[b]) for path, at in segments[table] if at[b][1]]
            tasks.append(dask.delayed(_compact)(table, b, parts, out, options, dask_key_name=key))
        compacted += [(table, task) for task in tasks]
        # a table's block files go as soon as its last bucket is written, while the cores
        # still compact the next table (deleting gigabytes is not free)
        removed.append(dask.delayed(_remove_scatter)(out, options, tasks))
    done = dask.compute(*[t for _, t in compacted], *removed)
    for (table, _), found in zip(compacted, done, strict=False):
        counts[table].update(found)
    return {table: dict(found) for table, found in counts.items()}


def _remove_scatter(out: str, options: dict[str, object], _after: list[object]) -> None:
    """Delete a table's block files (``_after``: its compactions, done)."""
    fs, root = url_to_fs(out, **options)
    fs.rm(posixpath.join(root, _SCATTER), recursive=True)
