"""The drift job on traffic the real service logged: an undrifted month replayed several times
with the OpenAPI page's example record among it (issue 34: the demo's load test), and the month
the generator's shift knob changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from churn_transform.schema import EXAMPLE_RECORD
from tests.conftest import (
    Champion,
    drift_command,
    records_of,
    run_step,
    serve,
    start_pushgateway,
    stop,
)

pytestmark = pytest.mark.integration

#: How many times the undrifted month is sent, and the placeholder record after each time.
REPLAYS, PLACEHOLDERS = 3, 2


def _replay(url: str, records: list[dict], batch: int = 50) -> None:
    with requests.Session() as session:
        for start in range(0, len(records), batch):
            chunk = records[start : start + batch]
            answer = session.post(f"{url}/predict", json={"records": chunk}, timeout=30)
            assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def traffic(champion: Champion, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Traffic folders: March's gold rows (before the shift), sent REPLAYS times with the example
    record between them, and April's (after the shift), sent once."""
    folders = {}
    for name, cohort, times in (("undrifted", "2017-03", REPLAYS), ("shifted", "2017-04", 1)):
        folder = tmp_path_factory.mktemp(f"traffic-{name}")
        process, url = serve({**champion.env, "KKBOX_TRAFFIC_LOG_URI": str(folder)})
        try:
            for _ in range(times):
                _replay(url, records_of(champion.gold(cohort)))
                if name == "undrifted":
                    _replay(url, [EXAMPLE_RECORD] * PLACEHOLDERS)
        finally:
            stop(process)  # flushes the traffic log
        folders[name] = folder
    return folders


def _drift(champion: Champion, folder: Path, expect: int, gateway: str = "", **change: str) -> str:
    command = drift_command(**{"min-rows": "200", "fail-on-drift": "true", **change})
    env = {**champion.env, "KKBOX_TRAFFIC_LOG_URI": str(folder)}
    return run_step(
        {**env, "KKBOX_PUSHGATEWAY_URL": gateway} if gateway else env, *command, expect=expect
    )


def _summaries(champion: Champion) -> list[dict]:
    root = Path(champion.env["KKBOX_LAKE_URI"]) / "monitoring" / "drift"
    return [json.loads(p.read_text()) for p in sorted(root.glob("*/summary.json"))]


def test_a_replayed_undrifted_month_with_the_placeholder_record_is_no_drift(
    champion: Champion, traffic: dict[str, Path]
) -> None:
    gateway, url = start_pushgateway()
    try:
        printed = _drift(champion, traffic["undrifted"], expect=0, gateway=url)
        pushed = requests.get(f"{url}/metrics", timeout=10).text
    finally:
        stop(gateway)
    assert "no drift that costs the model: estimated ROC AUC" in printed
    summary = next(s for s in reversed(_summaries(champion)) if s["window_predictions"])
    march = len(champion.gold("2017-03"))
    assert summary["drift_detected"] is False and summary["estimated_roc_auc_drop"] < 0.02
    assert summary["current_rows"] == march
    # read one row per subscriber: the placeholder's requests are one row, left out
    assert summary["placeholder_rows"] == 1
    assert summary["window_predictions"] == REPLAYS * (march + PLACEHOLDERS)
    # like for like: the champion's training cohort, whole
    assert summary["reference"].startswith("gold 2017-02 ")
    assert summary["reference_rows"] == len(champion.gold("2017-02"))
    assert {c["column"] for c in summary["columns"]} >= {"city", "secs_30", "gender"}
    city = next(c for c in summary["columns"] if c["column"] == "city")
    assert city["type"] == "categorical" and city["method"] and city["threshold"] > 0
    report = Path(champion.env["KKBOX_LAKE_URI"]) / "monitoring" / "drift"
    assert any(p.stat().st_size > 100_000 for p in report.glob("*/report.html"))
    labels = 'instance="",job="kkbox-drift",model_version="1"'
    assert f"kkbox_drift_detected{{{labels}}} 0" in pushed
    estimated = f"kkbox_drift_estimated_roc_auc{{{labels}}} "
    line = next(x for x in pushed.splitlines() if x.startswith(estimated))
    assert float(line.removeprefix(estimated)) == pytest.approx(summary["estimated_roc_auc"])


def test_shifted_traffic_fails_the_job_naming_the_shifted_features_by_effect(
    champion: Champion, traffic: dict[str, Path]
) -> None:
    printed = _drift(champion, traffic["shifted"], expect=3)
    assert printed.count("DRIFT") == 1 and "retrain" in printed
    summary = _summaries(champion)[-1]
    assert summary["drift_detected"] is True and summary["estimated_roc_auc_drop"] >= 0.02
    drifted = summary["drifted_columns"]
    # what the knob shifts: listening, the new payment method, auto-renew
    assert {"secs_30", "active_days_7", "last_payment_method_id", "last_is_auto_renew"} <= set(
        drifted
    )
    assert drifted[0] in {"last_is_auto_renew", "last_payment_method_id", "auto_renew_share"}
    sizes = [c["effect"]["size"] for c in summary["columns"] if c["drifted"]]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > 0.01
    assert printed.index(drifted[0]) < printed.index("secs_30")


def test_without_fail_on_drift_the_same_window_only_reports(
    champion: Champion, traffic: dict[str, Path]
) -> None:
    assert "DRIFT" in _drift(champion, traffic["shifted"], expect=0, **{"fail-on-drift": "false"})


def test_an_empty_or_small_window_says_so_and_raises_no_alarm(
    champion: Champion, traffic: dict[str, Path], tmp_path: Path
) -> None:
    printed = _drift(champion, tmp_path, expect=0)
    assert "no predictions logged" in printed
    printed = _drift(champion, traffic["shifted"], expect=0, **{"min-rows": "100000"})
    assert "fewer than the 100000 needed" in printed and "no alarm" in printed


def test_a_large_window_is_sampled_to_the_bound(
    champion: Champion, traffic: dict[str, Path]
) -> None:
    limits = {"max-rows": "300", "min-rows": "100", "fail-on-drift": "false"}
    _drift(champion, traffic["undrifted"], expect=0, **limits)
    summary = _summaries(champion)[-1]
    # 300 of the subscribers, each once, however many times they were sent
    assert summary["current_rows"] + summary["placeholder_rows"] == 300
    march = len(champion.gold("2017-03"))
    assert summary["window_predictions"] == REPLAYS * (march + PLACEHOLDERS)
