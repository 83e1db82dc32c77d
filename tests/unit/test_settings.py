import socket
import subprocess
import sys

import pytest
import yaml
from pydantic import ValidationError

from churn_transform.settings import PROJECT_ROOT, Settings, masked, replica_token


def test_embedded_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "MLFLOW_TRACKING_URI",
        "MLFLOW_EXPERIMENT_NAME",
        "AWS_ENDPOINT_URL_S3",
        "MLFLOW_S3_ENDPOINT_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.lake_uri == str(PROJECT_ROOT / "data" / "lake")
    assert settings.tracking_uri == f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"
    assert settings.experiment_name == "kkbox-churn"
    assert settings.dask_scheduler is None
    assert (settings.model_name, settings.champion_alias) == ("kkbox-churn", "champion")
    assert settings.raw_dir == str(PROJECT_ROOT / "data" / "raw")
    assert settings.storage_options() == {}


def test_the_lake_follows_the_data_folder_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KKBOX_LAKE_URI", raising=False)
    monkeypatch.setenv("KKBOX_DATA_DIR", "/srv/kkbox/")
    assert Settings().lake_uri == "/srv/kkbox/lake"
    monkeypatch.setenv("KKBOX_LAKE_URI", "s3://lake/prefix")
    assert Settings().lake_uri == "s3://lake/prefix"


def test_mlflow_and_aws_variables_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "churn-tests")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("KKBOX_LAKE_URI", "s3://lake/prefix/")
    monkeypatch.setenv("KKBOX_DASK_SCHEDULER", "")
    settings = Settings()
    assert settings.tracking_uri == "http://127.0.0.1:5000"
    assert settings.experiment_name == "churn-tests"
    assert settings.lake_uri == "s3://lake/prefix"
    assert settings.dask_scheduler is None
    assert settings.storage_options() == {
        "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"},
        "key": "key",
        "secret": "secret",
    }
    assert "'secret'" not in repr(settings)
    assert settings.storage_options("s3://lake/prefix")["key"] == "key"
    assert settings.storage_options("/local/lake") == {}  # no S3 credentials for a folder


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("KKBOX_LAKE_URI", "http://elsewhere/lake", "lake_uri"),
        ("KKBOX_MAX_BATCH_SIZE", "0", "max_batch_size"),
        ("KKBOX_MAX_LATENCY_MS", "soon", "max_latency_ms"),
        ("KKBOX_TRAFFIC_SHIP_URI", "gs://bucket/traffic", "traffic_ship_uri"),
        ("KKBOX_REPLICA_ID", "...", "replica_id"),
    ],
)
def test_invalid_configuration_names_the_field(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=field):
        Settings()


def test_the_replica_id_is_the_host_name_made_a_file_name_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KKBOX_REPLICA_ID", raising=False)
    assert Settings().replica_id == replica_token(socket.gethostname())
    monkeypatch.setenv("KKBOX_REPLICA_ID", "service/pod 1")
    assert Settings().replica_id == "service_pod_1"


def test_readers_take_the_shipped_traffic_when_there_is_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KKBOX_TRAFFIC_LOG_URI", "/traffic")
    monkeypatch.setenv("KKBOX_TRAFFIC_SHIP_URI", "")
    assert Settings().traffic_uri == "/traffic"
    monkeypatch.setenv("KKBOX_TRAFFIC_SHIP_URI", "s3://kkbox-lake/traffic/")
    assert Settings().traffic_uri == "s3://kkbox-lake/traffic"


def test_an_empty_experiment_variable_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "")
    assert Settings().experiment_name == "kkbox-churn"


def test_the_makefile_and_the_stack_put_mlflow_run_s_runs_in_the_settings_experiment() -> None:
    experiment = Settings.model_fields["experiment_name"].default
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    assert f"export MLFLOW_EXPERIMENT_NAME ?= {experiment}\n" in makefile
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    assert compose["x-platform"]["environment"]["MLFLOW_EXPERIMENT_NAME"] == experiment


def test_a_step_exits_with_the_variable_name() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "steps.generate",
            "--users",
            "10",
            "--seed",
            "1",
            "--shift",
            "0",
            "--log-start",
            "2016-11-01",
            "--chunk-users",
            "10",
        ],
        env={"KKBOX_MAX_BATCH_SIZE": "-3", "PATH": "/usr/bin:/bin"},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "KKBOX_MAX_BATCH_SIZE" in result.stderr


def test_importing_the_library_has_no_side_effects(tmp_path) -> None:
    code = "import churn_transform.settings, churn_transform.synthetic, churn_transform.labels"
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        (
            "postgresql+psycopg2://mlflow:s3cr3t@db:5432/mlflow",
            "postgresql+psycopg2://mlflow:***@db:5432/mlflow",
        ),
        ("http://admin:pa%40ss@127.0.0.1:5000", "http://admin:***@127.0.0.1:5000"),
        (
            "https://host/path?X-Amz-Signature=abc&part=1",
            "https://host/path?X-Amz-Signature=***&part=1",
        ),
        ("sqlite:////work/mlflow.db", "sqlite:////work/mlflow.db"),
        ("s3://bucket/lake", "s3://bucket/lake"),
    ],
)
def test_uris_are_shown_without_their_secrets(uri: str, shown: str) -> None:
    assert masked(uri) == shown


def test_every_uri_in_a_message_is_masked() -> None:
    message = "no champion at http://u:pw@h:5000 (API request to http://u:pw@h:5000/api failed)"
    assert "pw" not in masked(message) and masked(message).count("u:***@h:5000") == 2


def test_every_setting_is_documented_in_docs_settings() -> None:
    """docs/settings.md names the variable of every field of Settings."""
    documented = (PROJECT_ROOT / "docs" / "settings.md").read_text()
    undocumented = []
    for name, field in Settings.model_fields.items():
        names = [f"KKBOX_{name.upper()}"]
        alias = field.validation_alias
        names += [c for c in getattr(alias, "choices", []) if isinstance(c, str)]
        if not any(f"`{variable}`" in documented for variable in names):
            undocumented.append(names[0])
    assert not undocumented, f"not in docs/settings.md: {undocumented}"
