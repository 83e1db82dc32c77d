"""Row-level cleaning of the raw KKBox tables on the way into silver: known quirks only.

Each function takes rows of a raw table (an Arrow table as parsed: integers int32 or int64) and
returns them cleaned, with the number of rows each rule touched; columns no rule names pass
through untouched (the ids are never copied). The rules are the platform's documented
decisions; anything else is left as it is for validation to judge, so a truly corrupted file (a
negative payment, a label of 2, a shifted column) is caught, not hidden.

- members: ``bd`` outside 1..100 becomes null (0 means "not given"; -7168 or 2016 are typos);
  ``registered_via`` -1 becomes null; ``registration_init_time`` becomes a date.
- transactions: ``membership_expire_date`` 19700101 becomes null (a placeholder, not a date);
  dates become dates.
- user_logs: negative ``total_secs`` becomes null (overflowed counters); more than 86,400
  seconds in a day is clipped to 86,400; ``date`` becomes a date.
- every table: a date that is not a calendar date becomes null and is counted as
  ``invalid_date`` (validation then rejects the null where the column may not be null).
Cleaning runs on a bucket of users (every raw row of those users, from every file). Exact
duplicate rows (the v2 increments repeat some v1 rows) are removed right after, in the same
bucket, where all rows of a user meet (see ``silver``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from churn_transform.dates import parse_yyyymmdd
from churn_transform.schema import LABEL

SECONDS_PER_DAY = 86_400
Counts = dict[str, int]


def _dates(values: pa.Array | pa.ChunkedArray, counts: Counts, column: str) -> pa.Array:
    """YYYYMMDD integers as dates (``timestamp[ns]``), each distinct value parsed once: a bucket
    holds a million rows but a few hundred dates. Impossible dates become null, counted."""
    encoded = pc.dictionary_encode(values)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    parsed, invalid = parse_yyyymmdd(encoded.dictionary.to_numpy(zero_copy_only=False))
    counts[f"{column}_invalid_date"] = (
        pc.sum(pc.take(pa.array(invalid), encoded.indices)).as_py() or 0
    )
    return pc.take(pa.array(parsed, pa.timestamp("ns"), from_pandas=True), encoded.indices)


def _null_where(values: pa.ChunkedArray, condition: pa.ChunkedArray) -> pa.ChunkedArray:
    """``values`` with nulls where ``condition`` holds (a null condition keeps the value)."""
    return pc.if_else(pc.fill_null(condition, False), pa.scalar(None, values.type), values)


def _count(condition: pa.ChunkedArray) -> int:
    return pc.sum(condition).as_py() or 0


def _replaced(rows: pa.Table, **columns: pa.Array | pa.ChunkedArray) -> pa.Table:
    for name, values in columns.items():
        rows = rows.set_column(rows.schema.get_field_index(name), name, values)
    return rows


def clean_members(members: pa.Table) -> tuple[pa.Table, Counts]:
    counts: Counts = {}
    bd, via = members["bd"], members["registered_via"]
    bad_age = pc.invert(pc.and_(pc.greater_equal(bd, 1), pc.less_equal(bd, 100)))
    counts["bd_out_of_range"] = _count(bad_age)
    bad_via = pc.equal(via, -1)
    counts["registered_via_negative"] = _count(bad_via)
    cleaned = _replaced(
        members,
        bd=_null_where(bd, bad_age),
        registered_via=_null_where(via, bad_via),
        registration_init_time=_dates(members["registration_init_time"], counts, "registration"),
    )
    return cleaned, counts


def clean_transactions(transactions: pa.Table) -> tuple[pa.Table, Counts]:
    counts: Counts = {}
    expire = transactions["membership_expire_date"]
    epoch = pc.equal(expire, 19700101)
    counts["expire_19700101"] = _count(epoch)
    cleaned = _replaced(
        transactions,
        transaction_date=_dates(transactions["transaction_date"], counts, "transaction_date"),
        membership_expire_date=_dates(_null_where(expire, epoch), counts, "expire"),
    )
    return cleaned, counts


def clean_user_logs(logs: pa.Table) -> tuple[pa.Table, Counts]:
    counts: Counts = {}
    secs = logs["total_secs"]
    negative = pc.less(secs, 0)
    counts["total_secs_negative"] = _count(negative)
    counts["total_secs_over_a_day"] = _count(pc.greater(secs, SECONDS_PER_DAY))
    clipped = pc.min_element_wise(secs, pa.scalar(float(SECONDS_PER_DAY)), skip_nulls=False)
    cleaned = _replaced(
        logs,
        date=_dates(logs["date"], counts, "date"),
        total_secs=_null_where(clipped, negative),
    )
    return cleaned, counts


def clean_labels(labels: pd.DataFrame, cohort: str, known: bool) -> tuple[pd.DataFrame, Counts]:
    """Label rows of one cohort; ``known=False`` for a scoring file whose labels are dummies."""
    churn = labels[LABEL].astype("Int8") if known else pd.array([pd.NA] * len(labels), "Int8")
    cohorts = pd.Series(cohort, index=labels.index, dtype="string")
    return pd.DataFrame({"msno": labels["msno"], "cohort": cohorts, LABEL: churn}), {}


CLEANERS: dict[str, Callable[[pa.Table], tuple[pa.Table, Counts]]] = {
    "members": clean_members,
    "transactions": clean_transactions,
    "user_logs": clean_user_logs,
}


def bucket_of(msno: pd.Series | pa.Array | pa.ChunkedArray, buckets: int) -> np.ndarray:
    """A stable bucket number per user id: the same in every run, process, engine and machine.

    ``msno`` may be dictionary-encoded already (then only its dictionary is hashed).

    FNV-1a (64 bit) of the id's UTF-8 bytes, mod ``buckets`` (``id_buckets``). Each distinct id
    is hashed once (a block holds each user many times). A null id goes to the bucket of the
    first distinct id.
    """
    if isinstance(msno, pd.Series):
        msno = pa.array(msno.astype("string"), type=pa.string())
    if isinstance(msno, pa.ChunkedArray):
        msno = msno.combine_chunks()
    encoded = msno if isinstance(msno, pa.DictionaryArray) else pc.dictionary_encode(msno)
    per_id = id_buckets(encoded.dictionary, buckets)
    indices = pc.fill_null(encoded.indices, 0).to_numpy(zero_copy_only=False)
    return per_id[indices] if len(per_id) else np.zeros(len(msno), np.int32)


def id_buckets(ids: pa.Array, buckets: int) -> np.ndarray:
    """The bucket of each of ``ids`` (distinct, not null): FNV-1a of its bytes, mod ``buckets``."""
    return (_fnv1a(pc.cast(ids, pa.large_string())) % np.uint64(buckets)).astype(np.int32)


def _fnv1a(ids: pa.LargeStringArray) -> np.ndarray:
    """FNV-1a (64 bit) of each string, column-wise with numpy: one pass per byte position, not
    one Python call per id."""
    offsets = np.frombuffer(ids.buffers()[1], dtype=np.int64)[
        ids.offset : ids.offset + len(ids) + 1
    ]
    data = np.frombuffer(ids.buffers()[2], dtype=np.uint8) if len(ids) else np.zeros(0, np.uint8)
    starts, lengths = offsets[:-1], np.diff(offsets)
    state = np.full(len(ids), 14695981039346656037, dtype=np.uint64)
    prime = np.uint64(1099511628211)
    with np.errstate(over="ignore"):
        if len(ids) and (lengths == lengths[0]).all():  # KKBox's ids: all 44 bytes long
            width = int(lengths[0])
            matrix = data[offsets[0] : offsets[-1]].reshape(len(ids), width)
            for position in range(width):  # no masks to build and apply
                state = (state ^ matrix[:, position]) * prime
            return state
        for position in range(int(lengths.max()) if len(ids) else 0):
            inside = lengths > position
            byte = np.zeros(len(ids), dtype=np.uint64)
            byte[inside] = data[starts[inside] + position]
            state = np.where(inside, (state ^ byte) * prime, state)
    return state
