"""The monthly proof's client retries what the service asks it to retry later, as a real client
does: a 503 or 429 with ``Retry-After`` is not a failed request unless it never succeeds."""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType

import pytest
import requests

from churn_transform.settings import PROJECT_ROOT


def _monthly() -> ModuleType:
    spec = importlib.util.spec_from_file_location("monthly", PROJECT_ROOT / "benchmarks/monthly.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["monthly"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


monthly = _monthly()


def _server(statuses: list[int]) -> Iterator[str]:
    """A server answering the given statuses in turn (then 200), each 503/429 with Retry-After 0."""
    answered: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            self.rfile.read(int(self.headers["Content-Length"]))
            status = statuses[len(answered)] if len(answered) < len(statuses) else 200
            answered.append(status)
            body = b'[{"model_version": "1"}]' if status == 200 else b'"overloaded"'
            self.send_response(status)
            if status in (429, 503):
                self.send_header("Retry-After", "0")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def shedding() -> Iterator[str]:
    yield from _server([503, 429, 503])


@pytest.fixture
def overloaded() -> Iterator[str]:
    yield from _server([503] * 100)


def test_an_answer_asking_to_retry_later_is_retried_and_counted(shedding: str) -> None:
    sender = monthly.Sender(shedding)
    with requests.Session() as session:
        answer = sender.send(session, {"ids": ["x"]})
    assert answer.status_code == 200
    assert sender.retried == 3


def test_a_request_that_never_succeeds_still_fails_after_bounded_retries(overloaded: str) -> None:
    sender = monthly.Sender(overloaded)
    with requests.Session() as session:
        answer = sender.send(session, {"ids": ["x"]})
    assert answer.status_code == 503
    assert sender.retried == monthly.RETRIES
