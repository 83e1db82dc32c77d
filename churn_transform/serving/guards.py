"""The ASGI middleware in front of the prediction API, and what keeps refusals short: the guard
(content type, body size, overload with ``Retry-After``) that runs before BentoML reads a body,
the report of every refused request (one warning line naming fields, never values, and its
count), and the log filter that keeps BentoML from quoting a refused input.

Nothing here imports BentoML: ``service.py`` adds the middleware to its app.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from churn_transform.schema import FEATURES
from churn_transform.serving.runtime import metrics

logger = logging.getLogger(__name__)

#: Where a fault names something the request model does not know (an unknown key), its label:
#: a client must not choose log text or metric label values.
UNKNOWN_FIELD = "unknown"
_KNOWN_FIELDS = frozenset({"msno", *FEATURES, "records", "request"})
#: Seconds an overloaded service asks a client to wait (the batcher clears its queue in less).
RETRY_AFTER_SECONDS = 1
#: Seconds a request's body may take to arrive whole once its headers are in: a record list of
#: the largest size allowed takes milliseconds on any link a client would serve from.
BODY_TIMEOUT_SECONDS = 10.0
#: Requests from one client address that may wait for their body at once: a client's own
#: concurrent requests send theirs at once, so only a stalling one ever has many waiting.
WAITING_PER_CLIENT = 16
OVERLOADED = f"The service is overloaded; retry after {RETRY_AFTER_SECONDS} s."


def faulty_fields(body: bytes) -> list[str]:
    """The field of each fault in BentoML's 400 answer: the record's field for
    ``["records", i, field]``, ``records`` for the list itself, ``request`` for the body;
    ``UNKNOWN_FIELD`` for a name the record model does not have."""
    try:
        faults = json.loads(body).get("detail", [])
    except (ValueError, AttributeError):
        faults = []
    locations = [fault.get("loc") or ["request"] for fault in faults if isinstance(fault, dict)]
    fields = [str(loc[-1] if len(loc) > 2 else loc[0]) for loc in locations] or ["request"]
    return [field if field in _KNOWN_FIELDS else UNKNOWN_FIELD for field in fields]


async def answer(
    send: Any, status: int, error: str, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """A JSON ``{"error": ...}`` answer, as BentoML gives its own refusals."""
    body = json.dumps({"error": error}).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*head, *headers]})
    await send({"type": "http.response.body", "body": body})


class ReportRefusals:
    """ASGI middleware: every refused API request (a 4xx or a 503) is logged as one WARNING line
    (status, method, path, and the faulty fields of a 400, never a value sent), and the faults
    of each are counted by field in ``kkbox_validation_errors_total``.

    BentoML validates the body against ``RequestRecord`` before our code runs and answers 400
    itself; reading that answer is the one place the faults can be seen. Its own ERROR traceback for
    the same request, which quotes the input, is dropped by ``QuietRefusals``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        status, body = 0, []

        async def capture(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and _refused(status):
                body.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, capture)
        if not _refused(status):
            return
        fields = faulty_fields(b"".join(body)) if status < 500 else []
        for field in fields:
            metrics()["rejected"].labels(field=field).inc()
        reason = _reason(status, b"".join(body), fields)
        logger.warning("refused %d %s %s: %s", status, scope["method"], scope["path"], reason)


def _refused(status: int) -> bool:
    return 400 <= status < 500 or status == 503


def _reason(status: int, body: bytes, fields: list[str]) -> str:
    """A refusal's reason fit for the log: the faulty fields of a 400, our own message of a 401,
    408, 413, 415, 429 or 503, and nothing more of a 404 or 405."""
    if status == 400:
        return "invalid " + ", ".join(sorted(set(fields)))
    try:
        ours = status in (401, 408, 413, 415, 429, 503)
        return str(json.loads(body)["error"])[:120] if ours else "refused"
    except (ValueError, KeyError, TypeError):
        return "refused"


class QuietRefusals(logging.Filter):
    """Drops BentoML's ERROR traceback, which quotes the input, for a request refused on purpose:
    a body its request model refused (pydantic's ValidationError of the model BentoML names
    ``Input``) or a request refused by an exception of ``shed`` (BentoML's ServiceUnavailable
    of a shed request, its NotFound of unknown ids: whose traceback quotes every id sent).
    ``ReportRefusals`` logs each as one WARNING line instead; every other exception, a
    ValidationError raised while answering included, keeps its traceback."""

    def __init__(self, shed: type[BaseException] | tuple[type[BaseException], ...]) -> None:
        super().__init__()
        self.shed = shed

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        refused = isinstance(error, ValidationError) and error.title == "Input"
        return not (refused or isinstance(error, self.shed))


def quiet_refusals(
    logger_name: str, shed: type[BaseException] | tuple[type[BaseException], ...]
) -> None:
    """Put ``QuietRefusals`` on the logger BentoML reports request errors with (once)."""
    target = logging.getLogger(logger_name)
    if not any(isinstance(f, QuietRefusals) for f in target.filters):
        target.addFilter(QuietRefusals(shed))


