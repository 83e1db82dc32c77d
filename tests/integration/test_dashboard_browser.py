"""The dashboard in a real browser (Debian's Chromium, headless, driven by playwright), tab by
tab: with nothing there, every command it shows as a hint is a make target that ``make -n``
accepts as typed; on a platform as ``make demo`` leaves it, less its outputs, the cheap hints
run for real fill the tabs that showed them, and every tab renders without an exception."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from itertools import cycle, islice
from pathlib import Path
from typing import Any

import pytest
import requests

from churn_transform.lake import Lake
from churn_transform.monitoring.verdict import write_verdict
from churn_transform.settings import PROJECT_ROOT
from tests.conftest import (
    BIN,
    Champion,
    chromium,
    free_port,
    records_of,
    serve,
    stop,
    tracking_store,
)
from tests.integration.test_cycle import make, platform_copy
from tests.integration.test_dashboard import VERDICT

pytestmark = pytest.mark.integration
APP = str(PROJECT_ROOT / "dashboard" / "app.py")
TABS = ("Model", "Live", "Drift", "Campaign", "Subscriber", "Months")
#: Records, in the page, when it last changed and when the user last clicked or typed.
WATCH = """
window.__changed = 0;
window.__input = 0;
new MutationObserver(() => { window.__changed = performance.now(); }).observe(
  document, {subtree: true, childList: true, attributes: true, characterData: true});
for (const kind of ["pointerdown", "keydown"]) {
  document.addEventListener(kind, () => { window.__input = performance.now(); }, true);
}
"""
#: The page has settled since the last input: the script stopped, and the page changed after
#: the input but not in the last half second. (A run served from the caches can end before the
#: page ever shows it running, so the script's state alone cannot say a run happened.)
SETTLED = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  return app && app.getAttribute("data-test-script-state") === "notRunning"
    && window.__changed > window.__input && performance.now() - window.__changed > 500;
}"""
#: Hints that run in seconds on the test's data; the others (make demo, serve, months) are only
#: checked with ``make -n``.
CHEAP = ("score", "quality", "drift")


