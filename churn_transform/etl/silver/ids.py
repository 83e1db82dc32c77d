"""The user ids (``msno``) as Arrow dictionary arrays: grouped by bucket, cut to a bucket's slice
of the dictionary, and sorted so that the codes rise with the rows.

A block names each user many times and the 44-byte ids would be most of its bytes, so silver
moves them as dictionary codes from the parser to the Parquet writer.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from churn_transform.etl.cleaning import id_buckets
from churn_transform.etl.silver.dedup import stable_argsort


def ids_by_bucket(ids: pa.DictionaryArray, buckets: int) -> tuple[pa.DictionaryArray, np.ndarray]:
    """``ids`` with their dictionary ordered by bucket (``cleaning.id_buckets``), and each row's
    bucket (a null id: the bucket of the first distinct id, as ``cleaning.bucket_of`` has it).

    A bucket's rows then use one contiguous slice of the block's dictionary, which is all the
    compaction of that bucket reads (in a file ordered by date, each block names most users).
    """
    per_id = id_buckets(ids.dictionary, buckets)
    if not len(per_id):  # no id at all
        return ids, np.zeros(len(ids), np.int32)
    indices = pc.fill_null(ids.indices, 0).to_numpy(zero_copy_only=False)
    return recoded(ids, stable_argsort(per_id)), per_id[indices]


def used_ids(ids: pa.DictionaryArray) -> pa.DictionaryArray:
    """``ids`` with a dictionary of only the slice its rows use (``ids_by_bucket``)."""
    valid = ids.indices.drop_null()
    if not len(valid):
        return pa.DictionaryArray.from_arrays(ids.indices, ids.dictionary.slice(0, 0))
    low, high = pc.min_max(valid).values()
    low, high = low.as_py(), high.as_py() + 1
    return pa.DictionaryArray.from_arrays(
        pc.subtract(ids.indices, pa.scalar(low, pa.int32())), ids.dictionary.slice(low, high - low)
    )


def ids_in_order(rows: pa.Table) -> pa.Table:
    """``msno``'s dictionary sorted, so the codes rise with the rows (sorted by user) as readers
    see them: ``features.log_features`` relies on it to find each user's run without sorting."""
    ids = rows["msno"].combine_chunks()
    ordered = recoded(ids, pc.array_sort_indices(ids.dictionary).to_numpy())
    return rows.set_column(rows.schema.get_field_index("msno"), "msno", ordered)


def recoded(ids: pa.DictionaryArray, order: np.ndarray) -> pa.DictionaryArray:
    """The same ids, with dictionary entry ``order[k]`` moved to position ``k``."""
    position = np.empty(len(order), dtype=np.int32)
    position[order] = np.arange(len(order), dtype=np.int32)
    codes = pc.take(pa.array(position), ids.indices)  # nulls stay null
    return pa.DictionaryArray.from_arrays(codes, ids.dictionary.take(pa.array(order)))
