"""The prediction service without a trained champion, on BentoML's testing ladder: the class
called directly, then its ASGI app through a test client, with a small model fitted here.
(``tests/integration/test_service.py`` climbs the last rung: ``bentoml serve`` over HTTP.)"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client import REGISTRY
from starlette.testclient import TestClient

import service
from churn_transform.schema import EXAMPLE_RECORD, FEATURES, LABEL
from churn_transform.serving import Champion, Record
from churn_transform.settings import PROJECT_ROOT, Settings
from churn_transform.traffic import read_traffic
from churn_transform.training import TrainConfig, fit

ChurnService = service.ChurnService


def test_importing_the_service_loads_neither_dask_nor_s3fs() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, service; print(*sys.modules)"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert "service" in loaded and "churn_transform.serving" in loaded
    assert "dask" not in loaded and "s3fs" not in loaded


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
    return Settings(traffic_log_uri=str(tmp_path / "traffic"), max_batch_size=64)


RECORDS = [
    EXAMPLE_RECORD,
    {**EXAMPLE_RECORD, "msno": "b" * 43 + "=", "cancel_count": 40.0, "gender": None},
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
        answers = served.predict([Record.model_validate(r) for r in RECORDS])
    finally:
        served.flush_traffic_log()
    expected = _expected(champion, RECORDS)
    assert [a.msno for a in answers] == [r["msno"] for r in RECORDS]
    np.testing.assert_allclose([a.churn_probability for a in answers], expected, rtol=1e-12)
    assert [a.churn for a in answers] == (expected >= champion.threshold).tolist()
    assert {a.model_version for a in answers} == {"7"}


def test_every_prediction_is_logged_with_its_features(champion: Champion, tmp_path: Path) -> None:
    served = ChurnService.inner(champion, _settings(tmp_path))
    records = [Record.model_validate(r) for r in RECORDS]
    served.predict(records)
    served.flush_traffic_log()  # what BentoML calls on shutdown
    logged, seen = read_traffic(tmp_path / "traffic", "2000-01-01", "2999-12-31")
    assert seen == 3 and logged["msno"].tolist() == [r["msno"] for r in RECORDS]
    assert logged["request_id"].tolist() == [r.request_id for r in records]
    assert set(FEATURES) <= set(logged.columns) and logged["model_version"].eq("7").all()


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


def _refused(field: str) -> float:
    return REGISTRY.get_sample_value("kkbox_validation_errors_total", {"field": field}) or 0.0


@pytest.mark.parametrize(
    ("body", "location", "field"),
    [
        ({"records": [EXAMPLE_RECORD, {**EXAMPLE_RECORD, "bd": 2016.0}]}, ["records", 1, "bd"],
         "bd"),
        ({"records": [{**EXAMPLE_RECORD, "city": "five"}]}, ["records", 0, "city"], "city"),
        ({"records": [{k: v for k, v in EXAMPLE_RECORD.items() if k != "secs_30"}]},
         ["records", 0, "secs_30"], "secs_30"),
        ({"records": []}, ["records"], "records"),
        ("{not json", [], "request"),
    ],
)  # fmt: skip
def test_a_bad_request_gets_a_400_naming_the_field_and_is_counted(
    client: TestClient, body: object, location: list, field: str
) -> None:
    before = _refused(field)
    sent = {"content": body} if isinstance(body, str) else {"json": body}
    answer = client.post("/predict", headers={"Content-Type": "application/json"}, **sent)
    assert answer.status_code == 400, answer.text
    assert location in [fault["loc"] for fault in answer.json()["detail"]]
    assert _refused(field) == before + 1


def test_metadata_over_http(client: TestClient, champion: Champion) -> None:
    about = client.post("/metadata", json={}).json()
    assert about["registry_version"] == "7" and about["max_batch_size"] == 64
