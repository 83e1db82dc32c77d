"""The Makefile's targets that the dashboard and ``make demo`` point to, run as a user types
them on a trained platform: each exits 0, and the cohort defaults come from MLproject."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import mlflow
import pytest
import requests

from churn_transform.settings import PROJECT_ROOT
from steps._cli import CLASSIC_ML, EXPERIMENT_KIND
from tests.conftest import Champion, free_port
from tests.integration.test_cycle import make, platform_copy

pytestmark = pytest.mark.integration


def test_score_quality_and_drift_work_on_a_trained_platform(
    champion: Champion, tmp_path: Path
) -> None:
    env = platform_copy(champion, tmp_path)
    scored = make(env, "score")  # MLproject's cohort: the first the champion serves, 2017-04
    assert "scored " in scored.stdout and " users of 2017-04 with models:/kkbox-churn/1" in (
        scored.stdout
    )
    assert list((tmp_path / "lake" / "predictions" / "2017-04").glob("*/scores.parquet"))
    unlabelled = make(env, "quality").stdout
    assert "cohort 2017-04 has no labels yet" in unlabelled
    assert "`make months` lands it and runs its cycle, which measures them" in unlabelled
    assert "nothing to compare, no alarm" in make(env, "drift").stdout


@pytest.mark.parametrize("target", ["score", "quality", "drift"])
def test_a_cohort_is_passed_only_when_given(target: str) -> None:
    def command(*arguments: str) -> str:
        return subprocess.run(
            ["make", "--no-print-directory", "-n", "-o", ".venv/.installed", *arguments],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    plain = f".venv/bin/mlflow run . -e {target} --env-manager local"
    assert command(target) == plain
    if target != "drift":
        assert command(target, "COHORT=2017-05") == f"{plain} -P cohort=2017-05"


def test_make_ui_marks_the_experiment_and_prints_the_address_of_its_runs(
    champion: Champion, tmp_path: Path
) -> None:
    env = platform_copy(champion, tmp_path)
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("kkbox-churn")
    client.delete_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND)  # a store of before
    port = free_port()
    ui = subprocess.Popen(
        ["make", "--no-print-directory", "-o", ".venv/.installed", "ui", f"UI_PORT={port}"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # make, then MLflow's server and its worker: stopped as a group
    )
    try:
        assert ui.stdout is not None
        lines = [ui.stdout.readline() for _ in range(2)]
        runs = f"http://127.0.0.1:{port}/#/experiments/{experiment.experiment_id}/runs"
        assert f"the runs of 'kkbox-churn': {runs}?workflowType=machine_learning\n" in lines
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = requests.get(
                    f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/experiments/get",
                    params={"experiment_id": experiment.experiment_id},
                    timeout=2,
                )
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and ui.poll() is None, "the UI never answered"
                time.sleep(0.5)
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=30)
    tags = {tag["key"]: tag["value"] for tag in answer.json()["experiment"]["tags"]}
    assert tags[EXPERIMENT_KIND] == CLASSIC_ML
