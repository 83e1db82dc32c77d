"""The prediction service: the champion imported by ``mlflow run . -e import``, behind BentoML.

    bentoml serve service:ChurnService    # Swagger UI: http://127.0.0.1:3000/ (not /docs)

``POST /predict`` takes ``{"records": [...]}``: up to ``KKBOX_MAX_REQUEST_RECORDS`` gold rows
(``serving.records.FeatureRecord``, which also refuses a record no member could have:
``churn_transform.serving.plausibility``), and answers one ``Prediction`` per record, in order.
Concurrent requests are merged by BentoML's adaptive batching (``KKBOX_MAX_BATCH_SIZE``,
``KKBOX_MAX_LATENCY_MS``; a batch size of 1 turns it off). A request with any invalid record
is refused as a whole with a 400 whose ``detail`` lists every fault with its location
(``["records", <index>, <field>]``): nothing in it is scored, so no valid record is dropped
silently while the client believes the batch went through. A body that is not JSON (415) or
is over ``KKBOX_MAX_BODY_BYTES`` (413) is refused before BentoML reads it, and overload (over
``KKBOX_MAX_CONCURRENCY`` requests in flight, or the batcher shedding) is a 503 with
``Retry-After``; each refusal is one warning line without the input. With API keys configured
(``KKBOX_API_KEYS``), every call but the health and docs endpoints needs one (401 otherwise),
and ``KKBOX_RATE_LIMIT`` bounds each key's rate (429 with ``Retry-After``); the service refuses
to serve a network address without keys. ``POST /metadata``
describes the model. ``POST /predict_ids`` takes ``{"ids": [...], "cohort": "2017-04"}`` (the
cohort optional) and answers the same ``Prediction`` per id from the features the
``materialize`` step loaded into the online feature store (``serving.online_store``);
unknown ids are a 404 that names them, says where ids come from and gives a few the cohort
holds. ``POST /explain_ids`` answers the same ids as ``/explain`` does. The OpenAPI document
(``/docs.json``) has real examples: the example record for ``/predict`` and ``/explain``, and
for the by-id APIs an id of the newest cohort served, read from the online store when the
document is asked for. ``/readyz``, ``/livez`` and ``/metrics`` are BentoML's.
A worker dies with the ``bentoml serve`` that started it (Linux), and SIGTERM answers the
requests in flight first. Every prediction is appended to the traffic log off the request path
(``churn_transform.serving.traffic``). Every ``KKBOX_CHAMPION_POLL_SECONDS`` each worker checks the
registry's champion alias and, when it names a new version, loads it (trusted types only) and
swaps it in between two batches, without a restart (``churn_transform.serving.follow``); 0 keeps the
model the service started with. A version the ``challenger`` alias names is followed the same way
and scores every answered record after the answer, off its path, for the traffic log only
(``churn_transform.serving.shadow``; docs/challenger.md). The service does no feature work of its
own: the model's transformer does it, exactly as in training.

This module only wires BentoML up: the champion, the request record and the metrics are in
``churn_transform.serving.runtime``, the request guards in ``guards``, keys and rate limits in
``access``. The model is read from the store when the service
starts, not on import, and the class takes a model directly, so ``tests/unit/test_service.py``
calls it and its ASGI app with a model fitted in the test.
"""

from __future__ import annotations

import gc
import logging
import os
import secrets
import shutil
from typing import Annotated, Any, TypeVar

import bentoml
from bentoml.exceptions import BentoMLException, NotFound, ServiceUnavailable
from bentoml.validators import ContentType
from pydantic import Field

