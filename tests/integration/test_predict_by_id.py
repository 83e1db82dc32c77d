"""Predictions and explanations by subscriber id: the service looks the features up in the online
feature store the ``materialize`` step loaded, and answers exactly what batch scoring answers.

The class is called directly over an embedded SQLite store; then the real chain: the step run as
a user runs it into a real ``redis-server``, and ``bentoml serve`` with API keys spoken to over
HTTP, compared with ``steps.score.score`` for every subscriber of the cohort. Last, what a
newcomer meets there first: the Swagger UI at the address the docs give, and its examples (the
example record, an id of the served cohort) answered."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from bentoml.exceptions import NotFound, ServiceUnavailable

import service
from churn_transform.etl.feature_store import feature_store, offline_frame, publish_cohort
from churn_transform.schema import EXAMPLE_RECORD
from churn_transform.serving.online_store import OnlineFeatures, online_store
from churn_transform.serving.records import FeatureRecord, as_records
from churn_transform.serving.runtime import Champion as Served
from churn_transform.serving.runtime import RequestRecord
from churn_transform.serving.traffic import read_traffic
from churn_transform.settings import PROJECT_ROOT, Settings
from tests.conftest import Champion, chromium, free_port, records_of, run_step, serve, stop

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
        sent = served.predict([RequestRecord.model_validate(r) for r in as_records(gold)])
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
        for by_id in (served.predict_ids, served.explain_ids):
            with pytest.raises(NotFound, match=r"cohort 2017-04: nobody, x{44}\. Ids are the msno"):
                by_id(["nobody", gold["msno"].iloc[0], "x" * 44], None)
            with pytest.raises(NotFound, match=r"cohort 2017-03 is not in .* served: 2017-04"):
                by_id([gold["msno"].iloc[0]], "2017-03")
    finally:
        served.flush_traffic_log()
    assert read_traffic(tmp_path / "traffic", "2000-01-01", "2999-12-31")[1] == 0


def test_explain_by_id_answers_and_logs_what_explain_does_with_the_features(
    champion: Champion, served_model: Served, tmp_path: Path
) -> None:
    gold = champion.gold(COHORT).iloc[:20]
    served = _service(_sqlite(tmp_path, gold), served_model)
    try:
        by_id = served.explain_ids(list(gold["msno"]), COHORT)
        sent = served.explain([RequestRecord.model_validate(r) for r in as_records(gold)])
    finally:
        served.flush_traffic_log()
    assert by_id == sent
    assert read_traffic(tmp_path / "traffic", "2000-01-01", "2999-12-31")[1] == 40


def test_the_example_id_is_one_feast_loaded(
    champion: Champion, served_model: Served, tmp_path: Path
) -> None:
    gold = champion.gold(COHORT).iloc[:5]
    served = _service(_sqlite(tmp_path, gold), served_model)
    served.flush_traffic_log()
    [example] = served.example_ids()
    assert example in set(gold["msno"])


@pytest.mark.parametrize("cohort", ["2017-02", "2017-03", COHORT])
def test_every_real_gold_row_keeps_the_record_s_rules(champion: Champion, cohort: str) -> None:
    """Gold built by the pipeline (ingest, silver validation, features) from generated data:
    the rules across fields refuse none of its rows (``churn_transform.serving.plausibility``)."""
    records = as_records(champion.gold(cohort))
    refused = []
    for record in records:
        try:
            FeatureRecord.model_validate(record)
        except ValueError as error:
            refused.append(str(error))
    assert len(records) > 800 and refused == []


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
        for by_id in (served.predict_ids, served.explain_ids):
            with pytest.raises(ServiceUnavailable, match="feature store did not answer"):
                by_id(["x" * 44], None)
        assert served.example_ids() == []  # the OpenAPI document is served all the same
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

    url, root = by_id_service
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
    np.testing.assert_allclose(served, batch["churn_probability"].to_numpy(), rtol=0, atol=1e-9)
    # each logged prediction names the key it came with: what drift's client share counts
    requests.post(f"{url}/metadata", json={}, headers={"Authorization": f"Bearer {KEY}"})
    deadline = time.monotonic() + 30
    logged, _ = read_traffic(root / "traffic", "2000-01-01", "2999-12-31")
    while len(logged) < len(ids) and time.monotonic() < deadline:
        time.sleep(0.5)
        logged, _ = read_traffic(root / "traffic", "2000-01-01", "2999-12-31")
    assert set(logged["client"]) == {"tester"}


def test_unknown_ids_get_a_404_naming_them_and_keys_still_apply(
    champion: Champion, by_id_service: tuple[str, Path]
) -> None:
    url, _ = by_id_service
    known = champion.gold(COHORT)["msno"].iloc[0]
    headers = {"Authorization": f"Bearer {KEY}"}
    before = _unknown_ids(url)
    answer = requests.post(
        f"{url}/predict_ids", json={"ids": [known, "nobody"]}, headers=headers, timeout=10
    )
    assert answer.status_code == 404
    assert "unknown subscriber ids in cohort 2017-04: nobody. Ids are the msno" in answer.text
    body = {"ids": [known], "cohort": "2016-01"}
    answer = requests.post(f"{url}/predict_ids", json=body, headers=headers, timeout=10)
    assert answer.status_code == 404 and "cohort 2016-01 is not in the feature store" in answer.text
    answer = requests.post(f"{url}/predict_ids", json={"ids": [known]}, timeout=10)
    assert answer.status_code == 401
    answer = requests.post(
        f"{url}/predict_ids", json={"ids": [known], "cohort": "april"}, headers=headers, timeout=10
    )
    assert answer.status_code == 400 and "cohort" in answer.text
    assert _unknown_ids(url) == before + 1


def test_an_unknown_id_is_logged_as_one_warning_naming_no_id(
    champion: Champion, by_id_service: tuple[str, Path]
) -> None:
    """Issue 30: each 404 logged a 30-line ERROR traceback quoting every id (48 KB a request),
    and an id starting with a newline forged a log line of its own."""
    url, root = by_id_service
    log = root / "serve.log"
    headers = {"Authorization": f"Bearer {KEY}"}
    forged = "\n2026-01-01 INFO forged line " + "x" * 10  # within the 44 characters of an id
    unknown = ["ghost-" + "y" * 38, forged]
    before = len(log.read_text())  # the module's service: other tests' lines come first
    for route in ("predict_ids", "explain_ids"):
        answer = requests.post(f"{url}/{route}", json={"ids": unknown}, headers=headers, timeout=10)
        assert answer.status_code == 404
    deadline = time.monotonic() + 10
    while log.read_text()[before:].count("refused 404") < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    said = log.read_text()[before:]
    assert said.count("refused 404 POST /predict_ids") == 1, said[-3000:]
    assert said.count("refused 404 POST /explain_ids") == 1, said[-3000:]
    assert "Traceback" not in said and "ghost-" not in said and "forged line" not in said


def _unknown_ids(url: str) -> float:
    metrics = requests.get(f"{url}/metrics", headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    counted = re.search(r"^kkbox_unknown_ids_total (\S+)$", metrics.text, re.MULTILINE)
    return float(counted[1]) if counted else 0.0


def test_explain_by_id_answers_what_explain_answers_and_refuses_as_predict_by_id(
    champion: Champion, by_id_service: tuple[str, Path]
) -> None:
    """The dashboard's call: ``{"ids": [msno]}``, a list of one ``/explain`` answer back."""
    url, _ = by_id_service
    gold = champion.gold(COHORT)
    headers = {"Authorization": f"Bearer {KEY}"}
    ids = gold["msno"].iloc[:3].tolist()
    answer = requests.post(f"{url}/explain_ids", json={"ids": ids}, headers=headers, timeout=30)
    records = {"records": records_of(gold, slice(0, 3))}
    explained = requests.post(f"{url}/explain", json=records, headers=headers, timeout=30)
    assert answer.status_code == explained.status_code == 200, answer.text
    assert answer.json() == explained.json() and [a["msno"] for a in answer.json()] == ids
    one = requests.post(f"{url}/explain_ids", json={"ids": ids[:1]}, headers=headers, timeout=30)
    assert len(one.json()) == 1 and one.json()[0]["reasons"][0]["name"]
    for body, status, said in (
        ({"ids": [ids[0], "nobody"]}, 404, "cohort 2017-04: nobody. Ids are the msno"),
        ({"ids": ids, "cohort": "2016-01"}, 404, "cohort 2016-01 is not in the feature store"),
        ({"ids": ids, "cohort": "april"}, 400, "cohort"),
    ):
        answer = requests.post(f"{url}/explain_ids", json=body, headers=headers, timeout=30)
        assert answer.status_code == status and said in answer.text, answer.text
    assert requests.post(f"{url}/explain_ids", json={"ids": ids}, timeout=10).status_code == 401


