"""Several replicas, one picture: two real services, each with its own local traffic folder,
ship their traffic-log files to one S3 prefix, and one drift run reads both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.conftest import Champion, drift_command, records_of, run_step, serve, stop

pytestmark = pytest.mark.integration


def _send(url: str, records: list[dict], batch: int = 50) -> None:
    with requests.Session() as session:
        for start in range(0, len(records), batch):
            answer = session.post(
                f"{url}/predict", json={"records": records[start : start + batch]}, timeout=30
            )
            assert answer.status_code == 200, answer.text


def test_one_drift_run_reads_the_traffic_every_replica_shipped(
    champion: Champion,
    s3_endpoint: str,
    s3_bucket: str,
    s3_options: dict[str, object],
    tmp_path: Path,
) -> None:
    import fsspec

    lake = f"{s3_bucket}/traffic"
    env = {
        **champion.env,
        "KKBOX_TRAFFIC_SHIP_URI": lake,
        "KKBOX_S3_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    records = records_of(champion.gold("2017-03"))
    shares = {"replica-a": records[:150], "replica-b": records[150:270]}
    replicas = []
    for name in shares:  # both up at once, as behind one load balancer
        local = tmp_path / name
        replicas.append(
            serve({**env, "KKBOX_REPLICA_ID": name, "KKBOX_TRAFFIC_LOG_URI": str(local)})
        )
    try:
        for (_, url), sent in zip(replicas, shares.values(), strict=True):
            _send(url, sent)
    finally:
        for process, _ in replicas:
            stop(process)  # SIGTERM: the last file is flushed and shipped

    s3 = fsspec.filesystem("s3", **s3_options)
    shipped = s3.glob(f"{lake.removeprefix('s3://')}/*/traffic-*.jsonl")
    assert {Path(p).name.split("-")[2] for p in shipped} == {"a", "b"}, shipped
    assert not list(s3.glob(f"{lake.removeprefix('s3://')}/**/*.partial"))

    env = {**env, "KKBOX_TRAFFIC_LOG_URI": str(tmp_path / "not-read")}  # the lake, not a folder
    printed = run_step(env, *drift_command())
    assert "no predictions logged" not in printed, printed
    root = Path(champion.env["KKBOX_LAKE_URI"]) / "monitoring" / "drift"
    latest = max(root.glob("*/summary.json"), key=lambda p: p.stat().st_mtime)
    summary = json.loads(latest.read_text())
    assert summary["window_predictions"] == 270 == summary["current_rows"]
