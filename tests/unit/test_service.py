"""The prediction service without a trained champion, on BentoML's testing ladder: the class
called directly, then its ASGI app through a test client, with a small model fitted here.
(``tests/integration/test_service.py`` climbs the last rung: ``bentoml serve`` over HTTP.)"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pytest
from bentoml.exceptions import BentoMLException, NotFound, ServiceUnavailable
from prometheus_client import REGISTRY
from pydantic import BaseModel, ValidationError, create_model
from starlette.testclient import TestClient

import service
from churn_transform.modelling.training import TrainConfig, fit
from churn_transform.schema import EXAMPLE_RECORD, FEATURES, LABEL
from churn_transform.serving import access
from churn_transform.serving.access import KeyRing, RequireKeys, TokenBucket, refuse_open_bind
from churn_transform.serving.guards import OVERLOADED, GuardRequests, QuietRefusals
from churn_transform.serving.online_store import OnlineFeatures, OnlineStore
from churn_transform.serving.runtime import Champion, RequestRecord
from churn_transform.serving.traffic import read_traffic
from churn_transform.settings import PROJECT_ROOT, Settings

ChurnService = service.ChurnService


def test_importing_the_service_loads_neither_dask_nor_s3fs() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, service; print(*sys.modules)"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "service" in loaded and "churn_transform.serving.runtime" in loaded
    assert "dask" not in loaded and "s3fs" not in loaded


def test_freezing_the_heap_collects_its_garbage_first_then_exempts_the_rest() -> None:
    code = (  # in a fresh interpreter: the test process's heap stays as it is
        "import gc, weakref\n"
        "from churn_transform.serving.runtime import freeze_heap\n"
        "class Node: pass\n"
        "kept, cycle = Node(), Node()\n"
        "cycle.me = cycle\n"
        "gone = weakref.ref(cycle)\n"
        "del cycle\n"
        "freeze_heap()\n"
        "assert gone() is None, 'a cycle of garbage was frozen'\n"
        "assert gc.get_freeze_count() > 0 and kept is not None\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, check=True)


def _gold(rows: int, seed: int) -> pd.DataFrame:
    """Gold-like rows: any plausible numbers, and churn driven by the cancels."""
    rng = np.random.default_rng(seed)
    gold = pd.DataFrame({name: rng.gamma(2.0, 10.0, rows) for name in FEATURES})
    gold["gender"] = pd.array(rng.choice(["male", "female", None], rows), dtype="string")
    gold["city"] = rng.choice([1.0, 5.0, 13.0, np.nan], rows)
    gold[LABEL] = (rng.random(rows) < 1 / (1 + np.exp(3 - gold["cancel_count"] / 10))).astype(int)
    return gold


@pytest.fixture(scope="module")
def champion() -> Champion:
    """A champion fitted in well under a second on 400 rows, as training fits the real one."""
    config = TrainConfig(n_estimators=30, min_child_samples=10, early_stopping_rounds=10)
    fitted = fit(_gold(400, seed=1), config)
    return Champion(
        model=fitted.model,
        tag="kkbox-churn:test",
        labels={"registry_version": "7", "run_id": "run", "data_version": "gold"},
        about={"metrics": {"threshold": fitted.threshold, "roc_auc": 0.5}},
    )


def _settings(tmp_path: Path) -> Settings:
    # the champion is the test's, not a registry's: nothing to follow; no online store but
    # the test's own is read (none: the checkout's is not)
    return Settings(
        traffic_log_uri=str(tmp_path / "traffic"),
        max_batch_size=64,
        champion_poll_seconds=0,
        feature_repo=str(tmp_path / "feature_store"),
    )


RECORDS = [
    EXAMPLE_RECORD,
    {
        **EXAMPLE_RECORD,
        "msno": "b" * 43 + "=",
        "cancel_count": 4.0,
        "cancel_count_365": 2.0,
        "days_since_last_cancel": 40.0,
        "gender": None,
    },
    {**EXAMPLE_RECORD, "msno": "c" * 43 + "=", "bd": None, "city": 13.0},
]


def _expected(champion: Champion, records: list[dict]) -> np.ndarray:
    frame = pd.DataFrame(records)[list(FEATURES)]
    return champion.model.predict_proba(frame)[:, 1]


# -- the class, called directly ------------------------------------------------------------


def test_predict_answers_the_model_s_probabilities_in_order(
    champion: Champion, tmp_path: Path
) -> None:
    served = ChurnService.inner(champion, _settings(tmp_path))
    try:
        answers = served.predict([RequestRecord.model_validate(r) for r in RECORDS])
    finally:
        served.flush_traffic_log()
    expected = _expected(champion, RECORDS)
    assert [a.msno for a in answers] == [r["msno"] for r in RECORDS]
    np.testing.assert_allclose([a.churn_probability for a in answers], expected, rtol=1e-12)
    assert [a.churn for a in answers] == (expected >= champion.threshold).tolist()
    assert {a.model_version for a in answers} == {"7"}


def test_every_prediction_is_logged_with_its_features(champion: Champion, tmp_path: Path) -> None:
    served = ChurnService.inner(champion, _settings(tmp_path))
    records = [RequestRecord.model_validate(r) for r in RECORDS]
    served.predict(records)
    served.flush_traffic_log()  # what BentoML calls on shutdown
    logged, seen = read_traffic(tmp_path / "traffic", "2000-01-01", "2999-12-31")
    assert seen == 3 and logged["msno"].tolist() == [r["msno"] for r in RECORDS]
    assert logged["request_id"].tolist() == [r.request_id for r in records]
    assert set(FEATURES) <= set(logged.columns) and logged["model_version"].eq("7").all()


def test_explain_answers_predict_s_answers_with_reasons_that_add_up(
    champion: Champion, tmp_path: Path
) -> None:
    served = ChurnService.inner(champion, _settings(tmp_path))
    records = [RequestRecord.model_validate(r) for r in RECORDS]
    try:
        explained = served.explain(records)
        predicted = served.predict(records)
    finally:
        served.flush_traffic_log()
    for answer, plain in zip(explained, predicted, strict=True):
        assert answer.model_dump(exclude={"base_log_odds", "reasons"}) == plain.model_dump()
        total = answer.base_log_odds + sum(r.contribution for r in answer.reasons)
        assert total == pytest.approx(
            np.log(plain.churn_probability / (1 - plain.churn_probability))
        )
        assert {r.feature for r in answer.reasons} == set(FEATURES)
        sizes = [abs(r.contribution) for r in answer.reasons]
        assert sizes == sorted(sizes, reverse=True)
    sent = {r.feature: r.value for r in explained[1].reasons}
    assert sent["cancel_count"] == 4.0 and sent["gender"] is None
    logged, seen = read_traffic(tmp_path / "traffic", "2000-01-01", "2999-12-31")
    assert seen == 6  # explained answers are logged as every prediction is


class MemoryStore(OnlineStore):
    """An online store in memory that serves the cohort 2017-04 from ``rows`` (msno ->
    features)."""

    def __init__(self, rows: dict[str, dict[str, Any]]) -> None:
        super().__init__("memory")
        self.rows = rows

    def served(self) -> dict[str, str]:
        return {"2017-04": "april"}

    def point(self, cohort: str, view: str) -> None:
        raise NotImplementedError

    def read(self, view: str, ids: Sequence[str]) -> list[dict[str, Any] | None]:
        return [self.rows.get(msno) for msno in ids]

    def some_ids(self, view: str, count: int) -> list[str]:
        return list(self.rows)[:count]


def _online() -> OnlineFeatures:
    """The records of ``RECORDS``, by id."""
    rows = {r["msno"]: {name: r[name] for name in FEATURES} for r in RECORDS}
    return OnlineFeatures(MemoryStore(rows), ttl=60)


def test_explain_by_id_answers_what_explain_does_with_the_features(
    champion: Champion, tmp_path: Path
) -> None:
    served = ChurnService.inner(champion, _settings(tmp_path), _online())
    ids = [RECORDS[2]["msno"], RECORDS[0]["msno"]]
    try:
        by_id = served.explain_ids(ids, None)
        sent = served.explain([RequestRecord.model_validate(r) for r in (RECORDS[2], RECORDS[0])])
        with pytest.raises(NotFound, match=r"cohort 2017-04: nobody\. Ids are the msno"):
            served.explain_ids([ids[0], "nobody"], None)
    finally:
        served.flush_traffic_log()
    assert by_id == sent
    logged, seen = read_traffic(tmp_path / "traffic", "2000-01-01", "2999-12-31")
    assert seen == 4 and logged["msno"].tolist() == ids * 2  # the refused request: nothing


def test_the_example_ids_are_the_store_s_or_none(champion: Champion, tmp_path: Path) -> None:
    served = ChurnService.inner(champion, _settings(tmp_path), _online())
    served.flush_traffic_log()
    assert served.example_ids() == [RECORDS[0]["msno"]]
    empty = OnlineFeatures(MemoryStore({}), ttl=60)
    empty.store.served = dict  # type: ignore[method-assign]  # no cohort loaded
    served = ChurnService.inner(champion, _settings(tmp_path), empty)
    served.flush_traffic_log()
    assert served.example_ids() == []


def test_metadata_describes_the_champion_and_the_batching(
    champion: Champion, tmp_path: Path
) -> None:
    served = ChurnService.inner(champion, _settings(tmp_path))
    served.flush_traffic_log()
    about = served.metadata()
    assert about["model_tag"] == "kkbox-churn:test" and about["registry_version"] == "7"
    assert about["metrics"]["threshold"] == champion.threshold
    assert about["max_batch_size"] == 64


# -- the ASGI app, through a test client ---------------------------------------------------


@pytest.fixture(scope="module")
def app() -> object:
    """The service's ASGI app. One per process: BentoML registers its request metrics with
    Prometheus when an app first handles a request, and a second app would register them again."""
    return ChurnService.to_asgi()


@contextmanager
def _client(app: object, champion: Champion, settings: Settings) -> Iterator[TestClient]:
    """A test client of ``app``, between its startup (which builds the service instance) and
    its shutdown (which flushes the traffic log).

    BentoML builds the instance itself, without arguments: the settings and the champion it
    would read from the environment and the model store are replaced while the app runs."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(service, "SETTINGS", settings)
        patch.setattr(service, "load_champion", lambda reference: champion)
        with TestClient(app) as client:  # type: ignore[arg-type]
            yield client


