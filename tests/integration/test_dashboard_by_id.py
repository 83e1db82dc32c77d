"""The dashboard's Subscriber tab by subscriber id, against a real service whose features were
loaded by the ``materialize`` step into the embedded SQLite online store: scored
(``/predict_ids``), explained (``/explain_ids``), and an unknown id named."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest
import requests
import streamlit as st
from streamlit.testing.v1 import AppTest

from churn_transform.schema import FEATURES
from churn_transform.settings import PROJECT_ROOT
from tests.conftest import Champion, run_step, serve, stop

pytestmark = pytest.mark.integration
APP = str(PROJECT_ROOT / "dashboard" / "app.py")


@pytest.fixture(scope="module")
def env(champion: Champion, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("dashboard-by-id")
    env = {
        **champion.env,
        "KKBOX_FEATURE_REPO": str(root / "feature_store"),
        "KKBOX_TRAFFIC_LOG_URI": str(root / "traffic"),
    }
    run_step(env, sys.executable, "-m", "steps.materialize", "--cohort", "2017-04")
    process, url = serve(env)
    yield {**env, "KKBOX_SERVICE_URL": url}
    stop(process)


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> AppTest:
    for name in ("MLFLOW_TRACKING_URI", "KKBOX_LAKE_URI", "KKBOX_SERVICE_URL"):
        monkeypatch.setenv(name, env[name])
    st.cache_data.clear()
    app = AppTest.from_file(APP, default_timeout=60)
    app.query_params["tab"] = "Subscriber"
    return app.run()


def _send(app: AppTest, button: str, msno: str, cohort: str = "") -> AppTest:
    app.text_input[0].set_value(msno)
    app.text_input[1].set_value(cohort)
    (found,) = [b for b in app.button if b.label == button]
    return found.click().run()


def test_the_form_scores_an_id_and_names_an_unknown_one(app: AppTest, champion: Champion) -> None:
    known = champion.gold("2017-04")["msno"].iloc[0]
    _send(app, "Score", known)
    assert not app.exception
    assert app.success[0].value.startswith("churn probability")
    assert json.loads(app.json[0].value)[0]["msno"] == known
    _send(app, "Score", "nobody-here", "2017-04")
    assert "refused the id (404)" in app.error[0].value
    shown = [element.value for element in app.markdown]
    assert any("unknown subscriber ids in cohort 2017-04: nobody-here" in text for text in shown)
    assert not app.json  # the service's message, not its JSON


def test_the_form_explains_an_id_as_the_service_does(
    app: AppTest, env: dict[str, str], champion: Champion
) -> None:
    known = champion.gold("2017-04")["msno"].iloc[1]
    expected = requests.post(
        f"{env['KKBOX_SERVICE_URL']}/explain_ids", json={"ids": [known]}, timeout=30
    ).json()[0]
    _send(app, "Explain", known)
    assert not app.exception
    assert app.success[0].value.startswith(f"churn probability {expected['churn_probability']:.3f}")
    reasons = app.dataframe[0].value
    assert list(reasons["feature"]) == [r["feature"] for r in expected["reasons"]]
    assert set(reasons["feature"]) == set(FEATURES)
    assert json.loads(app.json[0].value)[0]["msno"] == known  # the answer, under its expander
    _send(app, "Explain", "nobody-here", "2017-04")
    assert "refused the id (404)" in app.error[0].value
    assert any("nobody-here" in element.value for element in app.markdown)
