"""Realized quality (issue 15, point 3) through the steps: the champion scores a cohort, the
labels are known, and ``quality`` measures the scores against them, keeps the table in the lake
and pushes the overall figures to a real Prometheus Pushgateway."""

from __future__ import annotations

import datetime
import shutil
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from sklearn.metrics import roc_auc_score

from churn_transform.lake import Lake
from churn_transform.modelling.plan import contact_log
from churn_transform.monitoring.estimation import estimates
from churn_transform.monitoring.predictions import campaign_plans
from churn_transform.monitoring.verdict import campaign_verdict, read_verdict
from churn_transform.serving.records import Prediction
from churn_transform.serving.runtime import RequestRecord, traffic_entries
from churn_transform.serving.traffic import TrafficLog
from churn_transform.synthetic.report import oracle_answers
from tests.conftest import Champion, records_of, run_step, start_pushgateway, stop

pytestmark = pytest.mark.integration


def quality(env: dict[str, str], cohort: str, start: str, end: str, min_users: int) -> str:
    """``steps.quality`` as a user runs it; what it printed."""
    window = ["--traffic-start", start, "--traffic-end", end]
    return run_step(
        env,
        sys.executable,
        "-m",
        "steps.quality",
        "--cohort",
        cohort,
        *window,
        "--min-segment-users",
        str(min_users),
    )


def test_quality_of_a_scored_cohort_equals_the_champion_s_own_evaluation(
    champion: Champion, tmp_path: Path
) -> None:
    lake, raw = tmp_path / "lake", tmp_path / "raw"
    shutil.copytree(champion.env["KKBOX_LAKE_URI"], lake)  # this test's predictions stay here
    gateway, gateway_url = start_pushgateway()
    env = {**champion.env, "KKBOX_LAKE_URI": str(lake), "KKBOX_PUSHGATEWAY_URL": gateway_url}
    try:
        scored = run_step(env, sys.executable, "-m", "steps.score", "--cohort", "2017-03")
        assert "scored" in scored
        again = run_step(env, sys.executable, "-m", "steps.score", "--cohort", "2017-03")
        assert "already scored by version 1: nothing to do" in again
        log = _play_the_plan(lake, raw, "2017-03")
        # the raw folder of this test holds the played log only: quality reads nothing else there
        printed = quality({**env, "KKBOX_RAW_URI": str(raw)}, "2017-03", "none", "none", 200)
        pushed = requests.get(f"{gateway_url}/metrics", timeout=10).text
    finally:
        stop(gateway)
    table = pd.read_parquet(lake / "quality" / "2017-03" / "quality.parquet")
    overall = table[(table["segment"] == "all") & (table["source"] == "batch")].iloc[0]
    # the champion was judged on March when it was trained: the same model on the same users
    client = mlflow.MlflowClient(champion.env["MLFLOW_TRACKING_URI"])
    run = client.get_run(client.get_model_version("kkbox-churn", "1").run_id)
    assert overall["roc_auc"] == pytest.approx(run.data.metrics["roc_auc"], abs=1e-9)
    own = f"ROC AUC on their own evaluation cohort: version 1 {run.data.metrics['roc_auc']:.4f}"
    assert own in printed.strip().splitlines()[-1]
    assert overall["oracle_roc_auc"] == pytest.approx(run.data.metrics["oracle_roc_auc"], abs=1e-9)
    assert {"payment_method", "plan_length", "auto_renew", "tenure_band"} <= set(table["segment"])
    assert (table.loc[table["segment"] != "all", "users"] >= 200).all()
    assert 'kkbox_realized_roc_auc{cohort="2017-03",instance="",job="kkbox-quality",' in pushed
    assert 'kkbox_evaluated_roc_auc{instance="",job="kkbox-quality",model_version="1"}' in pushed
    _the_estimate_made_at_scoring_stands_beside_the_realized(lake, overall, pushed, printed)
    _the_campaign_played_on_the_cohort_is_judged(champion, lake, log, pushed, printed)


def _play_the_plan(lake: Path, raw: Path, cohort: str) -> pd.DataFrame:
    """The log a retention team hands back after playing the plan of ``cohort`` as written
    (``modelling.plan.contact_log``), landed with the cohort's increment."""
    ((plan, summary),) = campaign_plans(Lake(str(lake)), cohort)  # scored once
    log = contact_log(plan, summary.cohort)
    (raw / "increments" / cohort).mkdir(parents=True)
    log.to_csv(raw / "increments" / cohort / "campaigns.csv", index=False)
    return log


