"""The drift job on traffic the real service logged: replayed gold rows of an undrifted month,
and of the month the generator's shift knob changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.conftest import Champion, drift_command, records_of, run_step, serve, stop

pytestmark = pytest.mark.integration


def _replay(url: str, records: list[dict], batch: int = 50) -> None:
    with requests.Session() as session:
        for start in range(0, len(records), batch):
            chunk = records[start : start + batch]
            answer = session.post(f"{url}/predict", json={"records": chunk}, timeout=30)
            assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def traffic(champion: Champion, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Traffic folders: March's gold rows (before the shift) and April's (after it)."""
    folders = {}
    for name, cohort in (("undrifted", "2017-03"), ("shifted", "2017-04")):
        folder = tmp_path_factory.mktemp(f"traffic-{name}")
        process, url = serve({**champion.env, "KKBOX_TRAFFIC_LOG_URI": str(folder)})
        try:
            _replay(url, records_of(champion.gold(cohort)))
        finally:
            stop(process)  # flushes the traffic log
        folders[name] = folder
    return folders


def _drift(champion: Champion, folder: Path, expect: int, **change: str) -> str:
    command = drift_command(**{"min-rows": "200", "fail-on-drift": "true", **change})
    env = {**champion.env, "KKBOX_TRAFFIC_LOG_URI": str(folder)}
    return run_step(env, *command, expect=expect)


def _summaries(champion: Champion) -> list[dict]:
    root = Path(champion.env["KKBOX_LAKE_URI"]) / "monitoring" / "drift"
    return [json.loads(p.read_text()) for p in sorted(root.glob("*/summary.json"))]


def test_undrifted_traffic_raises_no_alarm(champion: Champion, traffic: dict[str, Path]) -> None:
    printed = _drift(champion, traffic["undrifted"], expect=0)
    assert "no dataset drift" in printed
    summary = next(s for s in reversed(_summaries(champion)) if s["window_predictions"])
    assert summary["dataset_drift"] is False and summary["drift_share"] < 0.5
    assert summary["current_rows"] == len(champion.gold("2017-03"))
    assert {c["column"] for c in summary["columns"]} >= {"city", "secs_30", "gender"}
    city = next(c for c in summary["columns"] if c["column"] == "city")
    assert city["type"] == "categorical" and city["method"] and city["threshold"] > 0
    report = Path(champion.env["KKBOX_LAKE_URI"]) / "monitoring" / "drift"
    assert any(p.stat().st_size > 100_000 for p in report.glob("*/report.html"))


def test_shifted_traffic_fails_the_job_naming_the_shifted_features(
    champion: Champion, traffic: dict[str, Path]
) -> None:
    printed = _drift(champion, traffic["shifted"], expect=3)
    assert printed.count("DRIFT") == 1 and "retrain" in printed
    drifted = set(_summaries(champion)[-1]["drifted_columns"])
    # what the knob shifts: listening, the new payment method, auto-renew
    assert {"secs_30", "active_days_7", "last_payment_method_id", "last_is_auto_renew"} <= drifted
    assert all(name in printed for name in ("secs_30", "last_payment_method_id"))


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
    assert summary["current_rows"] == 300
    assert summary["window_predictions"] == len(champion.gold("2017-03"))
