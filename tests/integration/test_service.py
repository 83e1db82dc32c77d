"""The prediction service as users run it: a champion trained and imported by the steps, then
``bentoml serve`` on 127.0.0.1, spoken to over HTTP."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import numpy as np
import psutil
import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from churn_transform.schema import EXAMPLE_RECORD, FEATURES
from churn_transform.serving.traffic import read_traffic
from tests.conftest import (
    BIN,
    Champion,
    records_of,
    run_step,
    serve,
    stop,
    tracking_store,
    train_arguments,
)

pytestmark = pytest.mark.integration


def _metrics(url: str) -> dict[tuple[str, tuple], float]:
    text = requests.get(f"{url}/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _total(metrics: dict[tuple[str, tuple], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in metrics.items() if n == name and set(labels.items()) <= set(ls))


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
    card = mlflow.MlflowClient().get_model_version("kkbox-churn", "1").description
    assert about["model_card"] == card and "## Known limits" in card


def test_explain_gives_the_answer_and_reasons_that_add_up_to_it(
    champion: Champion, service: str
) -> None:
    records = records_of(champion.gold("2017-03"), slice(0, 20))
    explained = requests.post(f"{service}/explain", json={"records": records}, timeout=30)
    predicted = requests.post(f"{service}/predict", json={"records": records}, timeout=30)
    assert explained.status_code == predicted.status_code == 200, explained.text
    for answer, plain in zip(explained.json(), predicted.json(), strict=True):
        assert answer["churn_probability"] == pytest.approx(plain["churn_probability"])
        total = answer["base_log_odds"] + sum(r["contribution"] for r in answer["reasons"])
        p = plain["churn_probability"]
        assert total == pytest.approx(np.log(p / (1 - p)), abs=1e-9)
    metrics = requests.get(f"{service}/metrics", timeout=5).text
    assert 'endpoint="/explain"' in metrics  # BentoML's own request metrics see it


def _with(field: str, number: str) -> str:
    """A request body whose one record has ``number`` (JSON text) in ``field``."""
    body = json.dumps({"records": [{**EXAMPLE_RECORD, field: 0.0}]})
    return body.replace(f'"{field}": 0.0', f'"{field}": {number}')


BAD_REQUESTS = [
    ({"records": []}, ["records"], "records"),
    ({"records": [EXAMPLE_RECORD] * 1001}, ["records"], "records"),
    ({"records": [EXAMPLE_RECORD, {**EXAMPLE_RECORD, "bd": 2016.0}]}, ["records", 1, "bd"], "bd"),
    ({"records": [{**EXAMPLE_RECORD, "city": "five"}]}, ["records", 0, "city"], "city"),
    (
        {"records": [{k: v for k, v in EXAMPLE_RECORD.items() if k != "secs_30"}]},
        ["records", 0, "secs_30"],
        "secs_30",
    ),
    (
        {"records": [{**EXAMPLE_RECORD, "total_paid": -5.0}]},
        ["records", 0, "total_paid"],
        "total_paid",
    ),
    ({"rows": [EXAMPLE_RECORD]}, ["records"], "records"),
    ("{not json", [], "request"),
    *[
        (_with("tx_count", number), ["records", 0, "tx_count"], "tx_count")
        for number in ("NaN", "Infinity", "1e309", "1" + "0" * 400)
    ],
    (_with("secs_7", "604800.5"), ["records", 0, "secs_7"], "secs_7"),
]


@pytest.mark.parametrize(("body", "location", "field"), BAD_REQUESTS)
def test_bad_input_gets_a_400_naming_the_fault_and_is_counted(
    service: str, body: object, location: list, field: str
) -> None:
    before = _total(_metrics(service), "kkbox_validation_errors_total", field=field)
    sent = {"data": body} if isinstance(body, str) else {"json": body}
    answer = requests.post(
        f"{service}/predict", timeout=30, headers={"Content-Type": "application/json"}, **sent
    )
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
        "bentoml_service_request_duration_seconds_bucket",
        "bentoml_service_request_total",
        "bentoml_service_request_in_progress",
        "bentoml_service_adaptive_batch_size_bucket",
        "kkbox_churn_probability_bucket",
        "kkbox_predictions_total",
        "kkbox_model_info",
        "kkbox_traffic_log_queue_depth",
        "kkbox_traffic_log_written_total",
    } <= names
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
    run_step(env, "make", "bento")  # the README's command, as a user runs it
    bentos = list((Path(env["BENTOML_HOME"]) / "bentos" / "kkbox-churn-service").glob("*/"))
    bento = next(b for b in bentos if b.name != "latest")
    assert (bento / "env" / "docker" / "Dockerfile").is_file()
    described = yaml.safe_load((bento / "bento.yaml").read_text())
    packed = [m["tag"] for s in described["services"] for m in s["models"]]
    assert len(packed) == 1 and packed[0].startswith("kkbox-churn:")
    assert (bento / "src" / "churn_transform" / "modelling" / "transformer.py").is_file()


def test_another_registry_s_version_1_is_imported_not_mistaken_for_ours(
    champion: Champion, tmp_path: Path
) -> None:

    from churn_transform.modelling.training import TrainConfig

    # own BentoML store: the module's service keeps serving the first champion
    store = tmp_path / "bentoml"
    shutil.copytree(champion.env["BENTOML_HOME"], store)
    env = {
        **champion.env,
        "MLFLOW_TRACKING_URI": tracking_store(tmp_path / "other.db"),
        "BENTOML_HOME": str(store),
    }
    arguments = train_arguments(TrainConfig(n_estimators=50, min_child_samples=50))
    run_step(env, sys.executable, "-m", "steps.train", *arguments)
    printed = run_step(env, sys.executable, "-m", "steps.import_champion")
    assert "imported kkbox-churn:" in printed and "(registry version 1)" in printed


# -- a strict service, and processes that stop together ------------------------------------


def test_a_body_too_large_or_not_json_is_refused_before_it_is_parsed(service: str) -> None:
    big = b'{"records": [' + b" " * (8 * 2**20) + b"]}"
    declared = requests.post(
        f"{service}/predict", data=big, timeout=30, headers={"Content-Type": "application/json"}
    )
    streamed = requests.post(
        f"{service}/predict",
        data=iter([big[i : i + 2**16] for i in range(0, len(big), 2**16)]),
        timeout=30,
        headers={"Content-Type": "application/json"},
    )
    assert [declared.status_code, streamed.status_code] == [413, 413], streamed.text
    assert "over 4194304 bytes" in declared.json()["error"]
    form = requests.post(f"{service}/predict", data={"records": "x"}, timeout=30)
    assert form.status_code == 415 and "application/json" in form.json()["error"]
    again = requests.post(f"{service}/predict", json={"records": [EXAMPLE_RECORD]}, timeout=30)
    assert again.status_code == 200


def _family(process: subprocess.Popen) -> list[int]:
    """The server and every process under it (the workers live in sessions of their own)."""
    return [process.pid, *(p.pid for p in psutil.Process(process.pid).children(recursive=True))]


def _all_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive:
            return True
        time.sleep(0.1)
    return False


def _port_is_free(url: str) -> bool:
    """Whether a new server could listen on ``url``'s port (as circus does, with SO_REUSEADDR:
    the closed connections' TIME_WAIT does not count)."""
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_overload_is_a_clear_503_with_retry_after_never_a_500(
    champion: Champion, tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    process, url = serve(
        {
            **champion.env,
            "KKBOX_MAX_CONCURRENCY": "4",
            "KKBOX_TRAFFIC_LOG_URI": str(tmp_path / "traffic"),
        },
        log,
    )
    records = records_of(champion.gold("2017-03"), slice(0, 200))
    start = threading.Barrier(48)

    def one(_: int) -> requests.Response:
        start.wait()
        return requests.post(f"{url}/predict", json={"records": records}, timeout=60)

    try:
        with ThreadPoolExecutor(48) as pool:
            answers = list(pool.map(one, range(48)))
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    statuses = [a.status_code for a in answers]
    assert set(statuses) == {200, 503}, statuses
    for shed in (a for a in answers if a.status_code == 503):
        assert shed.headers["Retry-After"] == "1"
        assert shed.json() == {"error": "The service is overloaded; retry after 1 s."}
    output = log.read_text()
    assert "Traceback" not in output and "ERROR" not in output, output[-3000:]
    assert output.count("refused 503 POST /predict") == statuses.count(503)


def test_killing_the_server_s_process_group_leaves_no_worker_behind(
    champion: Champion, tmp_path: Path
) -> None:
    env = {**champion.env, "KKBOX_TRAFFIC_LOG_URI": str(tmp_path / "traffic")}
    process, url = serve(env, tmp_path / "first.log")
    family = _family(process)
    assert len(family) >= 2, "no worker under bentoml serve"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)
    assert _all_gone(family, timeout=15), "a worker outlived its server"
    assert _port_is_free(url)
    port = int(url.rsplit(":", 1)[1])
    again, same = serve(env, tmp_path / "second.log", port=port)  # the port is free again
    try:
        answer = requests.post(f"{same}/predict", json={"records": [EXAMPLE_RECORD]}, timeout=30)
        assert answer.status_code == 200
    finally:
        stop(again)


