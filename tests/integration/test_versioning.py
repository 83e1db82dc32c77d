"""DVC versions the gold tables and the raw snapshot; checking out an old .dvc file restores it."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from churn_transform.etl.gold import build_gold
from churn_transform.etl.ingest import ingest
from churn_transform.lake import Lake
from churn_transform.settings import PROJECT_ROOT
from churn_transform.synthetic import GeneratorConfig, generate
from tests.conftest import step_env


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.parquet")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _build(tmp_path: Path, seed: int) -> None:
    data = tmp_path / "data"
    generate(
        GeneratorConfig(users=800, seed=seed, log_start="2016-11-01"), data / "raw", data / "oracle"
    )
    lake = Lake(str(tmp_path / "lake"))
    ingest(lake, str(data / "raw"), {}, buckets=1)
    build_gold(lake, "2017-03")


def _version(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "steps.version", "--cohorts", "2017-03"],
        cwd=PROJECT_ROOT,
        env=step_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.integration
def test_dvc_checkout_restores_the_gold_a_run_recorded(tmp_path: Path) -> None:
    _build(tmp_path, seed=1)
    first = _version(tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    data = tmp_path / "data"
    gold = data / "gold" / "features_2017-03"
    dvc_file = data / "gold" / "features_2017-03.dvc"
    recorded, original = dvc_file.read_text(), _digest(gold)
    assert (data / "raw.dvc").exists()

    _build(tmp_path, seed=2)  # new data, a new version
    assert _version(tmp_path).returncode == 0
    assert _digest(gold) != original and dvc_file.read_text() != recorded

    dvc_file.write_text(recorded)  # what a model's MLflow run points back to
    subprocess.run(
        ["dvc", "checkout", "--force", "gold/features_2017-03.dvc"],
        cwd=data,
        check=True,
        capture_output=True,
        env=step_env(tmp_path),
    )
    assert _digest(gold) == original

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["kkbox-churn"], output_format="list")
    tags = sorted(run.data.tags["dvc.features_2017-03"] for run in runs)
    assert len(tags) == 2 and len(set(tags)) == 2
    assert any(tag in recorded for tag in tags)
    assert (data / "dvc-remote").exists()