def _the_campaign_played_on_the_cohort_is_judged(
    champion: Champion, lake: Path, log: pd.DataFrame, pushed: str, printed: str
) -> None:
    """The verdict of the played campaign against the cohort's labels, in the lake, the run,
    the Pushgateway and the step's output."""
    ((plan, summary),) = campaign_plans(Lake(str(lake)), "2017-03")
    labels = champion.gold("2017-03").set_index("msno")["is_churn"]
    oracle = oracle_answers(
        str(Path(champion.env["KKBOX_DATA_DIR"]) / "oracle"), "2017-03", log["msno"]
    )
    if oracle is not None and "churn_probability_offered" not in oracle:
        oracle = None
    expected = campaign_verdict(log, labels, plan, summary, oracle)
    assert read_verdict(Lake(str(lake)), "2017-03") == expected
    assert expected.contacted > 0 and expected.control > 0 and expected.said in printed
    client = mlflow.MlflowClient(champion.env["MLFLOW_TRACKING_URI"])
    (run,) = client.search_runs(
        [client.get_experiment_by_name("kkbox-churn").experiment_id],
        "attributes.run_name = 'quality'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    assert run.data.tags["campaign_verdict"] == expected.said
    assert run.data.metrics["campaign_cost"] == expected.cost
    assert run.data.metrics["campaign_forecast_net_value"] == pytest.approx(
        expected.forecast_net_value
    )
    labels_shown = (
        'campaign_id="retention-2017-03",cohort="2017-03",instance="",job="kkbox-quality"'
    )
    assert f"kkbox_campaign_forecast_net_value_ntd{{{labels_shown}}}" in pushed
    realized = f"kkbox_campaign_realized_saves{{{labels_shown}}}"
    assert (realized in pushed) == (expected.realized_saves is not None)


def _the_estimate_made_at_scoring_stands_beside_the_realized(
    lake: Path, overall: pd.Series, pushed: str, printed: str
) -> None:
    """The score step stored its estimate (CBPE) beside the scores; the quality step compares it
    with the realized ROC AUC: realized - estimated, in the lake and at the Pushgateway."""
    (stored,) = estimates(Lake(str(lake)), "2017-03")
    assert stored.model_version == "1" and stored.overall.rows == overall["users"]
    assert {s.segment for s in stored.segments} >= {"auto_renew", "plan_length"}
    table = pd.read_parquet(lake / "quality" / "2017-03" / "estimation.parquet")
    row = table[table["segment"] == "all"].iloc[0]
    assert row["estimated_roc_auc"] == pytest.approx(stored.overall.roc_auc)
    assert row["realized_roc_auc"] == pytest.approx(overall["roc_auc"])
    assert row["estimation_error_roc_auc"] == pytest.approx(
        overall["roc_auc"] - stored.overall.roc_auc
    )
    assert row["oracle_roc_auc"] == pytest.approx(overall["oracle_roc_auc"])
    labels = 'cohort="2017-03",instance="",job="kkbox-quality",model_version="1"'
    for name in ("kkbox_estimated_roc_auc", "kkbox_estimation_error_roc_auc"):
        assert f"{name}{{{labels}}}" in pushed
    assert "version 1: ROC AUC estimated before the labels" in printed


def test_the_service_s_answers_are_measured_per_version_beside_the_batch(
    champion: Champion, tmp_path: Path
) -> None:
    """Traffic-log lines (as the service writes them, each with its model version) over a window
    of days count as a source of their own."""
    lake, traffic = tmp_path / "lake", tmp_path / "traffic"
    shutil.copytree(champion.env["KKBOX_LAKE_URI"], lake)
    march = champion.gold("2017-03")
    records = [RequestRecord(**r) for r in records_of(march)]
    log = TrafficLog(str(traffic))
    for version, part in (("1", records[:600]), ("7", records[600:])):
        answers = [
            Prediction(msno=r.msno, churn_probability=p, churn=p > 0.5, model_version=version)
            for r, p in zip(part, np.linspace(0.01, 0.99, len(part)), strict=True)
        ]
        log.append(traffic_entries(part, answers, version))
    log.close()
    env = {**champion.env, "KKBOX_LAKE_URI": str(lake), "KKBOX_TRAFFIC_LOG_URI": str(traffic)}
    today = datetime.date.today().isoformat()
    quality(env, "2017-03", today, today, min_users=100)
    table = pd.read_parquet(lake / "quality" / "2017-03" / "quality.parquet")
    overall = table[table["segment"] == "all"].set_index(["source", "model_version"])
    assert not (lake / "quality" / "2017-03" / "campaign_verdict.json").exists()  # none played
    assert overall.loc[("traffic", "1"), "users"] == 600
    assert overall.loc[("traffic", "7"), "users"] == len(records) - 600
    labels = march.set_index("msno")["is_churn"]
    first = [r.msno for r in records[:600]]
    expected = roc_auc_score(labels.reindex(first), np.linspace(0.01, 0.99, 600))
    assert overall.loc[("traffic", "1"), "roc_auc"] == pytest.approx(expected)


def test_a_cohort_without_predictions_or_labels_measures_nothing(
    champion: Champion, tmp_path: Path
) -> None:
    env = {**champion.env, "KKBOX_LAKE_URI": str(tmp_path / "lake")}
    shutil.copytree(champion.env["KKBOX_LAKE_URI"], tmp_path / "lake")
    for cohort, said in (("2017-02", "no prediction was made"), ("2017-04", "no labels yet")):
        assert said in quality(env, cohort, "none", "none", min_users=1)
