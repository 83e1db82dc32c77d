"""The README's "After `make demo`", followed literally, as a newcomer does on a new platform:
``make demo``, then every server the section names started with its own ``make`` target (each on a
free port: the targets take one), every URL it names answered 200, the MLflow page it gives
listing the runs, the dashboard rendering without an exception, and ``make months`` leaving a
cycle that measured realized quality. Every other ``make`` command the section shows is a target.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
import requests

from churn_transform.lake import Lake
from churn_transform.monitoring.verdict import read_verdict
from churn_transform.schema import RAW_FILES
from churn_transform.settings import PROJECT_ROOT
from tests.conftest import chromium, free_port, step_env
from tests.integration.test_cycle import make
from tests.integration.test_dashboard_browser import WATCH, _visit

pytestmark = [pytest.mark.integration, pytest.mark.long]

#: The port each server the README names listens on, and the target and variable that start it.
SERVERS = {
    "3000": ("serve", "SERVE_PORT"),
    "5000": ("ui", "UI_PORT"),
    "8501": ("dashboard", "DASHBOARD_PORT"),
}


def _section() -> str:
    readme = (PROJECT_ROOT / "README.md").read_text()
    start = readme.index("## After `make demo`")
    return readme[start : readme.index("\n## ", start + 1)]


def _urls(section: str) -> list[tuple[str, str]]:
    """Every ``http://127.0.0.1:PORT/PATH`` the section names: (port, path and fragment)."""
    found = re.findall(r"http://127\.0\.0\.1:(\d+)(/[^\s)`,]*)?", section)
    return [(port, (path or "/").rstrip(".")) for port, path in found]


def test_the_section_names_only_servers_it_starts_and_targets_that_exist() -> None:
    section = _section()
    assert {port for port, _ in _urls(section)} == set(SERVERS)
    for target in sorted(set(re.findall(r"`make ([a-z-]+)", section))):
        dry = subprocess.run(
            ["make", "-n", "-o", ".venv/.installed", target, "MONTH=2017-04"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
        )
        assert dry.returncode == 0, f"make {target}: {dry.stderr}"


def _started(env: dict[str, str], target: str, variable: str, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["make", "--no-print-directory", "-o", ".venv/.installed", target, f"{variable}={port}"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # make and the server's processes: stopped as a group
    )


def _answered(url: str, process: subprocess.Popen[str], seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            said = process.stdout.read() if process.stdout and process.poll() is not None else ""
            raise AssertionError(f"{url} never answered: {said[-2000:]}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def walked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], dict]]:
    """``make demo`` and ``make months`` in a platform of their own, then the three servers."""
    root = tmp_path_factory.mktemp("walk")
    ports = {name: free_port() for name in SERVERS}
    env = step_env(
        root,
        BENTOML_HOME=str(root / "bentoml"),
        KKBOX_TRAFFIC_LOG_URI=str(root / "traffic"),
        KKBOX_SERVICE_URL=f"http://127.0.0.1:{ports['3000']}",
        MLFLOW_EXPERIMENT_NAME="kkbox-churn",
    )
    demo = make(env, "demo")
    raw = sorted(path.name for path in (root / "data" / "raw").iterdir())  # before the months
    months = make(env, "months")
    servers = {}
    try:
        for readme_port, (target, variable) in SERVERS.items():
            servers[readme_port] = _started(env, target, variable, ports[readme_port])
        for readme_port, process in servers.items():
            _answered(f"http://127.0.0.1:{ports[readme_port]}/", process)
        yield env, {"ports": ports, "demo": demo.stdout, "raw": raw, "months": months.stdout}
    finally:
        for process in servers.values():
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _here(walk: dict, readme_port: str, path: str) -> str:
    return f"http://127.0.0.1:{walk['ports'][readme_port]}{path}"


def test_make_demo_ends_with_what_to_run_next(walked: tuple[dict[str, str], dict]) -> None:
    _, walk = walked
    last = walk["demo"].strip().splitlines()[-5:]
    assert last[0] == "what next:", last
    assert [line.split()[:2] for line in last[1:]] == [
        ["make", "serve"],
        ["make", "ui"],
        ["make", "dashboard"],
        ["make", "months"],
    ]
    assert "/#/experiments/1/runs?workflowType=machine_learning" in last[2]
    for noise in ("Downloading artifacts", "Registry cache expired", " {}", '"silver_version"'):
        assert noise not in walk["demo"]


def test_make_demo_generated_the_eight_files_through_mlflow_run(
    walked: tuple[dict[str, str], dict],
) -> None:
    """``make demo`` is ``mlflow run . -e main``: its generate step wrote the eight raw files, and
    its run logged the users asked for and the oracle's AUC."""
    env, walk = walked
    assert walk["raw"] == sorted(RAW_FILES)
    assert "oracle AUC" in walk["demo"] and "2017-03" in walk["demo"]
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("kkbox-churn").experiment_id])
    generated = [r for r in runs if "rows_user_logs" in r.data.metrics]
    (demo,) = [r for r in generated if "mlflow.parentRunId" in r.data.tags]  # main's, not months'
    assert demo.data.params["users"] == "20000"  # the Makefile's USERS
    assert demo.data.metrics["oracle_auc_2017-03"] > 0.8


def test_every_url_of_the_section_answers(walked: tuple[dict[str, str], dict]) -> None:
    _, walk = walked
    for port, path in _urls(_section()):
        answer = requests.get(_here(walk, port, path.split("#")[0]), timeout=30)
        assert answer.status_code == 200, (port, path)


def test_the_runs_page_lists_the_runs_of_every_step(walked: tuple[dict[str, str], dict]) -> None:
    _, walk = walked
    runs = next(path for port, path in _urls(_section()) if port == "5000" and "runs" in path)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1600, "height": 1200})
        page.goto(_here(walk, "5000", runs))
        # each run a link named after its entry point: main (the steps nested under it), the
        # generate and the two cycles of make months
        page.get_by_role("link", name="main", exact=True).wait_for(timeout=60_000)
        assert page.get_by_role("link", name="cycle", exact=True).count() == 2
        assert page.get_by_role("link", name="generate", exact=True).count() == 1


