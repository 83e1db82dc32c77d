"""What every step shares at its edge: boolean run parameters parsed in one place, and its
MLflow run in the settings' experiment."""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from churn_transform.settings import PROJECT_ROOT, Settings
from steps._cli import (
    CLASSIC_ML,
    EXPERIMENT_KIND,
    boolean,
    count,
    positive,
    project_step,
    runs_url,
    tracked_run,
)
from tests.conftest import tracking_store

DRIFT = shlex.split("--end today --days 7 --max-rows 10 --min-rows 1 --auc-drop 0.02")
CYCLE = (
    "--month 2017-04 --max-auc-drop 0.03 --max-age-months 6 --retrain-on-drift true "
    "--max-client-share 0.5 "
    "--drift-days 30 --min-segment-users 500 --train-months 2 --holdout 0.3 --margin 0.005 "
    "--min-auc 0.6 --min-oracle-share 0.9 --max-segment-auc-drop 0.05 --env-manager local"
)
MAIN = shlex.split(
    "--users 10 --seed 1 --shift 0 --log-start 2016-11-01 --chunk-users 10 --env-manager local "
    "--buckets 0 --blocksize 32MB --train-cohort 2017-02 --eval-cohort 2017-03 --min-auc 0.6 "
    "--min-oracle-share 0.9 --allow-shrink false --materialize-cohort 2017-04 --campaign-share 0"
)


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        (" true", True),
        ("false", False),
        ("False", False),
        ("0", False),
        ("no", False),
    ],
)
def test_boolean_reads_the_usual_spellings(value: str, parsed: bool) -> None:
    assert boolean(value) is parsed


@pytest.mark.parametrize("value", ["", "flase", "ja", "2", "none"])
def test_boolean_refuses_anything_else(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=f"expected true or false, got {value!r}"):
        boolean(value)


