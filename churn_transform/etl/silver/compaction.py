"""The second pass of silver: a bucket's rows from every block file, cleaned, de-duplicated,
sorted by user and date, and written as ``part-<b>.parquet`` (zstd).

Cleaning is ``cleaning``'s; exact duplicate rows (the v2 increments repeat some v1 rows) go with
``dedup.drop_exact_duplicates``, which sorts by the table's ``SORT_KEYS`` at the same time.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from churn_transform.etl.cleaning import CLEANERS
from churn_transform.etl.silver.dedup import drop_exact_duplicates
from churn_transform.etl.silver.ids import ids_in_order
from churn_transform.etl.silver.tables import SORT_KEYS

_PARQUET = {"compression": "zstd"}
#: zstd's levels per column, where not its default (1): ``total_secs`` (floats with three
#: decimals, split by byte) compresses faster at -1 for about 3% more bytes.
_LEVELS = {"total_secs": -1}
#: Rows the Parquet writer encodes per step (its default 1,024): the same file, about 6% less
#: CPU per part of ``benchmarks/etl.py``'s user_logs.
_BATCH = 64 * 1024
#: Columns written BYTE_STREAM_SPLIT (each byte position of the values stored together) instead
#: of dictionary-encoded. The daily song counts: mostly zero bytes for zstd, faster to write and
#: smaller. ``total_secs``, high-cardinality floats: zstd on the split bytes takes a third of the
#: CPU it takes on the plain ones, for a column half as big again (a part of ``benchmarks/etl.py``'s
#: 1,000,000-user logs, 854,000 rows: 11 against 35 ms and 6.0 against 3.9 MB to write, 5
#: against 10 ms to read; the whole part 7.4 to 9.4 MB). Readers need Parquet 2.11's integer
#: support: Arrow >= 17, DuckDB >= 1.1, parquet-java >= 1.14.
_SPLIT = {"num_25", "num_50", "num_75", "num_985", "num_100", "num_unq", "total_secs"}


Checked = TypeVar("Checked")
#: What compaction asks of each part file it writes (``validation.check_written``): given the
#: table, the file's path and filesystem, the writer's footer and the rows written, a verdict.
PartCheck = Callable[[str, str, AbstractFileSystem, pq.FileMetaData, pa.Table], Checked]


@dataclass(frozen=True)
class Compacted(Generic[Checked]):
    """One bucket of a table, written: its cleaning counts and rows (``rows_out``), and what
    the part check said of the file (None when no check was asked, or the bucket is empty)."""

    counts: dict[str, int]
    checked: Checked | None = None


def compact_bucket(
    table: str,
    bucket: int,
    parts: list[tuple[str, int, int]],
    out: str,
    options: dict[str, object],
    check: PartCheck[Checked] | None = None,
) -> Compacted[Checked]:
    """Clean a bucket's rows (its segments ``parts``), drop exact duplicates, sort, write
    ``part-<b>.parquet`` and, given a ``check``, audit the file just written from its footer and
    the rows still in memory (its work then overlaps the other buckets' instead of following
    them all).

    ``msno`` is written from its dictionary encoding. Neither the Arrow schema nor pandas
    metadata is stored: readers see Parquet's types (``msno`` a plain string column).
    """
    fs, root = url_to_fs(out, **options)
    rows = _bucket_rows(parts, fs)
    if rows is None:
        return Compacted({"rows_out": 0})
    counts: dict[str, int] = {}
    if table in CLEANERS:
        rows, counts = CLEANERS[table](rows)
    unique = _widened(ids_in_order(drop_exact_duplicates(rows, SORT_KEYS[table])))
    path = posixpath.join(root, f"part-{bucket:05d}.parquet")
    written = _write_part(unique, fs, path)
    counts = {**counts, "duplicates_removed": len(rows) - len(unique), "rows_out": len(unique)}
    return Compacted(counts, check(table, path, fs, written, unique) if check else None)


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


def _write_part(rows: pa.Table, fs: AbstractFileSystem, target: str) -> pq.FileMetaData:
    """``rows`` as a Parquet file of Parquet's own types only, as any engine reads them; the
    file's footer, as the writer made it."""
    dictionary = [c for c in rows.column_names if c not in _SPLIT]
    written: list[pq.FileMetaData] = []
    pq.write_table(
        rows.replace_schema_metadata(None),
        target,
        filesystem=fs,
        use_dictionary=dictionary,
        column_encoding={c: "BYTE_STREAM_SPLIT" for c in rows.column_names if c in _SPLIT},
        compression_level={c: _LEVELS.get(c, 1) for c in rows.column_names},
        write_batch_size=_BATCH,
        store_schema=False,
        metadata_collector=written,
        **_PARQUET,
    )
    return written[0]
