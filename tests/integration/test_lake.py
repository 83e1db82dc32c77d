"""Publishing in the lake keeps the previous good version, on a local folder and on real S3."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from churn_transform.lake import Lake, LakeLockedError, TableNotFoundError


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Lake:
    if request.param == "local":
        return Lake(str(tmp_path / "lake"))
    bucket = request.getfixturevalue("s3_bucket")
    return Lake(f"{bucket}/lake", request.getfixturevalue("s3_options"))


def _writer(lake: Lake, values: list[int]):
    def write(url: str) -> None:
        lake.fs.makedirs(url, exist_ok=True)
        frame = pd.DataFrame({"value": values})
        frame.to_parquet(f"{url}/part-0.parquet", storage_options=lake.storage_options or None)

    return write


def _read(lake: Lake, table: str) -> list[int]:
    url = lake.current("silver", table)
    return pd.read_parquet(url, storage_options=lake.storage_options or None)["value"].tolist()


def test_publish_then_read_the_current_version(lake: Lake) -> None:
    with pytest.raises(TableNotFoundError, match="silver/members"):
        lake.current("silver", "members")
    lake.publish("silver", "members", "v1", _writer(lake, [1, 2]))
    lake.publish("silver", "members", "v2", _writer(lake, [3]))
    assert _read(lake, "members") == [3]
    assert lake.current_version("silver", "members") == "v2"


def test_a_failed_write_leaves_the_previous_version_current(lake: Lake) -> None:
    lake.publish("silver", "logs", "good", _writer(lake, [1]))

    def half_written(url: str) -> None:
        _writer(lake, [666])(url)
        raise OSError("worker died")

    with pytest.raises(OSError, match="worker died"):
        lake.publish("silver", "logs", "bad", half_written)
    assert _read(lake, "logs") == [1]
    assert not lake.has_version("silver", "logs", "bad")
    # The leftover is cleaned up when that version is published again.
    lake.publish("silver", "logs", "bad", _writer(lake, [2]))
    assert _read(lake, "logs") == [2]


def test_publishing_an_existing_version_writes_nothing(lake: Lake) -> None:
    lake.publish("gold", "features", "abc", _writer(lake, [1]))
    calls = []
    lake.publish("gold", "features", "abc", lambda url: calls.append(url))
    assert calls == []
    assert lake.current_version("gold", "features") == "abc"


@pytest.mark.parametrize(("area", "version"), [("platinum", "v1"), ("silver", "a/b")])
def test_bad_names_are_refused(lake: Lake, area: str, version: str) -> None:
    with pytest.raises(ValueError, match="platinum|a/b"):
        lake.publish(area, "members", version, _writer(lake, [1]))


def test_a_second_writer_is_refused_naming_the_holder(lake: Lake) -> None:
    """Issue 21: two ingests at once, and one deleted the other's working folder."""
    with lake.lock("ingest"):
        refused = pytest.raises(LakeLockedError, match=r"being written by ingest \(pid \d+ on ")
        with refused, lake.lock("gc"):
            pass  # pragma: no cover
        assert json.loads(lake.fs.cat_file(lake.path_of(lake.url("_LOCK"))))["owner"] == "ingest"
    with lake.lock("gc"):  # released: the next writer gets it
        pass
    assert not lake.fs.exists(lake.path_of(lake.url("_LOCK")))


@pytest.mark.parametrize("left_by", ["a dead process here", "a writer a day ago"])
def test_a_stale_lock_is_taken_over(lake: Lake, left_by: str) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    holder = (
        {"owner": "ingest", "pid": dead.pid, "host": socket.gethostname(), "since": time.time()}
        if left_by == "a dead process here"
        else {"owner": "ingest", "pid": 1, "host": "elsewhere", "since": time.time() - 90_000}
    )
    lake.write_bytes(json.dumps(holder).encode(), "_LOCK")
    with lake.lock("gc"):
        assert json.loads(lake.fs.cat_file(lake.path_of(lake.url("_LOCK"))))["owner"] == "gc"


def test_silver_tables_share_one_pointer(lake: Lake) -> None:
    """The snapshot area: every table of a version goes live with one pointer write."""
    for version, value in (("v1", 1), ("v2", 2)):
        for table in ("members", "logs"):
            _writer(lake, [value])(lake.version_url("silver", table, version))
        lake.complete("silver", "", version)
    lake.point("silver", "", "v1")
    assert (_read(lake, "members"), _read(lake, "logs")) == ([1], [1])
    lake.point("silver", "", "v2")
    assert (_read(lake, "members"), _read(lake, "logs")) == ([2], [2])
    assert lake.fs.cat_file(lake.path_of(lake.url("silver", "CURRENT"))) == b"v2"
