"""Which version served each day and the switches between, from hand-made traffic (issue #34,
point 4), and the reader that gives them every logged prediction."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from churn_transform.monitoring.timeline import served_by_day, switches
from churn_transform.serving.traffic import TrafficLog, read_served

DAY1 = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
DAY2 = DAY1 + 86_400


def _traffic(*answers: tuple[float, str]) -> pd.DataFrame:
    return pd.DataFrame(answers, columns=["ts", "model_version"])


def _utc(ts: float) -> pd.Timestamp:
    return pd.Timestamp(ts, unit="s", tz="UTC")


def test_each_day_lists_the_versions_that_answered_with_counts_first_and_last() -> None:
    traffic = _traffic(
        (DAY1 + 50, "2"), (DAY1 + 10, "1"), (DAY1 + 20, "1"), (DAY1 + 60, "2"), (DAY2 + 5, "2")
    )
    days = served_by_day(traffic)
    assert days.to_dict("records") == [
        {
            "day": _utc(DAY1).date(),
            "model_version": "1",
            "predictions": 2,
            "first": _utc(DAY1 + 10),
            "last": _utc(DAY1 + 20),
        },
        {
            "day": _utc(DAY1).date(),
            "model_version": "2",
            "predictions": 2,
            "first": _utc(DAY1 + 50),
            "last": _utc(DAY1 + 60),
        },
        {
            "day": _utc(DAY2).date(),
            "model_version": "2",
            "predictions": 1,
            "first": _utc(DAY2 + 5),
            "last": _utc(DAY2 + 5),
        },
    ]


def test_no_traffic_is_no_day_and_no_switch() -> None:
    assert served_by_day(_traffic()).empty and switches(_traffic()).empty


def test_a_promotion_then_a_rollback_are_two_switches_in_time_order() -> None:
    traffic = _traffic((30, "2"), (10, "1"), (20, "1"), (40, "2"), (50, "1"), (60, "1"))
    assert switches(traffic).to_dict("records") == [
        {"time": _utc(30), "from_version": "1", "to_version": "2"},
        {"time": _utc(50), "from_version": "2", "to_version": "1"},
    ]


@pytest.mark.parametrize(
    ("settle", "expected"),
    [
        (0.0, [("1", "2"), ("2", "1"), ("1", "2")]),  # every change counted
        (5.0, [("1", "2")]),  # replicas switching a few seconds apart: one switch
    ],
)
def test_changes_closer_than_the_settling_time_are_one_switch(
    settle: float, expected: list[tuple[str, str]]
) -> None:
    traffic = _traffic((10, "1"), (20, "2"), (21, "1"), (23, "2"), (30, "2"))
    found = switches(traffic, settle)
    assert list(zip(found["from_version"], found["to_version"], strict=True)) == expected
    assert found["time"].iloc[0] == _utc(20)


def test_a_back_and_forth_that_ends_where_it_began_is_no_switch() -> None:
    traffic = _traffic((10, "1"), (20, "2"), (21, "1"), (30, "1"))
    assert switches(traffic, settle=5).empty


def test_the_reader_keeps_every_prediction_s_time_and_version_but_a_line_being_written(
    tmp_path: Path,
) -> None:
    day = tmp_path / "2026-12-01"
    day.mkdir()
    lines = [
        {"ts": DAY1 + i, "model_version": v, "features": {"city": 1}} for i, v in enumerate("112")
    ]
    text = "".join(json.dumps(line) + "\n" for line in lines)
    (day / "traffic-a-1-0.jsonl").write_text(text + '{"ts": 1, "model_ver')
    (day / "other.jsonl").write_text(text)  # not a traffic file
    (tmp_path / "2026-12-03").mkdir()  # a day outside the window
    (tmp_path / "2026-12-03" / "traffic-a-1-1.jsonl").write_text(text)
    served = read_served(tmp_path, "2026-12-01", "2026-12-02")
    assert served["ts"].tolist() == [DAY1, DAY1 + 1, DAY1 + 2]
    assert served["model_version"].astype(str).tolist() == ["1", "1", "2"]
    assert read_served(tmp_path / "nothing", "2026-12-01", "2026-12-02").empty


def test_the_reader_gives_what_the_service_s_log_holds(tmp_path: Path) -> None:
    """Lines as the service writes them (read by their opening) and in any other key order
    (parsed whole) give the same times and versions."""
    entries = [
        {"ts": DAY1 + 0.25, "request_id": 'a"b', "model_version": "1", "features": {}},
        {"ts": DAY1 + 1e-3, "request_id": "r-2", "model_version": "12", "features": {"x": None}},
        {"model_version": "3", "ts": DAY1 + 2, "features": {}},
    ]
    log = TrafficLog(tmp_path, replica="a")
    log.append(dict(entry) for entry in entries)
    log.close()
    served = read_served(tmp_path, "2000-01-01", "2999-12-31")
    assert served["ts"].tolist() == [entry["ts"] for entry in entries]
    assert served["model_version"].astype(str).tolist() == ["1", "12", "3"]