@pytest.fixture(scope="module")
def client(
    app: object, champion: Champion, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    with _client(app, champion, _settings(tmp_path_factory.mktemp("asgi"))) as client:
        yield client


def test_a_good_request_is_answered_and_logged_under_its_request_id(
    app: object, champion: Champion, tmp_path: Path
) -> None:
    with _client(app, champion, _settings(tmp_path)) as client:
        answers = [client.post("/predict", json={"records": RECORDS[i : i + 2]}) for i in (0, 1)]
    assert [a.status_code for a in answers] == [200, 200], answers[0].text
    served = [p["churn_probability"] for p in answers[0].json()]
    np.testing.assert_allclose(served, _expected(champion, RECORDS[:2]), rtol=1e-12)
    logged, _ = read_traffic(tmp_path / "traffic", "2000-01-01", "2999-12-31")
    sent = [a.headers["X-BentoML-Request-ID"] for a in answers]
    assert logged.groupby("request_id").size().to_dict() == {sent[0]: 2, sent[1]: 2}


# -- API keys and rate limits, on the ASGI app ---------------------------------------------

# Each test runs its own client of the module's app, before the module's `client` exists (two
# at once would share one service instance). They call /metadata, an API route like /predict:
# BentoML's batcher stays bound to the first client's event loop, so /predict with keys is left
# to the integration tests.
KEYS = {"alice": "alice-secret-key", "bob": "bob-secret-key"}


def _hex(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _ring() -> KeyRing:
    # alice's as a digest (the recommended form), bob's as a plain key hashed at load
    return KeyRing.parse([f"alice:{_hex(KEYS['alice'])}", f"bob:{KEYS['bob']}"])


def test_keys_are_kept_as_sha256_digests_only() -> None:
    ring = _ring()
    assert ring.digests == {name: hashlib.sha256(k.encode()).digest() for name, k in KEYS.items()}
    assert KEYS["bob"] not in repr(vars(ring))


def test_keys_come_from_the_settings_and_a_mounted_file(tmp_path: Path) -> None:
    secret = tmp_path / "keys"
    secret.write_text(f"# one a line\ncarol:{_hex('carol-key')}\n\n")
    settings = Settings(api_keys=f"alice:{_hex(KEYS['alice'])}", api_keys_file=str(secret))
    ring = service.keyring(settings)
    assert set(ring.digests) == {"alice", "carol"} and ring.name_of("carol-key") == "carol"
    assert not service.keyring(Settings(api_keys="", api_keys_file=""))


@pytest.mark.parametrize("keys", ["alice:", f"alice:{_hex(KEYS['alice'])},bob:"])
def test_an_empty_key_or_digest_stops_the_service_at_start(keys: str) -> None:
    """Issue 30: ``alice:`` (a digest variable unset in compose) made the empty key valid."""
    with pytest.raises(SystemExit, match="KKBOX_API_KEYS: the API key entry .* has no key"):
        service.keyring(Settings(api_keys=keys))


def test_a_key_is_compared_with_every_digest_in_constant_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    constant_time = hmac.compare_digest

    def compare(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return constant_time(a, b)

    monkeypatch.setattr(access.hmac, "compare_digest", compare)
    ring = _ring()
    assert (
        ring.name_of(KEYS["alice"]) == "alice"
    )  # the first digest: the second one is compared too
    assert ring.name_of("guess") is None
    assert len(compared) == 4 and all(len(a) == len(b) == 32 for a, b in compared)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer guess"}, 401),
        ({"X-API-Key": "guess"}, 401),
        ({"Authorization": f"Bearer {KEYS['alice']}"}, 200),
        ({"X-API-Key": KEYS["bob"]}, 200),
    ],
    ids=["none", "wrong-bearer", "wrong-header", "bearer", "x-api-key"],
)
def test_a_prediction_needs_a_configured_key(
    app: object, champion: Champion, tmp_path: Path, headers: dict, status: int
) -> None:
    keyed = RequireKeys(app, keys=_ring())
    with _client(keyed, champion, _settings(tmp_path)) as client:
        answer = client.post("/metadata", json={}, headers=headers)
    assert answer.status_code == status, answer.text
    if status == 401:
        expected = access.MISSING if not headers else access.WRONG
        assert answer.json() == {"error": expected}
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_explain_needs_a_key_as_predict_does(
    app: object, champion: Champion, tmp_path: Path
) -> None:
    keyed = RequireKeys(app, keys=_ring())
    with _client(keyed, champion, _settings(tmp_path)) as client:
        refused = client.post("/explain", json={"records": RECORDS[:1]})
        answered = client.post(
            "/explain", json={"records": RECORDS[:1]}, headers={"X-API-Key": KEYS["bob"]}
        )
    assert refused.status_code == 401 and answered.status_code == 200, answered.text
    assert answered.json()[0]["reasons"][0]["name"]


def test_health_and_docs_stay_open(app: object, champion: Champion, tmp_path: Path) -> None:
    keyed = RequireKeys(app, keys=_ring())
    with _client(keyed, champion, _settings(tmp_path)) as client:
        for path in ("/readyz", "/livez"):
            assert client.get(path).status_code == 200, path
        for path in ("/", "/docs.json"):  # the Swagger UI, served by `bentoml serve` only
            assert client.get(path).status_code != 401, path


async def _ok(scope: dict, receive: object, send: object) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]


