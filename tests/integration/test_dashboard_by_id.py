"""The dashboard's scoring form by subscriber id, against a real service whose features were
loaded by the ``materialize`` step into the embedded SQLite online store."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest
from streamlit.testing.v1 import AppTest

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


def test_the_form_scores_an_id_and_names_an_unknown_one(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], champion: Champion
) -> None:
    for name in ("MLFLOW_TRACKING_URI", "KKBOX_LAKE_URI", "KKBOX_SERVICE_URL"):
        monkeypatch.setenv(name, env[name])
    app = AppTest.from_file(APP, default_timeout=60).run()
    known = champion.gold("2017-04")["msno"].iloc[0]
    app.text_input[0].set_value(known)
    app.button[0].click().run()
    assert app.success[0].value.startswith("churn probability")
    assert json.loads(app.json[0].value)[0]["msno"] == known
    app.text_input[0].set_value("nobody-here")
    app.text_input[1].set_value("2017-04")
    app.button[0].click().run()
    assert "refused the id (404)" in app.error[0].value
    assert "unknown subscriber ids in cohort 2017-04: nobody-here" in app.json[0].value