def _dashboard(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "streamlit"), "run", APP, "--server.headless", "true"]
        + ["--server.address", "127.0.0.1", "--server.port", str(port)]
        + ["--browser.gatherUsageStats", "false"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    for _ in range(300):
        try:
            if requests.get(f"{url}_stcore/health", timeout=1).ok:
                return process, url
        except requests.RequestException:
            time.sleep(0.1)
    stop(process)
    raise TimeoutError("the dashboard did not answer in 30 s")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def _page(browser: Any, url: str) -> Any:
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    page.add_init_script(WATCH)
    page.goto(url)
    page.wait_for_function(SETTLED, timeout=60_000)
    return page


def _after_run(page: Any, act: Any) -> None:
    """Do ``act``, then wait for the page to settle."""
    act()
    page.wait_for_function(SETTLED, timeout=60_000)


#: The open tab has run: the page has settled, and the tab's panel holds elements, none left
#: from an earlier run. (A panel is empty until its first run: only the open tab runs.)
OPEN_TAB_RAN = f"""() => {{
  const panel = [...document.querySelectorAll('[role="tabpanel"]')]
    .find((p) => p.offsetParent !== null);
  return panel && panel.querySelector('[data-testid="stElementContainer"]')
    && !document.querySelector('[data-stale="true"]') && ({SETTLED})();
}}"""


def _visit(page: Any, tab: str) -> Any:
    """The panel of ``tab``, opened and run, checked for Streamlit's exception boxes."""
    from playwright.sync_api import expect

    handle = page.get_by_role("tab", name=tab, exact=True)
    if handle.get_attribute("aria-selected") != "true":
        handle.click()
        expect(handle).to_have_attribute("aria-selected", "true")
    page.wait_for_function(OPEN_TAB_RAN, timeout=60_000)
    panel = page.locator('[role="tabpanel"]:visible')
    failures = panel.locator('[data-testid="stException"]')
    assert failures.count() == 0, f"{tab}: {failures.first.inner_text()}"
    return panel


def _commands(panel: Any) -> list[str]:
    """The code elements of ``panel`` that are commands: their first word is a program."""
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    words = [text.split() for text in panel.locator("code").all_inner_texts()]
    return [" ".join(w) for w in words if w and shutil.which(w[0], path=path)]


def _hints(page: Any) -> dict[str, list[str]]:
    return {tab: _commands(_visit(page, tab)) for tab in TABS}


def test_with_nothing_there_every_hint_is_a_make_target_as_typed(
    browser: Any, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_store(tmp_path / "mlflow.db"),
        "KKBOX_LAKE_URI": str(tmp_path / "lake"),
        "KKBOX_TRAFFIC_LOG_URI": str(tmp_path / "traffic"),
        "KKBOX_DATA_DIR": str(tmp_path / "data"),
        "KKBOX_SERVICE_URL": f"http://127.0.0.1:{free_port()}",
    }
    process, url = _dashboard(env)
    try:
        hints = _hints(_page(browser, url))
    finally:
        stop(process)
    assert {"make demo", "make serve"} <= set(hints["Model"]) and hints["Drift"] == ["make drift"]
    assert hints["Live"] == ["make serve", "make loadtest"]
    assert hints["Campaign"] == ["make score"] and "make months" in hints["Months"]
    for command in {command for shown in hints.values() for command in shown}:
        assert command.startswith("make "), command
        assert make(env, "-n", *command.split()[1:]).stdout.strip()


@pytest.fixture(scope="module")
def platform(champion: Champion, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The champion's stores as ``make demo`` leaves them, without any step's outputs (scores,
    drift, quality); the service serving it, having answered 1,000 records, as many as
    ``make drift`` asks for by default (MLproject)."""
    root = tmp_path_factory.mktemp("dashboard-browser")
    env = platform_copy(champion, root)
    for output in ("predictions", "monitoring", "quality", "cycles"):
        shutil.rmtree(root / "lake" / output, ignore_errors=True)
    process, url = serve(env)
    try:
        gold = [*records_of(champion.gold("2017-03")), *records_of(champion.gold("2017-04"))]
        records = list(islice(cycle(gold), 1000))
        with requests.Session() as session:
            for start in range(0, len(records), 20):
                batch = {"records": records[start : start + 20]}
                session.post(f"{url}/predict", json=batch, timeout=30).raise_for_status()
        for _ in range(100):  # the writer thread is asynchronous
            if sum(1 for p in (root / "traffic").rglob("*.jsonl") for _ in p.open()) >= 1000:
                break
            time.sleep(0.1)
        yield {**env, "KKBOX_SERVICE_URL": url}
    finally:
        stop(process)


def test_following_the_hints_fills_every_tab(browser: Any, platform: dict[str, str]) -> None:
    process, url = _dashboard(platform)
    try:
        page = _page(browser, url)
        hints = _hints(page)
        assert hints["Model"] == hints["Live"] == hints["Subscriber"] == []
        run = [command for tab in TABS for command in hints[tab] if command.split()[1] in CHEAP]
        assert run == [
            "make drift",
            "make score",
            "make score COHORT=2017-03",
            "make quality COHORT=2017-03",
        ]
        for command in run:  # in the page's order: March is scored before it is measured
            make(platform, *command.split()[1:])
        # a campaign played on March and judged (tests/integration/test_quality_step.py makes one)
        write_verdict(Lake(platform["KKBOX_LAKE_URI"]), VERDICT)
        _visit(page, "Model")
        _after_run(page, page.get_by_role("button", name="Refresh").click)
        _every_tab_shows_its_content(page)
    finally:
        stop(process)


def _every_tab_shows_its_content(page: Any) -> None:
    model = _visit(page, "Model").inner_text()
    assert "served by the service" in model and "Metrics per segment" in model
    live = _visit(page, "Live").inner_text()
    assert "predictions\n\n1,000" in live and "most recent requests" in live
    assert "features drifted" in _visit(page, "Drift").inner_text()
    campaign = _visit(page, "Campaign")
    shown = campaign.inner_text()
    assert "Cohort 2017-04" in shown and "expected net value (NTD)" in shown  # the what-if's
    assert campaign.get_by_text("Download the list (CSV)").count() == 1
    assert "Last campaign's verdict" in shown and VERDICT.said in shown
    assert "40 contacted and 40 held out as control" in shown and "1,430" in shown
    months = _visit(page, "Months").inner_text()
    assert "Realized ROC AUC" in months and "make months" in months
    subscriber = _visit(page, "Subscriber")
    _after_run(page, subscriber.get_by_role("button", name="Explain", exact=True).click)
    subscriber.get_by_text("percentile in cohort 2017-04").wait_for(timeout=30_000)
    said = subscriber.inner_text()
    assert "percentile in cohort 2017-04" in said and "targeted by the campaign" in said
    assert "in percentage points" in said
    waterfall = subscriber.locator('[data-testid="stVegaLiteChart"]')
    waterfall.locator("canvas, svg").first.wait_for(timeout=30_000)
    left = {tab: _commands(_visit(page, tab)) for tab in TABS}
    assert left == {**dict.fromkeys(TABS, []), "Months": ["make months", "make demo"]}
