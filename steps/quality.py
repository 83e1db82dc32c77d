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
``ChurnModelQualityDecayed`` compares them. Beside them, the performance estimated from the
batch scores before the labels (``estimate.json``, ``monitoring.estimation``) against the
realized and the oracle's: ``quality/<cohort>/estimation.parquet`` (every version and segment),
metrics ``batch.v<version>.estimated_roc_auc`` and ``...estimation_error_roc_auc`` (realized -
estimated; also of precision and recall) and the gauges ``kkbox_estimated_roc_auc`` and
``kkbox_estimation_error_roc_auc`` (labels ``cohort``, ``model_version``). When a campaign was
played on the cohort (its log landed with the cohort's increment, ``etl.campaign_log``) from a
plan ``score`` wrote, its verdict (``monitoring.verdict``):
``quality/<cohort>/campaign_verdict.json``, metrics ``campaign_<figure>``
(``monitoring.verdict.verdict_metrics``), the tag ``campaign_verdict`` (its sentence) and the
gauges ``kkbox_campaign_realized_saves``, ``kkbox_campaign_realized_net_value_ntd`` and
``kkbox_campaign_forecast_net_value_ntd`` (labels ``cohort``, ``campaign_id``); without a log,
nothing. A cohort without labels yet, or
without any prediction made for it, is said and measures nothing.
"""

from __future__ import annotations

import argparse
import io
from typing import TYPE_CHECKING

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException

from churn_transform.dates import shift_month
from churn_transform.etl.campaign_log import read_landed_campaign
from churn_transform.etl.gold import build_gold, read_gold
from churn_transform.lake import Lake
from churn_transform.modelling.segments import segment_labels
from churn_transform.monitoring.estimation import estimates, estimation_metrics, estimation_table
from churn_transform.monitoring.predictions import batch_scores, campaign_plans
from churn_transform.monitoring.quality import ALL, REPORTED, realized_quality, reported_metrics
from churn_transform.monitoring.verdict import (
    Verdict,
    campaign_verdict,
    played_plan,
    verdict_metrics,
    write_verdict,
)
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

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


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


def push(
    url: str,
    cohort: str,
    overall: pd.DataFrame,
    evaluated: dict[str, float],
    estimation: pd.DataFrame | None = None,
    verdict: Verdict | None = None,
) -> None:
    """The overall figures to the Pushgateway: one group, replaced at every push, so the alert
    sees the newest labelled cohort only; with the estimates made before the labels and their
    errors (``estimation``: ``monitoring.estimation.estimation_table``), and the verdict of the
    campaign played on the cohort."""
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
    if estimation is not None and not estimation.empty:
        _estimation_gauges(registry, cohort, estimation)
    if verdict is not None:
        _campaign_gauges(registry, verdict)
    push_to_gateway(url, job="kkbox-quality", registry=registry)


def _estimation_gauges(registry: CollectorRegistry, cohort: str, estimation: pd.DataFrame) -> None:
    """``kkbox_estimated_roc_auc`` and ``kkbox_estimation_error_roc_auc`` (realized - estimated)
    of the batch scores' overall rows, by cohort and model version."""
    from prometheus_client import Gauge

    said = {
        "estimated_roc_auc": "ROC AUC estimated from the probabilities before the labels (CBPE)",
        "estimation_error_roc_auc": "Realized minus estimated ROC AUC, once the labels landed",
    }
    labels = ["cohort", "model_version"]
    gauges = {
        name: Gauge(f"kkbox_{name}", text, labels, registry=registry) for name, text in said.items()
    }
    for row in estimation[estimation["segment"] == ALL].to_dict("records"):
        for name, gauge in gauges.items():
            if pd.notna(row[name]):
                gauge.labels(cohort, str(row["model_version"])).set(row[name])


def _campaign_gauges(registry: CollectorRegistry, verdict: Verdict) -> None:
    """The campaign's realized saves and net value and its forecast net value, by cohort and
    campaign; a figure the verdict could not measure is not set."""
    from prometheus_client import Gauge

    said = {
        "realized_saves": "Subscribers a campaign saved, against its control group",
        "realized_net_value_ntd": "A campaign's realized net value (NTD), against its control",
        "forecast_net_value_ntd": "The net value (NTD) the campaign's plan forecast",
    }
    figures = {
        "realized_saves": verdict.realized_saves,
        "realized_net_value_ntd": verdict.realized_net_value,
        "forecast_net_value_ntd": verdict.forecast_net_value,
    }
    for name, text in said.items():
        gauge = Gauge(f"kkbox_campaign_{name}", text, ["cohort", "campaign_id"], registry=registry)
        if (figure := figures[name]) is not None:
            gauge.labels(verdict.cohort, verdict.campaign_id).set(figure)


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
            known = shift_month(args.cohort, 1)
            how = (
                "`make months` lands it and runs its cycle, which measures them"
                if known == "2017-05"  # the second of make months' increments
                else f"once it landed, `make cycle MONTH={known}` measures them"
            )
            print(
                f"quality: cohort {args.cohort} has no labels yet; nothing to measure. They land "
                f"with the increment of {known} (labels_{args.cohort}.csv): {how}"
            )
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
        estimation = _estimation(lake, args.cohort, quality)
        verdict = _campaign(settings, lake, args.cohort, labelled)
        if settings.pushgateway_url:
            push(settings.pushgateway_url, args.cohort, overall, evaluated, estimation, verdict)
    print(overall.drop(columns=["segment", "value"]).to_string(index=False))
    print(_estimation_said(estimation))
    if verdict is not None:
        print(verdict.said)
    own = ", ".join(f"version {v} {auc:.4f}" for v, auc in evaluated.items()) or "none known"
    print(f"quality of {args.cohort}: {target}; ROC AUC on their own evaluation cohort: {own}")


def _estimation(lake: Lake, cohort: str, quality: pd.DataFrame) -> pd.DataFrame:
    """The estimates made when the cohort was scored against its realized quality: in the lake,
    as metrics and as a table of the run."""
    estimation = estimation_table(estimates(lake, cohort), quality)
    if estimation.empty:
        return estimation
    buffer = io.BytesIO()
    estimation.assign(cohort=cohort).to_parquet(buffer, index=False)
    lake.write_bytes(buffer.getvalue(), "quality", cohort, "estimation.parquet")
    mlflow.log_metrics(estimation_metrics(estimation))
    mlflow.log_table(estimation, "quality/estimation.json")
    return estimation


def _campaign(
    settings: Settings, lake: Lake, cohort: str, labelled: pd.DataFrame
) -> Verdict | None:
    """The verdict of the campaign played on ``cohort`` when its log landed and its plan is in
    the lake: in the lake, as metrics and a tag of the run; None without a log. The plan is the
    newest the log follows, else the newest (whose verdict then names a row that does not)."""
    raw = settings.raw_dir
    log = read_landed_campaign(raw, settings.storage_options(raw), cohort)
    if log is None:
        return None
    plans = campaign_plans(lake, cohort)
    if not plans:
        print(f"quality: a campaign was played on {cohort}, but no plan of it is in the lake")
        return None
    plan, summary = played_plan(log, plans) or plans[0]
    oracle = oracle_answers(settings.oracle_dir, cohort, log["msno"])
    if oracle is not None and "churn_probability_offered" not in oracle:
        oracle = None  # an oracle of a world without offers
    verdict = campaign_verdict(log, labelled[LABEL], plan, summary, oracle)
    write_verdict(lake, verdict)
    mlflow.log_metrics(verdict_metrics(verdict))
    mlflow.log_text(verdict.to_json(), "quality/campaign_verdict.json")
    mlflow.set_tag("campaign_verdict", verdict.said)
    return verdict


def _estimation_said(estimation: pd.DataFrame) -> str:
    if estimation.empty:
        return "estimated before the labels: no estimate was stored with the batch scores"
    lines = []
    for row in estimation[estimation["segment"] == ALL].to_dict("records"):
        oracle = float(row["oracle_roc_auc"])
        lines.append(
            f"version {row['model_version']}: ROC AUC estimated before the labels "
            f"{float(row['estimated_roc_auc']):.4f} "
            f"(± {float(row['roc_auc_standard_error']):.4f}), "
            f"realized {float(row['realized_roc_auc']):.4f}, error "
            f"{float(row['estimation_error_roc_auc']):+.4f}"
            + (f", oracle {oracle:.4f}" if oracle == oracle else "")
        )
    return "\n".join(lines)


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