from churn_transform.modelling.artifact import load_model
from churn_transform.schema import EXAMPLE_RECORD, MSNO_LENGTH
from churn_transform.serving.access import (
    KeyConfigError,
    KeyRing,
    RequireKeys,
    command_line_host,
    listening_address,
    refuse_open_bind,
)
from churn_transform.serving.follow import FollowChampion
from churn_transform.serving.guards import GuardRequests, ReportRefusals, quiet_refusals
from churn_transform.serving.online_store import (
    OnlineFeatures,
    UnknownCohortError,
    UnknownIdsError,
    online_store,
)
from churn_transform.serving.records import Explained, Prediction
from churn_transform.serving.registry import Registered, aliased, aliased_if_any, fetch
from churn_transform.serving.runtime import (
    REQUEST_ID,
    Champion,
    RequestRecord,
    die_with_parent,
    freeze_heap,
    metrics,
    traffic_entries,
)
from churn_transform.serving.shadow import Shadow
from churn_transform.serving.traffic import TrafficLog
from churn_transform.settings import Settings

log = logging.getLogger(__name__)
#: A subscriber id as the raw files spell it; a longer one cannot be a KKBox id.
SubscriberId = Annotated[str, Field(min_length=1, max_length=MSNO_LENGTH)]
Answer = TypeVar("Answer", bound=Prediction)
#: Every answer is JSON. Said in the return type, BentoML need not work it out again at each
#: response: for a list it otherwise builds the list's whole JSON schema to find the media type.
JSON = ContentType("application/json")
Answers = Annotated[list[Answer], JSON]

# The edge: BentoML reads the batching and the request bound when the class is decorated.
SETTINGS = Settings()
#: The body of /predict and /explain: gold rows, at most KKBOX_MAX_REQUEST_RECORDS of them.
#: ``example`` is the keyword Swagger UI reads in OpenAPI 3.0 (BentoML's); it ignores ``examples``.
Records = Annotated[
    list[RequestRecord],
    Field(
        min_length=1,
        max_length=SETTINGS.max_request_records,
        json_schema_extra={"example": [EXAMPLE_RECORD]},
    ),
]


def served_ids_example(schema: dict[str, Any]) -> None:
    """The OpenAPI example of ``ids``: an id of the newest cohort the running service's online
    store holds, read when the document is built (at each ``/docs.json``); none without a
    running service or a cohort served."""
    try:
        served = bentoml.get_current_service()
    except BentoMLException:  # not instantiated: `bentoml build`, a test of the class
        return
    ids = served.example_ids()
    if ids:
        schema["example"] = ids


#: The body of /predict_ids and /explain_ids: subscriber ids, and the cohort (default: the
#: newest served).
SubscriberIds = Annotated[
    list[SubscriberId],
    Field(
        min_length=1,
        max_length=SETTINGS.max_request_records,
        json_schema_extra=served_ids_example,
    ),
]
Cohort = Annotated[str | None, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]
#: The logger BentoML 1.4 reports a failed request on, traceback and input included: its
#: private ``bentoml._internal.server.http_app`` module's, whose ``log_exception`` the service app
#: calls. No public API names or quiets it, so the name is written here only, and
#: ``tests/unit/test_public_apis.py`` fails on the upgrade that reports elsewhere.
BENTOML_REQUEST_ERRORS = "bentoml._internal.server.http_app"
# KKBOX_MAX_BATCH_SIZE=1 turns adaptive batching off (each request is its own call), which is
# what the load-test harness compares it against.
BATCHING = (
    {
        "batchable": True,
        "max_batch_size": SETTINGS.max_batch_size,
        "max_latency_ms": SETTINGS.max_latency_ms,
    }
    if SETTINGS.max_batch_size > 1
    else {}
)


def load_champion(reference: bentoml.models.BentoModel) -> Champion:
    """The model imported by ``mlflow run . -e import``, read from the BentoML store with the
    project's trusted types only (``modelling.artifact``): a tampered artifact stops the
    service at start with the reason."""
    stored = reference.resolve()
    return Champion(
        model=load_model(stored.path_of("mlflow_model")),
        tag=str(stored.tag),
        labels=dict(stored.info.labels),
        about=dict(stored.info.metadata),
    )