class GuardRequests:
    """ASGI middleware in front of BentoML's API routes (every POST): what BentoML would accept
    or choke on is refused before it reads the body.

    - A content type other than JSON gets 415, and so does a body sent without one (BentoML
      would parse it as JSON anyway). A POST without a body needs no content type.
    - A body over ``max_body_bytes`` gets 413: at once when its Content-Length says so, else
      when the bytes read pass the limit (reading stops there, so memory stays bounded).
    - A body that has not arrived whole within ``body_timeout`` seconds gets 408. At most
      ``max_waiting`` requests wait for their body at once, and at most ``waiting_per_client``
      from one client address (more get 503 with ``Retry-After``); a request counts towards
      ``max_concurrency`` only once its body is read: clients that send headers and stall their
      bodies can neither hold the slots of the requests that are ready nor, from one address,
      crowd out the others' bodies.
    - Beyond ``max_concurrency`` requests in flight in this worker, 503 with ``Retry-After``.
      BentoML's adaptive batcher sheds load too, with a bare 503 "An unexpected error has
      occurred"; that answer is replaced by the same clear one.
    """

    def __init__(
        self,
        app: Any,
        max_body_bytes: int,
        max_concurrency: int,
        body_timeout: float = BODY_TIMEOUT_SECONDS,
        max_waiting: int | None = None,
        waiting_per_client: int = WAITING_PER_CLIENT,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_concurrency = max_concurrency
        self.body_timeout = body_timeout
        self.max_waiting = 4 * max_concurrency if max_waiting is None else max_waiting
        self.waiting_per_client = waiting_per_client
        self.in_flight = self.waiting = 0
        self.waiting_by_client: dict[str, int] = {}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        client = (scope.get("client") or ("unknown", 0))[0]
        waiting = self.waiting_by_client.get(client, 0)
        if self.waiting >= self.max_waiting or waiting >= self.waiting_per_client:
            return await _overloaded(send)
        self.waiting += 1
        self.waiting_by_client[client] = waiting + 1
        try:
            body = await self._body(scope, receive, send)
        finally:
            self.waiting -= 1
            if self.waiting_by_client[client] == 1:
                del self.waiting_by_client[client]
            else:
                self.waiting_by_client[client] -= 1
        if body is None:  # refused, and answered
            return
        if self.in_flight >= self.max_concurrency:
            return await _overloaded(send)
        self.in_flight += 1
        try:
            await self.app(scope, _replay(body, receive), _clear_overload(send))
        finally:
            self.in_flight -= 1

    async def _body(self, scope: dict, receive: Any, send: Any) -> bytes | None:
        """The request's body, or None once a refusal is answered."""
        headers = _wanted_headers(scope["headers"])
        media_type = headers.get(b"content-type", "").split(";")[0].strip().lower()
        if media_type and not _is_json(media_type):
            await answer(
                send, 415, f"Content-Type must be application/json, not {media_type[:40]!r}."
            )
            return None
        too_large = f"The request body is over {self.max_body_bytes} bytes."
        declared = headers.get(b"content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await answer(send, 413, too_large)
            return None
        try:
            body = await asyncio.wait_for(
                _read_body(receive, self.max_body_bytes), self.body_timeout
            )
        except TimeoutError:
            late = f"The request body did not arrive within {self.body_timeout:g} s."
            await answer(send, 408, late, [(b"connection", b"close")])
            return None
        if body is None:
            await answer(send, 413, too_large)
            return None
        if body and not media_type:
            await answer(send, 415, "Content-Type must be application/json.")
            return None
        return body


def _wanted_headers(headers: list[tuple[bytes, bytes]]) -> dict[bytes, str]:
    """The request's Content-Type and Content-Length, the only headers the guard reads."""
    return {
        name.lower(): value.decode("latin-1")
        for name, value in headers
        if name.lower() in (b"content-type", b"content-length")
    }


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


async def _read_body(receive: Any, limit: int) -> bytes | None:
    """The request body, or None as soon as it passes ``limit`` bytes."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":  # the client went away: no one reads the answer
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > limit:
            return None
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes, receive: Any) -> Any:
    """A ``receive`` that hands the body already read to the app, then passes on the rest."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> dict:
        return pending.pop() if pending else await receive()

    return replay


async def _overloaded(send: Any, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    retry = [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())]
    await answer(send, 503, OVERLOADED, [*headers, *retry])


def _clear_overload(send: Any) -> Any:
    """A ``send`` that turns the app's 503 into the clear overload answer (its headers kept)."""
    shed: list[tuple[bytes, bytes]] | None = None

    async def forward(message: dict) -> None:
        nonlocal shed
        if message["type"] == "http.response.start" and message["status"] == 503:
            shed = [
                (k, v)
                for k, v in message.get("headers", [])
                if k.lower() not in (b"content-type", b"content-length")
            ]
        elif shed is None:
            await send(message)
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            await _overloaded(send, shed)

    return forward
