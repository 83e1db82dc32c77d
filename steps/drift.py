"""Entry point ``drift``: served traffic of a window of days against the training reference.

Reads: the traffic log of the ``days`` days ending ``end``, sampled to ``max_rows``: every
replica's files shipped to ``KKBOX_TRAFFIC_SHIP_URI`` when set, else ``KKBOX_TRAFFIC_LOG_URI``;
the reference sample (``evaluation/reference.parquet``) of the training run of the model version
that served most of that traffic. Produces: Evidently's HTML report and a
JSON summary (drift share, drifted columns, per-column method, statistic and threshold, row
counts) in the lake (``monitoring/drift/<time>-<run>/``) and on this MLflow run, and a
one-screen summary. Too few predictions in the window: a message and exit 0, never an alarm.
With ``--fail-on-drift true`` a dataset drift exits 3, so a scheduler can retrain
(``mlflow run . -e main``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import mlflow
import pandas as pd

from churn_transform.lake import Lake
from churn_transform.monitoring.drift import TooFewRows, compare, describe
from churn_transform.serving.traffic import read_traffic
from churn_transform.settings import Settings, masked
from steps._cli import boolean, count, day, lake_of, positive, start, tracked_run

DRIFT_EXIT = 3


def window(end: str, days: int) -> tuple[str, str]:
    """First and last day (YYYY-MM-DD) of ``days`` days ending ``end`` ("today" in UTC)."""
    last = datetime.now(UTC).date() if end == "today" else datetime.fromisoformat(end).date()
    return str(last - timedelta(days=days - 1)), str(last)


def _last_day(value: str) -> str:
    return value if value == "today" else day(value)


def reference_of(settings: Settings, version: str) -> tuple[pd.DataFrame, str | None]:
    """The training sample kept by the run that produced registry ``version``, and its run id."""
    client = mlflow.MlflowClient(settings.tracking_uri)
    run_id = client.get_model_version(settings.model_name, version).run_id
    with tempfile.TemporaryDirectory() as folder:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id,
            artifact_path="evaluation/reference.parquet",
            dst_path=folder,
            tracking_uri=settings.tracking_uri,
        )
        return pd.read_parquet(path), run_id


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--end",
        type=_last_day,
        required=True,
        help='last day, YYYY-MM-DD or "today"',
    )
    parser.add_argument("--days", type=positive, required=True)
    parser.add_argument("--max-rows", type=positive, required=True)
    parser.add_argument("--min-rows", type=count, required=True)
    parser.add_argument("--drift-share", type=float, required=True)
    parser.add_argument("--fail-on-drift", type=boolean, required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    settings = start("drift")
    args = _arguments(argv)
    first, last = window(args.end, args.days)
    lake = lake_of(settings)
    with tracked_run(settings, "drift") as run:
        traffic, seen = _traffic(settings, first, last, args.max_rows)
        if traffic.empty:
            print(
                f"drift: no predictions logged from {first} to {last} under "
                f"{masked(settings.traffic_uri)}: nothing to compare, no alarm"
            )
            return
        version = str(traffic["model_version"].mode().iloc[0])
        reference, reference_run = reference_of(settings, version)
        mlflow.set_tags({"model_version": version, "reference_run": reference_run})
        try:
            result = compare(reference, traffic, args.drift_share, args.min_rows)
        except TooFewRows as err:
            print(f"drift: {first}..{last}: {err}; no alarm")
            return
        summary = {
            **result.summary,
            "window": [first, last],
            "window_predictions": seen,
            "model_version": version,
            "run_id": run.info.run_id,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        _record(lake, summary, result.html)
    print(f"drift: {first}..{last}, model version {version}")
    print(describe(summary))
    if summary["dataset_drift"] and args.fail_on_drift:
        print("drift: failing as asked; retrain with `mlflow run . -e main`")
        sys.exit(DRIFT_EXIT)


def _traffic(settings: Settings, first: str, last: str, rows: int) -> tuple[pd.DataFrame, int]:
    """A sample of at most ``rows`` of the window's traffic and how many it held, logged."""
    uri = settings.traffic_uri
    options = settings.storage_options(uri)
    traffic, seen = read_traffic(uri, first, last, max_rows=rows, storage_options=options)
    mlflow.log_metrics({"window_predictions": seen, "sampled_predictions": len(traffic)})
    mlflow.set_tags({"window": f"{first}..{last}"})
    return traffic, seen


def _record(lake: Lake, summary: dict[str, Any], html: str) -> None:
    """The summary and the report on this MLflow run and in the lake's monitoring folder."""
    top_client_share = summary["top_client_share"]
    mlflow.log_metrics(
        {
            "drift_share": summary["drift_share"],
            "drifted_columns": len(summary["drifted_columns"]),
            "dataset_drift": int(summary["dataset_drift"]),
            **({"top_client_share": top_client_share} if top_client_share is not None else {}),
        }
    )
    mlflow.log_dict(summary, "drift/summary.json")
    mlflow.log_text(html, "drift/report.html")
    folder = f"{time.strftime('%Y%m%dT%H%M%S')}-{summary['run_id']}"
    lake.write_bytes(html.encode(), "monitoring", "drift", folder, "report.html")
    summary_bytes = json.dumps(summary, indent=1).encode()
    lake.write_bytes(summary_bytes, "monitoring", "drift", folder, "summary.json")


if __name__ == "__main__":
    main()
