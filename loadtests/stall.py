"""Slow bodies against a running service: ``--connections`` clients send their headers and the
first bytes of a body, then stall, while another client on its own address times ``/predict``.

    python loadtests/stall.py --host http://127.0.0.1:3000                 # 64 from one address
    python loadtests/stall.py --host http://127.0.0.1:3000 --addresses 64  # one address each

The stalling clients connect from 127.0.0.2 on (the loopback range: ``--addresses`` of them),
the timed one from 127.0.0.1. Prints the timed requests' statuses and latency, and how the
service answered each stalled connection (408 once the body timeout passes, or 503 at once when
too many wait). Runs for ``--seconds``; every connection is closed at the end.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from churn_transform.schema import EXAMPLE_RECORD  # noqa: E402


def _stall(host: str, port: int, source: str, body: bytes) -> socket.socket:
    connection = socket.create_connection((host, port), source_address=(source, 0))
    head = (
        f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    connection.sendall(head + body[:10])  # and never the rest
    return connection


def _answer(connection: socket.socket) -> str:
    connection.settimeout(15)
    try:
        return connection.recv(200).split(b"\r\n")[0].decode() or "closed"
    except OSError as error:
        return type(error).__name__
    finally:
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="http://127.0.0.1:3000")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--addresses", type=int, default=1, help="stalling source addresses")
    parser.add_argument("--seconds", type=float, default=12.0)
    args = parser.parse_args()
    host, port = args.host.split("//", 1)[1].rsplit(":", 1)
    record = {"records": [EXAMPLE_RECORD]}
    body = json.dumps(record).encode()
    stalled = [
        _stall(host, int(port), f"127.0.0.{2 + i % args.addresses}", body)
        for i in range(args.connections)
    ]
    time.sleep(0.5)
    took, statuses = [], Counter()
    end = time.monotonic() + args.seconds
    with requests.Session() as session:
        while time.monotonic() < end:
            began = time.monotonic()
            statuses[session.post(f"{args.host}/predict", json=record, timeout=60).status_code] += 1
            took.append(time.monotonic() - began)
            time.sleep(0.2)
    answered = Counter(_answer(connection) for connection in stalled)
    print(
        f"{args.connections} stalled bodies from {args.addresses} address(es); /predict from "
        f"another: {sum(statuses.values())} requests, statuses {dict(statuses)}, median "
        f"{statistics.median(took) * 1000:.0f} ms, max {max(took) * 1000:.0f} ms"
    )
    print(f"the stalled connections were answered: {dict(answered)}")


if __name__ == "__main__":
    main()
