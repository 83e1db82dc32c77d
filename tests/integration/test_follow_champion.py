"""A running ``bentoml serve`` follows the champion (issue 15, point 5): a newly promoted version
is served without a rebuild or a restart, no request fails meanwhile, every answer and traffic
line names the version that produced it, and a version this project did not train is refused
while the champion serves on."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import mlflow
import pytest
import requests

from churn_transform.serving.traffic import read_traffic
from tests.conftest import Champion, records_of, serve, stop
from tests.integration.test_service import _metrics, _total
from tests.integration.test_training import log_tampered

pytestmark = pytest.mark.integration
NAME = "kkbox-churn"


class Traffic(threading.Thread):
    """One record per request, back to back, until stopped: (status, model version) of each."""

    def __init__(self, url: str, records: list[dict]) -> None:
        super().__init__(daemon=True)
        self.url, self.records = url, records
        self.answers: list[tuple[int, str]] = []
        self.done = threading.Event()

    def run(self) -> None:
        with requests.Session() as session:
            i = 0
            while not self.done.is_set():
                record = self.records[i % len(self.records)]
                answer = session.post(f"{self.url}/predict", json={"records": [record]}, timeout=30)
                version = answer.json()[0]["model_version"] if answer.ok else answer.text
                self.answers.append((answer.status_code, version))
                i += 1

    def wait_for(self, version: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.answers and self.answers[-1][1] == version:
                return
            time.sleep(0.1)
        raise TimeoutError(f"version {version} was never served: {self.answers[-3:]}")


def test_a_promoted_champion_is_served_without_a_restart_and_a_tampered_one_refused(
    champion: Champion, tmp_path: Path
) -> None:
    registry, traffic, env = champion.own_registry(tmp_path)  # other tests keep version 1
    process, url = serve(env, log=tmp_path / "serve.log")
    sender = Traffic(url, records_of(champion.gold("2017-04"), slice(0, 50)))
    mlflow.set_tracking_uri(registry)  # the registry store resolves sources through it
    client = mlflow.MlflowClient(registry)
    marker = tmp_path / "ran"
    try:
        sender.start()
        sender.wait_for("1")
        first = client.get_model_version_by_alias(NAME, "champion")
        second = str(client.create_model_version(NAME, first.source, run_id=first.run_id).version)
        client.set_registered_model_alias(NAME, "champion", second)
        sender.wait_for(second)
        served_metadata = requests.post(f"{url}/metadata", timeout=10).json()

        mlflow.set_experiment("tampering")
        tampered = log_tampered(marker, NAME)
        client.set_registered_model_alias(NAME, "champion", str(tampered))
        deadline = time.monotonic() + 60
        while not _total(_metrics(url), "kkbox_champion_switches_total", outcome="refused"):
            assert time.monotonic() < deadline, "the tampered version was never refused"
            time.sleep(0.2)
        time.sleep(1)  # the champion serves on
        metrics = _metrics(url)
    finally:
        sender.done.set()
        sender.join(timeout=30)
        stop(process)  # SIGTERM: the traffic log is flushed

    assert {status for status, _ in sender.answers} == {200}, sender.answers[-5:]
    versions = [version for _, version in sender.answers]
    switch = versions.index(second)
    assert set(versions[:switch]) == {"1"} and set(versions[switch:]) == {second}
    assert served_metadata["registry_version"] == second
    assert served_metadata["model_tag"] == f"{NAME}:v{second}"
    assert not marker.exists()
    # the switch is logged, the download of the new champion's files without a bar per file
    assert "Downloading artifacts" not in (tmp_path / "serve.log").read_text()
    assert _total(metrics, "kkbox_champion_switches_total", outcome="switched") == 1
    assert _total(metrics, "kkbox_model_info", version=second) == 1
    assert _total(metrics, "kkbox_model_info", version="1") == 0
    logged, seen = read_traffic(traffic, "2000-01-01", "2999-12-31")
    assert seen == len(sender.answers)
    assert logged["model_version"].value_counts().to_dict() == {
        v: versions.count(v) for v in set(versions)
    }
