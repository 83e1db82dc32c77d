"""The load-test harness runs Locust against the real service and reports what it measured."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import Champion, run_step

pytestmark = pytest.mark.integration


def _harness(champion: Champion, tmp_path: Path, *arguments: str) -> tuple[str, dict]:
    printed = run_step(
        champion.env, sys.executable, "loadtests/run.py", *arguments, "--results", str(tmp_path)
    )
    saved = json.loads(next(tmp_path.glob("*.json")).read_text())
    return printed, saved


def test_run_reports_latency_throughput_and_the_service_s_batch_size(
    champion: Champion, service: str, tmp_path: Path
) -> None:
    printed, saved = _harness(
        champion,
        tmp_path,
        "run",
        "--host",
        service,
        "--users",
        "4",
        "--rps",
        "40",
        "--duration",
        "4",
        "--batch-share",
        "0.3",
    )
    assert "p95 ms" in printed and "shared this machine's" in printed
    (row,) = saved["rows"]
    assert row["requests"] > 40 and row["failures"] == 0
    assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
    assert row["mean_batch_size"] >= 1  # read from the service's own /metrics


def test_capacity_stops_at_the_first_rate_over_the_latency_bound(
    champion: Champion, service: str, tmp_path: Path
) -> None:
    limits = ["--start-rps", "10", "--duration", "3", "--p95-ms", "0.01"]
    printed, saved = _harness(
        champion, tmp_path, "capacity", "--host", service, "--users", "2", *limits
    )
    assert len(saved["rows"]) == 1
    assert "highest rate with p95 < 0.01 ms and no failure: 0 requests/s" in printed


def test_compare_starts_its_own_services_and_prints_the_ratio(
    champion: Champion, tmp_path: Path
) -> None:
    printed, saved = _harness(champion, tmp_path, "compare", "--users", "8", "--duration", "3")
    assert printed.count("starting bentoml serve") == 2 and "KKBOX_MAX_BATCH_SIZE': '1'" in printed
    on, off = saved["rows"]
    assert on["requests"] > 0 and off["requests"] > 0
    assert "batching on / off throughput:" in printed


def test_baseline_runs_the_service_and_a_bare_app_and_prints_both_rows_and_the_ratio(
    champion: Champion, tmp_path: Path
) -> None:
    printed, saved = _harness(
        champion, tmp_path, "baseline", "--users", "4", "--rps", "40", "--duration", "6"
    )
    assert "starting bentoml serve" in printed and "starting the bare app" in printed
    service, bare = saved["rows"]
    assert (service["label"], bare["label"]) == ("service", "bare app")
    assert service["requests"] > 0 and bare["requests"] > 0
    assert service["failures"] == 0 and bare["failures"] == 0  # the same body suits both
    assert "bare app" in printed and "throughput service / bare app:" in printed
    assert re.search(r"p95 service \d+ ms, bare app \d+ ms", printed)


def test_workers_serves_with_one_then_two_workers_and_prints_both_rows(
    champion: Champion, tmp_path: Path
) -> None:
    printed, saved = _harness(
        champion, tmp_path, "workers", "--users", "4", "--rps", "40", "--duration", "6"
    )  # 3 s, on a machine busy with two other processes, saw one worker answer nothing
    assert "KKBOX_WORKERS': '1'" in printed and "KKBOX_WORKERS': '2'" in printed
    one, two = saved["rows"]
    assert (one["label"], two["label"]) == ("1 worker(s)", "2 worker(s)")
    assert one["requests"] > 0 and two["requests"] > 0 and "2 worker(s)" in printed


def test_by_id_reports_both_kinds_from_one_run_and_each_kind_s_capacity(
    champion: Champion, service: str, tmp_path: Path
) -> None:
    run_step(champion.env, sys.executable, "-m", "steps.materialize", "--cohort", "2017-04")
    pace = ["--users", "4", "--rps", "40", "--duration", "4", "--start-rps", "10"]
    printed, saved = _harness(
        champion,
        tmp_path,
        "by-id",
        "--host",
        service,
        "--cohort",
        "2017-04",
        *pace,
        "--p95-ms",
        "0.01",
    )
    features, by_id = saved["rows"][:2]
    assert (features["label"], by_id["label"]) == ("/predict", "/predict_ids")
    for kind in (features, by_id):  # an id of another cohort would have failed (404)
        assert kind["requests"] > 0 and kind["failures"] == 0
    assert "p95 by id / with features:" in printed
    assert "/predict_ids: highest rate with p95 < 0.01 ms, no failure: 0/s" in printed
    assert {row.get("kind") for row in saved["rows"][2:]} == {"/predict", "/predict_ids"}
