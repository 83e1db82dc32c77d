"""``mlflow run . -e tune`` on the champion's gold tables at a tiny budget: a nested run per trial,
the best values on the parent run, and printed flags that ``mlflow run . -e train`` accepts."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from churn_transform.modelling.tuning import SPACE
from churn_transform.settings import PROJECT_ROOT
from tests.conftest import Champion, run_step, step_env

pytestmark = pytest.mark.integration
MLFLOW = str(Path(sys.executable).parent / "mlflow")
TRAIN = yaml.safe_load((PROJECT_ROOT / "MLproject").read_text())["entry_points"]["train"]


def _printed_flags(output: str) -> list[str]:
    (line,) = [line for line in output.splitlines() if line.startswith("mlflow run . -e train ")]
    flags = shlex.split(line)[5:]
    assert flags[::2] == ["-P"] * (len(flags) // 2) and len(flags) % 2 == 0, line
    return flags


def test_tune_runs_nested_trials_and_prints_flags_that_train_accepts(
    champion: Champion, tmp_path: Path
) -> None:
    # the champion's gold, read only; a registry of the test's own, which train then writes to
    env = step_env(
        tmp_path,
        KKBOX_LAKE_URI=champion.env["KKBOX_LAKE_URI"],
        KKBOX_DATA_DIR=champion.env["KKBOX_DATA_DIR"],
        MLFLOW_EXPERIMENT_NAME="tune",
    )
    tune = [MLFLOW, "run", ".", "-e", "tune", "--env-manager", "local"]
    output = run_step(env, *tune, "-P", "budget=20", "-P", "max_trials=2")
    flags = _printed_flags(output)
    best = dict(flag.split("=", 1) for flag in flags[1::2])
    assert list(best) == list(SPACE)

    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    (experiment,) = [e for e in client.search_experiments() if e.name == "tune"]
    (parent,) = client.search_runs(
        [experiment.experiment_id], "tags.`mlflow.project.entryPoint` = 'tune'"
    )
    trials = client.search_runs(
        [experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    assert 1 <= len(trials) == parent.data.metrics["trials"] <= 2
    scores = {run.info.run_name: run.data.metrics["validation_roc_auc"] for run in trials}
    assert parent.data.metrics["best_validation_roc_auc"] == max(scores.values())
    assert parent.data.metrics["default_validation_roc_auc"] == scores["trial-0"]
    (default,) = [run for run in trials if run.info.run_name == "trial-0"]
    # trial 0 is train's defaults, as MLproject gives them
    assert {n: float(v) for n, v in default.data.params.items()} == {
        name: float(TRAIN["parameters"][name]["default"]) for name in SPACE
    }
    assert {name: parent.data.params[f"best_{name}"] for name in SPACE} == best
    assert parent.data.tags["train_flags"] == shlex.join(flags)

    trained = run_step(env, MLFLOW, "run", ".", "-e", "train", "--env-manager", "local", *flags)
    assert "judged on 2017-03: roc_auc" in trained
    (train_run,) = client.search_runs(
        [experiment.experiment_id], "tags.`mlflow.project.entryPoint` = 'train'"
    )
    assert {name: train_run.data.params[name] for name in SPACE} == best
