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


def platform_copy(champion: Champion, root: Path) -> dict[str, str]:
    """The champion's stores (lake, registry, BentoML store, raw files) copied under ``root``,
    as ``make demo`` leaves a platform; the environment that finds them."""
    source = Path(champion.env["KKBOX_LAKE_URI"]).parent
    for name in ("lake", "bentoml", "data"):
        shutil.copytree(source / name, root / name)
    shutil.copy(source / "mlflow.db", root / "mlflow.db")
    return {
        **champion.env,
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "MLFLOW_EXPERIMENT_NAME": "kkbox-churn",
        "KKBOX_LAKE_URI": str(root / "lake"),
        "KKBOX_DATA_DIR": str(root / "data"),
        "BENTOML_HOME": str(root / "bentoml"),
        "KKBOX_FEATURE_REPO": str(root / "feature_store"),
        "KKBOX_TRAFFIC_LOG_URI": str(root / "traffic"),
    }


@pytest.fixture
def month_env(champion: Champion, tmp_path: Path) -> dict[str, str]:
    """A platform of its own, and April landed as an increment listing May's cohort: the
    platform one month on."""
    env = platform_copy(champion, tmp_path)
    april = pd.read_csv(tmp_path / "data" / "raw" / "sample_submission_v2.csv")
    landed = tmp_path / "data" / "raw" / "increments" / "2017-04"
    landed.mkdir(parents=True)
    april.head(300).to_csv(landed / "cohort_2017-05.csv", index=False)
    return env


def _files(folder: Path) -> dict[str, int]:
    return {str(path.relative_to(folder)): path.stat().st_mtime_ns for path in folder.rglob("*")}


def make(env: dict[str, str], *arguments: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    """``make ARGUMENTS`` in the project, as a user types it (the venv taken as set up)."""
    result = subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", *arguments],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == expect, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_a_month_whose_increment_has_not_landed_stops_before_writing_anything(
    champion: Champion, tmp_path: Path
) -> None:
    env = platform_copy(champion, tmp_path)
    before = _files(tmp_path / "lake")
    refused = make(env, "cycle", "MONTH=2017-04", expect=2)
    folder = tmp_path / "data" / "raw" / "increments" / "2017-04"
    assert f"no increment has landed for 2017-04: {folder}/ is missing or empty" in refused.stderr
    assert "mlflow run . -e generate --env-manager local -P months=1" in refused.stderr
    assert _files(tmp_path / "lake") == before  # no ingest, no gold of an empty May
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("kkbox-churn").experiment_id
    (cycle,) = client.search_runs([experiment], "tags.`mlflow.project.entryPoint` = 'cycle'")
    assert (cycle.info.run_name, cycle.info.status) == ("cycle", "FAILED")


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
    assert "cycle 2017-04 ran to the end before: nothing was run again" in again
    assert "ran to the end before" not in printed
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
    assert entry_points >= {"ingest", "gold", "validate", "score", "quality", "drift", "train"}
    assert all(run.info.status == "FINISHED" for run in steps)
    train = next(run for run in steps if run.data.tags["mlflow.project.entryPoint"] == "train")
    assert train.data.params["train_cohort"] == "2017-02,2017-03"
    assert train.data.params["learning_rate"] == "0.02"  # a default the cycle did not pass


#: The cycle's process killed once train has moved the alias, before anything else: what the
#: issue's operator did (issue #30, finding 7).
KILLED_AFTER_TRAIN = """
import sys
import steps.cycle as cycle
real = cycle.project_step
def dying(settings, entry_point, env_manager, **parameters):
    run = real(settings, entry_point, env_manager, **parameters)
    if entry_point == "train":
        raise KeyboardInterrupt("killed after the alias moved")
    return run
cycle.project_step = dying
cycle.main(sys.argv[1:])
"""
#: A policy that retrains and a gate that promotes whatever the candidate is.
PROMOTING = {
    "max_age_months": "0",
    "min_segment_users": "100000",
    "max_segment_auc_drop": "1",
    "drift_days": "1",
    "margin": "-1",
    "min_auc": "0",
    "min_oracle_share": "0",
}


def test_a_cycle_killed_after_the_alias_moved_is_finished_by_its_rerun(
    month_env: dict[str, str], tmp_path: Path
) -> None:
    run_step(month_env, sys.executable, "-m", "steps.score", "--cohort", "2017-03")
    argv = ["--month", "2017-04", "--max-auc-drop", "0.03", "--retrain-on-drift", "true"]
    argv += ["--max-client-share", "0.5"]
    argv += ["--train-months", "2", "--holdout", "0.3", "--env-manager", "local"]
    for name, value in PROMOTING.items():
        argv += [f"--{name.replace('_', '-')}", value]
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_TRAIN, *argv],
        cwd=PROJECT_ROOT,
        env=month_env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert killed.returncode != 0 and "killed after the alias moved" in killed.stderr
    client = mlflow.MlflowClient(month_env["MLFLOW_TRACKING_URI"])
    assert str(client.get_model_version_by_alias("kkbox-churn", "champion").version) == "2"
    assert not (tmp_path / "lake" / "cycles" / "2017-04.json").exists()

    _cycle(month_env, "2017-04", *(f"{name}={value}" for name, value in PROMOTING.items()))
    record = json.loads((tmp_path / "lake" / "cycles" / "2017-04.json").read_text())
    assert (record["champion_before"], record["champion_after"]) == ("1", "2")
    assert (record["action"], record["candidate"]) == ("promoted", "2")
    assert record["realized_roc_auc"] is not None, json.dumps(record)  # v1 on March: the fact
    assert len(client.search_model_versions("name='kkbox-churn'")) == 2  # not trained again
    # imported: the store's newest model is version 2, which a service would now load
    imported = run_step(month_env, sys.executable, "-m", "steps.import_champion")
    assert "already in the store" in imported and "registry version 2" in imported
    # and May, awaiting its labels, scored by version 2 too
    scored = {
        str(pd.read_parquet(path)["model_version"].iloc[0])
        for path in (tmp_path / "lake" / "predictions" / "2017-05").glob("*/scores.parquet")
    }
    assert "2" in scored
