"""Alerts reach someone: the real Prometheus evaluates the repository's rules over what the
batch steps push to the real Pushgateway, and the real Alertmanager, started as its container
starts it (deploy/alertmanager/), POSTs them to a webhook receiver, here a small HTTP server."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import start_alertmanager, start_prometheus, start_pushgateway, stop

pytestmark = pytest.mark.integration


class _Receiver(BaseHTTPRequestHandler):
    """Alertmanager's webhook: each POSTed body onto the server's queue, answered 200."""

    server: _ReceiverServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.notifications.put(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # the test's output stays clean
        pass


class _ReceiverServer(ThreadingHTTPServer):
    notifications: queue.Queue[dict[str, Any]]


@dataclass
class Stack:
    gateway: str
    notifications: queue.Queue[dict[str, Any]]

    def received(self, expected: set[tuple[str, str, str]], timeout: float = 30) -> list[dict]:
        """The alerts notified until ``expected`` (status, alertname, model_version) were all."""
        deadline = time.monotonic() + timeout
        alerts: list[dict[str, Any]] = []
        while not expected <= {_key(a) for a in alerts}:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"not notified: {expected - {_key(a) for a in alerts}}"
            try:
                alerts += self.notifications.get(timeout=remaining)["alerts"]
            except queue.Empty:
                continue
        return alerts


def _key(alert: dict[str, Any]) -> tuple[str, str, str]:
    return alert["status"], alert["labels"]["alertname"], alert["labels"].get("model_version", "")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root: Path = tmp_path_factory.mktemp("alerting")
    receiver = _ReceiverServer(("127.0.0.1", 0), _Receiver)
    receiver.notifications = queue.Queue()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    webhook = f"http://127.0.0.1:{receiver.server_address[1]}/alerts"
    gateway, gateway_url = start_pushgateway()
    # production waits 30 s before a group's first notification and 5 min between its updates
    manager, manager_url = start_alertmanager(root, webhook, group_wait="1s", group_interval="1s")
    prometheus, _ = start_prometheus(
        None,
        root,
        pushgateway=gateway_url.removeprefix("http://"),
        alertmanager=manager_url.removeprefix("http://"),
    )
    try:
        yield Stack(gateway_url, receiver.notifications)
    finally:
        stop(prometheus)
        stop(manager)
        stop(gateway)
        receiver.shutdown()


def _push(gateway: str, job: str, gauges: dict[str, list[tuple[dict[str, str], float]]]) -> None:
    """What a batch step pushes: each gauge's labelled values, one group per job, replaced."""
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    registry = CollectorRegistry()
    for name, values in gauges.items():
        gauge = Gauge(name, name, sorted(values[0][0]), registry=registry)
        for labels, value in values:
            gauge.labels(**labels).set(value)
    push_to_gateway(gateway, job=job, registry=registry)


def _quality(version: str, **labels: str) -> dict[str, str]:
    return {"cohort": "2017-04", "model_version": version, **labels}


def test_the_model_s_alerts_are_delivered_with_their_labels(stack: Stack) -> None:
    # version 1 decayed (0.86 against its own 0.91) and its estimate missed by 0.05; version 2
    # is within the policy's 0.03 on both counts; only version 1's traffic drifted
    _push(
        stack.gateway,
        "kkbox-quality",
        {
            "kkbox_realized_roc_auc": [
                (_quality("1", source="batch"), 0.86),
                (_quality("2", source="batch"), 0.90),
            ],
            "kkbox_evaluated_roc_auc": [
                ({"model_version": "1"}, 0.91),
                ({"model_version": "2"}, 0.91),
            ],
            "kkbox_estimation_error_roc_auc": [(_quality("1"), -0.05), (_quality("2"), 0.01)],
        },
    )
    drifted = {
        "kkbox_drift_detected": [({"model_version": "1"}, 1.0), ({"model_version": "2"}, 0.0)]
    }
    _push(stack.gateway, "kkbox-drift", drifted)
    expected = {
        ("firing", "ChurnModelQualityDecayed", "1"),
        ("firing", "ChurnEstimationErrorHigh", "1"),
        ("firing", "ChurnDriftDetected", "1"),
    }
    alerts = stack.received(expected)
    assert {_key(a) for a in alerts} == expected, "an alert within the limits was notified"
    by_name = {a["labels"]["alertname"]: a for a in alerts}
    for name in ("ChurnModelQualityDecayed", "ChurnEstimationErrorHigh"):
        labels = by_name[name]["labels"]
        assert labels["cohort"] == "2017-04" and labels["job"] == "kkbox-quality", labels
        assert labels["severity"] == "warning"
    summaries = {name: alert["annotations"]["summary"] for name, alert in by_name.items()}
    assert "Model 1 scored ROC AUC 0.860 on cohort 2017-04" in summaries["ChurnModelQualityDecayed"]
    assert "missed the realized one by 0.050" in summaries["ChurnEstimationErrorHigh"]
    assert by_name["ChurnDriftDetected"]["labels"]["job"] == "kkbox-drift"

    # a quiet drift run replaces the verdict: the receiver hears that the drift alert resolved
    drifted["kkbox_drift_detected"][0] = ({"model_version": "1"}, 0.0)
    _push(stack.gateway, "kkbox-drift", drifted)
    (resolved,) = [
        a
        for a in stack.received({("resolved", "ChurnDriftDetected", "1")})
        if a["status"] == "resolved"
    ]
    assert resolved["labels"]["job"] == "kkbox-drift"
