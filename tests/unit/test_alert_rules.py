"""deploy/prometheus/alerts.yml's rules on the model and the traffic log, evaluated by Prometheus's
own rule engine (``promtool test rules``) over series written here, minute by minute; and the
service exports what those rules read. tests/integration/test_alerting.py delivers them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from churn_transform.serving.runtime import SHIPMENT_OUTCOMES, TRAFFIC_LOSSES, metrics
from churn_transform.settings import PROJECT_ROOT

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
ALERTS = PROJECT_ROOT / "deploy" / "prometheus" / "alerts.yml"
RULES = {r["alert"]: r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]}


def _promtool_test(tmp_path: Path, series: dict[str, str], checks: list[dict[str, Any]]) -> None:
    """``series`` (name{labels} -> promtool's values notation, one a minute) checked against
    ``checks``, promtool's alert_rule_test entries; fails with promtool's diff."""
    spec = {
        "rule_files": [str(ALERTS)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series.items()],
                "alert_rule_test": checks,
            }
        ],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(spec))
    result = subprocess.run(
        [PROMTOOL, "test", "rules", str(tmp_path / "test.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _alert(labels: dict[str, str], summary: str) -> dict[str, Any]:
    return {
        "exp_labels": {"severity": "warning", **labels},
        "exp_annotations": {"summary": summary},
    }


def test_a_drifted_version_alerts_until_a_quiet_run_replaces_its_verdict(tmp_path: Path) -> None:
    drifted = {"job": "kkbox-drift", "model_version": "3"}
    summary = (
        "The traffic served by model 3 drifted from its training data: the monthly cycle "
        "retrains on drift (docs/monitoring.md)"
    )
    _promtool_test(
        tmp_path,
        {
            'kkbox_drift_detected{job="kkbox-drift",model_version="3"}': "1x9 0x9",
            'kkbox_drift_detected{job="kkbox-drift",model_version="2"}': "0x19",
        },
        [
            {
                "eval_time": "5m",
                "alertname": "ChurnDriftDetected",
                "exp_alerts": [_alert(drifted, summary)],
            },
            {"eval_time": "15m", "alertname": "ChurnDriftDetected", "exp_alerts": []},
        ],
    )


def test_an_estimate_off_by_more_than_the_policy_s_drop_alerts_either_way(tmp_path: Path) -> None:
    def labels(cohort: str, version: str) -> dict[str, str]:
        return {"job": "kkbox-quality", "cohort": cohort, "model_version": version}

    def summary(cohort: str, version: str, error: str) -> str:
        return (
            f"The ROC AUC estimated for model {version} on cohort {cohort} missed the realized "
            f"one by {error} (more than 0.03): do not trust the estimates of the unlabelled "
            "cohorts"
        )

    series = 'kkbox_estimation_error_roc_auc{{job="kkbox-quality",cohort="{}",model_version="{}"}}'
    _promtool_test(
        tmp_path,
        {
            series.format("2017-04", "1"): "-0.045x5",  # estimated too high: a hidden decay
            series.format("2017-05", "1"): "0.05x5",  # too low: a decay that is not there
            series.format("2017-04", "2"): "-0.02x5",  # within the policy's 0.03
            series.format("2017-05", "2"): "0.03x5",  # at the limit, not beyond
        },
        [
            {
                "eval_time": "2m",
                "alertname": "ChurnEstimationErrorHigh",
                "exp_alerts": [
                    _alert(labels("2017-04", "1"), summary("2017-04", "1", "0.045")),
                    _alert(labels("2017-05", "1"), summary("2017-05", "1", "0.050")),
                ],
            }
        ],
    )


def test_failed_shipments_alert_for_an_hour_per_replica(tmp_path: Path) -> None:
    failed = 'kkbox_traffic_log_shipments_total{{instance="{}",outcome="failed"}}'
    summary = (
        "a:3000 failed to copy its traffic log to the lake 2 time(s) in the last hour "
        "(credentials, network?): the files wait on its disk, unseen by the drift job, until "
        "the next rotation"
    )
    _promtool_test(
        tmp_path,
        {
            # from 0 (the service exports it so), two failed attempts at minutes 10 and 11
            failed.format("a:3000"): "0x9 1 2x120",
            failed.format("b:3000"): "0x130",
            'kkbox_traffic_log_shipments_total{instance="b:3000",outcome="shipped"}': "0+1x130",
        },
        [
            {"eval_time": "9m", "alertname": "ChurnTrafficLogShipmentsFailing", "exp_alerts": []},
            {
                "eval_time": "30m",
                "alertname": "ChurnTrafficLogShipmentsFailing",
                "exp_alerts": [_alert({"instance": "a:3000"}, summary)],
            },
            {"eval_time": "75m", "alertname": "ChurnTrafficLogShipmentsFailing", "exp_alerts": []},
        ],
    )


def test_the_estimation_alert_and_the_cycle_use_the_policy_s_limit() -> None:
    cycle = yaml.safe_load((PROJECT_ROOT / "MLproject").read_text())["entry_points"]["cycle"]
    default = float(cycle["parameters"]["max_auc_drop"]["default"])
    rule = RULES["ChurnEstimationErrorHigh"]
    limit = re.fullmatch(r"abs\(kkbox_estimation_error_roc_auc\) > ([0-9.]+)", rule["expr"])
    assert limit is not None and float(limit[1]) == default
    assert f"more than {limit[1]}" in rule["annotations"]["summary"]


def _exported() -> str:
    from prometheus_client import REGISTRY, generate_latest

    metrics()
    return generate_latest(REGISTRY).decode()


@pytest.mark.parametrize(
    ("rule", "series"),
    [("ChurnTrafficLogShipmentsFailing", "shipments"), ("ChurnTrafficLogDrops", "dropped")],
)
def test_the_service_exports_what_the_traffic_log_alerts_read_from_zero(
    rule: str, series: str
) -> None:
    """A labelled counter is exported once a child exists: created at the first failure, its
    first sample would be 1 and increase() would see nothing."""
    (name,) = re.findall(rf"kkbox_traffic_log_{series}_total", RULES[rule]["expr"])
    exported = _exported()
    labels = SHIPMENT_OUTCOMES if series == "shipments" else TRAFFIC_LOSSES
    key = "outcome" if series == "shipments" else "reason"
    for value in labels:
        assert f'{name}{{{key}="{value}"}} 0.0' in exported, (name, value)


def test_every_loss_and_shipment_outcome_the_traffic_log_counts_is_exported() -> None:
    source = (PROJECT_ROOT / "churn_transform" / "serving" / "traffic.py").read_text()
    assert set(re.findall(r'on_lost\("(\w+)"', source)) == set(TRAFFIC_LOSSES)
    assert set(re.findall(r'on_shipped\("(\w+)"', source)) == set(SHIPMENT_OUTCOMES)
