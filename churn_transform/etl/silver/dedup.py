"""Sorting rows by key columns and dropping exact duplicate rows, on numpy views of Arrow columns.

The v2 increments of the raw files repeat some v1 rows exactly; compaction drops them with
``drop_exact_duplicates``, which sorts a bucket by its table's keys at the same time.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


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


def stable_argsort(values: np.ndarray) -> np.ndarray:
    """A stable order; ranks below 2**16 sort as uint16, which numpy radix-sorts."""
    if len(values) and values.min() >= 0 and values.max() < 2**16:
        values = values.astype(np.uint16)
    return np.argsort(values, kind="stable")


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


def _sort_order(keys: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The order that sorts rows by ``keys`` (stable), and the positions in it of the rows equal
    to the row before in every key.

    Rows arrive in file order, and the raw files list each user's days in date order, so sorting
    stably by the first key (the user) usually sorts the rest too: that is checked, and only when
    it fails are all keys sorted together (Arrow's multi-key sort, also stable).
    """
    order = stable_argsort(keys[0])
    tied = _tied(keys[0], order, np.ones(len(order) - 1, dtype=bool))
    for key in keys[1:]:
        ordered = key[order]
        if np.any(tied & (ordered[1:] < ordered[:-1])):
            return _multi_key_order(keys)
        tied &= ordered[1:] == ordered[:-1]
    return order, np.flatnonzero(tied) + 1


def _multi_key_order(keys: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``_sort_order`` by Arrow's multi-key sort, for rows the first key alone does not sort."""
    order = pc.sort_indices(
        pa.table({str(i): key for i, key in enumerate(keys)}),
        sort_keys=[(str(i), "ascending") for i in range(len(keys))],
    ).to_numpy()
    tied = np.ones(len(order) - 1, dtype=bool)
    for key in keys:
        tied = _tied(key, order, tied)
    return order, np.flatnonzero(tied) + 1


def _tied(key: np.ndarray, order: np.ndarray, tied: np.ndarray) -> np.ndarray:
    """``tied`` (sorted row ``i + 1`` equals row ``i`` in the keys so far), now in ``key`` too."""
    ordered = key[order]
    return tied & (ordered[1:] == ordered[:-1])