def test_the_swagger_ui_scores_its_example(walked: tuple[dict[str, str], dict]) -> None:
    _, walk = walked
    document = requests.get(_here(walk, "3000", "/docs.json"), timeout=30).json()
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    example = body["schema"]["properties"]["records"]["example"]
    answer = requests.post(_here(walk, "3000", "/predict"), json={"records": example}, timeout=30)
    assert answer.status_code == 200, answer.text
    ids = document["paths"]["/predict_ids"]["post"]["requestBody"]["content"]["application/json"]
    served = ids["schema"]["properties"]["ids"]["example"]
    answer = requests.post(_here(walk, "3000", "/predict_ids"), json={"ids": served}, timeout=30)
    assert answer.status_code == 200, answer.text


def test_the_dashboard_opens_and_shows_the_plan_and_april_s_verdict(
    walked: tuple[dict[str, str], dict],
) -> None:
    env, walk = walked
    with chromium() as browser:
        page: Any = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.add_init_script(WATCH)  # lets _visit tell when a tab's run settled
        page.goto(_here(walk, "8501", "/"))
        page.get_by_role("tab").first.wait_for(timeout=60_000)
        page.wait_for_timeout(3000)
        assert page.locator("[data-testid='stException']").count() == 0
        # the Campaign tab: April's plan, and the verdict make months' second cycle gave on it
        panel = _visit(page, "Campaign")
        panel.get_by_text("Last campaign's verdict").wait_for(timeout=60_000)
        shown = panel.inner_text()
        assert "Download the list (CSV)" in shown  # the newest plan (the cycles' June)
        verdict = read_verdict(Lake(env["KKBOX_LAKE_URI"]), "2017-04")
        assert verdict is not None and verdict.said in shown
        assert page.locator("[data-testid='stException']").count() == 0


def test_make_months_leaves_a_cycle_with_realized_quality(
    walked: tuple[dict[str, str], dict],
) -> None:
    env, walk = walked
    lake = Path(env["KKBOX_LAKE_URI"])
    assert list((lake / "predictions" / "2017-04").glob("*/scores.parquet"))  # main scored April
    april, may = (
        json.loads((lake / "cycles" / f"{month}.json").read_text())
        for month in ("2017-04", "2017-05")
    )
    assert april["realized_roc_auc"] is None  # nobody scored March
    assert may["labelled"] == "2017-04" and may["realized_roc_auc"] > 0.7
    # the demo's April plan was played: May's cycle judged it against its control group
    verdict = read_verdict(Lake(str(lake)), "2017-04")
    assert verdict is not None and verdict.campaign_id == "retention-2017-04"
    assert may["campaign_verdict"] == verdict.said
    assert f"campaign verdict: {verdict.said}" in walk["months"]
