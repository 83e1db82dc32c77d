"""The first pass of silver: a block of a raw CSV, parsed and written grouped by user bucket.

Each block becomes one file of raw-typed rows, one Arrow IPC stream per user bucket, and the
task returns where each stream lies, so the compaction of a bucket reads only its own rows.
"""

from __future__ import annotations

import posixpath
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from churn_transform.etl.cleaning import clean_labels
from churn_transform.etl.silver.dedup import stable_argsort
from churn_transform.etl.silver.ids import ids_by_bucket, used_ids
from churn_transform.schema import RAW_DTYPES, label_file, raw_columns

_ARROW_TYPES = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64()}
#: The parse types of the first try: ids dictionary-encoded by the parser (a block names each
#: user many times, and the bucketing then hashes each id once), integers as int32 (the raw
#: counts, codes and YYYYMMDD dates fit: half the bytes to reorder and to write to disk).
_NARROW = {"string": pa.string(), "int64": pa.int32(), "float64": pa.float64()}
_IDS = pa.dictionary(pa.int32(), pa.string())
#: The same first-try types, by the names of Polars' types.
_POLARS_NARROW = {"string": "String", "int64": "Int32", "float64": "Float64"}
#: What pyarrow's CSV reader reads as null besides an empty field (its defaults: "NA", "NULL",
#: "nan"...). Polars reads only the empty field as null (asked for more, it reads at half the
#: speed): a block holding one of these is left to pyarrow.
_NULLS = pa.array([v for v in pacsv.ConvertOptions().null_values if v])
#: The folder, inside a table's version folder, of its block files (deleted once compacted).
SCATTER_FOLDER = "_scatter"

#: Where each bucket's rows of one block file lie: (path, [(offset, length) per bucket]).
Segments = tuple[str, list[tuple[int, int]]]


def parse_block(block: bytes, name: str, first: bool) -> pa.Table:
    """One block of a raw CSV as Arrow: ``msno`` dictionary-encoded, integers as int32 where a
    block's values fit (else int64: the compaction widens every block to int64), floats as
    float64, and what pyarrow reads as null (an empty field, "NA", "NULL"...) null.

    Polars reads the block when it can vouch for reading it as pyarrow would (about two thirds
    of pyarrow's CPU: ``benchmarks/etl.py``); pyarrow reads every other block, which gives the
    values or an error naming the row and the column (``_polars_parse`` says which blocks).
    """
    fast = _polars_parse(block, name, first)
    return fast if fast is not None else _arrow_parse(block, name, first)


def _polars_parse(block: bytes, name: str, first: bool) -> pa.Table | None:
    """``parse_block`` by Polars, or None for a block left to pyarrow: one with a carriage
    return (pyarrow also ends a line at a lone one; Polars reads "5\\r" as 5), only blank, that
    Polars refuses (a value it cannot read as the column's type or wider than int32, a row with
    too many fields) or reads as no row; one with a text that holds a double quote (Polars reads
    without quoting, pyarrow unquotes; a quote anywhere else leaves a number Polars refuses) or
    that pyarrow reads as null (``_NULLS``); or one whose last column has nulls that a row with
    missing fields or a blank line would give (pyarrow refuses the first and skips the second),
    unless its field count shows every row whole. Texts are judged by their distinct values.

    One difference remains, on purpose: Polars reads an integer written with a leading "+"
    (pyarrow refuses it). ``tests/unit/test_parse.py`` compares both readers on hostile blocks.
    """
    if b"\r" in block or not block or block.isspace():
        return None
    # imported here, not with the module: 0.23 s that every process reading silver would pay
    import polars as pl

    columns = raw_columns(name)
    try:
        frame = pl.read_csv(
            block,
            has_header=False,
            skip_rows=int(first),
            schema={c: getattr(pl, _POLARS_NARROW[RAW_DTYPES[c]]) for c in columns},
            quote_char=None,
            truncate_ragged_lines=False,
            raise_if_empty=False,
            credential_provider=None,  # bytes, not a cloud URL: no provider to look up
        )
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException):
        return None
    if not frame.height:  # pyarrow may refuse it ("Empty CSV file"): let it say
        return None
    if frame[columns[-1]].null_count() and not _rows_whole(block, first, frame.height, columns):
        return None
    # by the Arrow C stream interface: strings as views, without DataFrame.to_arrow's copy to
    # large strings under the GIL (5 ms a block); one chunk
    rows = pa.table(frame).combine_chunks()
    for i, column in enumerate(rows.column_names):
        values = rows.column(i)
        distinct = None
        if column == "msno":
            values = pc.dictionary_encode(values.chunk(0)).cast(_IDS)
            distinct = values.dictionary
        elif pa.types.is_large_string(values.type) or pa.types.is_string_view(values.type):
            values = distinct = values.cast(pa.string())
        elif pa.types.is_floating(values.type) and pc.any(pc.is_nan(values)).as_py():
            return None  # "nan" or "NaN": null to pyarrow
        if distinct is not None and not _plain_texts(distinct):
            return None
        rows = rows.set_column(i, column, values)
    return rows


