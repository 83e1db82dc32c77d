"""The prediction service as users run it: a champion trained and imported by the steps, then
``bentoml serve`` on 127.0.0.1, spoken to over HTTP."""

from __future__ import annotations

import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import numpy as np
import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from churn_transform.schema import EXAMPLE_RECORD, FEATURES
from churn_transform.traffic import read_traffic
from tests.conftest import BIN, Champion, records_of, run_step, serve, stop, train_arguments

pytestmark = pytest.mark.integration


def _metrics(url: str) -> dict[tuple[str, tuple], float]:
    text = requests.get(f"{url}/metrics", timeout=5).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}  # fmt: skip


def _total(metrics: dict[tuple[str, tuple], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in metrics.items()
               if n == name and set(labels.items()) <= set(ls))  # fmt: skip


def test_answers_are_the_registered_champion_s_probabilities(
    champion: Champion, service: str
) -> None:
    env, gold = champion.env, champion.gold("2017-03")
    records = records_of(gold, slice(0, 300))
    answer = requests.post(f"{service}/predict", json={"records": records}, timeout=30)
    assert answer.status_code == 200, answer.text
    predictions = answer.json()
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    model = mlflow.sklearn.load_model("models:/kkbox-churn@champion")
    expected = model.predict_proba(gold.iloc[:300][list(FEATURES)])[:, 1]
    served = np.array([p["churn_probability"] for p in predictions])
    np.testing.assert_allclose(served, expected, rtol=1e-12)  # no skew between training and serving
    assert [p["msno"] for p in predictions] == gold["msno"].iloc[:300].tolist()
    about = requests.post(f"{service}/metadata", json={}, timeout=5).json()
    assert {p["model_version"] for p in predictions} == {about["registry_version"]} == {"1"}
    assert [p["churn"] for p in predictions] == (expected >= about["metrics"]["threshold"]).tolist()
    assert about["metrics"]["roc_auc"] > 0.7 and len(about["data_version"]) == 12
    one = requests.post(f"{service}/predict", json={"records": records[7:8]}, timeout=30).json()
    assert one[0]["churn_probability"] == pytest.approx(served[7], rel=1e-12)


BAD_REQUESTS = [
    ({"records": []}, ["records"], "records"),
    ({"records": [EXAMPLE_RECORD] * 1001}, ["records"], "records"),
    ({"records": [EXAMPLE_RECORD, {**EXAMPLE_RECORD, "bd": 2016.0}]}, ["records", 1, "bd"], "bd"),
    ({"records": [{**EXAMPLE_RECORD, "city": "five"}]}, ["records", 0, "city"], "city"),
    ({"records": [{k: v for k, v in EXAMPLE_RECORD.items() if k != "secs_30"}]},
     ["records", 0, "secs_30"], "secs_30"),
    ({"records": [{**EXAMPLE_RECORD, "total_paid": -5.0}]}, ["records", 0, "total_paid"],
     "total_paid"),
    ({"rows": [EXAMPLE_RECORD]}, ["records"], "records"),
    ("{not json", [], "request"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "location", "field"), BAD_REQUESTS)
def test_bad_input_gets_a_400_naming_the_fault_and_is_counted(
    service: str, body: object, location: list, field: str
) -> None:
    before = _total(_metrics(service), "kkbox_validation_errors_total", field=field)
    sent = {"data": body} if isinstance(body, str) else {"json": body}
    answer = requests.post(f"{service}/predict", timeout=30,
                           headers={"Content-Type": "application/json"}, **sent)  # fmt: skip
    assert answer.status_code == 400, answer.text
    assert location in [fault["loc"] for fault in answer.json()["detail"]]
    assert _total(_metrics(service), "kkbox_validation_errors_total", field=field) > before
    # The worker is still there and still right.
    again = requests.post(f"{service}/predict", json={"records": [EXAMPLE_RECORD]}, timeout=30)
    assert again.status_code == 200


def test_every_metric_an_operator_needs_is_exported(service: str) -> None:
    requests.post(f"{service}/predict", json={"records": [EXAMPLE_RECORD] * 3}, timeout=30)
    names = {name for name, _ in _metrics(service)}
    assert {
        "bentoml_service_request_duration_seconds_bucket", "bentoml_service_request_total",
        "bentoml_service_request_in_progress", "bentoml_service_adaptive_batch_size_bucket",
        "kkbox_churn_probability_bucket", "kkbox_predictions_total", "kkbox_model_info",
        "kkbox_traffic_log_queue_depth", "kkbox_traffic_log_written_total",
    } <= names  # fmt: skip
    assert _total(_metrics(service), "kkbox_model_info", version="1") == 1


def test_sustained_load_is_batched_and_every_prediction_is_logged(
    champion: Champion, tmp_path: Path
) -> None:
    traffic = tmp_path / "traffic"
    process, url = serve({**champion.env, "KKBOX_TRAFFIC_LOG_URI": str(traffic)})
    records = records_of(champion.gold("2017-03"), slice(0, 400))

    def client(worker: int) -> list[tuple[str, int]]:
        ids = []
        with requests.Session() as session:
            for i in range(40):
                chunk = records[(worker * 40 + i) % 400 : (worker * 40 + i) % 400 + 1 + i % 3]
                answer = session.post(f"{url}/predict", json={"records": chunk}, timeout=30)
                assert answer.status_code == 200, answer.text
                ids.append((answer.headers["X-BentoML-Request-ID"], len(chunk)))
        return ids

    try:
        with ThreadPoolExecutor(16) as pool:
            sent = [i for ids in pool.map(client, range(16)) for i in ids]
        metrics = _metrics(url)
    finally:
        stop(process)  # SIGTERM: a graceful shutdown flushes the queue
    served = _total(metrics, "kkbox_predictions_total")
    batches = _total(metrics, "bentoml_service_adaptive_batch_size_count")
    assert batches < len(sent), "concurrent requests were never merged into one batch"
    logged, seen = read_traffic(traffic, "2000-01-01", "2999-12-31")
    assert seen == served == sum(records for _, records in sent)
    # each logged record knows the request it came in, though batches mixed requests
    assert logged.groupby("request_id").size().to_dict() == dict(sent)
    assert set(FEATURES) <= set(logged.columns) and logged["model_version"].eq("1").all()


def test_an_unwritable_traffic_log_costs_records_not_answers(
    champion: Champion, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("where the traffic folder should be")
    process, url = serve({**champion.env, "KKBOX_TRAFFIC_LOG_URI": str(blocker / "traffic")})
    try:
        for _ in range(5):
            answer = requests.post(f"{url}/predict", json={"records": [EXAMPLE_RECORD]}, timeout=30)
            assert answer.status_code == 200
        lost = 0.0
        for _ in range(50):
            lost = _total(_metrics(url), "kkbox_traffic_log_dropped_total", reason="write_failed")
            if lost == 5:
                break
            time.sleep(0.1)
        assert lost == 5
    finally:
        stop(process)


def test_import_is_idempotent_and_the_bento_builds_with_its_dockerfile(
    champion: Champion,
) -> None:
    env = champion.env
    assert "already in the store" in run_step(env, sys.executable, "-m", "steps.import_champion")
    run_step(env, str(BIN / "bentoml"), "build", "--output", "tag")
    bentos = list((Path(env["BENTOML_HOME"]) / "bentos" / "kkbox-churn-service").glob("*/"))
    bento = next(b for b in bentos if b.name != "latest")
    assert (bento / "env" / "docker" / "Dockerfile").is_file()
    described = yaml.safe_load((bento / "bento.yaml").read_text())
    packed = [m["tag"] for s in described["services"] for m in s["models"]]
    assert len(packed) == 1 and packed[0].startswith("kkbox-churn:")
    assert (bento / "src" / "churn_transform" / "transformer.py").is_file()


def test_another_registry_s_version_1_is_imported_not_mistaken_for_ours(
    champion: Champion, tmp_path: Path
) -> None:

    from churn_transform.training import TrainConfig

    # own BentoML store: the module's service keeps serving the first champion
    store = tmp_path / "bentoml"
    shutil.copytree(champion.env["BENTOML_HOME"], store)
    env = {**champion.env, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'other.db'}",
           "BENTOML_HOME": str(store)}  # fmt: skip
    arguments = train_arguments(TrainConfig(n_estimators=50, min_child_samples=50))
    run_step(env, sys.executable, "-m", "steps.train", *arguments)
    printed = run_step(env, sys.executable, "-m", "steps.import_champion")
    assert "imported kkbox-churn:" in printed and "(registry version 1)" in printed
