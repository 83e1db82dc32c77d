"""Entry point ``ingest``: raw KKBox CSVs into the lake (bronze copy, silver Parquet), with Dask.

Reads: the eight raw files at ``Settings.raw_dir`` (a folder or an s3:// prefix), and the
monthly increments landed in its ``increments/<YYYY-MM>/``. Produces: ``bronze/raw/<snapshot>``
and the silver snapshot ``silver/<version>/<table>`` of members, transactions, user_logs and
labels, with one layer per increment on top (only a new increment is written: its cost follows
its size, not the lake's), published only once its audit passed (headers, no lost data unless
``--allow-shrink``, Pandera); logs rows and bytes in and out and every cleaning count to MLflow.
Exits non-zero, saying why, when the audit fails or another writer holds the lake.
"""

from __future__ import annotations

import argparse

import mlflow

from churn_transform.etl.ingest import IngestReport, ingest
from steps._cli import boolean, count, dask_cluster, lake_of, refusals, size, start, tracked_run


def main(argv: list[str] | None = None) -> None:
    settings = start("ingest")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--buckets", type=count, required=True, help="0 = one per 64 MB of logs")
    parser.add_argument("--blocksize", type=size, required=True)
    parser.add_argument("--allow-shrink", type=boolean, required=True)
    args = parser.parse_args(argv)
    lake = lake_of(settings)
    with tracked_run(settings, "ingest"), dask_cluster(settings):
        with refusals("ingest"):
            report = ingest(
                lake,
                settings.raw_dir,
                settings.storage_options(settings.raw_dir),
                args.buckets,
                args.blocksize,
                max_shrink=settings.max_shrink,
                allow_shrink=args.allow_shrink,
            )
        mlflow.log_params(
            {
                "snapshot": report.snapshot,
                "buckets_used": report.buckets,
                "silver_version": report.version,
                "increments": ",".join(report.increments) or "none",
                "raw_uri": settings.raw_dir,
            }
        )
        mlflow.log_metrics(report.metrics())
        mlflow.log_dict(report.metrics(), "ingest/report.json")
    print(_said(report))


def _said(report: IngestReport) -> str:
    """The ingest in a few lines: the silver version, the increments it holds, each table's rows
    and size, and what the cleaning changed."""
    lines = [
        f"silver {report.version}: increments {', '.join(report.increments) or 'none'}, "
        f"{report.buckets} bucket(s)"
    ]
    for table, found in report.tables.items():
        smaller = f", {1 - found.bytes_out / found.bytes_in:.0%} smaller" if found.bytes_in else ""
        cleaned = ", ".join(f"{rule} {n:,}" for rule, n in found.cleaned.items() if n)
        lines.append(
            f"  {table}: {found.rows_in:,} rows in, {found.rows_out:,} out{smaller}"
            + (f"; cleaned: {cleaned}" if cleaned else "")
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
