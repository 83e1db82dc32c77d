"""Clearing a silver part file against its Pandera schema from what the Parquet writer recorded.

The audit before publishing checks every row of a new snapshot. Reading every row into pandas
for Pandera made it cost more than the conversion itself, and most of the memory. Most rules
need no rows: a range holds for every value when it holds for the column's minimum and maximum,
which the writer keeps in the file's footer with the null count; a string rule holds for every
value when it holds for every entry of the column's dictionary; a key is unique when its rows
run in strictly increasing order, which two columns show (silver is sorted by its keys). A rule
over the whole frame (the labels': a labelled cohort has every label) is the schema's own check
run on the rows, without the rest of Pandera's validation.

``clears`` answers from those alone and is sound, not complete: a file it clears breaks no rule
of the schema; a file it cannot clear (a rule it cannot decide, statistics missing, a value out
of range) is left to Pandera, which reads the rows and names the ones that fail. Pandera stays
the statement of the rules and the judge of their semantics: the bounds are checked by the
schema's own ``Check`` objects, on the minimum and maximum as a two-row column.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import pandera.pandas as pa_schema
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem
from pandera import Check
from pandera.errors import SchemaError, SchemaErrors

from churn_transform.etl.silver.read import as_pandas

#: Checks that hold for every value when they hold for the minimum and the maximum.
_MONOTONE = {
    "in_range",
    "greater_than",
    "greater_than_or_equal_to",
    "less_than",
    "less_than_or_equal_to",
}
#: Checks on single values: they hold for a column when they hold for every value it may hold.
_PER_VALUE = {
    "str_length",
    "str_matches",
    "str_startswith",
    "str_endswith",
    "isin",
    "notin",
    "equal_to",
    "not_equal_to",
}
#: The most integers between a column's bounds that a per-value check is tried on.
_FEW = 4096


def clears(schema: pa_schema.DataFrameSchema, path: str, fs: AbstractFileSystem) -> bool:
    """Whether the Parquet file at ``path`` surely passes ``schema`` (as silver's readers see it:
    ``read.as_pandas``), decided without reading its rows; False means "ask Pandera"."""
    arrow = pq.read_schema(path, filesystem=fs)
    if not _types_pass(schema, arrow):
        return False
    if schema.checks and not _frame_passes(  # a rule over the whole frame needs the frame
        schema, pq.read_table(path, filesystem=fs, use_threads=False)
    ):
        return False
    wanted, strings = _wanted(schema, arrow)
    parquet = pq.ParquetFile(path, filesystem=fs, read_dictionary=strings)
    return _cleared(
        schema, arrow, parquet.metadata, parquet.read(columns=wanted, use_threads=False)
    )


def clears_written(
    schema: pa_schema.DataFrameSchema, written: pq.FileMetaData, rows: pa.Table
) -> bool:
    """``clears`` for a part file just written from ``rows``, decided from the writer's own
    footer (``written``, as ``pq.write_table``'s ``metadata_collector`` gets it) and the rows
    still in memory: nothing is read back. Compaction audits each part so, as it writes it."""
    arrow = written.schema.to_arrow_schema()
    if not _types_pass(schema, arrow):
        return False
    if schema.checks and not _frame_passes(schema, rows.cast(arrow)):  # as read back
        return False
    return _cleared(schema, arrow, written, rows.select(_wanted(schema, arrow)[0]))


def _frame_passes(schema: pa_schema.DataFrameSchema, rows: pa.Table) -> bool:
    """Every rule of ``schema`` over the whole frame (not its columns') passes on ``rows``,
    judged by the schema's own ``Check`` objects on the frame as silver's readers see it."""
    frame = as_pandas(rows)
    return all(bool(check(frame).check_passed) for check in schema.checks)


def _wanted(schema: pa_schema.DataFrameSchema, arrow: pa.Schema) -> tuple[list[str], list[str]]:
    """The columns whose values a clearance needs (string columns with a per-value rule, and
    the keys), and which of them are strings (read dictionary-encoded: their distinct values)."""
    strings = [name for name in schema.columns if pa.types.is_string(arrow.field(name).type)]
    keys = list(schema.unique or [])
    wanted = sorted({name for name in strings if _per_value(schema.columns[name])} | set(keys))
    return wanted, [name for name in wanted if name in strings]


def _cleared(
    schema: pa_schema.DataFrameSchema, arrow: pa.Schema, metadata: pq.FileMetaData, read: pa.Table
) -> bool:
    """``clears`` from a part's Arrow schema, footer and ``_wanted`` columns."""
    for name, column in schema.columns.items():
        kind = arrow.field(name).type
        nulls, low, high = _footer(metadata, arrow.get_field_index(name))
        if nulls is None or (nulls and not column.nullable):
            return False
        if pa.types.is_floating(kind) and not column.nullable:
            return False  # NaN counts as null for pandas, not for Parquet's statistics
        if low is not None and not _column_passes(column, kind, low, high, read, name):
            return False
    keys = list(schema.unique or [])
    return not keys or _strictly_increasing(read.select(keys))


def _per_value(column: pa_schema.Column) -> list[Check]:
    return [check for check in column.checks if check.name in _PER_VALUE]


def _column_passes(
    column: pa_schema.Column,
    kind: pa.DataType,
    low: Any,
    high: Any,
    read: pa.Table,
    name: str,
) -> bool:
    """Every check of ``column`` (of Arrow type ``kind``, its values from ``low`` to ``high``)
    surely passes: a monotone one on the two bounds, a per-value one on every value the column
    may hold (its dictionary for strings, every integer between the bounds when they are few)."""
    monotone = [c for c in column.checks if c.name in _MONOTONE]
    per_value = _per_value(column)
    if len(monotone) + len(per_value) < len(column.checks):
        return False  # a rule this module cannot decide
    if monotone and not _pass(monotone, pa.array([low, high], type=kind)):
        return False
    if not per_value:
        return True
    if pa.types.is_string(kind):
        return _pass(per_value, _distinct(read[name]))
    if pa.types.is_integer(kind) and int(high) - int(low) <= _FEW:
        return _pass(per_value, pa.array(range(int(low), int(high) + 1), type=kind))
    return False


def _types_pass(schema: pa_schema.DataFrameSchema, arrow: pa.Schema) -> bool:
    """The file's columns and types, as pandas would read them, are the schema's (Pandera
    checks an empty frame of them: every column rule passes on no rows). Asked once per schema
    and Arrow schema: every part of a table has the same."""
    key = (id(schema), arrow.serialize().to_pybytes())
    if (known := _VERDICTS.get(key)) is not None:
        return known[1]
    try:
        schema.validate(as_pandas(arrow.empty_table()))
        passed = True
    except (SchemaError, SchemaErrors):
        passed = False
    _remember(key, schema, passed)
    return passed


def _footer(metadata: pq.FileMetaData, column: int) -> tuple[int | None, Any, Any]:
    """The null count, minimum and maximum of a column over every row group (None where a row
    group with values has no statistics); the minimum is None when every value is null."""
    nulls, lows, highs = 0, [], []
    for group in range(metadata.num_row_groups):
        chunk = metadata.row_group(group).column(column)
        stats = chunk.statistics
        if stats is None or not stats.has_null_count:
            return None, None, None
        nulls += stats.null_count
        if stats.null_count == chunk.num_values:
            continue
        if not stats.has_min_max:
            return None, None, None
        lows.append(stats.min)
        highs.append(stats.max)
    return nulls, (min(lows) if lows else None), (max(highs) if highs else None)


def _pass(checks: Iterable[Check], values: pa.Array) -> bool:
    """Every check passes on ``values``, read as silver's readers read a column. Asked once per
    checks and values when the values are few: the parts of a table mostly share their bounds
    (the same first and last day, the same smallest amount)."""
    checks = tuple(checks)
    key = None
    if len(values) <= _FEW:
        # the values by their digest: a key of fixed size, however many values (a part's ids)
        said = repr(values.to_pylist()).encode()
        key = (tuple(map(id, checks)), str(values.type), hashlib.sha256(said).digest())
        if (known := _VERDICTS.get(key)) is not None:
            return known[1]
    series = as_pandas(pa.table({"values": values}))["values"]
    passed = all(bool(check(series).check_passed) for check in checks)
    if key is not None:
        _remember(key, checks, passed)
    return passed


#: Verdicts already reached, by what they were asked on, each kept with the schema or checks it
#: judged (alive, so that their ids in the key are not taken by other objects).
_VERDICTS: dict[tuple[Any, ...], tuple[object, bool]] = {}
_MOST_VERDICTS = 100_000


def _remember(key: tuple[Any, ...], judged: object, verdict: bool) -> None:
    if len(_VERDICTS) >= _MOST_VERDICTS:
        _VERDICTS.clear()
    _VERDICTS[key] = (judged, verdict)


def _distinct(column: pa.ChunkedArray) -> pa.Array:
    """Every distinct value a string column holds: its dictionaries when it is dictionary-encoded
    (they hold at least the values its rows use), else its values."""
    if not pa.types.is_dictionary(column.type):
        return pc.unique(column.combine_chunks())
    dictionaries = [chunk.dictionary for chunk in column.chunks]
    if not dictionaries:
        return pa.array([], type=column.type.value_type)
    return pc.unique(pa.concat_arrays(dictionaries))


def _strictly_increasing(keys: pa.Table) -> bool:
    """Whether the key columns' rows, in file order, strictly increase (so no two are equal):
    a string key compares by its dictionary code, which is one code per distinct string once
    the chunks share one dictionary without repeats (a plain string column is encoded in order
    of first appearance, as Parquet encodes it: rising codes where it is the first key, the
    file's sort order). A key with nulls, in another order or with a dictionary that repeats a
    value is not decided."""
    if keys.num_rows < 2:
        return True
    codes = []
    for column in keys.unify_dictionaries().combine_chunks().columns:
        array = column.chunk(0) if column.num_chunks else pa.array([], type=column.type)
        if array.null_count:
            return False
        if pa.types.is_string(array.type):  # codes in order of first appearance, as Parquet's
            array = pc.dictionary_encode(array)  # dictionary has them
        if pa.types.is_dictionary(array.type):
            if not _no_repeats(array.dictionary):
                return False  # two codes for one string: equal ids could look increasing
            array = array.indices
        if pa.types.is_temporal(array.type):
            array = array.cast(pa.int64())
        if not pa.types.is_integer(array.type):
            return False
        codes.append(array.to_numpy())
    *before, last = codes
    rising = last[1:] > last[:-1]  # from the last key to the first: rows rise at their first
    for code in reversed(before):  # differing key
        rising = (code[1:] > code[:-1]) | ((code[1:] == code[:-1]) & rising)
    return bool(rising.all())


def _no_repeats(values: pa.Array) -> bool:
    """Whether no value occurs twice: at once when they are sorted (a part's ids as compaction
    writes them, and as Parquet reads them back), else by counting the distinct ones."""
    if len(values) < 2 or (
        not values.null_count and pc.all(pc.less(values[:-1], values[1:])).as_py()
    ):
        return True
    return bool(pc.count_distinct(values).as_py() == len(values))