def test_sigterm_answers_every_request_in_flight_then_leaves_nothing_behind(
    champion: Champion, tmp_path: Path
) -> None:
    traffic = tmp_path / "traffic"
    # One request at a time (no batching): those sent together are still queued at the signal.
    env = {**champion.env, "KKBOX_TRAFFIC_LOG_URI": str(traffic), "KKBOX_MAX_BATCH_SIZE": "1"}
    process, url = serve(env, tmp_path / "serve.log")
    family = _family(process)
    records = records_of(champion.gold("2017-03"), slice(0, 1000))
    answered: list[float] = []

    def one(_: int) -> int:
        status = requests.post(f"{url}/predict", json={"records": records}, timeout=60).status_code
        answered.append(time.monotonic())
        return status

    with ThreadPoolExecutor(12) as pool:
        sent = pool.map(one, range(12))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until every request is in the worker
            inside = _total(
                _metrics(url), "bentoml_service_request_in_progress", endpoint="/predict"
            )
            if inside + len(answered) == 12:
                break
            time.sleep(0.02)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        statuses = list(sent)
    assert statuses == [200] * 12
    assert max(answered) > signalled, "all answered before the signal: make the requests heavier"
    assert process.wait(30) == 0 and _all_gone(family, timeout=15) and _port_is_free(url)
    _, logged = read_traffic(traffic, "2000-01-01", "2999-12-31")
    assert logged == 12 * 1000  # the traffic log was written out too


