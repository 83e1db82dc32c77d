"""The whole platform on the full stack, configured as docker-compose.yml configures it but run
as local processes: the lake on an S3 server, MLflow on a server backed by PostgreSQL with S3
artifacts, Dask on a scheduler with two workers, the service under ``bentoml serve``, Prometheus
scraping it, the drift job and the dashboard reading it all back. The gold ``main`` builds there
is the embedded default's, to the byte."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
import requests
import s3fs
from streamlit.testing.v1 import AppTest

from churn_transform.lake import lake_of
from churn_transform.settings import PROJECT_ROOT, Settings
from tests.conftest import (
    BIN,
    S3_CREDENTIALS,
    drift_command,
    prometheus_query,
    records_of,
    run_step,
    serve,
    start_prometheus,
    step_env,
    stop,
)

pytestmark = pytest.mark.integration


def test_main_serve_monitor_on_s3_mlflow_server_and_dask(
    tmp_path: Path,
    raw: Path,
    reference_gold: dict[str, str],
    s3_bucket: str,
    s3_endpoint: str,
    mlflow_server: str,
    dask_scheduler: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = step_env(
        tmp_path,
        KKBOX_RAW_URI=f"{s3_bucket}/raw",
        KKBOX_LAKE_URI=f"{s3_bucket}/lake",
        KKBOX_DASK_SCHEDULER=dask_scheduler,
        MLFLOW_TRACKING_URI=mlflow_server,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL_S3=s3_endpoint,
        MLFLOW_S3_ENDPOINT_URL=s3_endpoint,
        BENTOML_HOME=str(tmp_path / "bentoml"),
        BENTOML_DO_NOT_TRACK="True",
        KKBOX_TRAFFIC_LOG_URI=str(tmp_path / "traffic"),
    )
    env.pop("MLFLOW_EXPERIMENT_NAME", None)  # as a user runs it: main names its steps' experiment
    s3 = s3fs.S3FileSystem(**S3_CREDENTIALS, client_kwargs={"endpoint_url": s3_endpoint})
    s3.put(f"{raw}/", f"{s3_bucket[5:]}/raw/", recursive=True)
    built = run_step(
        env,
        str(BIN / "mlflow"),
        "run",
        ".",
        "-e",
        "main",
        "--env-manager",
        "local",
        "-P",
        "generate=false",
        "-P",
        "buckets=2",
        "-P",
        "min_oracle_share=0",
        "-P",
        "min_auc=0",
    )  # 2,500 users: a model too weak for the promotion floor; the stack is the point
    # the raw files and the lake on S3, the work on the cluster: the embedded default's gold
    assert "validation passed" in built
    for cohort, digest in reference_gold.items():
        assert f"gold {cohort}:" in built and digest in built
    assert s3.exists(f"{s3_bucket[5:]}/lake/gold/features_2017-03/CURRENT")
    assert s3.exists(f"{s3_bucket[5:]}/lake/bronze/raw/CURRENT")
    run_step(
        env,
        str(BIN / "mlflow"),
        "run",
        ".",
        "-e",
        "gold",
        "--env-manager",
        "local",
        "-P",
        "cohort=2017-04",
    )  # the month to score

    # the registry on the server has a champion, imported into BentoML with its lineage
    client = mlflow.MlflowClient(mlflow_server)
    champion = client.get_model_version_by_alias("kkbox-churn", "champion")
    run = client.get_run(champion.run_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    assert client.get_experiment(run.info.experiment_id).name == "kkbox-churn"
    settings = Settings(
        lake_uri=f"{s3_bucket}/lake",
        s3_endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    lake = lake_of(settings)
    assert lake.fs.exists(lake.path_of(lake.url("dvc")))  # DVC pushed to the lake's bucket

    process, url = serve(env)
    prometheus, scraping = start_prometheus(url.removeprefix("http://"), tmp_path)
    try:
        about = requests.post(f"{url}/metadata", json={}, timeout=10).json()
        assert about["registry_version"] == str(champion.version)
        assert about["run_id"] == champion.run_id
        assert about["data_version"] == run.data.tags["gold_hash.train"][:12]
        april = pd.read_parquet(
            lake.current("gold", "features_2017-04"), storage_options=lake.storage_options
        )
        records = records_of(april)
        with requests.Session() as session:
            for start in range(0, len(records), 50):
                answer = session.post(
                    f"{url}/predict", json={"records": records[start : start + 50]}, timeout=30
                )
                assert answer.status_code == 200, answer.text
        scraped = prometheus_query(scraping, f"sum(kkbox_predictions_total) >= {len(records)}")
        assert float(scraped[0]["value"][1]) == len(records)
    finally:
        stop(prometheus)
        stop(process)  # flushes the traffic log

    # the drift job loads the model from the server's S3 artifacts, reads its reference (the
    # training cohort's gold) from the S3 lake and writes there
    printed = run_step(env, *drift_command())
    assert f"model version {champion.version}" in printed
    summaries = lake.fs.glob(lake.path_of(lake.url("monitoring", "drift")) + "/*/summary.json")
    assert len(summaries) == 1

    # the dashboard finds the champion (service down: from the registry), traffic and drift
    for name in (
        "MLFLOW_TRACKING_URI",
        "KKBOX_LAKE_URI",
        "KKBOX_TRAFFIC_LOG_URI",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ):
        monkeypatch.setenv(name, env[name])
    monkeypatch.setenv("KKBOX_SERVICE_URL", url)

    def tab(name: str) -> AppTest:  # the dashboard runs only the open tab (?tab=NAME)
        app = AppTest.from_file(str(PROJECT_ROOT / "dashboard" / "app.py"), default_timeout=60)
        app.query_params["tab"] = name
        app.run()
        assert not app.exception, name
        return app

    model = tab("Model")
    assert (
        f"Version {champion.version} of `kkbox-churn`, from the registry" in model.caption[0].value
    )
    live = tab("Live")
    assert {m.label: m.value for m in live.metric}["predictions"] == f"{len(records):,}"
    drift = tab("Drift")
    assert drift.subheader[0].value.startswith(("No drift that costs", "Drift: estimated ROC AUC"))
