"""The Streamlit dashboard: in-process with Streamlit's AppTest, then in a real browser."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from streamlit.testing.v1 import AppTest

from churn_transform.schema import EXAMPLE_RECORD
from churn_transform.settings import PROJECT_ROOT
from tests.conftest import (
    BIN,
    Champion,
    drift_command,
    free_port,
    records_of,
    run_step,
    serve,
    stop,
    tracking_store,
)

pytestmark = pytest.mark.integration
APP = str(PROJECT_ROOT / "dashboard" / "app.py")
# Debian's chromium (what `make system-deps` installs); KKBOX_TEST_BROWSER=playwright takes the
# browser `playwright install chromium` downloaded (GitHub's runners, whose apt chromium is a snap).
BROWSER = os.environ.get("KKBOX_TEST_BROWSER") or shutil.which("chromium") or "/usr/bin/chromium"
SETTINGS = ("MLFLOW_TRACKING_URI", "KKBOX_LAKE_URI", "KKBOX_TRAFFIC_LOG_URI", "KKBOX_SERVICE_URL")


@pytest.fixture(scope="module")
def live(champion: Champion, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A running service that has answered 300 requests, a drift report of them, and the
    campaign list of April."""
    traffic = tmp_path_factory.mktemp("dashboard-traffic")
    env = {**champion.env, "KKBOX_TRAFFIC_LOG_URI": str(traffic)}
    process, url = serve(env)
    try:
        with requests.Session() as session:
            for record in records_of(champion.gold("2017-03"), slice(0, 300)):
                session.post(f"{url}/predict", json={"records": [record]}, timeout=30)
        command = drift_command()
        for _ in range(50):  # the writer thread is asynchronous
            if sum(1 for p in traffic.rglob("*.jsonl") for _ in p.open()) == 300:
                break
            time.sleep(0.1)
        run_step(env, *command)
        # March scored as a month before, and measured once its labels are in
        run_step(env, sys.executable, "-m", "steps.score", "--cohort", "2017-03")
        quality = ["--traffic-start", "none", "--traffic-end", "none", "--min-segment-users", "50"]
        run_step(env, sys.executable, "-m", "steps.quality", "--cohort", "2017-03", *quality)
        run_step(env, sys.executable, "-m", "steps.score", "--cohort", "2017-04")
        yield {**env, "KKBOX_SERVICE_URL": url}
    finally:
        stop(process)


