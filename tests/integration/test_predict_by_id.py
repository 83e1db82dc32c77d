"""Predictions by subscriber id: the service looks the features up in the online feature store
the ``materialize`` step loaded, and answers exactly what batch scoring answers.

The class is called directly over an embedded SQLite store; then the real chain: the step run as
a user runs it into a real ``redis-server``, and ``bentoml serve`` with API keys spoken to over
HTTP, compared with ``steps.score.score`` for every subscriber of the cohort."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from bentoml.exceptions import NotFound, ServiceUnavailable

import service
from churn_transform.feature_store import feature_store, offline_frame, publish_cohort
from churn_transform.online_store import OnlineFeatures, online_store
from churn_transform.records import as_records
from churn_transform.serving import Champion as Served
from churn_transform.serving import Record
from churn_transform.settings import Settings
from churn_transform.traffic import read_traffic
from tests.conftest import Champion, free_port, run_step, serve, stop

pytestmark = pytest.mark.integration
COHORT = "2017-04"


# -- the class, called directly, over an embedded SQLite store ---------------------------------


@pytest.fixture(scope="module")
def served_model(champion: Champion) -> Served:
    """The registered champion, as the service holds it (the threshold is the test's own)."""
    from steps._cli import load_registered

    mlflow.set_tracking_uri(champion.env["MLFLOW_TRACKING_URI"])
    return Served(
        model=load_registered("models:/kkbox-churn@champion"),
        tag="kkbox-churn:test",
        labels={"registry_version": "1", "run_id": "run", "data_version": "gold"},
        about={"metrics": {"threshold": 0.5}},
    )


def _sqlite(tmp_path: Path, gold: pd.DataFrame) -> Settings:
    settings = Settings(
        feature_repo=str(tmp_path / "feature_store"), traffic_log_uri=str(tmp_path / "traffic")
    )
    path = tmp_path / "source.parquet"
    offline_frame(gold, COHORT).to_parquet(path, index=False)
    online = online_store(settings)
    publish_cohort(feature_store(settings), online, COHORT, "f" * 16, str(path), len(gold))
    return settings


def _service(settings: Settings, model: Served) -> Any:
    online = OnlineFeatures(online_store(settings), ttl=60)
    return service.ChurnService.inner(model, settings, online)


def test_by_id_answers_and_logs_what_predict_does_with_the_features(
    champion: Champion, served_model: Served, tmp_path: Path
) -> None:
    gold = champion.gold(COHORT).iloc[:40]
    settings = _sqlite(tmp_path, gold)
    served = _service(settings, served_model)
    try:
        by_id = served.predict_ids(list(gold["msno"]), COHORT)
        sent = served.predict([Record.model_validate(r) for r in as_records(gold)])
    finally:
        served.flush_traffic_log()
    assert by_id == sent
    logged, seen = read_traffic(tmp_path / "traffic", "2000-01-01", "2999-12-31")
    assert seen == 80
    features = logged.drop(columns=["ts", "request_id"]).astype(str)
    pd.testing.assert_frame_equal(features.iloc[:40], features.iloc[40:].reset_index(drop=True))


def test_unknown_ids_are_refused_naming_them_and_nothing_is_scored(
    champion: Champion, served_model: Served, tmp_path: Path
) -> None:
    gold = champion.gold(COHORT).iloc[:5]
    served = _service(_sqlite(tmp_path, gold), served_model)
    try:
        with pytest.raises(NotFound, match=r"cohort 2017-04: nobody, x{44}$"):
            served.predict_ids(["nobody", gold["msno"].iloc[0], "x" * 44], None)
        with pytest.raises(NotFound, match=r"cohort 2017-03 is not in .* served: 2017-04"):
            served.predict_ids([gold["msno"].iloc[0]], "2017-03")
    finally:
        served.flush_traffic_log()
    assert read_traffic(tmp_path / "traffic", "2000-01-01", "2999-12-31")[1] == 0


def test_an_unreachable_online_store_is_a_503_not_a_500(
    served_model: Served, tmp_path: Path
) -> None:
    nobody_listens = f"127.0.0.1:{free_port()}"
    settings = Settings(
        traffic_log_uri=str(tmp_path / "traffic"),
        online_store="redis",
        redis_connection=nobody_listens,
    )
    served = service.ChurnService.inner(served_model, settings)  # the store named by settings
    try:
        with pytest.raises(ServiceUnavailable, match="feature store did not answer"):
            served.predict_ids(["x" * 44], None)
    finally:
        served.flush_traffic_log()


# -- the real chain: the step into Redis, `bentoml serve` over HTTP ----------------------------

KEY = "by-id-test-key"


@pytest.fixture(scope="module")
def by_id_service(
    champion: Champion, redis_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    root = tmp_path_factory.mktemp("by-id")
    env = {
        **champion.env,
        "KKBOX_FEATURE_REPO": str(root / "feature_store"),
        "KKBOX_ONLINE_STORE": "redis",
        "KKBOX_REDIS_CONNECTION": redis_server,
        "KKBOX_FEATURE_PROJECT": "byid",
        "KKBOX_TRAFFIC_LOG_URI": str(root / "traffic"),
        "KKBOX_API_KEYS": f"tester:{KEY}",
    }
    said = run_step(env, sys.executable, "-m", "steps.materialize", "--cohort", COHORT)
    assert f"loaded {len(champion.gold(COHORT)):,} users of {COHORT}" in said
    again = run_step(env, sys.executable, "-m", "steps.materialize", "--cohort", COHORT)
    assert "already served" in again
    process, url = serve(env, log=root / "serve.log")
    yield url, root
    stop(process)


def test_every_subscriber_s_answer_by_id_is_its_batch_score(
    champion: Champion, by_id_service: tuple[str, Path]
) -> None:
    from steps._cli import load_registered
    from steps.score import score

    url, _ = by_id_service
    mlflow.set_tracking_uri(champion.env["MLFLOW_TRACKING_URI"])
    batch = score(champion.lake, COHORT, load_registered("models:/kkbox-churn@champion"))
    ids = batch["msno"].tolist()
    answers = []
    for start in range(0, len(ids), 400):  # several requests: 974 users at 8,000 members
        answer = requests.post(
            f"{url}/predict_ids",
            json={"ids": ids[start : start + 400], "cohort": COHORT},
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        answers += answer.json()
    assert [a["msno"] for a in answers] == ids and len(ids) > 800
    served = np.array([a["churn_probability"] for a in answers])
    np.testing.assert_allclose(served, batch["is_churn"].to_numpy(), rtol=0, atol=1e-9)


def test_unknown_ids_get_a_404_naming_them_and_keys_still_apply(
    champion: Champion, by_id_service: tuple[str, Path]
) -> None:
    url, _ = by_id_service
    known = champion.gold(COHORT)["msno"].iloc[0]
    headers = {"Authorization": f"Bearer {KEY}"}
    answer = requests.post(
        f"{url}/predict_ids", json={"ids": [known, "nobody"]}, headers=headers, timeout=10
    )
    assert answer.status_code == 404
    assert "unknown subscriber ids in cohort 2017-04: nobody" in answer.text
    body = {"ids": [known], "cohort": "2016-01"}
    answer = requests.post(f"{url}/predict_ids", json=body, headers=headers, timeout=10)
    assert answer.status_code == 404 and "cohort 2016-01 is not in the feature store" in answer.text
    answer = requests.post(f"{url}/predict_ids", json={"ids": [known]}, timeout=10)
    assert answer.status_code == 401
    answer = requests.post(
        f"{url}/predict_ids", json={"ids": [known], "cohort": "april"}, headers=headers, timeout=10
    )
    assert answer.status_code == 400 and "cohort" in answer.text
    metrics = requests.get(f"{url}/metrics", headers=headers, timeout=10).text
    assert "kkbox_unknown_ids_total 1.0" in metrics
