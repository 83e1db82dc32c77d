"""The ``uplift`` entry point through ``mlflow run``, as a user runs it: a generated lake whose
March 2017 cohort held a campaign gets a registered, gated uplift model; raw files without a
campaign log get nothing, and the step still succeeds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dask
import mlflow
import pandas as pd
import pytest

from churn_transform.etl.gold import build_gold
from churn_transform.etl.ingest import ingest
from churn_transform.lake import Lake
from churn_transform.modelling.promotion import RECORD
from churn_transform.modelling.uplift import UpliftModel
from churn_transform.modelling.uplift_registry import load_uplift_champion
from churn_transform.schema import FEATURES
from churn_transform.settings import PROJECT_ROOT, Settings
from churn_transform.synthetic import GeneratorConfig, generate
from churn_transform.synthetic.campaign import CAMPAIGN_COHORT
from tests.conftest import built_once, tracking_store

MLFLOW = str(Path(sys.executable).parent / "mlflow")
UPLIFT = "kkbox-uplift"


def _build(root: Path) -> None:
    # 30,000 users: about 3,800 in the campaign, half of them held out, enough for the observed
    # Qini's interval to clear 0 (at 20,000 it does not)
    config = GeneratorConfig(users=30_000, seed=5, log_start="2016-10-01", campaign_share=0.5)
    generate(config, root / "data" / "raw", root / "data" / "oracle")
    lake = Lake(str(root / "lake"))
    with dask.config.set(scheduler="threads"):
        ingest(lake, str(root / "data" / "raw"), {}, buckets=1)
        build_gold(lake, CAMPAIGN_COHORT)


@pytest.fixture(scope="module")
def campaign_data(request: pytest.FixtureRequest) -> Path:
    """Generated raw files with a campaign (read only), and the gold table of its cohort."""
    return built_once(request, "uplift-campaign", _build)


def _uplift(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [MLFLOW, "run", ".", "-e", "uplift", "--env-manager", "local"]
    command += ["-P", "holdout=0.5", "-P", "n_estimators=100", "-P", "draws=100"]
    return subprocess.run(
        command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def _env(tmp_path: Path, data: Path, lake: Path) -> dict[str, str]:
    return {
        **os.environ,
        # `mlflow run --env-manager local` runs `python` from PATH: this environment's.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "KKBOX_DATA_DIR": str(data),
        "KKBOX_LAKE_URI": str(lake),
        "MLFLOW_TRACKING_URI": tracking_store(tmp_path / "mlflow.db"),
        "MLFLOW_EXPERIMENT_NAME": "kkbox-churn",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }


@pytest.mark.integration
def test_a_campaign_gives_a_registered_uplift_champion_with_its_metrics(
    campaign_data: Path, tmp_path: Path
) -> None:
    env = _env(tmp_path, campaign_data / "data", campaign_data / "lake")
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    # the model's artifacts in the test's folder, not ./mlruns of the project
    client.create_experiment("kkbox-churn", artifact_location=str(tmp_path / "artifacts"))
    result = _uplift(env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert f"{UPLIFT} version 1 is the new champion" in result.stdout
    champion = client.get_model_version_by_alias(UPLIFT, "champion")
    assert str(champion.version) == "1"
    run = client.get_run(str(champion.run_id))
    metrics = run.data.metrics
    assert metrics["observed_qini_low"] > 0
    assert metrics["observed_qini_low"] <= metrics["observed_qini"] <= metrics["observed_qini_high"]
    # synthetic data: judged against the oracle's true effect too, and far better than random
    assert metrics["oracle_qini"] > 0.3
    assert 0 < metrics["held_out_users"] < metrics["train_users"] + metrics["held_out_users"]
    assert run.data.params["campaign"] == "retention-2017-03"
    recorded = json.loads(
        Path(client.download_artifacts(run.info.run_id, RECORD, str(tmp_path))).read_text()
    )
    assert recorded["outcome"] == "promoted" and recorded["version"] == "1"
    # the churn model's registry is untouched; the champion loads back, trusted types only
    settings = Settings(tracking_uri=env["MLFLOW_TRACKING_URI"], data_dir=str(campaign_data))
    assert not client.search_registered_models(f"name = '{settings.model_name}'")
    model = load_uplift_champion(settings)
    assert isinstance(model, UpliftModel)
    gold = pd.read_parquet(Lake(env["KKBOX_LAKE_URI"]).current("gold", "features_2017-03"))
    assert model.predict(gold[list(FEATURES)].head(50)).shape == (50,)


@pytest.mark.integration
def test_raw_files_without_a_campaign_log_train_and_register_nothing(
    raw: Path, tmp_path: Path
) -> None:
    env = _env(tmp_path, tmp_path / "data", tmp_path / "lake")
    env["KKBOX_RAW_URI"] = str(raw)
    result = _uplift(env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "no campaign log (campaigns.csv)" in result.stdout
    assert "no uplift model is trained or registered" in result.stdout
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    assert client.search_registered_models() == []
    assert not (tmp_path / "lake").exists()