def _app(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> AppTest:
    for name in SETTINGS:
        monkeypatch.setenv(name, env[name])
    return AppTest.from_file(APP, default_timeout=60).run()


def test_with_nothing_there_it_says_what_to_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    app = _app(
        monkeypatch,
        {
            "MLFLOW_TRACKING_URI": tracking_store(tmp_path / "mlflow.db"),
            "KKBOX_LAKE_URI": str(tmp_path / "lake"),
            "KKBOX_TRAFFIC_LOG_URI": str(tmp_path / "t"),
            "KKBOX_SERVICE_URL": f"http://127.0.0.1:{free_port()}",
        },
    )
    assert not app.exception
    notes = " ".join(note.value for note in app.info)
    assert "make demo" in notes and "make serve" in notes and "-e drift" in notes
    app.text_area[0].set_value(json.dumps(EXAMPLE_RECORD))
    app.button[0].click().run()
    assert "does not answer" in app.error[0].value


def test_credentials_in_the_settings_never_reach_the_page(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there: every message names the unreachable URI
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    app = _app(
        monkeypatch,
        {
            "MLFLOW_TRACKING_URI": f"http://admin:hunter2@127.0.0.1:{port}",
            "KKBOX_LAKE_URI": str(tmp_path / "lake"),
            "KKBOX_TRAFFIC_LOG_URI": str(tmp_path / "t"),
            "KKBOX_SERVICE_URL": f"http://svc:hunter2@127.0.0.1:{port}",
        },
    )
    shown = " ".join(e.value for kind in (app.info, app.caption, app.error) for e in kind)
    assert f"admin:***@127.0.0.1:{port}" in shown and "hunter2" not in shown


def test_it_shows_the_champion_traffic_and_drift(
    monkeypatch: pytest.MonkeyPatch, live: dict[str, str]
) -> None:
    app = _app(monkeypatch, live)
    assert not app.exception and not app.info
    assert "Version 1 of `kkbox-churn`, served by the service" in app.caption[0].value
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["predictions"] == "300" and float(metrics["roc auc"]) > 0.7
    assert app.subheader[0].value.startswith(("No dataset drift", "Dataset drift"))
    drift_table = app.dataframe[1].value
    assert len(drift_table) == 41 and {"method", "statistic", "threshold"} <= set(drift_table)


def test_the_form_shows_the_service_s_answer_and_its_errors(
    monkeypatch: pytest.MonkeyPatch, live: dict[str, str]
) -> None:
    app = _app(monkeypatch, live)
    app.text_area[0].set_value(json.dumps({**EXAMPLE_RECORD, "bd": 2016.0}))
    app.button[0].click().run()
    assert "refused the record (400)" in app.error[0].value
    refusal = json.loads(app.json[0].value)
    assert ["records", 0, "bd"] in [fault["loc"] for fault in refusal["detail"]]
    app.text_area[0].set_value(json.dumps(EXAMPLE_RECORD))
    app.button[0].click().run()
    assert app.success[0].value.startswith("churn probability")


def test_it_shows_the_campaign_a_subscriber_s_reasons_and_the_segments(
    monkeypatch: pytest.MonkeyPatch, live: dict[str, str]
) -> None:
    app = _app(monkeypatch, live)
    assert not app.exception and not app.info
    headers = {h.value for h in app.header}
    assert {"Campaign list", "Why this subscriber", "Metrics per segment"} <= headers
    assert "## Intended use" in app.expander[-1].markdown[0].value  # the model card
    listed = app.dataframe[2].value
    assert len(listed) and listed["target"].all()
    assert listed["churn_probability"].is_monotonic_decreasing
    app.checkbox[0].uncheck().run()
    everyone = app.dataframe[2].value
    assert len(everyone) > len(listed) and not everyone["target"].all()
    app.selectbox[1].set_value("revenue_at_risk").run()
    assert app.dataframe[2].value["revenue_at_risk"].is_monotonic_decreasing
    reason = app.selectbox[0].options[1]
    app.selectbox[0].set_value(reason).run()
    kept = app.dataframe[2].value
    assert kept[["reason_1", "reason_2", "reason_3"]].eq(reason).any(axis=1).all()
    segments = app.dataframe[3].value
    assert {"value", "users", "roc_auc"} <= set(segments.columns)
    app.button[1].click().run()  # explain the example record
    assert app.success[0].value.startswith("churn probability")
    assert not app.exception


def test_it_shows_the_realized_quality_of_each_labelled_cohort(
    monkeypatch: pytest.MonkeyPatch, live: dict[str, str]
) -> None:
    app = _app(monkeypatch, live)
    assert not app.exception and "Month after month" in {h.value for h in app.header}
    history = app.dataframe[-1].value
    (march,) = history[history["cohort"] == "2017-03"].itertuples()
    assert march.source == "batch" and march.model_version == "1"
    assert 0.7 < march.roc_auc <= march.oracle_roc_auc + 0.05
    assert "No monthly cycle has run yet" in app.caption[-1].value


def test_a_real_browser_renders_the_page(live: dict[str, str], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    port = free_port()
    process = subprocess.Popen(
        [
            str(BIN / "streamlit"),
            "run",
            APP,
            "--server.headless",
            "true",
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=PROJECT_ROOT,
        env=live,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                if requests.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=None if BROWSER == "playwright" else BROWSER,
                args=[
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                ],
            )
            page = browser.new_page(viewport={"width": 1400, "height": 2400})
            page.goto(f"http://127.0.0.1:{port}/", wait_until="networkidle")
            page.get_by_text("drift share of every report").wait_for(timeout=60_000)
            page.get_by_text("most recent requests").wait_for(timeout=60_000)
            page.get_by_text("Download the list (CSV)").wait_for(timeout=60_000)
            page.get_by_role("button", name="Explain").click()
            page.get_by_text("red raises the risk").wait_for(timeout=60_000)
            page.locator("img").last.wait_for(timeout=60_000)  # the waterfall
            text = page.inner_text("body")
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
    finally:
        stop(process)
    assert "served by the service" in text and "Traceback" not in text
    assert "Campaign list" in text and "Metrics per segment" in text
    assert shot.stat().st_size > 50_000  # a rendered page, not a blank one
