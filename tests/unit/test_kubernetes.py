"""deploy/k8s, a kustomize base and an example overlay, is written for users with a cluster: none
runs here, and neither does kustomize. These tests render each folder with the few kustomize
features it uses, validate every object against the schemas of a pinned Kubernetes version
(kubernetes-validate ships them), and check the manifests against the settings, MLproject,
docker-compose.yml and the Secrets that docs/deployment.md lists."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from churn_transform.settings import PROJECT_ROOT, Settings

#: The Kubernetes version the manifests are written for (docs/deployment.md says it too).
KUBERNETES_VERSION = "1.34.0"
K8S = PROJECT_ROOT / "deploy" / "k8s"
BASE = K8S / "base"
FOLDERS = [BASE, *sorted(p for p in (K8S / "overlays").iterdir() if p.is_dir())]
COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
PLATFORM_ENVIRONMENT = COMPOSE["x-platform"]["environment"]
DOCS = (PROJECT_ROOT / "docs" / "deployment.md").read_text()
# What the test renderer below applies; anything else in a kustomization fails the tests.
RENDERED_FIELDS = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY")
#: The prediction service's Deployment and Service (the base also runs an Alertmanager).
SERVICE = "kkbox-churn-service"
#: Every variable compose gives a container, by any service.
COMPOSE_NAMES = {
    name
    for service in COMPOSE["services"].values()
    if isinstance(service.get("environment"), dict)
    for name in service["environment"]
} | set(PLATFORM_ENVIRONMENT)

Manifest = dict[str, Any]


def _documents(path: Path) -> list[Manifest]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _kustomization(folder: Path) -> Manifest:
    return yaml.safe_load((folder / "kustomization.yaml").read_text())


def _merge(target: Manifest, patch: Manifest) -> None:
    """A strategic merge patch as far as these manifests need it: maps merge key by key, lists
    of named items (containers, volumes, env) merge by name, other lists are replaced."""
    for key, value in patch.items():
        current = target.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            _merge(current, value)
        elif _named(value) and _named(current):
            by_name = {item["name"]: item for item in current}
            for item in value:
                if item["name"] in by_name:
                    _merge(by_name[item["name"]], item)
                else:
                    current.append(copy.deepcopy(item))
        else:
            target[key] = copy.deepcopy(value)


def _named(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(i, dict) and "name" in i for i in value)


def _pod_spec(manifest: Manifest) -> Manifest | None:
    spec = manifest.get("spec", {})
    if manifest["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec.get("template", {}).get("spec")


def _containers(objects: list[Manifest]) -> list[Manifest]:
    return [c for o in objects if (pod := _pod_spec(o)) for c in pod["containers"]]


def render(folder: Path) -> list[Manifest]:
    """The objects ``kubectl apply -k folder`` would send, for the fields in RENDERED_FIELDS."""
    kustomization = _kustomization(folder)
    unrendered = set(kustomization) - RENDERED_FIELDS
    assert not unrendered, f"{folder}: the test renderer does not apply {unrendered}"
    objects: list[Manifest] = []
    for resource in kustomization.get("resources", []):
        path = folder / resource
        objects += render(path) if path.is_dir() else _documents(path)
    for patch in kustomization.get("patches", []):
        assert set(patch) == {"path"}, f"{folder}: only whole-object patch files are rendered"
        for change in _documents(folder / patch["path"]):
            (target,) = [
                o
                for o in objects
                if (o["kind"], o["metadata"]["name"])
                == (change["kind"], change["metadata"]["name"])
            ]
            _merge(target, change)
    for image in kustomization.get("images", []):
        for container in _containers(objects):
            name, _, tag = container["image"].rpartition(":")
            if name == image["name"]:
                container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"
    for manifest in objects:
        if "namespace" in kustomization and manifest["kind"] != "Namespace":
            manifest["metadata"]["namespace"] = kustomization["namespace"]
    return objects


def _one(objects: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    (manifest,) = [
        o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])
    ]
    return manifest


def _folder_id(folder: Path) -> str:
    return str(folder.relative_to(K8S))


RENDERED = [(folder, manifest) for folder in FOLDERS for manifest in render(folder)]


@pytest.mark.parametrize("folder", FOLDERS, ids=_folder_id)
def test_each_kustomization_lists_every_manifest_of_its_folder(folder: Path) -> None:
    kustomization = _kustomization(folder)
    listed = {r for r in kustomization.get("resources", []) if (folder / r).is_file()}
    listed |= {p["path"] for p in kustomization.get("patches", [])}
    present = {p.name for p in folder.glob("*.y*ml")} - {"kustomization.yaml"}
    assert listed <= present, f"listed, not in the folder: {listed - present}"
    assert present <= listed, f"in the folder, not listed: {present - listed}"
    for resource in kustomization.get("resources", []):
        assert (folder / resource).exists(), resource


@pytest.mark.parametrize(
    ("folder", "manifest"),
    RENDERED,
    ids=[f"{_folder_id(f)}:{m['kind']}/{m['metadata']['name']}" for f, m in RENDERED],
)
def test_every_object_is_valid_for_the_pinned_kubernetes_version(
    folder: Path, manifest: Manifest
) -> None:
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_the_pinned_version_is_the_documented_one() -> None:
    major_minor = ".".join(KUBERNETES_VERSION.split(".")[:2])
    assert f"Kubernetes {major_minor}" in DOCS


def test_a_typo_in_a_manifest_fails_validation() -> None:
    deployment = _one(render(BASE), "Deployment", SERVICE)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    container["readinessProbe"]["httpGet"]["pth"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError, match="pth"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("folder", FOLDERS, ids=_folder_id)
def test_the_service_is_probed_scaled_and_budgeted_as_one_deployment(folder: Path) -> None:
    objects = render(folder)
    deployment, service = _one(objects, "Deployment", SERVICE), _one(objects, "Service", SERVICE)
    autoscaler = _one(objects, "HorizontalPodAutoscaler")
    budget = _one(objects, "PodDisruptionBudget")
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    (port,) = container["ports"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": port["name"]}
    for resource in ("cpu", "memory"):
        assert container["resources"]["requests"][resource], resource
        assert container["resources"]["limits"][resource], resource
    labels = pod["metadata"]["labels"]
    for selector in (
        deployment["spec"]["selector"]["matchLabels"],
        service["spec"]["selector"],
        budget["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= labels.items()
    (exposed,) = service["spec"]["ports"]
    assert exposed["targetPort"] == port["name"] and exposed["port"] == port["containerPort"]
    assert autoscaler["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"
    assert 2 <= autoscaler["spec"]["minReplicas"] <= autoscaler["spec"]["maxReplicas"]
    assert budget["spec"]["maxUnavailable"] < autoscaler["spec"]["minReplicas"]


def test_the_service_listens_where_compose_and_the_scrape_config_expect_it() -> None:
    pod = _one(render(BASE), "Deployment", SERVICE)["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    (published,) = COMPOSE["services"]["service"]["ports"]
    assert container["ports"][0]["containerPort"] == int(published.split(":")[-1])
    annotations = pod["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == container["ports"][0]["containerPort"]


def test_the_images_are_the_ones_the_bento_and_compose_build() -> None:
    bento = yaml.safe_load((PROJECT_ROOT / "bentofile.yaml").read_text())
    images = {c["name"]: c["image"] for c in _containers(render(BASE))}
    platform = COMPOSE["x-platform"]["image"]
    assert images == {
        "service": f"{bento['name']}:latest",
        "drift": platform,
        "cycle": platform,
        "alertmanager": COMPOSE["services"]["alertmanager"]["image"],
    }
    for folder in FOLDERS[1:]:
        renamed = {i["name"] for i in _kustomization(folder).get("images", [])}
        assert renamed <= {image.split(":")[0] for image in images.values()}, folder


@pytest.mark.parametrize("folder", FOLDERS, ids=_folder_id)
def test_the_settings_config_map_holds_valid_settings_named_as_compose_names_them(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (config,) = [o for o in render(folder) if o["metadata"]["name"] == "kkbox-settings"]
    fields = {f"KKBOX_{name.upper()}" for name in Settings.model_fields}
    compose_names = set(PLATFORM_ENVIRONMENT) | set(COMPOSE["services"]["service"]["environment"])
    for key, value in config["data"].items():
        assert key in fields if key.startswith("KKBOX_") else key in compose_names, key
        assert not SECRET_NAME.search(key), f"{key} belongs in a Secret"
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.lake_uri.startswith("s3://") and settings.traffic_log_uri == "/traffic"


def test_the_base_settings_are_the_compose_stack_s() -> None:
    (config,) = [o for o in render(BASE) if o["metadata"]["name"] == "kkbox-settings"]
    for key, value in config["data"].items():
        assert PLATFORM_ENVIRONMENT.get(key, value) == value, key


def test_the_service_and_the_drift_job_share_the_traffic_log() -> None:
    objects = render(BASE)
    (config,) = [o for o in objects if o["metadata"]["name"] == "kkbox-settings"]
    claim = _one(objects, "PersistentVolumeClaim")
    assert "ReadWriteMany" in claim["spec"]["accessModes"]
    for workload in (_one(objects, "Deployment", SERVICE), _one(objects, "CronJob", "kkbox-drift")):
        pod = _pod_spec(workload)
        assert pod is not None
        (volume,) = pod["volumes"]
        assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        (mount,) = pod["containers"][0]["volumeMounts"]
        assert mount["name"] == volume["name"]
        assert mount["mountPath"] == config["data"]["KKBOX_TRAFFIC_LOG_URI"]
        assert {"configMapRef": {"name": "kkbox-settings"}} in pod["containers"][0]["envFrom"]


def test_each_pod_ships_its_traffic_under_its_own_name_where_the_drift_job_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    objects = render(BASE)
    (config,) = [o for o in objects if o["metadata"]["name"] == "kkbox-settings"]
    (container,) = _containers([_one(objects, "Deployment", SERVICE)])
    env = {v["name"]: v for v in container["env"]}
    assert env["KKBOX_REPLICA_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(env)  # to write to the lake
    for key, value in config["data"].items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.traffic_uri == settings.traffic_ship_uri
    assert (
        settings.traffic_ship_uri == COMPOSE["x-platform"]["environment"]["KKBOX_TRAFFIC_SHIP_URI"]
    )
    assert settings.traffic_ship_uri.startswith(settings.lake_uri.rsplit("/", 1)[0] + "/")


def _drift_exit() -> int:
    source = (PROJECT_ROOT / "steps" / "drift.py").read_text()
    return int(re.search(r"^DRIFT_EXIT = (\d+)$", source, re.M).group(1))  # type: ignore[union-attr]


def test_the_drift_job_runs_the_drift_entry_point_with_its_own_parameters() -> None:
    job = _one(render(BASE), "CronJob", "kkbox-drift")
    pod = _pod_spec(job)
    assert pod is not None and pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["command"] == ["mlflow", "run", ".", "-e", "drift", "--env-manager", "local"]
    entry_points = yaml.safe_load((PROJECT_ROOT / "MLproject").read_text())["entry_points"]
    arguments = container["args"]
    assert arguments[::2] == ["-P"] * (len(arguments) // 2) and len(arguments) % 2 == 0
    for parameter in arguments[1::2]:
        name, value = parameter.split("=", 1)
        assert name in entry_points["drift"]["parameters"], f"drift has no parameter {name}"
    (rule,) = job["spec"]["jobTemplate"]["spec"]["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob" and rule["onExitCodes"]["containerName"] == container["name"]
    assert rule["onExitCodes"]["values"] == [_drift_exit()]
    assert "fail_on_drift=true" in arguments, "a drift would not fail the Job"


def _documented_secrets() -> dict[str, set[str]]:
    """Secret name -> keys, from the table of docs/deployment.md: | `name` | `KEY`, `KEY` | ..."""
    rows = re.findall(r"^\| `(kkbox-[\w-]+)` \| ([^|]+) \|", DOCS, re.M)
    return {name: set(re.findall(r"`(\w+)`", keys)) for name, keys in rows}


@pytest.mark.parametrize("folder", FOLDERS, ids=_folder_id)
def test_secrets_are_referenced_never_written_and_every_one_is_documented(folder: Path) -> None:
    objects = render(folder)
    assert "Secret" not in {o["kind"] for o in objects}, "a Secret's values in the repository"
    documented = _documented_secrets()
    assert documented, "no Secret table in docs/deployment.md"
    for container in _containers(objects):
        for variable in container.get("env", []):
            assert variable["name"] in COMPOSE_NAMES, f"compose names no {variable['name']}"
            reference = variable.get("valueFrom", {}).get("secretKeyRef")
            if SECRET_NAME.search(variable["name"]):
                assert reference and "value" not in variable, f"{variable['name']} is written"
            if reference:
                assert reference["key"] in documented.get(reference["name"], set()), reference
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                assert source["secretRef"]["name"] in documented, source


def test_every_documented_secret_is_used() -> None:
    used = {
        v["valueFrom"]["secretKeyRef"]["name"]
        for c in _containers(render(BASE))
        for v in c.get("env", [])
        if "secretKeyRef" in v.get("valueFrom", {})
    }
    assert set(_documented_secrets()) == used


def test_the_drift_job_has_the_credentials_the_compose_pipeline_has() -> None:
    (container,) = [c for c in _containers(render(BASE)) if c["name"] == "drift"]
    given = {v["name"] for v in container["env"]}
    credentials = {k for k, v in PLATFORM_ENVIRONMENT.items() if str(v).startswith("${")}
    assert given == credentials


def test_prometheus_scrapes_each_pod_of_the_service_like_compose_s_job() -> None:
    objects = render(BASE)
    (config,) = [o for o in objects if o["metadata"]["name"] == "kkbox-prometheus"]
    prometheus = yaml.safe_load(config["data"]["prometheus.yml"])
    compose_jobs = yaml.safe_load(
        (PROJECT_ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text()
    )["scrape_configs"]
    compose_job = compose_jobs[0]
    job, quality = prometheus["scrape_configs"]
    # the Pushgateway's job is compose's, the cluster's Pushgateway named as settings name it
    assert quality == compose_jobs[1] and quality["honor_labels"] is True
    (settings,) = [o["data"] for o in objects if o["metadata"]["name"] == "kkbox-settings"]
    assert (
        settings["KKBOX_PUSHGATEWAY_URL"] == f"http://{quality['static_configs'][0]['targets'][0]}"
    )
    assert job["job_name"] == compose_job["job_name"]
    assert job["metrics_path"] == compose_job["metrics_path"]
    assert [sd["role"] for sd in job["kubernetes_sd_configs"]] == ["pod"]
    keep = next(r for r in job["relabel_configs"] if r["action"] == "keep")
    pod = _one(objects, "Deployment", SERVICE)["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    values = {
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": pod["metadata"]["labels"][
            "app.kubernetes.io/name"
        ],
        "__meta_kubernetes_pod_container_port_name": container["ports"][0]["name"],
    }
    assert re.fullmatch(keep["regex"], ";".join(values[s] for s in keep["source_labels"]))
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == job["metrics_path"]
    for rules in prometheus["rule_files"]:
        assert rules in config["data"], rules
    alerts = (PROJECT_ROOT / "deploy" / "prometheus" / "alerts.yml").read_text()
    assert config["data"]["alerts.yml"] == alerts, "copy deploy/prometheus/alerts.yml again"


def test_the_monthly_cycle_runs_for_the_month_that_just_ended() -> None:
    job = _one(render(BASE), "CronJob", "kkbox-cycle")
    assert job["spec"]["schedule"] == "0 4 2 * *" and job["spec"]["concurrencyPolicy"] == "Forbid"
    pod = _pod_spec(job)
    assert pod is not None
    (container,) = pod["containers"]
    script = container["command"][-1]
    assert script.startswith("exec mlflow run . -e cycle --env-manager local")
    entry_points = yaml.safe_load((PROJECT_ROOT / "MLproject").read_text())["entry_points"]
    for name in re.findall(r"-P (\w+)=", script):
        assert name in entry_points["cycle"]["parameters"], f"cycle has no parameter {name}"
    # the month the shell computes on the 2nd of March 2017 is February
    month = re.search(r"month=\$\((.*)\)$", script)
    assert month is not None
    printed = subprocess.run(
        ["sh", "-c", month[1].replace("date -u +%Y-%m-01", "echo 2017-03-01")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert printed == "2017-02"


def test_the_alertmanager_runs_as_compose_s_on_the_repository_s_files() -> None:
    objects = render(BASE)
    config = _one(objects, "ConfigMap", "kkbox-alertmanager")["data"]
    folder = PROJECT_ROOT / "deploy" / "alertmanager"
    for name in ("alertmanager.yml", "start.sh"):
        assert config[name] == (folder / name).read_text(), f"copy deploy/alertmanager/{name} again"
    deployment = _one(objects, "Deployment", "kkbox-alertmanager")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    compose = COMPOSE["services"]["alertmanager"]
    assert container["command"] == compose["entrypoint"] and container["args"] == compose["command"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    compose_mounts = dict(str(v).split(":")[:2] for v in compose["volumes"])
    assert mounts["config"] == compose_mounts["./deploy/alertmanager"] == "/etc/alertmanager"
    assert mounts["data"] == compose_mounts["alertmanager-data"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "config"]
    assert volume["configMap"]["name"] == "kkbox-alertmanager"
    (env,) = container["env"]
    assert env["name"] in compose["environment"]
    assert deployment["spec"]["replicas"] == 1, "unmeshed replicas would each notify"


def test_prometheus_sends_its_alerts_to_the_alertmanager_service() -> None:
    objects = render(BASE)
    (config,) = [o for o in objects if o["metadata"]["name"] == "kkbox-prometheus"]
    alerting = yaml.safe_load(config["data"]["prometheus.yml"])["alerting"]
    (target,) = alerting["alertmanagers"][0]["static_configs"][0]["targets"]
    service = _one(objects, "Service", "kkbox-alertmanager")
    (port,) = service["spec"]["ports"]
    assert target == f"{service['metadata']['name']}:{port['port']}"
    (container,) = _containers([_one(objects, "Deployment", "kkbox-alertmanager")])
    assert container["ports"][0]["name"] == port["targetPort"]
    assert (
        service["spec"]["selector"].items()
        <= (
            _one(objects, "Deployment", "kkbox-alertmanager")["spec"]["template"]["metadata"][
                "labels"
            ]
        ).items()
    )