def _plain_texts(values: pa.Array | pa.ChunkedArray) -> bool:
    """Whether no text holds a double quote, nor is null to pyarrow."""
    quoted = pc.any(pc.match_substring(values, '"')).as_py()
    return not (quoted or pc.any(pc.is_in(values, _NULLS)).as_py())


def _rows_whole(block: bytes, first: bool, rows: int, columns: tuple[str, ...]) -> bool:
    """Whether ``block`` (after its header when ``first``) has exactly ``rows`` rows' fields:
    one separator fewer than the columns per row, so no row lacks one and no line is blank."""
    start = block.index(b"\n") + 1 if first and b"\n" in block else 0
    return block.count(b",", start) == rows * (len(columns) - 1)


def _arrow_parse(block: bytes, name: str, first: bool) -> pa.Table:
    """``parse_block`` by pyarrow (no GIL).

    Integers are parsed as int32 first; a block with a value that does not fit is parsed
    again as int64, so no value is lost. A block without a double quote is parsed without
    quoting: the same values, without the parser tracking quoted fields (a scan for the byte
    is cheaper).
    """
    columns = raw_columns(name)
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


def scatter_block(
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
    encoded it, cut to the slice of the dictionary each bucket uses (``ids.ids_by_bucket``): a
    block repeats each user several times, and the 44-byte ids would be most of the bytes.
    """
    rows = _parsed(block, name, first, index)
    rows_in = rows.num_rows
    rows = rows.unify_dictionaries()
    if table == "labels":  # the cohort comes from the file's name: known here only
        rows = _labelled(rows, name)
    ids, bucket = ids_by_bucket(rows["msno"].combine_chunks(), buckets)
    order = stable_argsort(bucket)
    msno = rows.schema.get_field_index("msno")
    rows = pc.take(rows.set_column(msno, "msno", ids), pa.array(order), boundscheck=False)
    bounds = np.searchsorted(bucket[order], np.arange(buckets + 1))
    fs, root = url_to_fs(out, **options)
    path = posixpath.join(root, SCATTER_FOLDER, f"part-{index:05d}.arrows")
    return rows_in, (path, _write_segments(rows, bounds, fs, path))


def _parsed(block: bytes, name: str, first: bool, index: int) -> pa.Table:
    """``parse_block``, with an error that names the file, the block and the column."""
    try:
        return parse_block(block, name, first)
    except pa.ArrowInvalid as err:
        column = re.search(r"CSV column #(\d+)", str(err))  # pyarrow names it by position only
        field = f" (column {raw_columns(name)[int(column[1])]})" if column else ""
        raise ValueError(f"{name}, block {index}{field}: {err}") from err


def _labelled(rows: pa.Table, name: str) -> pa.Table:
    """A block of a label file, cleaned (``cleaning.clean_labels``) and given its cohort."""
    frame, _ = clean_labels(
        rows.set_column(0, "msno", rows["msno"].cast(pa.string())).to_pandas(
            types_mapper=pd.ArrowDtype
        ),
        *label_file(name),
    )
    rows = pa.Table.from_pandas(frame, preserve_index=False)
    return rows.set_column(0, "msno", pc.dictionary_encode(rows["msno"]))


def _write_segments(
    rows: pa.Table, bounds: np.ndarray, fs: AbstractFileSystem, path: str
) -> list[tuple[int, int]]:
    """Write ``rows``, grouped by bucket (bucket ``b`` at ``bounds[b]:bounds[b + 1]``), as one
    IPC stream per non-empty bucket at ``path``; each bucket's (offset, length)."""
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    batch = rows.combine_chunks().to_batches()[0] if rows.num_rows else None
    msno = rows.schema.get_field_index("msno")
    segments = []
    local = isinstance(fs, LocalFileSystem)
    with pa.OSFile(path, "wb") if local else fs.open(path, "wb") as sink:
        for b in range(len(bounds) - 1):  # Arrow IPC: the fastest to write and to read back
            start = sink.tell()
            if batch is not None and bounds[b + 1] > bounds[b]:
                part = batch.slice(bounds[b], bounds[b + 1] - bounds[b])
                part = part.set_column(msno, "msno", used_ids(part.column(msno)))
                with pa.ipc.new_stream(sink, part.schema) as writer:
                    writer.write_batch(part)
            segments.append((start, sink.tell() - start))
    return segments
