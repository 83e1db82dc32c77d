"""One bucket of a table read through the layers of a snapshot: the base and each monthly
increment ingested on top of it, merged as if all had been ingested at once.

A snapshot built by increments (``ingest``) is a stack of layers, oldest first: the base,
written from the eight raw files, then one layer per monthly increment, each holding only that
month's rows. Reading a bucket concatenates its part file of every layer and merges:

- ``transactions`` and ``user_logs``: exact repeats of a row (a month's file repeating rows
  already delivered, as the v2 files do) are dropped, and the rows sorted by the table's keys,
  as compaction does within one layer;
- ``members`` and ``labels``: one row per user (per cohort and user), the newest layer's: a
  profile delivered again replaces the old one, and a cohort's labels replace the list of its
  users that was sent to score.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from churn_transform.etl.silver.dedup import drop_exact_duplicates
from churn_transform.etl.silver.tables import SORT_KEYS

#: Tables whose rows are identified by these keys: the newest layer's row wins.
REPLACED_BY_KEY: dict[str, list[str]] = {"members": ["msno"], "labels": ["cohort", "msno"]}


def merge_layers(table: str, layers: list[pa.Table], coded_ids: bool = False) -> pa.Table:
    """The rows of one bucket of ``table`` from its ``layers`` (oldest first), merged.

    ``coded_ids`` gives ``msno`` dictionary-encoded with codes in sorted order, as a single
    layer read with ``read_dictionary`` has it.
    """
    plain = [_plain_ids(rows) for rows in layers if rows.num_rows]
    if not plain:
        merged = _plain_ids(layers[0]).slice(0, 0)
    elif table in REPLACED_BY_KEY:
        merged = _newest_per_key(plain, REPLACED_BY_KEY[table])
    else:
        merged = drop_exact_duplicates(pa.concat_tables(plain), SORT_KEYS[table])
    if coded_ids:
        msno = merged.schema.get_field_index("msno")
        merged = merged.set_column(msno, "msno", pc.dictionary_encode(merged["msno"]))
    return merged


def _plain_ids(rows: pa.Table) -> pa.Table:
    msno = rows.schema.get_field_index("msno")
    return rows.set_column(msno, "msno", rows["msno"].cast(pa.string()))


def _newest_per_key(layers: list[pa.Table], keys: list[str]) -> pa.Table:
    """Rows sorted by ``keys`` (the table's sort keys), keeping for each key the row of the
    newest layer that has it."""
    rows = pa.concat_tables(layers)
    layer = np.repeat(np.arange(len(layers)), [t.num_rows for t in layers])
    rows = rows.append_column("_layer", pa.array(layer))
    rows = rows.sort_by([(name, "ascending") for name in [*keys, "_layer"]])
    # the last row of each run of equal keys is the newest layer's
    last = np.ones(rows.num_rows, dtype=bool)
    for name in keys:
        column = rows[name].combine_chunks()
        last[:-1] &= pc.equal(column[:-1], column[1:]).to_numpy(zero_copy_only=False)
    last[:-1] = ~last[:-1]
    return rows.filter(pa.array(last)).drop_columns(["_layer"])