@pytest.mark.parametrize("metrics_need_key", [False, True])
def test_metrics_need_a_key_as_configured(metrics_need_key: bool) -> None:
    # BentoML's /metrics answers under `bentoml serve` only: a stand-in answers here
    client = TestClient(RequireKeys(_ok, keys=_ring(), metrics_need_key=metrics_need_key))
    assert client.get("/metrics").status_code == (401 if metrics_need_key else 200)
    assert client.get("/metrics", headers={"X-API-Key": KEYS["alice"]}).status_code == 200
    assert client.get("/readyz").status_code == 200


def test_a_key_over_its_rate_gets_429_with_retry_after_while_another_is_served(
    app: object, champion: Champion, tmp_path: Path
) -> None:
    keyed = RequireKeys(app, keys=_ring(), rate=0.5, burst=2, counters=service.metrics)
    before = REGISTRY.get_sample_value("kkbox_rate_limited_total", {"key": "alice"}) or 0.0
    with _client(keyed, champion, _settings(tmp_path)) as client:

        def send(name: str) -> int:
            headers = {"X-API-Key": KEYS[name]}
            answer = client.post("/metadata", json={}, headers=headers)
            if answer.status_code == 429:
                assert answer.headers["Retry-After"] == "2"  # a token every 2 s
                assert "'alice'" in answer.json()["error"] and KEYS["alice"] not in answer.text
            return answer.status_code

        assert [send("alice") for _ in range(4)] == [200, 200, 429, 429]
        assert [send("bob") for _ in range(2)] == [200, 200]
    after = REGISTRY.get_sample_value("kkbox_rate_limited_total", {"key": "alice"})
    assert after == before + 2


