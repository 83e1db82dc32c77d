"""Entry point ``ingest``: raw KKBox CSVs into the lake (bronze copy, silver Parquet), with Dask.

Reads: the eight raw files at ``Settings.raw_dir`` (a folder or an s3:// prefix). Produces:
``bronze/raw/<snapshot>`` and ``silver/<table>/<version>`` for members, transactions,
user_logs and labels; logs rows and bytes in and out and every cleaning count to MLflow.
"""

from __future__ import annotations

import argparse
import json

import mlflow

from churn_transform.ingest import ingest
from steps._cli import dask_cluster, lake_of, size, start, tracked_run


def main(argv: list[str] | None = None) -> None:
    settings = start("ingest")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--buckets", type=int, required=True, help="0 = one per 64 MB of logs")
    parser.add_argument("--blocksize", type=size, required=True)
    args = parser.parse_args(argv)
    lake = lake_of(settings)
    with tracked_run(settings, "ingest"), dask_cluster(settings):
        report = ingest(
            lake,
            settings.raw_dir,
            settings.storage_options(settings.raw_dir),
            args.buckets,
            args.blocksize,
        )
        mlflow.log_params(
            {
                "snapshot": report.snapshot,
                "buckets_used": report.buckets,
                "silver_version": report.version,
                "raw_uri": settings.raw_dir,
            }
        )
        mlflow.log_metrics(report.metrics())
        mlflow.log_dict(report.metrics(), "ingest/report.json")
    print(json.dumps({"silver_version": report.version, **report.metrics()}, indent=1))


if __name__ == "__main__":
    main()
