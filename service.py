"""The prediction service: the champion imported by ``mlflow run . -e import``, behind BentoML.

    bentoml serve service:ChurnService            # http://127.0.0.1:3000, docs at /docs

``POST /predict`` takes ``{"records": [...]}``: up to ``KKBOX_MAX_REQUEST_RECORDS`` gold rows
(``churn_transform.records.FeatureRecord``), and answers one ``Prediction`` per record, in
order. Concurrent requests are merged by BentoML's adaptive batching (``KKBOX_MAX_BATCH_SIZE``,
``KKBOX_MAX_LATENCY_MS``; a batch size of 1 turns it off). A request with any invalid record
is refused as a whole with a 400 whose ``detail`` lists every fault with its location
(``["records", <index>, <field>]``): nothing in it is scored, so no valid record is dropped
silently while the client believes the batch went through. ``POST /metadata`` describes the
model; ``/readyz``, ``/livez`` and ``/metrics`` are BentoML's. Every prediction is appended to
the traffic log off the request path (``churn_transform.traffic``). The service does no
feature work of its own: the model's transformer does it, exactly as in training.
"""

from __future__ import annotations

import json
import time
import uuid
from functools import cache
from typing import Annotated, Any

import bentoml
import mlflow.sklearn
from bentoml._internal.context import trace_context
from pydantic import Field, PrivateAttr

from churn_transform.records import FeatureRecord, Prediction
from churn_transform.schema import EXAMPLE_RECORD, FEATURES
from churn_transform.settings import Settings
from churn_transform.traffic import TrafficLog

SETTINGS = Settings()
MODEL = bentoml.models.BentoModel(f"{SETTINGS.model_name}:latest")
# KKBOX_MAX_BATCH_SIZE=1 turns adaptive batching off (each request is its own call), which is
# what the load-test harness compares it against.
BATCHING = (
    {"batchable": True, "max_batch_size": SETTINGS.max_batch_size,
     "max_latency_ms": SETTINGS.max_latency_ms}
    if SETTINGS.max_batch_size > 1 else {}
)  # fmt: skip


class Record(FeatureRecord):  # type: ignore[misc, valid-type]
    """A FeatureRecord that remembers the HTTP request it came in (batches mix requests)."""

    _request_id: str = PrivateAttr(default="")

    def model_post_init(self, context: Any) -> None:
        # Validation runs in the request's context, where BentoML has set the request id.
        request_id = trace_context.request_id
        self._request_id = format(request_id, "016x") if request_id else uuid.uuid4().hex


@cache
def metrics() -> dict[str, Any]:
    """The platform's own metrics, created once per worker process, after BentoML has set up
    Prometheus's multiprocess directory (created at import, they would never be exported)."""
    from prometheus_client import Counter, Gauge, Histogram

    return {
        "probability": Histogram(
            "kkbox_churn_probability", "Predicted churn probability",
            buckets=[i / 20 for i in range(1, 21)],
        ),
        "predictions": Counter("kkbox_predictions", "Predictions by decision", ["decision"]),
        "rejected": Counter(
            "kkbox_validation_errors", "Faults in refused requests, by field", ["field"]
        ),
        "model": Gauge(
            "kkbox_model_info", "The served model (value 1)",
            ["version", "run_id", "data_version"], multiprocess_mode="livemax",
        ),
        "queue": Gauge(
            "kkbox_traffic_log_queue_depth", "Predictions waiting to be logged",
            multiprocess_mode="livesum",
        ),
        "lost": Counter(
            "kkbox_traffic_log_dropped", "Predictions the traffic log lost", ["reason"]
        ),
        "logged": Counter("kkbox_traffic_log_written", "Predictions written to the traffic log"),
    }  # fmt: skip


def faulty_fields(body: bytes) -> list[str]:
    """The field of each fault in BentoML's 400 answer: the record's field for
    ``["records", i, field]``, ``records`` for the list itself, ``request`` for the body."""
    try:
        faults = json.loads(body).get("detail", [])
    except (ValueError, AttributeError):
        faults = []
    locations = [fault.get("loc") or ["request"] for fault in faults if isinstance(fault, dict)]
    return [str(location[-1] if len(location) > 2 else location[0]) for location in locations] or [
        "request"
    ]


class CountRefusals:
    """ASGI middleware: counts the faults of every refused /predict request by field.

    BentoML validates the body against ``Record`` before our code runs and answers 400 itself;
    reading that answer is the one place the faults can be seen."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/predict":
            return await self.app(scope, receive, send)
        status, body = 0, []

        async def capture(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and 400 <= status < 500:
                body.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, capture)
        if 400 <= status < 500:
            for field in faulty_fields(b"".join(body)):
                metrics()["rejected"].labels(field=field).inc()


@bentoml.service(traffic={"timeout": 30}, workers=1)
class ChurnService:
    model_ref = MODEL

    def __init__(self) -> None:
        self.model = mlflow.sklearn.load_model(self.model_ref.path_of("mlflow_model"))
        labels, self.about = self.model_ref.info.labels, self.model_ref.info.metadata
        self.version = labels["registry_version"]
        self.threshold = float(self.about["metrics"]["threshold"])
        self.metrics = metrics()
        self.metrics["model"].labels(
            version=self.version, run_id=labels["run_id"], data_version=labels["data_version"]
        ).set(1)
        self.traffic = TrafficLog(
            SETTINGS.traffic_log_uri,
            on_lost=lambda reason, n: self.metrics["lost"].labels(reason=reason).inc(n),
            on_written=self._logged,
        )

    def _logged(self, count: int, depth: int) -> None:
        self.metrics["logged"].inc(count)
        self.metrics["queue"].set(depth)

    @bentoml.api(**BATCHING)
    def predict(
        self,
        records: Annotated[
            list[Record],
            Field(
                min_length=1,
                max_length=SETTINGS.max_request_records,
                examples=[[EXAMPLE_RECORD]],
            ),
        ],
    ) -> list[Prediction]:
        columns = {name: [getattr(r, name) for r in records] for name in FEATURES}
        churn = self.model.predict_proba(columns)[:, 1]
        answers = [
            Prediction(msno=r.msno, churn_probability=p, churn=p >= self.threshold,
                       model_version=self.version)
            for r, p in zip(records, churn.tolist(), strict=True)
        ]  # fmt: skip
        self._observe(records, answers)
        return answers

    def _observe(self, records: list[Record], answers: list[Prediction]) -> None:
        now = time.time()
        for answer in answers:
            self.metrics["probability"].observe(answer.churn_probability)
            self.metrics["predictions"].labels(decision="churn" if answer.churn else "stay").inc()
        self.traffic.append(
            {"ts": now, "request_id": r._request_id, "model_version": self.version,
             "features": r.model_dump(exclude={"msno"}), "msno": r.msno,
             "churn_probability": a.churn_probability, "churn": a.churn}
            for r, a in zip(records, answers, strict=True)
        )  # fmt: skip
        self.metrics["queue"].set(self.traffic.depth)

    @bentoml.api
    def metadata(self) -> dict[str, Any]:
        """The served model: registry version, run, data versions, evaluation metrics."""
        return {
            "model_tag": str(self.model_ref.tag),
            **self.model_ref.info.labels,
            **self.about,
            "max_batch_size": SETTINGS.max_batch_size,
            "max_latency_ms": SETTINGS.max_latency_ms,
        }

    @bentoml.on_shutdown
    def flush_traffic_log(self) -> None:
        self.traffic.close()


ChurnService.add_asgi_middleware(CountRefusals)