def test_a_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2.0, burst=3, clock=lambda: now[0])
    assert [bucket.wait("a") for _ in range(4)] == [0, 0, 0, 0.5]
    now[0] = 0.5
    assert bucket.wait("a") == 0 and bucket.wait("a") == 0.5
    now[0] = 100.0
    assert [bucket.wait("a") for _ in range(4)] == [0, 0, 0, 0.5]  # no more than the burst


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "10.1.2.3"])
def test_no_key_on_a_network_address_stops_the_service(address: str) -> None:
    with pytest.raises(SystemExit, match=f"Refusing to serve {address} .*KKBOX_API_KEYS"):
        refuse_open_bind(KeyRing(), address)
    refuse_open_bind(_ring(), address)  # with a key it serves


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", None])
def test_no_key_on_loopback_serves_openly_and_says_so(
    address: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        refuse_open_bind(KeyRing(), address)
    assert "No API key configured" in caplog.text


def _refused(field: str) -> float:
    return REGISTRY.get_sample_value("kkbox_validation_errors_total", {"field": field}) or 0.0


@pytest.mark.parametrize(
    ("body", "location", "field"),
    [
        (
            {"records": [EXAMPLE_RECORD, {**EXAMPLE_RECORD, "bd": 2016.0}]},
            ["records", 1, "bd"],
            "bd",
        ),
        ({"records": [{**EXAMPLE_RECORD, "city": "five"}]}, ["records", 0, "city"], "city"),
        (
            {"records": [{k: v for k, v in EXAMPLE_RECORD.items() if k != "secs_30"}]},
            ["records", 0, "secs_30"],
            "secs_30",
        ),
        ({"records": []}, ["records"], "records"),
        ("{not json", [], "request"),
    ],
)
def test_a_bad_request_gets_a_400_naming_the_field_and_is_counted(
    client: TestClient, body: object, location: list, field: str
) -> None:
    before = _refused(field)
    sent = {"content": body} if isinstance(body, str) else {"json": body}
    answer = client.post("/predict", headers={"Content-Type": "application/json"}, **sent)
    assert answer.status_code == 400, answer.text
    assert location in [fault["loc"] for fault in answer.json()["detail"]]
    assert _refused(field) == before + 1


def test_an_implausible_record_gets_a_400_naming_its_rules_and_is_counted(
    client: TestClient,
) -> None:
    before = _refused("records")
    made_up = {**EXAMPLE_RECORD, "tx_count_90": 30.0}  # of 29 transactions
    answer = client.post("/predict", json={"records": [EXAMPLE_RECORD, made_up]})
    assert answer.status_code == 400, answer.text
    [fault] = answer.json()["detail"]
    assert fault["loc"] == ["records", 1] and fault["type"] == "implausible_record"
    assert fault["msg"] == (
        "implausible record: counts_within_transactions: tx_count_90 30 > tx_count 29"
    )
    assert _refused("records") == before + 1


def _example(spec: dict[str, Any], path: str, field: str) -> Any:
    body = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    return body["schema"]["properties"][field].get("example")


def test_the_openapi_example_record_is_the_real_one_and_is_answered(client: TestClient) -> None:
    """``example``, which Swagger UI (OpenAPI 3.0) fills *Try it out* with, not a placeholder."""
    spec = ChurnService.openapi_spec.asdict()
    for path in ("/predict", "/explain"):
        assert _example(spec, path, "records") == [EXAMPLE_RECORD], path
    # /explain scores it as /predict does (whose batcher is bound to the first client's loop)
    answer = client.post("/explain", json={"records": _example(spec, "/predict", "records")})
    assert answer.status_code == 200, answer.text


@pytest.fixture
def by_id(client: TestClient) -> Iterator[TestClient]:
    """The module's client, its service reading ``RECORDS`` by id from an online store in
    memory."""
    import bentoml

    running = bentoml.get_current_service()
    saved, running._online = running._online, _online()
    yield client
    running._online = saved


def test_the_openapi_example_id_is_one_the_running_service_holds(by_id: TestClient) -> None:
    spec = ChurnService.openapi_spec.asdict()
    for path in ("/predict_ids", "/explain_ids"):
        assert _example(spec, path, "ids") == [RECORDS[0]["msno"]], path
        answer = by_id.post(path, json={"ids": _example(spec, path, "ids")})
        assert answer.status_code == 200, answer.text


def test_the_openapi_ids_have_no_example_without_a_running_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def not_running() -> None:
        raise BentoMLException("service isn't instantiated yet")  # BentoML's, as at build

    monkeypatch.setattr(service.bentoml, "get_current_service", not_running)
    assert _example(ChurnService.openapi_spec.asdict(), "/predict_ids", "ids") is None


def test_explain_by_id_answers_as_explain_does_over_http(
    by_id: TestClient, champion: Champion
) -> None:
    """What the dashboard sends: ``{"ids": [msno]}``, one ``/explain``-shaped answer back."""
    answer = by_id.post("/explain_ids", json={"ids": [RECORDS[1]["msno"]]})
    assert answer.status_code == 200, answer.text
    explained = by_id.post("/explain", json={"records": [RECORDS[1]]})
    assert answer.json() == explained.json() and len(answer.json()) == 1
    assert {"churn_probability", "base_log_odds", "reasons"} <= set(answer.json()[0])
    unknown = by_id.post("/explain_ids", json={"ids": ["nobody"]})
    assert unknown.status_code == 404 and "Ids are the msno" in unknown.text
    wrong = by_id.post("/explain_ids", json={"ids": [RECORDS[1]["msno"]], "cohort": "april"})
    assert wrong.status_code == 400 and "cohort" in wrong.text


def test_metadata_over_http(client: TestClient, champion: Champion) -> None:
    about = client.post("/metadata", json={}).json()
    assert about["registry_version"] == "7" and about["max_batch_size"] == 64


# -- what the service refuses, and how it says so ------------------------------------------


def _with(field: str, number: str) -> str:
    """A request body whose record has ``number`` (JSON text) in ``field``."""
    body = json.dumps({"records": [{**EXAMPLE_RECORD, field: 0.0}]})
    return body.replace(f'"{field}": 0.0', f'"{field}": {number}')


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e309", "1" + "0" * 400])
def test_a_number_that_is_not_finite_gets_a_400_naming_its_field(
    client: TestClient, number: str
) -> None:
    answer = client.post(
        "/predict", content=_with("tx_count", number), headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400, answer.text
    assert [f["loc"] for f in answer.json()["detail"]] == [["records", 0, "tx_count"]]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None]
)
def test_a_body_that_is_not_declared_json_gets_a_415(
    client: TestClient, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    answer = client.post("/predict", content=json.dumps({"records": RECORDS}), headers=headers)
    assert answer.status_code == 415, answer.text
    assert "application/json" in answer.json()["error"]


def test_json_with_a_charset_is_json(client: TestClient) -> None:
    answer = client.post(
        "/metadata", content="{}", headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_gets_a_413(client: TestClient, chunked: bool) -> None:
    limit = service.SETTINGS.max_body_bytes
    body = b'{"records": [' + b" " * limit + b"]}"
    content = iter([body[i : i + 65536] for i in range(0, len(body), 65536)]) if chunked else body
    answer = client.post("/predict", content=content, headers={"Content-Type": "application/json"})
    assert answer.status_code == 413, answer.text
    assert str(limit) in answer.json()["error"]


def test_a_refusal_is_one_warning_line_naming_fields_not_values(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    bad = {**EXAMPLE_RECORD, "bd": 2016.0, "secs_7": 9.87654321e9, "msno": "tell-no-one"}
    with caplog.at_level(logging.INFO):
        answer = client.post("/predict", json={"records": [bad]})
    assert answer.status_code == 400
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.levelname for r in warnings] == ["WARNING"], [r.getMessage() for r in warnings]
    line = warnings[0].getMessage()
    assert line == "refused 400 POST /predict: invalid bd, msno, secs_7"
    assert not any(r.exc_info for r in caplog.records)


def test_a_client_does_not_choose_the_field_label(client: TestClient) -> None:
    before = _refused("unknown")
    answer = client.post("/predict", json={"records": [{**EXAMPLE_RECORD, "x" * 500: 1.0}]})
    assert answer.status_code == 400
    assert _refused("unknown") == before + 1


def _raised(error: BaseException) -> logging.LogRecord:
    try:
        raise error
    except BaseException:
        return logging.LogRecord(
            "bentoml", logging.ERROR, "app.py", 1, "Exception on /predict", None, sys.exc_info()
        )


def _invalid(model: type[BaseModel]) -> ValidationError:
    try:
        model.model_validate({"x": "not a number"})
    except ValidationError as error:
        return error
    raise AssertionError("valid")


def test_only_refusals_lose_bentoml_s_traceback() -> None:
    Input = create_model("Input", x=(float, ...))  # BentoML's name for an API's request model
    Prediction = create_model("Prediction", x=(float, ...))
    quiet = QuietRefusals(shed=ServiceUnavailable)
    assert not quiet.filter(_raised(_invalid(Input)))
    assert not quiet.filter(_raised(ServiceUnavailable("process is overloaded")))
    assert quiet.filter(_raised(_invalid(Prediction)))  # our answer was invalid: a real error
    assert quiet.filter(_raised(RuntimeError("the model is broken")))
    assert quiet.filter(logging.LogRecord("bentoml", logging.INFO, "app.py", 1, "hi", None, None))


# -- the guard itself, around a stand-in app ----------------------------------------------


def _call(app: object, *messages: dict, headers: dict | None = None) -> tuple[list, list]:
    """Run one POST through ``app``: the messages it sent and those it received."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/predict",
        "headers": [(k.encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    inbox, outbox = list(messages), []
    received: list[dict] = []

    async def receive() -> dict:
        received.append(inbox.pop(0) if inbox else {"type": "http.disconnect"})
        return received[-1]

    async def send(message: dict) -> None:
        outbox.append(message)

    asyncio.run(app(scope, receive, send))  # type: ignore[operator]
    return outbox, received


async def _echo(scope: dict, receive: object, send: object) -> None:
    body = (await receive())["body"]  # type: ignore[operator]
    await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": body})  # type: ignore[operator]


def test_the_guard_stops_reading_at_the_limit() -> None:
    guard = GuardRequests(_echo, max_body_bytes=4096, max_concurrency=4)
    chunks = [{"type": "http.request", "body": b"x" * 1024, "more_body": True}] * 100
    sent, received = _call(guard, *chunks, headers={"content-type": "application/json"})
    assert sent[0]["status"] == 413 and len(received) == 5


def test_the_guard_hands_the_whole_body_on() -> None:
    guard = GuardRequests(_echo, max_body_bytes=4096, max_concurrency=4)
    chunks = [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"c", "more_body": False},
    ]
    sent, _ = _call(guard, *chunks, headers={"content-type": "application/json"})
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"abc"


def _headers(start: dict) -> dict[bytes, bytes]:
    return dict(start["headers"])


def test_beyond_the_concurrency_limit_the_guard_answers_503_with_retry_after() -> None:
    async def slow(scope: dict, receive: object, send: object) -> None:
        await asyncio.sleep(0.2)
        await _echo(scope, receive, send)

    guard = GuardRequests(slow, max_body_bytes=4096, max_concurrency=2)
    outcomes: list[list[dict]] = []

    async def one() -> None:
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/predict",
            "headers": [(b"content-type", b"application/json")],
        }
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        await guard(scope, receive, send)
        outcomes.append(sent)

    async def three_at_once() -> None:
        await asyncio.gather(one(), one(), one())

    asyncio.run(three_at_once())
    statuses = sorted(sent[0]["status"] for sent in outcomes)
    assert statuses == [200, 200, 503]
    refused = next(sent for sent in outcomes if sent[0]["status"] == 503)
    assert _headers(refused[0])[b"retry-after"] == b"1"
    assert json.loads(refused[1]["body"]) == {"error": OVERLOADED}
    assert guard.in_flight == 0


def test_the_batcher_s_bare_503_becomes_the_clear_overload_answer() -> None:
    async def shedding(scope: dict, receive: object, send: object) -> None:
        await receive()  # type: ignore[operator]
        headers = [(b"content-type", b"application/json"), (b"x-bentoml-request-id", b"42")]
        await send({"type": "http.response.start", "status": 503, "headers": headers})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b'{"error": "An unexpected error"}'})  # type: ignore[operator]

    guard = GuardRequests(shedding, max_body_bytes=4096, max_concurrency=4)
    body = {"type": "http.request", "body": b"{}", "more_body": False}
    sent, _ = _call(guard, body, headers={"content-type": "application/json"})
    assert sent[0]["status"] == 503 and json.loads(sent[1]["body"]) == {"error": OVERLOADED}
    assert _headers(sent[0])[b"retry-after"] == b"1"
    assert _headers(sent[0])[b"x-bentoml-request-id"] == b"42"


# -- the worker's life is tied to its parent's ---------------------------------------------


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_a_process_that_asked_dies_with_its_parent(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    child = (
        "import pathlib, sys, time; from churn_transform.serving.runtime import die_with_parent; "
        "die_with_parent(); pathlib.Path(sys.argv[1]).touch(); time.sleep(60)"
    )
    parent = (
        "import subprocess, sys, time; "
        "print(subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2]]).pid, "
        "flush=True); time.sleep(60)"
    )
    with subprocess.Popen(
        [sys.executable, "-c", parent, child, str(ready)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        pid = int(process.stdout.readline())
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists() and not _gone(pid)
        process.kill()  # SIGKILL: the parent can do nothing about its child
    deadline = time.monotonic() + 5
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(pid)
