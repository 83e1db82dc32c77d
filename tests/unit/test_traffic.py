"""The traffic log: nothing blocks the caller, nothing is lost silently, files rotate."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from churn_transform.traffic import TrafficLog, read_traffic, traffic_files

DAY = 1_795_737_600.0  # 2026-11-27 00:00:00 UTC


def _entry(i: int) -> dict:
    return {"ts": DAY + i, "request_id": f"r{i}", "features": {"bd": float(i)}, "churn": False}


def _lines(folder: Path) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted(folder.rglob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def test_close_writes_every_entry_in_order(tmp_path: Path) -> None:
    log = TrafficLog(tmp_path, clock=lambda: DAY)
    for start in range(0, 5000, 100):
        log.append(_entry(i) for i in range(start, start + 100))
    log.close()
    assert [e["request_id"] for e in _lines(tmp_path)] == [f"r{i}" for i in range(5000)]
    assert log.written == 5000 and log.depth == 0


def _settle(log: TrafficLog, written: int) -> None:
    deadline = time.monotonic() + 5
    while log.written < written and time.monotonic() < deadline:
        time.sleep(0.001)


def test_a_new_file_each_day_and_past_the_size_limit(tmp_path: Path) -> None:
    now = [DAY]
    log = TrafficLog(tmp_path, max_bytes=2000, clock=lambda: now[0])
    for i in range(60):
        log.append([_entry(i)])
        _settle(log, i + 1)  # one entry per write, so the size check sees each
        now[0] += 86_400 * (i == 30)
    log.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2026-11-27", "2026-11-28"]
    files = list(traffic_files(tmp_path, "2026-11-27", "2026-11-28"))
    assert len(files) > 2 and all(f.stat().st_size < 2000 + 200 for f in files)
    assert [e["request_id"] for e in _lines(tmp_path)] == [f"r{i}" for i in range(60)]


def test_a_full_queue_drops_and_counts_instead_of_waiting(tmp_path: Path) -> None:
    lost: list[tuple[str, int]] = []
    gate = threading.Event()
    log = TrafficLog(tmp_path, max_queue=10, on_lost=lambda r, n: lost.append((r, n)))
    original = log._write
    log._write = lambda entries: (gate.wait(5), original(entries))  # type: ignore[method-assign]
    log.append([_entry(0)])  # the writer takes it and waits at the gate
    log.append(_entry(i) for i in range(1, 31))
    gate.set()
    log.close()
    dropped = sum(n for reason, n in lost if reason == "queue_full")
    assert dropped > 0 and log.written + dropped == 31


def test_an_unwritable_folder_counts_the_loss_and_keeps_going(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the log folder should be")
    lost: list[tuple[str, int]] = []
    log = TrafficLog(blocker / "traffic", on_lost=lambda r, n: lost.append((r, n)))
    log.append(_entry(i) for i in range(7))
    log.close()
    assert sum(n for _, n in lost) == 7 and all(r == "write_failed" for r, _ in lost)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_lines_are_strict_json_and_a_non_finite_entry_is_counted_not_written(
    tmp_path: Path, value: float
) -> None:
    lost: list[tuple[str, int]] = []
    log = TrafficLog(tmp_path, clock=lambda: DAY, on_lost=lambda r, n: lost.append((r, n)))
    bad = {**_entry(1), "features": {"bd": value}}
    log.append([_entry(0), bad, _entry(2)])
    log.close()
    strict = [
        json.loads(line, parse_constant=_refuse)
        for path in tmp_path.rglob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert [e["request_id"] for e in strict] == ["r0", "r2"]
    assert lost == [("not_json", 1)] and log.written == 2


def _refuse(constant: str) -> None:
    raise ValueError(f"not strict JSON: {constant}")


def test_reading_a_window_flattens_features_and_samples_to_a_bound(tmp_path: Path) -> None:
    log = TrafficLog(tmp_path, clock=lambda: DAY)
    log.append(_entry(i) for i in range(1000))
    log.close()
    everything, seen = read_traffic(tmp_path, "2026-11-27", "2026-11-27")
    assert seen == 1000 and len(everything) == 1000 and everything["bd"].tolist()[:3] == [0, 1, 2]
    sample, seen = read_traffic(tmp_path, "2026-11-27", "2026-11-27", max_rows=100)
    assert seen == 1000 and len(sample) == 100 and sample["request_id"].nunique() == 100
    assert sample["bd"].mean() == pytest.approx(500, abs=120)  # uniform, not the first 100
    empty, seen = read_traffic(tmp_path, "2026-11-28", "2026-11-30")
    assert seen == 0 and empty.empty
