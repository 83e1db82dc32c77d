"""Entry point ``drift``: served traffic of a window of days against the training reference.

Reads: the traffic log of the ``days`` days ending ``end``, each subscriber's newest prediction
(a uniform sample of ``max_rows`` subscribers when more were served): every
replica's files shipped to ``KKBOX_TRAFFIC_SHIP_URI`` when set, else ``KKBOX_TRAFFIC_LOG_URI``;
the model version that served most of that traffic, its threshold, and the gold table of the
newest cohort it was trained on (the run's reference sample, ``evaluation/reference.parquet``,
when the lake no longer holds that table). Produces: Evidently's HTML report and a JSON summary
(the estimated performance on the window and on the reference, the verdict, the drifted columns
ranked by their estimated effect, per-column method, statistic and threshold, row counts) in the
lake (``monitoring/drift/<time>-<run>/``) and on this MLflow run, the gauges
``kkbox_drift_detected`` and ``kkbox_drift_estimated_roc_auc`` on the Pushgateway when
``KKBOX_PUSHGATEWAY_URL`` is set (job ``kkbox-drift``), and a one-screen summary. Too few
predictions in the window: a message and exit 0, never an alarm. With ``--fail-on-drift true``
a detected drift exits 3, so a scheduler can retrain (``mlflow run . -e main``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import mlflow
import pandas as pd

from churn_transform.etl.gold import read_gold
from churn_transform.lake import Lake
from churn_transform.modelling.model import ChurnModel
from churn_transform.monitoring.drift import TooFewRows, compare, describe, reference_cohort
from churn_transform.serving.traffic import read_subscribers
from churn_transform.settings import Settings, masked
from steps._cli import (
    boolean,
    count,
    day,
    lake_of,
    load_registered,
    positive,
    share,
    start,
    tracked_run,
)

DRIFT_EXIT = 3


@dataclass
class Served:
    """The model version that served the window, as the drift check needs it."""

    version: str
    run_id: str
    model: ChurnModel
    threshold: float
    reference: pd.DataFrame
    #: where the reference came from: ``gold <cohort> <hash>`` or the run's sample
    reference_source: str


def window(end: str, days: int) -> tuple[str, str]:
    """First and last day (YYYY-MM-DD) of ``days`` days ending ``end`` ("today" in UTC)."""
    last = datetime.now(UTC).date() if end == "today" else datetime.fromisoformat(end).date()
    return str(last - timedelta(days=days - 1)), str(last)


def _last_day(value: str) -> str:
    return value if value == "today" else day(value)


def served(settings: Settings, lake: Lake, version: str) -> Served:
    """Registry ``version``: its model, the threshold its training chose, and its reference."""
    client = mlflow.MlflowClient(settings.tracking_uri)
    run_id = str(client.get_model_version(settings.model_name, version).run_id)
    run = client.get_run(run_id)
    model = load_registered(f"models:/{settings.model_name}/{version}")
    reference, source = reference_of(settings, lake, run_id, run.data.tags)
    return Served(version, run_id, model, run.data.metrics["threshold"], reference, source)


def reference_of(
    settings: Settings, lake: Lake, run_id: str, tags: dict[str, str]
) -> tuple[pd.DataFrame, str]:
    """The gold table of the reference cohort of run ``run_id`` (``reference_cohort``), whole;
    the training sample the run kept when the lake no longer has that table."""
    cohort = reference_cohort(tags.get("train_cohort", ""))
    if cohort:
        try:
            gold, digest = read_gold(lake, cohort)
            return gold, f"gold {cohort} {digest}"
        except FileNotFoundError:  # gone from the lake (retention): the run's own sample
            pass
    with tempfile.TemporaryDirectory() as folder:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id,
            artifact_path="evaluation/reference.parquet",
            dst_path=folder,
            tracking_uri=settings.tracking_uri,
        )
        return pd.read_parquet(path), f"the training sample of run {run_id}"


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
    parser.add_argument(
        "--auc-drop",
        type=share,
        required=True,
        help="the fall of the estimated ROC AUC below the reference's that is a drift",
    )
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
        model = served(settings, lake, str(traffic["model_version"].mode().iloc[0]))
        mlflow.set_tags(
            {
                "model_version": model.version,
                "reference_run": model.run_id,
                "reference": model.reference_source,
            }
        )
        try:
            result = compare(
                model.reference,
                traffic,
                model=model.model,
                threshold=model.threshold,
                auc_drop=args.auc_drop,
                min_rows=args.min_rows,
            )
        except TooFewRows as err:
            print(f"drift: {first}..{last}: {err}; no alarm")
            return
        summary = {
            **result.summary,
            "window": [first, last],
            "window_predictions": seen,
            "model_version": model.version,
            "reference": model.reference_source,
            "run_id": run.info.run_id,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        _record(lake, summary, result.html)
        if settings.pushgateway_url:
            push(settings.pushgateway_url, summary)
    print(
        f"drift: {first}..{last}, model version {model.version}, reference {model.reference_source}"
    )
    print(describe(summary))
    if summary["drift_detected"] and args.fail_on_drift:
        print("drift: failing as asked; retrain with `mlflow run . -e main`")
        sys.exit(DRIFT_EXIT)


def push(url: str, summary: dict[str, Any]) -> None:
    """The verdict and the estimated ROC AUC to the Pushgateway, labelled with the model version:
    one group (job ``kkbox-drift``), replaced at every push, so alerts see the newest check."""
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    registry = CollectorRegistry()
    version = summary["model_version"]
    detected = Gauge(
        "kkbox_drift_detected",
        "1 when the served model's estimated ROC AUC on the drift window fell below its "
        "reference's by the alarm's margin",
        ["model_version"],
        registry=registry,
    )
    detected.labels(version).set(int(summary["drift_detected"]))
    if summary["estimated_roc_auc"] is not None:
        Gauge(
            "kkbox_drift_estimated_roc_auc",
            "The served model's ROC AUC on the drift window, estimated from its probabilities",
            ["model_version"],
            registry=registry,
        ).labels(version).set(summary["estimated_roc_auc"])
    push_to_gateway(url, job="kkbox-drift", registry=registry)


def _traffic(settings: Settings, first: str, last: str, rows: int) -> tuple[pd.DataFrame, int]:
    """The newest prediction of at most ``rows`` of the window's subscribers and how many
    predictions the window held, logged."""
    uri = settings.traffic_uri
    options = settings.storage_options(uri)
    traffic, seen = read_subscribers(
        uri, first, last, max_subscribers=rows, storage_options=options
    )
    mlflow.log_metrics({"window_predictions": seen, "sampled_subscribers": len(traffic)})
    mlflow.set_tags({"window": f"{first}..{last}"})
    return traffic, seen


def _record(lake: Lake, summary: dict[str, Any], html: str) -> None:
    """The summary and the report on this MLflow run and in the lake's monitoring folder."""
    figures = {
        name: summary[name]
        for name in (
            "estimated_roc_auc",
            "reference_estimated_roc_auc",
            "drift_share",
            "top_client_share",
            "placeholder_rows",
        )
        if summary[name] is not None
    }
    mlflow.log_metrics(
        {
            **figures,
            "drift_detected": int(summary["drift_detected"]),
            "drifted_columns": len(summary["drifted_columns"]),
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
