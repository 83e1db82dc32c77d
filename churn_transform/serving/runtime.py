"""What the prediction service is made of besides BentoML's wiring: the served champion, the
request record that remembers its HTTP request, the platform's metrics, and the tie of a
worker's life to its parent's. The middleware that guards the API is in ``guards.py``, the
keys and rate limits in ``access.py``.

Nothing here imports BentoML or MLflow: ``service.py`` loads the champion from the BentoML store
and hands it over, and a test can hand over a model it fitted a moment before.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

from opentelemetry import trace
from pydantic import PrivateAttr

from churn_transform.modelling.explanation import explain
from churn_transform.schema import FEATURES
from churn_transform.serving.records import Explained, FeatureRecord, Prediction, Reason

logger = logging.getLogger(__name__)


#: The id the service's middleware gave the HTTP request being handled, when tracing is off.
REQUEST_ID: ContextVar[int | None] = ContextVar("kkbox_request_id", default=None)
#: The name of the API key the request being handled came with (``access.RequireKeys`` sets it);
#: None where the API is open.
CLIENT: ContextVar[str | None] = ContextVar("kkbox_client", default=None)


def current_request_id() -> str:
    """The id of the HTTP request being handled, in 16 hex digits, as the request's
    ``X-BentoML-Request-ID`` header returns it: the one ``REQUEST_ID`` holds (tracing off: the
    service's middleware returns it), else the span id of the request's OpenTelemetry server
    span (BentoML returns it). Outside any request (a direct call), a fresh random id."""
    given = REQUEST_ID.get()
    if given is not None:
        return format(given, "016x")
    span = trace.get_current_span().get_span_context()
    return format(span.span_id, "016x") if span.is_valid else uuid.uuid4().hex


class RequestRecord(FeatureRecord):  # type: ignore[misc, valid-type]
    """A FeatureRecord that remembers the HTTP request it came in (batches mix requests)."""

    _request_id: str = PrivateAttr(default="")
    _client: str | None = PrivateAttr(default=None)

    def model_post_init(self, context: Any) -> None:
        # Validation runs in the request's own context; the batch that scores it does not.
        self._request_id = current_request_id()
        self._client = CLIENT.get()

    @property
    def request_id(self) -> str:
        return self._request_id

    @property
    def client(self) -> str | None:
        """The name of the API key the record came with (None: the API is open)."""
        return self._client


class Classifier(Protocol):
    def predict_proba(self, X: Any) -> Any: ...


@dataclass(frozen=True)
class Champion:
    """The served model and what the service says about it.

    ``model`` takes a mapping of column name to values (``ChurnModel`` does); ``labels`` are the
    store's labels (``registry_version``, ``run_id``, ``data_version``...), ``about`` its
    metadata, whose ``metrics`` hold the decision ``threshold`` chosen in training.
    """

    model: Classifier
    tag: str
    labels: dict[str, str]
    about: dict[str, Any]

    @property
    def version(self) -> str:
        return self.labels["registry_version"]

    @property
    def threshold(self) -> float:
        return float(self.about["metrics"]["threshold"])

    def predict(self, records: Sequence[RequestRecord]) -> list[Prediction]:
        """One answer per record, in order; the model's own transformer does the feature work."""
        churn = self.model.predict_proba(_columns(records))[:, 1].tolist()
        return [
            Prediction(
                msno=r.msno,
                churn_probability=p,
                churn=p >= self.threshold,
                model_version=self.version,
            )
            for r, p in zip(records, churn, strict=True)
        ]

    def explain(self, records: Sequence[RequestRecord]) -> list[Explained]:
        """``predict``'s answers with every feature's reason (``modelling.explanation``)."""
        columns = _columns(records)
        explanation = explain(self.model, columns)  # type: ignore[arg-type]
        reasons = explanation.records(columns)
        return [
            Explained(
                **answer.model_dump(),
                base_log_odds=explanation.base,
                reasons=[Reason(**reason) for reason in why],
            )
            for answer, why in zip(self.predict(records), reasons, strict=True)
        ]


def _columns(records: Sequence[RequestRecord]) -> dict[str, list[Any]]:
    return {name: [getattr(r, name) for r in records] for name in FEATURES}


def traffic_entries(
    records: Sequence[RequestRecord], answers: Sequence[Prediction], model_version: str
) -> Iterator[dict[str, Any]]:
    """The traffic log's line for each answer: its request, features and what was answered."""
    now = time.time()
    for record, answer in zip(records, answers, strict=True):
        # the validated fields as they are (a float, a string or None each): model_dump's
        # copy, without its cost per record
        features = dict(vars(record))
        del features["msno"]
        yield {
            "ts": now,
            "request_id": record.request_id,
            "model_version": model_version,
            "features": features,
            "msno": record.msno,
            "client": record.client,
            "churn_probability": answer.churn_probability,
            "churn": answer.churn,
        }


#: The reasons and outcomes ``serving.traffic.TrafficLog`` counts through on_lost and on_shipped.
TRAFFIC_LOSSES = ("queue_full", "not_json", "write_failed")
SHIPMENT_OUTCOMES = ("shipped", "failed")


@cache
def metrics() -> dict[str, Any]:
    """The platform's own metrics, created once per worker process, after BentoML has set up
    Prometheus's multiprocess directory (created at import, they would never be exported)."""
    from prometheus_client import Counter, Gauge, Histogram

    found = {
        "probability": Histogram(
            "kkbox_churn_probability",
            "Predicted churn probability",
            buckets=[i / 20 for i in range(1, 21)],
        ),
        "predictions": Counter("kkbox_predictions", "Predictions by decision", ["decision"]),
        "rejected": Counter(
            "kkbox_validation_errors", "Faults in refused requests, by field", ["field"]
        ),
        "model": Gauge(
            "kkbox_model_info",
            "The served model (value 1)",
            ["version", "run_id", "data_version"],
            multiprocess_mode="livemax",
        ),
        "queue": Gauge(
            "kkbox_traffic_log_queue_depth",
            "Predictions waiting to be logged",
            multiprocess_mode="livesum",
        ),
        "lost": Counter(
            "kkbox_traffic_log_dropped", "Predictions the traffic log lost", ["reason"]
        ),
        "logged": Counter("kkbox_traffic_log_written", "Predictions written to the traffic log"),
        "shipped": Counter(
            "kkbox_traffic_log_shipments",
            "Traffic-log files shipped to KKBOX_TRAFFIC_SHIP_URI (outcome=shipped) and failed "
            "attempts, retried at the next rotation (outcome=failed)",
            ["outcome"],
        ),
        "lookup": Histogram(
            "kkbox_feature_lookup_seconds",
            "Time of one request's read of the online feature store (requests by id)",
            buckets=[0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0],
        ),
        "unknown_ids": Counter(
            "kkbox_unknown_ids", "Subscriber ids asked for that the feature store does not hold"
        ),
        "unauthorized": Counter(
            "kkbox_unauthorized", "Requests refused 401, by reason (missing, wrong)", ["reason"]
        ),
        "limited": Counter(
            "kkbox_rate_limited", "Requests refused 429 over a key's rate, by key name", ["key"]
        ),
        "switches": Counter(
            "kkbox_champion_switches",
            "Champion checks that switched to a new version, refused one (not a model this "
            "project trained) or could not reach the registry, by outcome",
            ["outcome"],
        ),
    }
    # exported at 0 from the start: a series born at its first failure shows no increase(), and
    # the alerts on lost records and failed shipments (deploy/prometheus/alerts.yml) need one
    for reason in TRAFFIC_LOSSES:
        found["lost"].labels(reason=reason)
    for outcome in SHIPMENT_OUTCOMES:
        found["shipped"].labels(outcome=outcome)
    return found


def freeze_heap() -> None:
    """Collect what is garbage now, then exempt every object left from later collections
    (``gc.freeze``): the libraries, the model and the server a worker has built. A full
    collection walks them all (benchmarks/README.md: the service's overhead), and in a worker
    it stalls the event loop, long enough for BentoML's batcher to shed the requests queued
    behind it (503). Objects made later are collected as before."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(signal_number: int = signal.SIGTERM, parent: int | None = None) -> bool:
    """Have the kernel send this process ``signal_number`` when its parent dies (Linux's
    ``prctl(PR_SET_PDEATHSIG)``); False, and nothing done, on other systems.

    ``bentoml serve`` runs its workers through circus, which starts each in a session of its
    own: killing the server's process group, or the server with SIGKILL, would leave a worker
    serving on the port as an orphan. With this, the worker gets SIGTERM and shuts down as
    gracefully as when the server stops it. A parent that died before the call (in the seconds
    a worker takes to start) is noticed by its pid: when this process's parent is no longer
    ``parent``, the signal is sent at once."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal_number, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl(PR_SET_PDEATHSIG): {os.strerror(error)}")
    if parent is not None and os.getppid() != parent:  # orphaned before the call
        logger.warning("the server (pid %d) is gone: this worker stops", parent)
        os.kill(os.getpid(), signal_number)
    return True
