"""deploy/: the real Prometheus scrapes the real service with the repository's config, and every
Grafana panel's query and every alert rule is evaluated against what it collected."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest
import requests
import yaml

from churn_transform.monitoring.quality import ALL, FIGURES
from churn_transform.schema import EXAMPLE_RECORD
from churn_transform.settings import PROJECT_ROOT
from steps.quality import push
from tests.conftest import (
    Champion,
    prometheus_query,
    records_of,
    serve,
    start_prometheus,
    start_pushgateway,
    stop,
)
from tests.integration.test_dashboard import VERDICT

pytestmark = pytest.mark.integration
DEPLOY = PROJECT_ROOT / "deploy"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "kkbox-churn.json"


def _query(prometheus: str, expr: str) -> list[dict]:
    answer = requests.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", (expr, answer)
    return answer["data"]["result"]


@pytest.fixture(scope="module")
def prometheus(champion: Champion, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prometheus (the repository's config, scraping every second) over a service that has
    answered 300 good requests and 20 bad ones."""
    root = tmp_path_factory.mktemp("prometheus")
    service, url = serve({**champion.env, "KKBOX_TRAFFIC_LOG_URI": str(root / "traffic")})
    gateway, gateway_url = start_pushgateway()
    process, address = start_prometheus(
        url.removeprefix("http://"), root, gateway_url.removeprefix("http://")
    )
    try:
        # the quality step's push: version 1 realized 0.05 below its own evaluation on 2017-04
        overall = realized_quality_row(cohort="2017-04", roc_auc=0.86, oracle_roc_auc=0.93)
        push(gateway_url, "2017-04", overall, {"1": 0.91}, verdict=VERDICT)  # and a campaign's
        prometheus_query(address, 'up{job="kkbox-churn-service"} == 1')
        # A series' first sample counts as its start: let Prometheus see every series once
        # before the load, or a rate over the load can be zero (as for a freshly started pod).
        for bad in (False, True):
            record = {**EXAMPLE_RECORD, "bd": -1.0} if bad else EXAMPLE_RECORD
            requests.post(f"{url}/predict", json={"records": [record]}, timeout=30)
        prometheus_query(
            address,
            'bentoml_service_request_total{endpoint="/predict",http_response_code="400"} > 0',
        )
        records = records_of(champion.gold("2017-03"), slice(0, 300))
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda r: requests.post(f"{url}/predict", json={"records": [r]}, timeout=30),
                    records,
                )
            )
        for _ in range(20):
            requests.post(
                f"{url}/predict", json={"records": [{**EXAMPLE_RECORD, "bd": -1.0}]}, timeout=30
            )
        # every request sent is scraped (the bad ones too) before the tests read anything
        prometheus_query(address, "sum(kkbox_predictions_total) >= 300")
        prometheus_query(address, 'sum(kkbox_validation_errors_total{field="bd"}) >= 21')
        # wait until the load shows in the rates (NaN > 0 is false, so NaN waits too)
        prometheus_query(
            address,
            "histogram_quantile(0.95, sum by (le) (rate("
            'bentoml_service_request_duration_seconds_bucket{endpoint="/predict"}'
            "[1m]))) > 0",
        )
        yield address
    finally:
        stop(process)
        stop(gateway)
        stop(service)


def test_promtool_accepts_the_config_and_its_rules() -> None:
    config = str(DEPLOY / "prometheus" / "prometheus.yml")
    result = subprocess.run([PROMTOOL, "check", "config", config], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "9 rules found" in result.stdout


def realized_quality_row(cohort: str, roc_auc: float, oracle_roc_auc: float) -> pd.DataFrame:
    """An overall row of ``quality.realized_quality`` for version 1's batch scores."""
    row = {name: 0.5 for name in FIGURES} | {"roc_auc": roc_auc, "oracle_roc_auc": oracle_roc_auc}
    return pd.DataFrame(
        [{"source": "batch", "model_version": "1", "segment": ALL, "value": ALL, **row}]
    )


def test_a_decayed_champion_raises_the_quality_alert(prometheus: str) -> None:
    """Pushed through the real Pushgateway and scraped: 0.86 against 0.91 is beyond 0.03."""
    (alert,) = prometheus_query(
        prometheus, 'ALERTS{alertname="ChurnModelQualityDecayed",alertstate="firing"}', 60
    )
    assert alert["metric"]["cohort"] == "2017-04" and alert["metric"]["model_version"] == "1"


def test_every_grafana_panel_shows_data_from_the_service(prometheus: str) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    datasource = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"][0]
    empty = []
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == datasource["uid"]
        for target in panel["targets"]:
            values = [float(r["value"][1]) for r in _query(prometheus, target["expr"])]
            if not any(math.isfinite(v) for v in values):
                empty.append(f"{panel['title']}: {target['expr']} -> {values}")
    assert not empty, "panels whose query returns nothing:\n" + "\n".join(empty)
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for needed in (
        "p95",
        "requests per second",
        "error rate",
        "batch size",
        "probability",
        "decision",
        "model version",
    ):
        assert needed in titles


def test_the_panels_agree_with_what_was_sent(prometheus: str) -> None:
    version = _query(prometheus, "max by (version) (kkbox_model_info)")
    assert [v["metric"]["version"] for v in version] == ["1"]
    refused = _query(prometheus, 'sum(kkbox_validation_errors_total{field="bd"})')
    assert float(refused[0]["value"][1]) == 20 + 1  # and the warm-up's one
    p95 = _query(
        prometheus,
        "histogram_quantile(0.95, sum by (le) (rate("
        'bentoml_service_request_duration_seconds_bucket{endpoint="/predict"}[10m])))',
    )
    assert 0 < float(p95[0]["value"][1]) < 5


def test_every_alert_rule_loads_and_evaluates(prometheus: str) -> None:
    deadline = time.monotonic() + 15
    while True:
        groups = requests.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        if all(rule.get("lastEvaluation", "").startswith("20") for rule in rules):
            break
        assert time.monotonic() < deadline, rules
        time.sleep(0.5)
    assert len(rules) == 9
    assert all(rule["health"] == "ok" for rule in rules), rules
    firing = {rule["name"] for rule in rules if rule["state"] != "inactive"}
    assert "ChurnServiceDown" not in firing and "ChurnTrafficLogDrops" not in firing
    assert "ChurnTrafficLogShipmentsFailing" not in firing


@pytest.mark.parametrize(
    "series",
    [
        'kkbox_traffic_log_shipments_total{outcome="failed"}',
        'kkbox_traffic_log_shipments_total{outcome="shipped"}',
        'kkbox_traffic_log_dropped_total{reason="queue_full"}',
    ],
)
def test_the_traffic_log_counters_the_alerts_read_are_scraped_at_zero(
    prometheus: str, series: str
) -> None:
    """As the rules name them, before any failure: else increase() misses the first one."""
    (scraped,) = _query(prometheus, f'{series[:-1]},job="kkbox-churn-service"}}')
    assert float(scraped["value"][1]) == 0
