"""The service's request ids with tracing off (``service.RequestIds``): drawn per request, seen by
the code that answers it (and so by its traffic-log lines), returned as the response's
``X-BentoML-Request-ID`` header whoever answers, BentoML or a guard refusing the request."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from churn_transform.serving.runtime import current_request_id
from service import RequestIds


async def _answer(request: Any) -> JSONResponse:
    return JSONResponse({"seen": current_request_id()}, status_code=200)


async def _refuse(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await JSONResponse({"error": "refused"}, status_code=503)(scope, receive, send)


def test_each_answer_returns_the_id_its_handler_saw() -> None:
    app = RequestIds(Starlette(routes=[Route("/predict", _answer, methods=["POST"])]))
    with TestClient(app) as client:
        answers = [client.post("/predict") for _ in range(3)]
    ids = [a.headers["X-BentoML-Request-ID"] for a in answers]
    assert ids == [a.json()["seen"] for a in answers]
    assert len(set(ids)) == 3 and all(len(i) == 16 and int(i, 16) for i in ids)
    assert all(len(a.headers.get_list("X-BentoML-Request-ID")) == 1 for a in answers)  # once


def test_a_refusal_before_bentoml_has_an_id_too() -> None:
    refused = TestClient(RequestIds(_refuse)).post("/predict")  # no lifespan: HTTP only
    assert refused.status_code == 503 and len(refused.headers["X-BentoML-Request-ID"]) == 16