@pytest.mark.parametrize(
    ("module", "flag", "others"),
    [("steps.main", "--generate", MAIN), ("steps.drift", "--fail-on-drift", DRIFT)],
)
def test_a_step_parses_its_flag_with_it_and_names_the_flag_when_bad(
    module: str, flag: str, others: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = importlib.import_module(module)._arguments
    assert getattr(arguments([*others, flag, "False"]), flag[2:].replace("-", "_")) is False
    assert getattr(arguments([*others, flag, "true"]), flag[2:].replace("-", "_")) is True
    with pytest.raises(SystemExit):
        arguments([*others, flag, "flase"])
    assert f"argument {flag}: expected true or false, got 'flase'" in capsys.readouterr().err


def _train_arguments(**change: str) -> list[str]:
    from dataclasses import asdict

    from churn_transform.modelling.training import TrainConfig

    given = {
        "train-cohort": "2017-05,2017-06",
        "eval-cohort": "2017-06",
        "holdout": "0.3",
        "margin": "0.005",
        "min-auc": "0.6",
        "min-oracle-share": "0.9",
        "max-segment-auc-drop": "0.05",
        "shadow": "true",
        **{k.replace("_", "-"): str(v) for k, v in asdict(TrainConfig()).items()},
        **change,
    }
    return [part for name, value in given.items() for part in (f"--{name}", value)]


def test_train_holds_out_a_share_and_refuses_judging_on_what_it_trained_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from steps.train import _arguments

    parsed = _arguments(_train_arguments())
    assert parsed.train_cohort == ["2017-05", "2017-06"] and parsed.holdout == 0.3
    with pytest.raises(SystemExit):
        _arguments(_train_arguments(holdout="0"))
    said = capsys.readouterr().err
    assert "--eval-cohort 2017-06 is also a training cohort: give --holdout" in said
    for bad in ("1", "-0.1", "half"):
        with pytest.raises(SystemExit):
            _arguments(_train_arguments(holdout=bad))
        said = capsys.readouterr().err
        assert f"argument --holdout: expected a share from 0 to below 1, got '{bad}'" in said
    assert _arguments(_train_arguments(**{"train-cohort": "2017-05", "holdout": "0"})).holdout == 0


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A SQLite tracking store of the test's own; MLflow's globals restored afterwards."""
    uri = tracking_store(tmp_path / "mlflow.db")
    for name in (
        "MLFLOW_RUN_ID",
        "MLFLOW_EXPERIMENT_NAME",
        "MLFLOW_EXPERIMENT_ID",
        "KKBOX_EXPERIMENT_NAME",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # set_tracking_uri writes it: restore it
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    yield uri
    mlflow.set_tracking_uri(None)


def _experiment_of(uri: str, run_id: str) -> str:
    client = mlflow.MlflowClient(uri)
    return client.get_experiment(client.get_run(run_id).info.experiment_id).name


def test_a_step_s_own_run_is_in_the_kkbox_churn_experiment(tracking: str) -> None:
    with tracked_run(Settings(tracking_uri=tracking), "generate") as run:
        pass
    assert _experiment_of(tracking, run.info.run_id) == "kkbox-churn"
    assert run.info.run_name == "generate"


def test_mlflow_s_experiment_variable_names_another_experiment(
    tracking: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "churn-tests")
    with tracked_run(Settings(tracking_uri=tracking), "generate") as run:
        pass
    assert _experiment_of(tracking, run.info.run_id) == "churn-tests"


def test_a_run_mlflow_run_opened_elsewhere_is_kept_with_a_warning(
    tracking: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    opened = mlflow.MlflowClient(tracking).create_run(experiment_id="0")  # Default
    monkeypatch.setenv("MLFLOW_RUN_ID", opened.info.run_id)
    with tracked_run(Settings(tracking_uri=tracking), "generate") as run:
        pass
    assert run.info.run_id == opened.info.run_id
    assert "in the MLflow experiment 'Default', not 'kkbox-churn'" in caplog.text
    assert "MLFLOW_EXPERIMENT_NAME=kkbox-churn" in caplog.text


def test_a_step_s_experiment_is_marked_as_one_of_classic_ml_runs(tracking: str) -> None:
    with tracked_run(Settings(tracking_uri=tracking), "generate") as run:
        pass
    tags = mlflow.MlflowClient(tracking).get_experiment(run.info.experiment_id).tags
    assert tags[EXPERIMENT_KIND] == CLASSIC_ML == "custom_model_development"


def test_the_run_mlflow_run_opened_is_named_after_its_entry_point_even_if_arguments_are_bad(
    tracking: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = mlflow.MlflowClient(tracking)
    opened = client.create_run(experiment_id="0")  # as `mlflow run` does: a random name
    monkeypatch.setenv("MLFLOW_RUN_ID", opened.info.run_id)
    with pytest.raises(SystemExit):
        importlib.import_module("steps.score").main(["--cohort", "2017-13"])
    assert client.get_run(opened.info.run_id).info.run_name == "score"


@pytest.mark.parametrize(("refuses", "status"), [(False, "FINISHED"), (True, "FAILED")])
def test_a_step_run_in_its_caller_s_process_is_never_left_running(
    tracking: str, monkeypatch: pytest.MonkeyPatch, refuses: bool, status: str
) -> None:
    def ends_before_opening_its_run(argv: list[str]) -> None:
        if refuses:
            sys.exit("gc: refused")

    monkeypatch.setattr(importlib.import_module("steps.gc"), "main", ends_before_opening_its_run)
    settings = Settings(tracking_uri=tracking)
    if refuses:
        with pytest.raises(SystemExit):
            project_step(settings, "gc", "local")
    else:
        project_step(settings, "gc", "local")
    client = mlflow.MlflowClient(tracking)
    (run,) = client.search_runs([client.get_experiment_by_name("kkbox-churn").experiment_id])
    assert (run.info.run_name, run.info.status) == ("gc", status)


def test_main_ends_saying_what_next_with_the_address_of_the_experiment_s_runs() -> None:
    from steps.main import what_next

    said = what_next("7").splitlines()
    assert len(said) == 5 and said[0] == "what next:"
    runs = "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning"
    assert [line.split()[1] for line in said[1:]] == ["serve", "ui", "dashboard", "months"]
    assert runs in said[2] and runs == runs_url("7")


@pytest.mark.parametrize(
    ("module", "argv", "flag", "bad"),
    [
        ("steps.ingest", "--buckets {} --blocksize 32MB --allow-shrink false", "--buckets", "-1"),
        ("steps.ingest", "--buckets {} --blocksize 32MB --allow-shrink false", "--buckets", "2.5"),
        (
            "steps.cycle",
            CYCLE.replace("--train-months 2", "--train-months {}"),
            "--train-months",
            "0",
        ),
        ("steps.cycle", CYCLE.replace("--drift-days 30", "--drift-days {}"), "--drift-days", "-3"),
        (
            "steps.cycle",
            CYCLE.replace("--min-segment-users 500", "--min-segment-users {}"),
            "--min-segment-users",
            "-500",
        ),
        (
            "steps.cycle",
            CYCLE.replace("--max-age-months 6", "--max-age-months {}"),
            "--max-age-months",
            "-1",
        ),
        ("steps.drift", " ".join(DRIFT).replace("--days 7", "--days {}"), "--days", "0"),
        (
            "steps.drift",
            " ".join(DRIFT).replace("--min-rows 1", "--min-rows {}"),
            "--min-rows",
            "-1",
        ),
        (
            "steps.generate",
            "--users {} --seed 1 --shift 0 --log-start 2016-01-01 --chunk-users 10 --months 0 "
            "--shift-start 2017-03 --processes 1 --campaign-share 0 --campaign-log none "
            "--play-campaign none",
            "--users",
            "-5",
        ),
        (
            "steps.generate",
            "--users 10 --seed 1 --shift 0 --log-start 2016-01-01 --chunk-users 10 --months {} "
            "--shift-start 2017-03 --processes 1 --campaign-share 0 --campaign-log none "
            "--play-campaign none",
            "--months",
            "-2",
        ),
    ],
)
def test_a_count_out_of_range_is_refused_naming_its_flag(
    tracking: str,
    module: str,
    argv: str,
    flag: str,
    bad: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stopped:
        importlib.import_module(module).main(shlex.split(argv.format(bad)))
    assert stopped.value.code == 2
    assert re.search(
        f"argument {flag}: expected a whole number from [01], got '{bad}'", capsys.readouterr().err
    )


def test_generate_plays_a_log_or_a_plan_of_a_month_it_writes_not_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from steps.generate import _arguments

    log = tmp_path / "log.csv"
    log.write_text("msno,campaign_id,offered_date,treated\n")
    argv = shlex.split(
        "--users 10 --seed 1 --shift 0 --log-start 2016-01-01 --chunk-users 10 --months 1 "
        "--shift-start 2017-03 --processes 1 --campaign-share 0"
    )
    assert _arguments([*argv, "--campaign-log", str(log), "--play-campaign", "none"]).campaign_log
    with pytest.raises(SystemExit) as stopped:
        _arguments([*argv, "--campaign-log", str(log), "--play-campaign", "2017-04"])
    assert stopped.value.code == 2
    assert "give --campaign-log or --play-campaign, not both" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _arguments([*argv, "--campaign-log", str(tmp_path / "gone.csv"), "--play-campaign", "none"])
    assert "expected an existing .csv file or none" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _arguments([*argv, "--campaign-log", "none", "--play-campaign", "2017-05"])
    assert "increment of 2017-05, which --months 1 does not write" in capsys.readouterr().err


def test_a_count_takes_whole_numbers_from_zero() -> None:
    assert count("0") == 0 and count("12") == 12 and positive("1") == 1
    for bad in ("-1", "1.5", "", "many"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected a whole number from 0"):
            count(bad)


_KILLED_STEP = """
import importlib, sys, time
from churn_transform.settings import Settings
from steps._cli import project_step, tracked_run

settings = Settings(tracking_uri=sys.argv[1])

def sleeps(argv):
    with tracked_run(settings, "gc"):
        print("started", flush=True)
        time.sleep(120)

importlib.import_module("steps.gc").main = sleeps
with tracked_run(settings, "cycle"):
    project_step(settings, "gc", "local")
"""


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_cycle_stopped_by_a_signal_leaves_no_run_running(tracking: str, stop: int) -> None:
    """A step killed inside a cycle (a scheduler's timeout, Ctrl-C): its run and the cycle's end
    KILLED, not RUNNING for ever."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking}
    cycle = subprocess.Popen(
        [sys.executable, "-c", _KILLED_STEP, tracking],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as in a terminal: a test run started in the background by a shell without job control
        # inherits SIGINT ignored, and Python then installs no KeyboardInterrupt for it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert cycle.stdout is not None and cycle.stdout.readline().strip() == "started"
    cycle.send_signal(stop)
    assert cycle.wait(timeout=60) != 0
    client = mlflow.MlflowClient(tracking)
    runs = client.search_runs([client.get_experiment_by_name("kkbox-churn").experiment_id])
    assert sorted((run.info.run_name, run.info.status) for run in runs) == [
        ("cycle", "KILLED"),
        ("gc", "KILLED"),
    ]
