"""The monthly cycle (issue 15, point 4) through ``mlflow run . -e cycle``, on the champion's
data with a month landed by hand: every step runs, the decision and its reasons are recorded,
and a second run of the same month does not retrain again."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from churn_transform.settings import PROJECT_ROOT
from tests.conftest import Champion, run_step

pytestmark = pytest.mark.integration
MLFLOW = str(Path(sys.executable).parent / "mlflow")


def _cycle(env: dict[str, str], month: str, *parameters: str) -> str:
    command = [MLFLOW, "run", ".", "-e", "cycle", "--env-manager", "local", "-P", f"month={month}"]
    for parameter in parameters:
        command += ["-P", parameter]
    result = subprocess.run(
        command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=1500
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture
def month_env(champion: Champion, tmp_path: Path) -> dict[str, str]:
    """The champion's stores copied (lake, registry, BentoML store, raw files), and April landed
    as an increment listing May's cohort: a platform one month on, all of its own."""
    root = Path(champion.env["KKBOX_LAKE_URI"]).parent
    for name in ("lake", "bentoml", "data"):
        shutil.copytree(root / name, tmp_path / name)
    shutil.copy(root / "mlflow.db", tmp_path / "mlflow.db")
    april = pd.read_csv(tmp_path / "data" / "raw" / "sample_submission_v2.csv")
    landed = tmp_path / "data" / "raw" / "increments" / "2017-04"
    landed.mkdir(parents=True)
    april.head(300).to_csv(landed / "cohort_2017-05.csv", index=False)
    return {
        **champion.env,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "MLFLOW_EXPERIMENT_NAME": "kkbox-churn",
        "KKBOX_LAKE_URI": str(tmp_path / "lake"),
        "KKBOX_DATA_DIR": str(tmp_path / "data"),
        "BENTOML_HOME": str(tmp_path / "bentoml"),
        "KKBOX_FEATURE_REPO": str(tmp_path / "feature_store"),
        "KKBOX_TRAFFIC_LOG_URI": str(tmp_path / "traffic"),
    }


def test_a_month_scores_measures_decides_and_is_not_retrained_twice(
    month_env: dict[str, str], tmp_path: Path
) -> None:
    # March was scored by the champion a month ago (as cycle 2017-02 would have)
    run_step(month_env, sys.executable, "-m", "steps.score", "--cohort", "2017-03")
    # a policy that asks for a retrain whatever the quality: the champion's evaluation cohort
    # (March) is 0 months before the newly labelled one (March), and the limit is 0
    policy = ["max_age_months=0", "min_segment_users=100", "drift_days=1"]
    printed = _cycle(month_env, "2017-04", *policy)
    record = json.loads((tmp_path / "lake" / "cycles" / "2017-04.json").read_text())
    assert record["scored"] == "2017-05" and record["labelled"] == "2017-03"
    assert record["retrained"] and record["action"] in {"promoted", "refused"}
    assert "the champion was judged on 2017-03, 0 month(s) before 2017-03" in record["decision"]
    assert record["realized_roc_auc"] is not None and record["oracle_roc_auc"] is not None
    assert "cycle 2017-04" in printed and record["action"] in printed
    scores = list((tmp_path / "lake" / "predictions" / "2017-05").glob("*/scores.parquet"))
    assert len(scores) == 1 and len(pd.read_parquet(scores[0])) == 300
    assert (tmp_path / "lake" / "quality" / "2017-03" / "quality.parquet").exists()
    client = mlflow.MlflowClient(month_env["MLFLOW_TRACKING_URI"])
    versions = client.search_model_versions("name='kkbox-churn'")
    assert len(versions) == 2  # the champion and this month's candidate

    again = _cycle(month_env, "2017-04", *policy)
    assert len(client.search_model_versions("name='kkbox-churn'")) == 2  # no second retrain
    assert record["action"] in again
    cycles = client.search_runs(
        [client.get_experiment_by_name("kkbox-churn").experiment_id], "tags.action != ''"
    )
    assert len(cycles) == 2
    assert all(run.data.tags["decision"].startswith("retrain: ") for run in cycles)
    # each step ran in the cycle's process as the run `mlflow run` would have made: a child of
    # the cycle's run, tagged with its entry point, its parameters with the MLproject's defaults
    first = min(cycles, key=lambda run: run.info.start_time)
    steps = client.search_runs(
        [first.info.experiment_id], f"tags.mlflow.parentRunId = '{first.info.run_id}'"
    )
    entry_points = {run.data.tags["mlflow.project.entryPoint"] for run in steps}
    assert entry_points >= {"ingest", "feature", "validate", "score", "quality", "drift", "train"}
    assert all(run.info.status == "FINISHED" for run in steps)
    train = next(run for run in steps if run.data.tags["mlflow.project.entryPoint"] == "train")
    assert train.data.params["train_cohort"] == "2017-02,2017-03"
    assert train.data.params["learning_rate"] == "0.02"  # a default the cycle did not pass
