"""The traffic log: nothing blocks the caller, nothing is lost silently, files rotate, closed
files are shipped to one place where every replica's traffic is read."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path

import pytest

from churn_transform.serving.traffic import (
    TrafficLog,
    read_subscribers,
    read_traffic,
    replica_token,
    traffic_files,
)

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
    assert len(files) > 2 and all(Path(f).stat().st_size < 2000 + 200 for f in files)
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


def _subscriber(i: int, n: int, at: float) -> dict:
    """The n-th request about subscriber ``i``, at ``at`` seconds into the day."""
    return {**_entry(i), "ts": DAY + at, "msno": f"user-{i}", "features": {"bd": float(n)}}


def test_reading_subscribers_keeps_each_one_s_newest_prediction(tmp_path: Path) -> None:
    log = TrafficLog(tmp_path, clock=lambda: DAY)
    log.append([_subscriber(1, 0, 5.0), _subscriber(2, 0, 1.0), _subscriber(1, 1, 9.0)])
    log.append([_subscriber(1, 2, 7.0)])  # written later, but older
    log.close()
    window, seen = read_subscribers(tmp_path, "2026-11-27", "2026-11-27", max_subscribers=10)
    assert seen == 4
    assert dict(zip(window["msno"], window["bd"], strict=True)) == {"user-1": 1.0, "user-2": 0.0}


def test_a_sample_of_subscribers_does_not_favour_those_asked_about_most(tmp_path: Path) -> None:
    once, often = tmp_path / "once", tmp_path / "often"
    for folder, times in ((once, 1), (often, 5)):
        log = TrafficLog(folder, clock=lambda: DAY)
        for n in range(times):  # the first 100 subscribers, replayed
            log.append(_subscriber(i, n, float(n)) for i in range(100 if n else 1000))
        log.close()
    sample, seen = read_subscribers(once, "2026-11-27", "2026-11-27", max_subscribers=100)
    replayed, seen_often = read_subscribers(often, "2026-11-27", "2026-11-27", max_subscribers=100)
    assert (seen, seen_often) == (1000, 1400)
    assert len(sample) == 100 and set(sample["msno"]) == set(replayed["msno"])
    assert sample["msno"].str.removeprefix("user-").astype(int).mean() == pytest.approx(
        500, abs=120
    )


@pytest.mark.parametrize(
    ("name", "token"),
    [
        ("kkbox-churn-service-7d9f8-x2lq", "kkbox-churn-service-7d9f8-x2lq"),
        ("host.example.com", "host.example.com"),
        ("../etc/pass wd", "_etc_pass_wd"),
        ("a/b\\c", "a_b_c"),
    ],
)
def test_a_replica_id_becomes_a_safe_file_name_token(name: str, token: str) -> None:
    assert replica_token(name) == token


def test_a_replica_id_without_a_letter_or_digit_is_refused() -> None:
    with pytest.raises(ValueError, match="replica id '...'"):
        replica_token("...")


def test_every_file_name_carries_the_replica_and_the_process(tmp_path: Path) -> None:
    for replica in ("pod-a", "pod-b"):  # two pods on one volume, possibly with the same pid
        log = TrafficLog(tmp_path, replica=replica, clock=lambda: DAY)
        log.append([_entry(0)])
        log.close()
    names = sorted(p.name for p in (tmp_path / "2026-11-27").iterdir())
    assert names == [f"traffic-pod-{r}-{os.getpid()}-0000.jsonl" for r in "ab"]


def _shipped(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_each_closed_file_is_shipped_whole_and_the_open_one_at_close(tmp_path: Path) -> None:
    shipped: list[tuple[str, int]] = []
    local, lake = tmp_path / "local", tmp_path / "lake"
    log = TrafficLog(
        local,
        replica="a",
        max_bytes=500,
        ship_to=str(lake),
        clock=lambda: DAY,
        on_shipped=lambda outcome, n: shipped.append((outcome, n)),
    )
    for i in range(20):
        log.append([_entry(i)])
        _settle(log, i + 1)
    rotated = _shipped(lake)
    assert rotated and len(rotated) == len(list(local.rglob("*.jsonl"))) - 1  # not the open one
    log.close()
    assert _shipped(lake) == _shipped(local)  # the local copies are kept
    assert shipped == [("shipped", 1)] * len(_shipped(lake)) and not log.unshipped


def test_a_failed_shipment_is_counted_and_retried_at_the_next_rotation(tmp_path: Path) -> None:
    shipped: list[tuple[str, int]] = []
    lake = tmp_path / "lake"
    lake.write_text("a file where the destination folder should be")
    now = [DAY]
    log = TrafficLog(
        tmp_path / "local",
        replica="a",
        ship_to=str(lake),
        clock=lambda: now[0],
        on_shipped=lambda outcome, n: shipped.append((outcome, n)),
    )
    log.append([_entry(0)])
    _settle(log, 1)
    now[0] += 86_400
    log.append([_entry(1)])  # the day changes: the first file is closed, its shipment fails
    _settle(log, 2)
    assert shipped == [("failed", 1)] and len(log.unshipped) == 1
    lake.unlink()
    log.close()  # the retry: both files
    assert shipped == [("failed", 1), ("shipped", 1), ("shipped", 1)]
    assert sorted(_shipped(lake)) == [
        f"{day}/traffic-a-{os.getpid()}-0000.jsonl" for day in ("2026-11-27", "2026-11-28")
    ]


def test_reading_an_fsspec_url_counts_every_replica(tmp_path: Path) -> None:
    lake = f"memory://traffic-{uuid.uuid4().hex}"
    for replica, count in (("a", 30), ("b", 12)):
        log = TrafficLog(tmp_path / replica, replica=replica, ship_to=lake, clock=lambda: DAY)
        log.append(_entry(i) for i in range(count))
        log.close()
    files = traffic_files(lake, "2026-11-27", "2026-11-27")
    assert [f.rsplit("/", 1)[-1].split("-")[1] for f in files] == ["a", "b"]
    everything, seen = read_traffic(lake, "2026-11-27", "2026-11-27")
    assert seen == 42 and len(everything) == 42
    sample, seen = read_traffic(lake, "2026-11-27", "2026-11-27", max_rows=10)
    assert seen == 42 and len(sample) == 10
    assert read_traffic(lake, "2026-11-28", "2026-11-28")[1] == 0
