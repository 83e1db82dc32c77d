"""A running ``bentoml serve`` with a challenger (issue #34, point 3): the registry's
``challenger`` alias is picked up without a restart, every answer stays the champion's, the
traffic log holds both models' versions and probabilities, and a removed alias is dropped."""

from __future__ import annotations

import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests

from churn_transform.modelling.artifact import load_model
from churn_transform.modelling.training import TrainConfig, fit
from churn_transform.schema import FEATURES
from churn_transform.serving.traffic import read_traffic
from churn_transform.settings import Settings
from steps.train import log_model
from tests.conftest import Champion, records_of, serve, stop
from tests.integration.test_service import _metrics, _total

pytestmark = pytest.mark.integration
NAME = "kkbox-churn"


def _until(url: str, outcome: str, count: int = 1, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while _total(_metrics(url), "kkbox_challenger_switches_total", outcome=outcome) < count:
        assert time.monotonic() < deadline, f"the challenger was never {outcome}"
        time.sleep(0.2)


def _answers(url: str, records: list[dict]) -> list[dict]:
    with requests.Session() as session:
        answers = []
        for record in records:
            answer = session.post(f"{url}/predict", json={"records": [record]}, timeout=30)
            assert answer.status_code == 200, answer.text
            answers += answer.json()
    return answers


def test_a_challenger_scores_beside_the_champion_without_changing_an_answer(
    champion: Champion, tmp_path: Path
) -> None:
    registry, traffic, env = champion.own_registry(tmp_path)  # other tests keep version 1
    # a challenger that is another model: fewer trees, on another month
    mlflow.set_tracking_uri(registry)
    client = mlflow.MlflowClient(registry)
    experiment = client.create_experiment("challenger", str(tmp_path / "artifacts"))
    train = champion.gold("2017-03")
    fitted = fit(train, TrainConfig(n_estimators=20, min_child_samples=50))
    with mlflow.start_run(experiment_id=experiment):
        mlflow.log_metric("threshold", fitted.threshold)
        version = str(log_model(fitted, train, Settings(tracking_uri=registry)).version)
    client.set_registered_model_alias(NAME, "challenger", version)
    champion_model = load_model(mlflow.artifacts.download_artifacts(f"models:/{NAME}@champion"))
    records = records_of(champion.gold("2017-04"), slice(0, 40))

    process, url = serve(env, log=tmp_path / "serve.log")
    try:
        _until(url, "switched")
        shadowed = _answers(url, records[:30])
        client.delete_registered_model_alias(NAME, "challenger")
        _until(url, "retired")
        alone = _answers(url, records[30:])
    finally:
        stop(process)  # SIGTERM: the shadow and the traffic log are flushed
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]

    features = pd.DataFrame(records)[list(FEATURES)]
    expected = champion_model.predict_proba(features)[:, 1]
    answered = [a["churn_probability"] for a in shadowed + alone]
    np.testing.assert_allclose(answered, expected, rtol=1e-9)  # the champion's, every one
    assert {a["model_version"] for a in shadowed + alone} == {"1"}

    logged, seen = read_traffic(traffic, "2000-01-01", "2999-12-31")
    assert seen == len(records)
    logged = logged.sort_values("ts", kind="stable").set_index("msno")
    both = logged.loc[[r["msno"] for r in records[:30]]]
    assert both["model_version"].eq("1").all() and both["challenger_version"].eq(version).all()
    np.testing.assert_allclose(both["churn_probability"], expected[:30], rtol=1e-9)
    challenger_model = fitted.model
    np.testing.assert_allclose(
        both["challenger_probability"],
        challenger_model.predict_proba(features.iloc[:30])[:, 1],
        rtol=1e-9,
    )
    assert not np.allclose(both["challenger_probability"], both["churn_probability"])
    after = logged.loc[[r["msno"] for r in records[30:]]]
    assert after["challenger_probability"].isna().all()  # the alias gone, the champion alone
