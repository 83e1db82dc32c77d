"""docker-compose.yml, deploy/ and the GitHub workflows are written for users with Docker and
GitHub: no engine runs them here, so these tests check that they are coherent with each other,
with the settings, the Makefile and the files they reference."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from churn_transform.settings import PROJECT_ROOT, Settings

COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DEPLOY = PROJECT_ROOT / "deploy"
WORKFLOWS = sorted((PROJECT_ROOT / ".github" / "workflows").glob("*.yml"))


def _published(service: str) -> set[int]:
    return {int(str(p).split(":")[-1]) for p in SERVICES[service].get("ports", [])}


def test_the_stack_has_every_component() -> None:
    assert {
        "minio",
        "buckets",
        "postgres",
        "mlflow",
        "dask-scheduler",
        "dask-worker",
        "service",
        "prometheus",
        "pushgateway",
        "alertmanager",
        "grafana",
        "dashboard",
        "pipeline",
    } <= set(SERVICES)
    for name, service in SERVICES.items():
        assert "image" in service or "build" in service, name


def test_credentials_come_from_the_env_file_only() -> None:
    text = (PROJECT_ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{(\w+)\}", text))
    example = (PROJECT_ROOT / ".env.example").read_text()
    declared = set(re.findall(r"^(\w+)=", example, re.M))
    assert used <= declared, f"not in .env.example: {used - declared}"
    assert ".env" in (PROJECT_ROOT / ".gitignore").read_text().split()
    for name, service in SERVICES.items():
        environment = service.get("environment", {})
        for key, value in environment.items() if isinstance(environment, dict) else []:
            if re.search("PASSWORD|SECRET|TOKEN", key):
                assert str(value).startswith("${"), f"{name}: {key} is written in the file"


def test_every_referenced_file_exists() -> None:
    for name, service in SERVICES.items():
        build = service.get("build")
        if build:
            assert (PROJECT_ROOT / build["context"] / build["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("."):
                assert (PROJECT_ROOT / source).exists(), f"{name}: {source}"
            else:
                assert source in COMPOSE["volumes"], f"{name}: undeclared volume {source}"
    dockerfile = (DEPLOY / "platform" / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (\S+)", dockerfile, re.M):
        assert source == "." or (PROJECT_ROOT / source).exists(), source


def test_prometheus_and_grafana_point_at_the_compose_services() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (target,) = config["scrape_configs"][0]["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host in SERVICES and int(port) in _published(host)
    assert "--config.file=/etc/prometheus/prometheus.yml" in SERVICES["prometheus"]["command"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in SERVICES["prometheus"]["volumes"]
    for rules in config["rule_files"]:
        assert (DEPLOY / "prometheus" / rules).is_file()
    (alertmanager,) = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    host, port = alertmanager.split(":")
    assert host in SERVICES and int(port) in _published(host)
    assert "prometheus" not in SERVICES[host].get("depends_on", [])
    assert host in SERVICES["prometheus"]["depends_on"]
    datasource = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090" and 9090 in _published("prometheus")
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "dashboards.yml").read_text()
    )["providers"][0]
    mounts = dict(v.split(":")[:2] for v in SERVICES["grafana"]["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]


def test_the_stack_s_settings_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    environment = COMPOSE["x-platform"]["environment"]
    fields = {f"KKBOX_{name.upper()}" for name in Settings.model_fields}
    for key, value in environment.items():
        assert not key.startswith("KKBOX_") or key in fields, f"{key} is no setting"
        monkeypatch.setenv(key, "secret" if value.startswith("${") else value)
    settings = Settings()
    assert settings.lake_uri.startswith("s3://") and settings.tracking_uri == "http://mlflow:5000"
    assert settings.storage_options(settings.lake_uri)["client_kwargs"] == {
        "endpoint_url": "http://minio:9000"
    }
    for url in (settings.tracking_uri, settings.service_url, settings.dask_scheduler or ""):
        host, port = url.split("://")[1].split(":")
        command = str(SERVICES[host].get("command", "")) + str(SERVICES[host].get("ports", ""))
        assert port in command, url
    assert "--port 5000" in SERVICES["mlflow"]["command"]


def _with_defaults(text: str) -> str:
    """``text`` with ``${VAR:-default}`` as its default and ``${VAR}`` as in .env.example:
    the stack of a user who copied .env.example and set nothing else."""
    example = (PROJECT_ROOT / ".env.example").read_text()
    values = dict(re.findall(r"^(\w+)=(.*)$", example, re.M))
    return re.sub(
        r"(?<!\$)\$\{(\w+)(?::?-([^}]*))?\}",
        lambda m: m.group(2) if m.group(2) is not None else values[m.group(1)],
        text,
    )


def test_every_port_is_published_on_loopback_unless_the_user_opens_it() -> None:
    text = (PROJECT_ROOT / "docker-compose.yml").read_text()
    resolved = yaml.safe_load(_with_defaults(text))["services"]
    published = 0
    for name, service in resolved.items():
        for port in service.get("ports", []):
            address = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert address == "127.0.0.1", f"{name} publishes {port} beyond loopback"
            published += 1
        for port in SERVICES[name].get("ports", []):
            assert str(port).startswith("${KKBOX_BIND_ADDRESS:-127.0.0.1}:"), f"{name}: {port}"
    assert published >= 8
    for documented in (
        (PROJECT_ROOT / ".env.example").read_text(),
        (PROJECT_ROOT / "docs" / "deployment.md").read_text(),
    ):
        assert "KKBOX_BIND_ADDRESS" in documented


def test_mlflow_runs_behind_its_basic_auth_app_with_credentials_from_the_env_file() -> None:
    mlflow = SERVICES["mlflow"]
    environment = mlflow["environment"]
    assert "--app-name basic-auth" in mlflow["command"]
    backend = re.search(r"--backend-store-uri (\S+)", mlflow["command"]).group(1)  # type: ignore[union-attr]
    assert "@" not in backend and "PASSWORD" not in mlflow["command"], "a password in argv"
    assert (environment["PGUSER"], environment["PGPASSWORD"]) == (
        "${POSTGRES_USER}",
        "${POSTGRES_PASSWORD}",
    )
    assert environment["MLFLOW_AUTH_ADMIN_USERNAME"] == "${MLFLOW_TRACKING_USERNAME}"
    assert environment["MLFLOW_AUTH_ADMIN_PASSWORD"] == "${MLFLOW_TRACKING_PASSWORD}"
    assert environment["MLFLOW_FLASK_SERVER_SECRET_KEY"].startswith("${")
    folder, mounted = mlflow["volumes"][0].split(":")[:2]
    config_path = environment["MLFLOW_AUTH_CONFIG_PATH"]
    assert config_path.startswith(f"{mounted}/"), "the auth config is not mounted"
    config = configparser.ConfigParser()
    assert config.read(PROJECT_ROOT / folder / config_path.removeprefix(f"{mounted}/"))
    database = config["mlflow"]["database_uri"]
    assert "@" not in database and "admin_password" not in config["mlflow"]
    host, name = re.fullmatch(r"postgresql\+psycopg2://(\w+):5432/(\w+)", database).groups()  # type: ignore[union-attr]
    assert host == "postgres" and host in SERVICES
    mounts = dict(str(v).split(":")[:2] for v in SERVICES["postgres"]["volumes"])
    init = PROJECT_ROOT / next(s for s, t in mounts.items() if t == "/docker-entrypoint-initdb.d")
    assert f"CREATE DATABASE {name};" in "".join(p.read_text() for p in init.glob("*.sql"))


def test_every_service_that_reaches_mlflow_logs_in() -> None:
    clients = [n for n, s in SERVICES.items() if "MLFLOW_TRACKING_URI" in s.get("environment", {})]
    assert {"pipeline", "dashboard", "dask-worker"} <= set(clients)
    for name in clients:
        environment = SERVICES[name]["environment"]
        assert environment["MLFLOW_TRACKING_USERNAME"] == "${MLFLOW_TRACKING_USERNAME}", name
        assert environment["MLFLOW_TRACKING_PASSWORD"] == "${MLFLOW_TRACKING_PASSWORD}", name
    example = dict(re.findall(r"^(\w+)=(.*)$", (PROJECT_ROOT / ".env.example").read_text(), re.M))
    assert len(example["MLFLOW_TRACKING_PASSWORD"]) >= 12, "MLflow refuses a shorter password"


def _make_targets() -> set[str]:
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-zA-Z_-]+):", makefile, re.M))


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflows_are_complete_and_call_only_existing_make_targets(workflow: Path) -> None:
    spec = yaml.safe_load(workflow.read_text())
    triggers = spec.get("on", spec.get(True))  # YAML 1.1 reads a bare `on` as true
    assert spec["name"] and triggers and spec["jobs"]
    targets = _make_targets()
    for name, job in spec["jobs"].items():
        assert job["runs-on"] and job["steps"], name
        for step in job["steps"]:
            assert "uses" in step or "run" in step, step
            if "uses" in step:
                assert re.search(r"@v\d+$", step["uses"]), f"unpinned action {step['uses']}"
            for called in re.findall(r"\bmake (?:-\S+ )*([a-zA-Z_-]+)", step.get("run", "")):
                assert called in targets, f"{workflow.name}: make {called} does not exist"
    text = workflow.read_text()
    assert not re.search(r"(?i)(password|token):\s*[^$\s{]", text), "a literal credential"


def test_ci_runs_the_tests_and_builds_the_bento_and_release_pushes_on_tags() -> None:
    ci = (PROJECT_ROOT / ".github" / "workflows" / "ci.yml").read_text()
    assert "make test" in ci and "make bento" in ci
    release = yaml.safe_load((PROJECT_ROOT / ".github" / "workflows" / "release.yml").read_text())
    assert release[True]["push"]["tags"] == ["v*"]
    steps = " ".join(str(s) for s in release["jobs"]["container"]["steps"])
    assert "bentoml containerize" in steps and "docker push" in steps
    assert "secrets.DOCKERHUB_TOKEN" in steps and "deploy/container.md" in steps
    assert (DEPLOY / "container.md").is_file()


def _locked_versions() -> dict[str, str]:
    import tomllib

    lock = tomllib.loads((PROJECT_ROOT / "uv.lock").read_text())
    return {package["name"]: package.get("version", "") for package in lock["package"]}


def _requirement_name(line: str) -> str:
    return re.split(r"[=<>\[; ]", line, maxsplit=1)[0].lower().replace("_", "-")


def test_the_bento_installs_the_serve_group_at_the_locked_versions() -> None:
    bento = yaml.safe_load((PROJECT_ROOT / "bentofile.yaml").read_text())
    assert bento["service"] == "service:ChurnService"
    assert "packages" not in bento["python"], "a second, hand-kept list of packages"
    requirements = (PROJECT_ROOT / bento["python"]["requirements_txt"]).read_text()
    pinned = dict(
        line.split(";")[0].strip().split("==", 1)
        for line in requirements.splitlines()
        if line and not line.startswith((" ", "#"))
    )
    locked = _locked_versions()
    assert pinned, "no requirement in the Bento's requirements file"
    for name, version in pinned.items():
        assert locked.get(name.lower()) == version, f"{name}=={version} is not what uv.lock has"
    import tomllib

    serve = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["dependency-groups"]
    assert {_requirement_name(r) for r in serve["serve"]} <= set(pinned)
    assert not {"dask", "distributed"} & set(pinned), "the Bento carries the pipeline"
    assert "s3fs" in pinned, "the service could not ship its traffic log to the lake"


AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"
ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"


def _amtool_check(config: Path) -> None:
    result = subprocess.run(
        [AMTOOL, "check-config", str(config)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_accepts_the_alertmanager_config_and_compose_runs_it() -> None:
    _amtool_check(DEPLOY / "alertmanager" / "alertmanager.yml")
    alertmanager = SERVICES["alertmanager"]
    assert "./deploy/alertmanager:/etc/alertmanager:ro" in alertmanager["volumes"]
    assert alertmanager["entrypoint"] == ["/bin/sh", "/etc/alertmanager/start.sh"]
    assert re.fullmatch(r"prom/alertmanager:v[\d.]+", alertmanager["image"]), "unpinned image"


def _start(tmp_path: Path, url: str | None, *arguments: str) -> subprocess.CompletedProcess[str]:
    """deploy/alertmanager/start.sh run by /bin/sh as the container runs it, with Debian's
    Alertmanager for the image's and ``tmp_path`` for its data folder."""
    env = {**os.environ, "ALERTMANAGER": ALERTMANAGER, "ALERTMANAGER_DATA": str(tmp_path)}
    env.pop("ALERT_WEBHOOK_URL", None)
    if url is not None:
        env["ALERT_WEBHOOK_URL"] = url
    return subprocess.run(
        ["/bin/sh", str(DEPLOY / "alertmanager" / "start.sh"), *arguments],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    "url",
    ["http://alerts.internal:8080/kkbox", "https://hooks.example.com/T0/B1|x?token=a&b=c/d#e"],
)
def test_the_alertmanager_starts_on_a_config_with_the_webhook_url_of_the_environment(
    tmp_path: Path, url: str
) -> None:
    started = _start(tmp_path, url, "--version")  # Alertmanager prints its version and stops
    assert started.returncode == 0 and "alertmanager, version" in started.stdout + started.stderr
    rendered = tmp_path / "alertmanager.yml"
    _amtool_check(rendered)
    (receiver,) = yaml.safe_load(rendered.read_text())["receivers"]
    assert [hook["url"] for hook in receiver["webhook_configs"]] == [url]
    original = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    assert yaml.safe_load(rendered.read_text())["route"] == original["route"]


def test_the_alertmanager_refuses_to_start_without_a_webhook_url(tmp_path: Path) -> None:
    started = _start(tmp_path, None, "--version")
    assert started.returncode != 0 and "set ALERT_WEBHOOK_URL" in started.stderr
    assert not (tmp_path / "alertmanager.yml").exists()
