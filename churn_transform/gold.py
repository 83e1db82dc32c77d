"""Gold: the feature table of one cohort month, built bucket by bucket with Dask.

Each task reads one bucket of every silver table (all rows of the same users), computes
``features.cohort_features`` and writes ``part-<b>.parquet``. Memory is bounded by a bucket.
The version name derives from the silver versions, the feature code version and the cohort, so
a re-run on the same silver writes nothing; the content hash of the written files is recorded
for data lineage (MLflow, DVC).
"""

from __future__ import annotations

import hashlib
import json
import posixpath

import dask
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churn_transform.features import cohort_features
from churn_transform.lake import Lake
from churn_transform.silver import SOURCES, read_bucket, read_bucket_table, silver_buckets

#: Bump when features change: a new gold version is written for the same silver.
FEATURE_VERSION = "1"
HASH_FILE = "_content_hash"


def table_name(cohort: str) -> str:
    return f"features_{cohort}"


def read_gold(lake: Lake, cohort: str) -> tuple[pd.DataFrame, str]:
    """A cohort's current gold table, whole, and its content hash (the data version)."""
    url = lake.current("gold", table_name(cohort))
    frame = pd.read_parquet(url, storage_options=lake.storage_options or None)
    return frame, str(gold_summary(lake, url)["hash"])


def _build_bucket(lake: Lake, cohort: str, bucket: int, out: str) -> int:
    tables = {name: read_bucket(lake, name, bucket) for name in SOURCES if name != "user_logs"}
    tables["user_logs"] = read_bucket_table(lake, "user_logs", bucket, coded_ids=True)
    gold = cohort_features(
        tables["labels"], tables["transactions"], tables["user_logs"], tables["members"], cohort
    )
    path = posixpath.join(lake.path_of(out), f"part-{bucket:05d}.parquet")
    lake.fs.makedirs(posixpath.dirname(path), exist_ok=True)
    pq.write_table(
        pa.Table.from_pandas(gold, preserve_index=False),
        path,
        filesystem=lake.fs,
        compression="zstd",
    )
    return len(gold)


def content_hash(lake: Lake, url: str) -> str:
    """md5 over the table's part files, in name order: the data version of a gold table."""
    digest = hashlib.md5(usedforsecurity=False)
    for path in sorted(lake.fs.glob(posixpath.join(lake.path_of(url), "part-*.parquet"))):
        digest.update(posixpath.basename(path).encode())
        digest.update(lake.fs.cat_file(path))
    return digest.hexdigest()


def gold_summary(lake: Lake, url: str) -> dict[str, object]:
    """Rows, content hash and silver versions recorded beside a published gold table."""
    return json.loads(lake.fs.cat_file(posixpath.join(lake.path_of(url), HASH_FILE)))


def build_gold(lake: Lake, cohort: str) -> tuple[str, str, int]:
    """Publish the gold table of ``cohort``; returns its URL, content hash and row count."""
    silver = {name: lake.current_version("silver", name) for name in SOURCES}
    key = json.dumps(
        {"silver": silver, "features": FEATURE_VERSION, "cohort": cohort}, sort_keys=True
    )
    version = hashlib.sha256(key.encode()).hexdigest()[:16]
    buckets = silver_buckets(lake)

    def write(url: str) -> None:
        tasks = [dask.delayed(_build_bucket)(lake, cohort, b, url) for b in range(buckets)]
        rows = sum(dask.compute(*tasks))
        summary = {"rows": rows, "hash": content_hash(lake, url), "silver": silver}
        lake.fs.pipe_file(
            posixpath.join(lake.path_of(url), HASH_FILE), json.dumps(summary).encode()
        )

    url = lake.publish("gold", table_name(cohort), version, write)
    summary = gold_summary(lake, url)
    return url, summary["hash"], summary["rows"]