# -- API keys and rate limits ----------------------------------------------------------------


def _digest(key: str) -> str:
    import hashlib

    return hashlib.sha256(key.encode()).hexdigest()


def test_a_client_over_its_rate_gets_429s_while_another_is_served(
    champion: Champion, tmp_path: Path
) -> None:
    keys = {"greedy": "greedy-secret-key", "polite": "polite-secret-key"}
    env = {
        **champion.env,
        "KKBOX_API_KEYS": ",".join(f"{name}:{_digest(key)}" for name, key in keys.items()),
        "KKBOX_RATE_LIMIT": "5",
        "KKBOX_RATE_BURST": "5",
        "KKBOX_TRAFFIC_LOG_URI": str(tmp_path / "traffic"),
    }
    process, url = serve(env, tmp_path / "serve.log")
    body = {"records": [EXAMPLE_RECORD]}

    def send(key: str | None) -> requests.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return requests.post(f"{url}/predict", json=body, headers=headers, timeout=30)

    def polite() -> list[requests.Response]:
        answers = []
        for _ in range(8):  # 4/s, under its 5/s
            answers.append(send(keys["polite"]))
            time.sleep(0.25)
        return answers

    try:
        assert send(None).status_code == 401 and send("guessed").status_code == 401
        assert "Bearer" in send(None).json()["error"]
        assert requests.get(f"{url}/readyz", timeout=5).status_code == 200
        with ThreadPoolExecutor(9) as pool:
            calm = pool.submit(polite)
            greedy = list(pool.map(lambda _: send(keys["greedy"]), range(80)))
            served = calm.result()
        metrics = _metrics(url)  # open: KKBOX_METRICS_NEED_KEY is false by default
    finally:
        stop(process)
    statuses = [a.status_code for a in greedy]
    assert set(statuses) == {200, 429} and statuses.count(429) > 40, statuses
    refused = next(a for a in greedy if a.status_code == 429)
    assert int(refused.headers["Retry-After"]) >= 1 and "greedy" in refused.json()["error"]
    assert [a.status_code for a in served] == [200] * 8
    assert _total(metrics, "kkbox_rate_limited_total", key="greedy") == statuses.count(429)
    assert _total(metrics, "kkbox_rate_limited_total", key="polite") == 0
    assert _total(metrics, "kkbox_unauthorized_total", reason="missing") == 2


def test_the_service_refuses_to_serve_the_network_without_a_key(
    champion: Champion, tmp_path: Path
) -> None:
    env = {k: v for k, v in champion.env.items() if not k.startswith("KKBOX_API_KEYS")}
    command = [str(BIN / "bentoml"), "serve", "service:ChurnService", "--host", "0.0.0.0"]
    from tests.conftest import free_port

    started = subprocess.run(
        [*command, "--port", str(free_port())],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    said = started.stdout + started.stderr
    assert started.returncode != 0, said[-2000:]
    assert "Refusing to serve 0.0.0.0 with no API key configured" in said, said[-2000:]
    assert "KKBOX_API_KEYS" in said
