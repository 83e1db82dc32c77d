"""The yardstick of the service's overhead: the same champion behind a bare ASGI app.

    python loadtests/baseline.py --port 3001          # what `run.py baseline` starts

One Starlette app on uvicorn, one worker, one route: ``POST /predict`` takes the service's own
request body (``service.Records``, the same pydantic record model, the same bounds), answers the
same ``Prediction`` per record, and calls the model once per request, in the event loop. It has
no adaptive batching, no metrics, no traffic log, no keys, no guards and no middleware: what it
costs is what any Python server must pay for a validated request and one model call, so the
service's figures beside it (``run.py baseline``, one run) show what the service adds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn
from pydantic import TypeAdapter, ValidationError, create_model
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from churn_transform.serving.records import Prediction  # noqa: E402
from churn_transform.serving.runtime import Champion  # noqa: E402


def bare_app(champion: Champion, records: object) -> Starlette:
    """``POST /predict`` of ``champion``, its body ``{"records": <records>}`` (an annotated
    list type), validated as the service validates it, and ``GET /readyz``."""

    body_model = create_model("Body", records=(records, ...))
    answers = TypeAdapter(list[Prediction])

    async def predict(request: Request) -> Response:
        try:
            body = body_model.model_validate_json(await request.body())
        except ValidationError as error:
            faults = error.errors(include_context=False, include_input=False)
            return JSONResponse({"detail": faults}, status_code=400)
        return Response(
            answers.dump_json(champion.predict(body.records)), 200, None, "application/json"
        )

    async def ready(_: Request) -> Response:
        return Response(b"ok")

    return Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/readyz", ready)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3001)
    args = parser.parse_args()
    # the service's module: its record list, and the champion read from the BentoML store as
    # the service reads it
    from service import ChurnService, Records, load_champion

    app = bare_app(load_champion(ChurnService.inner.model_ref), Records)
    uvicorn.run(
        app, host=args.host, port=args.port, workers=1, log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()