# -- what a newcomer meets first ----------------------------------------------------------------

#: Where the docs point a newcomer for the Swagger UI.
DOCS_NAMING_THE_UI = tuple(
    PROJECT_ROOT / name for name in ("README.md", "service.py", "docs/training-and-serving.md")
)


def _swagger_paths() -> set[str]:
    """The path of every ``http://127.0.0.1:3000/...`` on a line of the docs about Swagger."""
    lines = [
        line
        for document in DOCS_NAMING_THE_UI
        for line in document.read_text().splitlines()
        if "Swagger" in line
    ]
    return {
        path for line in lines for path in re.findall(r"http://127\.0\.0\.1:3000(/[\w./]*)", line)
    }


def test_the_swagger_ui_is_where_the_docs_say_without_a_key(
    by_id_service: tuple[str, Path],
) -> None:
    url, _ = by_id_service
    paths = _swagger_paths()
    assert paths == {"/"}, paths
    for path in paths:
        page = requests.get(f"{url}{path}", timeout=10)
        assert page.status_code == 200 and "swagger-ui" in page.text, path
    assert requests.get(f"{url}/docs.json", timeout=10).status_code == 200


def test_the_swagger_examples_are_real_and_answered(
    champion: Champion, by_id_service: tuple[str, Path]
) -> None:
    url, _ = by_id_service
    document = requests.get(f"{url}/docs.json", timeout=10).json()
    headers = {"Authorization": f"Bearer {KEY}"}

    def example(path: str, field: str) -> object:
        body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        return body["schema"]["properties"][field]["example"]

    served = set(champion.gold(COHORT)["msno"])
    for path, field in (
        ("/predict", "records"),
        ("/explain", "records"),
        ("/predict_ids", "ids"),
        ("/explain_ids", "ids"),
    ):
        sent = example(path, field)
        if field == "records":
            assert sent == [EXAMPLE_RECORD], path
        else:
            assert isinstance(sent, list) and set(sent) <= served and sent, path
        answer = requests.post(f"{url}{path}", json={field: sent}, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text


def test_an_unknown_id_s_404_gives_ids_that_are_answered(by_id_service: tuple[str, Path]) -> None:
    url, _ = by_id_service
    headers = {"Authorization": f"Bearer {KEY}"}
    answer = requests.post(f"{url}/predict_ids", json={"ids": ["?"]}, headers=headers, timeout=10)
    assert answer.status_code == 404
    refusal = answer.json()  # BentoML 1.4.40 sends a 4xx as [{"error": ...}] (a stray comma)
    said = (refusal[0] if isinstance(refusal, list) else refusal)["error"]
    given = said.split(": e.g. ")[1].rstrip(".").split(", ")
    assert len(given) == 3
    answer = requests.post(f"{url}/predict_ids", json={"ids": given}, headers=headers, timeout=10)
    assert answer.status_code == 200 and [a["msno"] for a in answer.json()] == given


def test_a_real_browser_s_swagger_ui_fills_try_it_out_with_the_examples(
    champion: Champion, by_id_service: tuple[str, Path]
) -> None:
    """What Swagger UI itself makes of the document: before issue #29, a placeholder record
    (36,525 days to expiry, ``"stringstring..."``) and an id of no cohort served."""
    url, _ = by_id_service
    filled = {}
    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{url}/", wait_until="networkidle")
        for path in ("/predict", "/predict_ids"):
            operation = page.locator(".opblock", has=page.locator(f'[data-path="{path}"]'))
            operation.locator(".opblock-summary").click()
            operation.get_by_role("button", name="Try it out").click()
            filled[path] = json.loads(operation.locator("textarea").first.input_value())
    assert filled["/predict"] == {"records": [EXAMPLE_RECORD]}
    assert set(filled["/predict_ids"]["ids"]) <= set(champion.gold(COHORT)["msno"])
