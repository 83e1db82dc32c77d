"""Entry point ``quality``: how the predictions made for a cohort did, once its labels arrived.

Reads: the cohort's gold table (its labels and the segments' columns; built from the current
silver if missing), every batch score of the cohort (each row with the model version that made
it: ``churn_transform.monitoring.predictions``), the service's traffic log between
``--traffic-start`` and ``--traffic-end`` when given, the oracle's answers on synthetic data, and
each model version's own evaluation ROC AUC (its training run). Produces, replacing the
cohort's previous figures: ``quality/<cohort>/quality.parquet`` in the lake (every source,
version and segment); MLflow metrics of the overall rows (named by ``monitoring.quality``,
which the cycle reads them back through) and the table as an artifact; and,
with ``KKBOX_PUSHGATEWAY_URL`` set, the overall figures pushed to the Prometheus Pushgateway
(``kkbox_realized_roc_auc`` beside ``kkbox_evaluated_roc_auc``), where the alert
``ChurnModelQualityDecayed`` compares them. A cohort without labels yet, or without any
prediction made for it, is said and measures nothing.
"""

from __future__ import annotations

import argparse
import io

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException

from churn_transform.etl.gold import build_gold, read_gold
from churn_transform.lake import Lake
from churn_transform.modelling.segments import segment_labels
from churn_transform.monitoring.predictions import batch_scores
from churn_transform.monitoring.quality import ALL, REPORTED, realized_quality, reported_metrics
from churn_transform.schema import LABEL
from churn_transform.serving.traffic import read_traffic
from churn_transform.settings import Settings
from churn_transform.synthetic.report import oracle_answers
from steps._cli import (
    cohort,
    count,
    day,
    lake_of,
    log_gold_input,
    optional,
    start,
    tracked_run,
)


def served(settings: Settings, start: str, end: str) -> pd.DataFrame:
    """The service's answers between ``start`` and ``end`` (days), as predictions."""
    uri = settings.traffic_ship_uri or settings.traffic_log_uri
    logged, _ = read_traffic(uri, start, end, storage_options=settings.storage_options(uri))
    if logged.empty:
        return logged
    return logged[["msno", "churn_probability", "churn", "model_version", "ts"]].assign(
        source="traffic"
    )


def evaluated_auc(settings: Settings, versions: list[str]) -> dict[str, float]:
    """Each model version's ROC AUC on its own evaluation cohort, from its training run (versions
    the registry does not hold are left out)."""
    client = mlflow.MlflowClient(settings.tracking_uri)
    found = {}
    for version in versions:
        try:
            registered = client.get_model_version(settings.model_name, version)
        except MlflowException:  # a version this registry does not hold (or no longer)
            continue
        metrics = client.get_run(str(registered.run_id)).data.metrics
        if "roc_auc" in metrics:
            found[version] = metrics["roc_auc"]
    return found


def push(url: str, cohort: str, overall: pd.DataFrame, evaluated: dict[str, float]) -> None:
    """The overall figures to the Pushgateway: one group, replaced at every push, so the alert
    sees the newest labelled cohort only."""
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    registry = CollectorRegistry()
    labels = ["cohort", "source", "model_version"]
    gauges = {
        name: Gauge(
            f"kkbox_realized_{name}",
            f"Realized {name} on a labelled cohort",
            labels,
            registry=registry,
        )
        for name in (*REPORTED, "churn_rate")
    }
    for row in overall.itertuples():
        for name, gauge in gauges.items():
            value = getattr(row, name)
            if pd.notna(value):
                gauge.labels(cohort, row.source, row.model_version).set(value)
    own = Gauge(
        "kkbox_evaluated_roc_auc",
        "A model version's ROC AUC on its own evaluation cohort, at training",
        ["model_version"],
        registry=registry,
    )
    for version, value in evaluated.items():
        own.labels(version).set(value)
    push_to_gateway(url, job="kkbox-quality", registry=registry)


def main(argv: list[str] | None = None) -> None:
    settings = start("quality")
    args = _arguments(argv)
    lake = lake_of(settings)
    with tracked_run(settings, "quality"):
        build_gold(lake, args.cohort)
        gold, _ = read_gold(lake, args.cohort)
        log_gold_input(lake, args.cohort, "evaluation", gold)
        labelled = gold[gold[LABEL].notna()].set_index("msno")
        if labelled.empty:
            print(f"quality: cohort {args.cohort} has no labels yet; nothing to measure")
            return
        predictions = _predictions(settings, lake, args)
        if predictions.empty:
            print(f"quality: no prediction was made for cohort {args.cohort}; nothing to measure")
            return
        quality = _measure(settings, args, predictions, labelled)
        buffer = io.BytesIO()
        quality.assign(cohort=args.cohort).to_parquet(buffer, index=False)
        target = lake.write_bytes(buffer.getvalue(), "quality", args.cohort, "quality.parquet")
        overall = quality[quality["segment"] == ALL]
        evaluated = evaluated_auc(settings, sorted(overall["model_version"].unique()))
        mlflow.log_metrics(reported_metrics(quality))
        mlflow.log_table(quality, "quality/quality.json")
        mlflow.log_params({"cohort": args.cohort, "quality": target})
        if settings.pushgateway_url:
            push(settings.pushgateway_url, args.cohort, overall, evaluated)
    print(overall.drop(columns=["segment", "value"]).to_string(index=False))
    own = ", ".join(f"version {v} {auc:.4f}" for v, auc in evaluated.items()) or "none known"
    print(f"quality of {args.cohort}: {target}; ROC AUC on their own evaluation cohort: {own}")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cohort", type=cohort, required=True)
    window = "first day of the service's answers to count, or 'none' (batch scores only)"
    parser.add_argument("--traffic-start", type=optional(day), required=True, help=window)
    parser.add_argument("--traffic-end", type=optional(day), required=True)
    parser.add_argument("--min-segment-users", type=count, required=True)
    return parser.parse_args(argv)


def _predictions(settings: Settings, lake: Lake, args: argparse.Namespace) -> pd.DataFrame:
    """The batch scores of the cohort, and the service's answers in the window if given."""
    found = [batch_scores(lake, args.cohort)]
    if args.traffic_start and args.traffic_end:
        found.append(served(settings, args.traffic_start, args.traffic_end))
    made = [frame for frame in found if not frame.empty]
    return pd.concat(made, ignore_index=True) if made else pd.DataFrame()


def _measure(
    settings: Settings, args: argparse.Namespace, predictions: pd.DataFrame, labelled: pd.DataFrame
) -> pd.DataFrame:
    """Realized quality of ``predictions`` against the ``labelled`` users (by msno)."""
    oracle = oracle_answers(settings.oracle_dir, args.cohort, labelled.index.to_series())
    return realized_quality(
        predictions,
        labelled[LABEL],
        segments=segment_labels(labelled),
        oracle=oracle["churn_probability"] if oracle is not None else None,
        min_users=args.min_segment_users,
    )


if __name__ == "__main__":
    main()
