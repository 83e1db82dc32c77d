"""Gold: the feature table of one cohort month, built bucket by bucket with Dask.

Each task reads one bucket of every silver table of one snapshot (all rows of the same users),
computes ``features.cohort_features`` and writes ``part-<b>.parquet``. Memory is bounded by a
bucket. The version name derives from the silver snapshot, the feature code version and the
cohort, so a re-run on the same silver writes nothing. A new version is validated before it is
made current (one that fails stays unpublished, with its report); it records the silver
snapshot it was built from, which ``validate_lake`` compares with the current one,
and the content hash of its files for data lineage (MLflow, DVC).
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
from typing import Any

import dask
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churn_transform.etl.audit import AuditError
from churn_transform.etl.features import cohort_features
from churn_transform.etl.silver import (
    SOURCES,
    InconsistentSnapshotError,
    read_bucket,
    read_bucket_table,
    silver_snapshot,
)
from churn_transform.etl.validation import (
    ValidationReport,
    gold_checks,
    run_checks,
    silver_checks,
    validate_gold,
)
from churn_transform.lake import Lake

log = logging.getLogger(__name__)

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


def _build_bucket(lake: Lake, silver: str, cohort: str, bucket: int, out: str) -> int:
    tables = {
        name: read_bucket(lake, name, bucket, version=silver)
        for name in SOURCES
        if name != "user_logs"
    }
    tables["user_logs"] = read_bucket_table(
        lake, "user_logs", bucket, coded_ids=True, version=silver
    )
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


def gold_summary(lake: Lake, url: str) -> dict[str, Any]:
    """Rows, content hash and the silver snapshot recorded beside a gold table."""
    return json.loads(lake.fs.cat_file(posixpath.join(lake.path_of(url), HASH_FILE)))


def build_gold(lake: Lake, cohort: str) -> tuple[str, str, int]:
    """Write, audit and publish the gold table of ``cohort`` from the current silver snapshot;
    returns its URL, content hash and row count. Raises ``audit.AuditError`` (and publishes
    nothing) when the new version fails validation."""
    table = table_name(cohort)
    with lake.lock(f"gold {cohort}"):
        lake.remove_unpublished("gold", table)
        silver = silver_snapshot(lake)  # checked whole, then read by name: one snapshot
        key = {"silver": silver.version, "features": FEATURE_VERSION, "cohort": cohort}
        version = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]

        def write(url: str) -> None:
            tasks = [
                dask.delayed(_build_bucket)(lake, silver.version, cohort, b, url)
                for b in range(silver.buckets)
            ]
            rows = sum(dask.compute(*tasks))
            summary = {"rows": rows, "hash": content_hash(lake, url), "silver": silver.version}
            lake.fs.pipe_file(
                posixpath.join(lake.path_of(url), HASH_FILE), json.dumps(summary).encode()
            )

        url = lake.publish("gold", table, version, write, point=False)
        _audit(lake, cohort, version, url)
        lake.point("gold", table, version)
    summary = gold_summary(lake, url)
    return url, str(summary["hash"]), int(summary["rows"])


def _audit(lake: Lake, cohort: str, version: str, url: str) -> None:
    """Validate a written gold version (once), keeping the report; raises if it fails."""
    table = table_name(cohort)
    audited = lake.audit_of("gold", table, version)
    if audited is None:
        validation = validate_gold(lake, cohort, url)
        audited = {**validation.as_dict(), "text": validation.text()}
        where = lake.record_audit("gold", table, version, audited)
        log.info("gold %s %s: %s (report: %s)", table, version, validation.text(), where)
    if not audited["ok"]:
        raise AuditError(
            f"gold {table} version {version} failed its audit and was not published",
            audited,
            str(audited.get("text", "")),
        )


def validate_lake(lake: Lake, cohorts: list[str]) -> ValidationReport:
    """Check every bucket of the current silver snapshot and the current gold tables of
    ``cohorts``; raises ``InconsistentSnapshotError`` if a gold table was built from another
    snapshot than the current one (run ``gold`` again), or silver's tables disagree."""
    silver = silver_snapshot(lake)
    tasks = silver_checks(lake, silver.version)
    for cohort in cohorts:
        url = lake.current("gold", table_name(cohort))
        built_from = gold_summary(lake, url).get("silver")
        if built_from != silver.version:
            raise InconsistentSnapshotError(
                f"gold {table_name(cohort)} was built from silver {built_from}, but the "
                f"current silver is {silver.version}: run gold for {cohort} again"
            )
        tasks += gold_checks(lake, cohort, url)
    return run_checks(tasks, cohorts)