def keyring(settings: Settings) -> KeyRing:
    """The settings' API keys, as digests only; an entry that would let anyone in (an empty key
    or digest) stops the service at start, naming the entry."""
    keys = settings.api_keys.get_secret_value() if settings.api_keys else None
    try:
        return KeyRing.load(keys, settings.api_keys_file)
    except KeyConfigError as refused:
        raise SystemExit(f"KKBOX_API_KEYS: {refused}") from None


@bentoml.service(
    traffic={"timeout": 30},
    workers=SETTINGS.workers,
    logging={"access": {"enabled": SETTINGS.access_log}},
    # BentoML wraps every request in an OpenTelemetry server span, even when it samples none
    # (its default): off unless asked for, the middleware lets every route through untouched
    tracing={} if SETTINGS.tracing else {"excluded_urls": "."},
)
class ChurnService:
    """Churn probabilities of KKBox members from their gold features."""

    # A reference, read when the service starts: declared here so that `bentoml build` packs it.
    model_ref = bentoml.models.BentoModel(f"{SETTINGS.model_name}:latest")

    def __init__(
        self,
        champion: Champion | None = None,
        settings: Settings | None = None,
        online: OnlineFeatures | None = None,
        challenger: Champion | None = None,
    ) -> None:
        """BentoML calls this without arguments (the store's champion, the module's settings,
        the online store they name, the registry's challenger, if any, followed); a test passes
        a model it fitted, settings, an online store and a challenger of its own."""
        self.settings = settings or SETTINGS
        self._online = online
        if bentoml.server_context.worker_index is not None:  # a worker of `bentoml serve`
            die_with_parent(parent=self.settings.server_pid)
            # the socket it was handed: the check below, seen from inside, in case it was missed
            refuse_open_bind(keyring(self.settings), listening_address(), announce=False)
        quiet_refusals(BENTOML_REQUEST_ERRORS, (ServiceUnavailable, NotFound))
        self.champion = champion or load_champion(type(self).model_ref)
        self._bind_apis()
        self.metrics = metrics()
        self._announce(self.champion, 1)
        settings = self.settings
        self.follower = FollowChampion(
            served=lambda: Registered(self.champion.version, self.champion.labels["run_id"]),
            aliased=lambda: aliased(
                settings.tracking_uri, settings.model_name, settings.champion_alias
            ),
            load=self._fetch,
            swap=self._serve,
            # a model handed over by a test is not the registry's: it is not followed
            interval=settings.champion_poll_seconds if champion is None else 0,
            count=lambda outcome: self.metrics["switches"].labels(outcome=outcome).inc(),
        )
        self.follower.start()
        ship = self.settings.traffic_ship_uri
        self.traffic = TrafficLog(
            self.settings.traffic_log_uri,
            on_lost=lambda reason, n: self.metrics["lost"].labels(reason=reason).inc(n),
            on_written=self._logged,
            replica=self.settings.replica_id,
            ship_to=ship,
            storage_options=self.settings.storage_options(ship) if ship else {},
            on_shipped=lambda outcome, n: self.metrics["shipped"].labels(outcome=outcome).inc(n),
        )
        self.shadow = Shadow(
            self.traffic.append,
            count=lambda outcome, n: self.metrics["challenger"].labels(outcome=outcome).inc(n),
        )
        self.shadow.challenger = challenger
        self.challenger_follower = self._follow_challenger(followed=champion is None)
        self.challenger_follower.start()

    def _follow_challenger(self, followed: bool) -> FollowChampion[Champion]:
        """The follower of the ``challenger`` alias: its version loaded into the shadow, moved
        with the alias, dropped when the alias is removed (as often as the champion's)."""
        settings = self.settings

        def served() -> Registered | None:
            challenger = self.shadow.challenger
            return (
                Registered(challenger.version, challenger.labels["run_id"]) if challenger else None
            )

        def shadow_with(challenger: Champion | None) -> None:
            self.shadow.challenger = challenger

        return FollowChampion(
            served=served,
            aliased=lambda: aliased_if_any(
                settings.tracking_uri, settings.model_name, settings.challenger_alias
            ),
            load=self._fetch,
            swap=shadow_with,
            retire=lambda: shadow_with(None),
            interval=settings.champion_poll_seconds if followed else 0,
            count=lambda outcome: self.metrics["challenger_switches"].labels(outcome=outcome).inc(),
            name="challenger",
        )

    def _bind_apis(self) -> None:
        """Bind each API method to this instance once. BentoML's API methods are descriptors
        that build a new bound caller, signature and all, at every attribute access, which its
        server makes twice a request (about a tenth of a worker's time under load, measured
        with py-spy); an attribute of the instance is found before the class's descriptor."""
        for name in ChurnService.apis:
            setattr(self, name, getattr(self, name))

    @bentoml.on_deployment
    @staticmethod
    def refuse_an_open_network_bind() -> None:
        """In ``bentoml serve`` itself, once, before it binds its socket and starts its workers:
        no key, no network; and the workers learn which process they must not outlive (they
        inherit this environment)."""
        refuse_open_bind(keyring(SETTINGS), command_line_host())
        os.environ["KKBOX_SERVER_PID"] = str(os.getpid())
        # a champion followed is downloaded by the workers: one progress bar per file in the log
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    def _announce(self, champion: Champion, value: int) -> None:
        labels = champion.labels
        self.metrics["model"].labels(
            version=champion.version, run_id=labels["run_id"], data_version=labels["data_version"]
        ).set(value)

    def _fetch(self, wanted: Registered) -> Champion:
        """A registry version as a Champion, read with the project's trusted types only."""
        settings = self.settings
        folder, labels, about = fetch(settings.tracking_uri, settings.model_name, wanted.version)
        try:
            model = load_model(folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return Champion(model, f"{settings.model_name}:v{wanted.version}", labels, about)

    def _serve(self, champion: Champion) -> None:
        """Swap the champion in: one assignment, so a batch scores with one model throughout."""
        previous, self.champion = self.champion, champion
        self._announce(previous, 0)
        self._announce(champion, 1)
        if gc.get_freeze_count():  # a worker froze its heap: the old model must not stay in it
            del previous
            freeze_heap()

    @bentoml.on_startup
    def freeze_startup_heap(self) -> None:
        """In a worker of ``bentoml serve``, once it is built (``freeze_heap``)."""
        if bentoml.server_context.worker_index is not None:
            freeze_heap()

    def _logged(self, count: int, depth: int) -> None:
        self.metrics["logged"].inc(count)
        self.metrics["queue"].set(depth)

    @bentoml.api(**BATCHING)
    def predict(
        self,
        records: Records,
    ) -> Answers[Prediction]:
        return self._answered(records, self.champion.predict(records))

    @bentoml.api
    def predict_ids(self, ids: SubscriberIds, cohort: Cohort = None) -> Answers[Prediction]:
        """Churn probabilities of subscribers by id (``msno``), from the gold features of
        ``cohort`` (default: the newest one served) in the online feature store, answered as
        ``/predict`` answers them. Any id the cohort does not hold: 404 naming every such id,
        where ids come from and a few the cohort holds, and nothing scored; a cohort not in the
        store: 404; the store unreachable: 503."""
        records = self.lookup(ids, cohort)
        return self._answered(records, self.champion.predict(records))

    @bentoml.api
    def explain_ids(self, ids: SubscriberIds, cohort: Cohort = None) -> Answers[Explained]:
        """``/explain``'s answers for subscribers by id, their features found and refused as
        ``/predict_ids`` finds and refuses them."""
        records = self.lookup(ids, cohort)
        return self._answered(records, self.champion.explain(records))

    def lookup(self, ids: list[str], cohort: str | None) -> list[RequestRecord]:
        """The record of every id, or the refusal naming the ids and the cohort."""
        try:
            with self.metrics["lookup"].time():
                found = self.online.features(ids, cohort)
        except UnknownIdsError as unknown:
            self.metrics["unknown_ids"].inc(len(unknown.ids))
            raise NotFound(str(unknown)) from None
        except UnknownCohortError as unknown:
            raise NotFound(str(unknown)) from None
        except Exception as failed:
            log.exception("feature store lookup failed")
            raise ServiceUnavailable(f"the feature store did not answer: {failed}") from failed
        return [RequestRecord(**features) for features in found]

    def example_ids(self) -> list[str]:
        """An id of the newest cohort served, for the OpenAPI examples; none when no cohort is
        served or the store does not answer (the document is served all the same)."""
        try:
            return self.online.some_ids(1)
        except UnknownCohortError:
            return []
        except Exception as failed:
            log.warning("no example id for the OpenAPI document: %s", failed)
            return []

    @property
    def online(self) -> OnlineFeatures:
        """The online feature store the settings name, opened at the first use."""
        if self._online is None:
            self._online = OnlineFeatures(
                online_store(self.settings), self.settings.feature_registry_ttl
            )
        return self._online

    @bentoml.api
    def explain(
        self,
        records: Records,
    ) -> Answers[Explained]:
        """``/predict``'s answers with the reason of every feature (exact log-odds shares)."""
        return self._answered(records, self.champion.explain(records))

    def _answered(self, records: list[RequestRecord], answers: list[Answer]) -> list[Answer]:
        """Count and log answers, as every prediction is: records sent, records looked up by
        id, records explained."""
        observe = self.metrics["probability"].observe
        for answer in answers:
            observe(answer.churn_probability)
        # counted once a batch: every increment is a write to Prometheus's shared file
        churned = sum(answer.churn for answer in answers)
        for decision, count in (("churn", churned), ("stay", len(answers) - churned)):
            if count:
                self.metrics["predictions"].labels(decision=decision).inc(count)
        # the version that answered: the champion may have been swapped in since; the
        # challenger, if any, scores the same records once the answer is on its way
        self.shadow.append(traffic_entries(records, answers, answers[0].model_version))
        self.metrics["queue"].set(self.traffic.depth)
        return answers

    @bentoml.api
    def metadata(self) -> Annotated[dict[str, Any], JSON]:
        """The served model: registry version, run, data versions, evaluation metrics."""
        return {
            "model_tag": self.champion.tag,
            **self.champion.labels,
            **self.champion.about,
            "max_batch_size": self.settings.max_batch_size,
            "max_latency_ms": self.settings.max_latency_ms,
        }

    @bentoml.on_shutdown
    def flush_traffic_log(self) -> None:
        self.follower.stop()
        self.challenger_follower.stop()
        self.shadow.close()
        self.traffic.close()


class RequestIds:
    """ASGI middleware, with tracing off: each HTTP request gets a random 64-bit id, which every
    traffic-log line of the request carries and its answer returns as the
    ``X-BentoML-Request-ID`` header, as BentoML does with the request's span id when tracing is
    on. The header is written here, in ASGI, rather than through BentoML's private trace
    context: so every answer has it, refusals by the guards and the keys included."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.randbits(64) or 1
        REQUEST_ID.set(request_id)
        header = (b"x-bentoml-request-id", format(request_id, "016x").encode())

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        await self.app(scope, receive, send_with_id)


# The first added is the outermost: refusals by the keys and the guard are reported too, and a
# caller without a key is refused before the guard reads a byte of its body.
if not SETTINGS.tracing:
    ChurnService.add_asgi_middleware(RequestIds)
ChurnService.add_asgi_middleware(ReportRefusals)
ChurnService.add_asgi_middleware(
    RequireKeys,
    keys=keyring(SETTINGS),
    metrics_need_key=SETTINGS.metrics_need_key,
    rate=SETTINGS.rate_limit,
    burst=SETTINGS.rate_burst,
    counters=metrics,
)
ChurnService.add_asgi_middleware(
    GuardRequests, max_body_bytes=SETTINGS.max_body_bytes, max_concurrency=SETTINGS.max_concurrency
)
