"""The ``generate`` entry point through ``mlflow run``, as a user runs it. (``main``'s, which
generates too: ``make demo`` in tests/integration/test_readme_walk.py.)"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from churn_transform.lake import Lake
from churn_transform.modelling.plan import action_plan, contact_log
from churn_transform.monitoring.predictions import CAMPAIGN_SUMMARY, write_beside, write_campaign
from churn_transform.schema import CAMPAIGN_FILE, RAW_FILES
from churn_transform.settings import PROJECT_ROOT
from churn_transform.synthetic import GeneratorConfig, generate
from steps.generate import main
from tests.conftest import tracking_store

MLFLOW = str(Path(sys.executable).parent / "mlflow")


def _env(tmp_path: Path) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if k != "MLFLOW_EXPERIMENT_NAME"}
    return {
        **inherited,
        # `mlflow run --env-manager local` runs `python` from PATH: this environment's.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "KKBOX_DATA_DIR": str(tmp_path / "data"),
        "KKBOX_FEATURE_REPO": str(tmp_path / "feature_store"),
        "MLFLOW_TRACKING_URI": tracking_store(tmp_path / "mlflow.db"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        # `make generate` exports the experiment for `mlflow run`
        "MLFLOW_EXPERIMENT_NAME": "kkbox-churn",
    }


@pytest.mark.integration
def test_mlflow_run_writes_the_eight_files(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            MLFLOW,
            "run",
            ".",
            "-e",
            "generate",
            "--env-manager",
            "local",
            "-P",
            "users=2000",
            "-P",
            "log_start=2016-11-01",
        ],
        cwd=PROJECT_ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "data" / "raw").iterdir()) == sorted(RAW_FILES)
    assert "oracle AUC" in result.stdout
    assert "2017-03" in result.stdout
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["kkbox-churn"], output_format="list")
    generated = [r for r in runs if "rows_user_logs" in r.data.metrics]
    assert len(generated) == 1
    assert generated[0].data.params["users"] == "2000"
    assert generated[0].data.metrics["oracle_auc_2017-03"] > 0.8


@pytest.mark.integration
def test_mlflow_run_generate_writes_the_further_months_and_a_campaign(tmp_path: Path) -> None:
    # shift=1 as docs/generator.md spells it: the step logs 1.0, which MLflow once refused
    parameters = [
        "users=1500",
        "log_start=2016-11-01",
        "months=2",
        "shift=1",
        "shift_start=2017-05",
        "campaign_share=0.5",
    ]
    result = subprocess.run(
        [MLFLOW, "run", ".", "-e", "generate", "--env-manager", "local"]
        + [arg for p in parameters for arg in ("-P", p)],
        cwd=PROJECT_ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    increments = tmp_path / "data" / "raw" / "increments"
    assert sorted(p.name for p in increments.iterdir()) == ["2017-04", "2017-05"]
    assert (increments / "2017-05" / "labels_2017-04.csv").exists()
    assert "2017-06" in result.stdout  # the last cohort to score, with the oracle's figures
    assert (tmp_path / "data" / "raw" / "campaigns.csv").exists()
    assert "retention-2017-03" in result.stdout  # the campaign's groups in the summary
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["kkbox-churn"], output_format="list")
    (generated,) = [r for r in runs if "rows_user_logs" in r.data.metrics]
    assert generated.data.params["months"] == "2"
    assert generated.data.params["shift_start"] == "2017-05"
    assert generated.data.params["shift"] == "1" and generated.data.params["processes"] == "1"
    assert generated.data.metrics["oracle_auc_2017-06"] > 0.7
    assert generated.data.params["campaign_share"] == "0.5"
    assert "campaign_offered_churn" in generated.data.metrics


#: The step's flags for a small dataset with April's increment.
_FLAGS = shlex.split(
    "--users 1500 --seed 42 --shift 0.0 --log-start 2016-11-01 --chunk-users 10000 --months 1 "
    "--shift-start 2017-03 --processes 1 --campaign-share 0.0 --campaign-log none"
)


@pytest.mark.integration
def test_generate_plays_the_newest_plan_of_a_cohort_from_the_lake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in _env(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KKBOX_LAKE_URI", str(tmp_path / "lake"))
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.chdir(tmp_path)  # MLflow's artifacts: ./mlruns
    data = tmp_path / "data"
    generate(
        GeneratorConfig(users=1500, log_start="2016-11-01", months=1), data / "raw", data / "oracle"
    )
    base = {name: (data / "raw" / name).read_bytes() for name in RAW_FILES}
    oracle = pd.read_csv(data / "oracle" / "oracle.csv")
    april = oracle[oracle["cohort"] == "2017-04"].reset_index(drop=True)
    scores = april[["msno", "churn_probability"]].assign(
        churn=False, last_list_price=149.0, last_plan_days=30, days_to_expiry=5
    )
    listed, plan = action_plan(scores, "2017-04", 1.0, 0.3, 0.3)
    lake = Lake(str(tmp_path / "lake"))
    write_campaign(lake, "2017-04", "run1", listed)
    write_beside(lake, "2017-04", "run1", CAMPAIGN_SUMMARY, plan.to_json().encode())

    main([*_FLAGS, "--play-campaign", "2017-04"])
    assert (
        f"played the campaign of 2017-04: {plan.contacted:,} users offered"
        in capsys.readouterr().out
    )

    handed = pd.read_csv(data / "raw" / "increments" / "2017-04" / CAMPAIGN_FILE)
    assert len(handed) == plan.targets and handed["treated"].sum() == plan.contacted > 0
    pd.testing.assert_frame_equal(handed, contact_log(listed, "2017-04"))
    assert {name: (data / "raw" / name).read_bytes() for name in RAW_FILES} == base
    two_months = " ".join(_FLAGS).replace("--months 1", "--months 2").split()
    with pytest.raises(
        SystemExit, match=r"no campaign plan of cohort 2017-05 .* `make score COHORT=2017-05` first"
    ):
        main([*two_months, "--play-campaign", "2017-05"])
    march = tmp_path / "march.csv"
    handed.assign(campaign_id="retention-2017-03", offered_date=20170301).to_csv(march, index=False)
    flags = [*_FLAGS[:-1], str(march), "--play-campaign", "none"]
    with pytest.raises(
        SystemExit, match=r"^generate: .*march.csv: campaign log row 0: offered_date"
    ):
        main(flags)
