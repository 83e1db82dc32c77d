"""The feature store: Feast's definitions over the gold tables, its configuration built from the
settings, and the loading of a cohort into the online store (lookups: ``online_store.py``).

One Feast project holds one entity, ``subscriber`` (join key ``msno``), and per cohort:

- a feature view per gold version, ``gold_<cohort>_<hash>``, over an offline Parquet copy of that
  gold table in the lake (``feature_store/<cohort>/<hash>.parquet``: ``msno``, the features and
  an ``event_timestamp``, the first day of the cohort, which Feast's ``FileSource`` requires);
- a feature service ``churn_<cohort>`` naming the view that is served.

``publish_cohort`` applies the view, materializes it, and only then points the feature service
(and the map the prediction service reads, ``online_store.py``) at it: a run that fails leaves
the previous version served, and a second run of the same gold writes the same values under the
same names. The prediction service does not import this module (Feast requires Dask).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from churn_transform.etl._feast import (
    Entity,
    FeatureService,
    FeatureServiceNotFoundException,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    Float64,
    RepoConfig,
    String,
    ValueType,
)
from churn_transform.schema import FEATURES
from churn_transform.serving.online_store import OnlineStore
from churn_transform.settings import Settings

log = logging.getLogger(__name__)

ENTITY = Entity(
    name="subscriber",
    join_keys=["msno"],
    value_type=ValueType.STRING,
    description="A KKBox member, by the id of the raw files (msno).",
)
TIMESTAMP = "event_timestamp"
_COHORT = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def _token(cohort: str) -> str:
    if not _COHORT.match(cohort):
        raise ValueError(f"cohort must be YYYY-MM, got {cohort!r}")
    return cohort.replace("-", "_")


def service_name(cohort: str) -> str:
    """The feature service that serves ``cohort``: ``churn_2017_04``."""
    return f"churn_{_token(cohort)}"


def view_name(cohort: str, gold_hash: str) -> str:
    """The feature view of one gold version: ``gold_2017_04_<12 hex of its content hash>``."""
    return f"gold_{_token(cohort)}_{gold_hash[:12]}"


def cohort_start(cohort: str) -> datetime:
    """The event timestamp of every row of ``cohort``: its first day, midnight UTC."""
    _token(cohort)
    return datetime.strptime(cohort, "%Y-%m").replace(tzinfo=UTC)


def repo_config(settings: Settings) -> RepoConfig:
    """Feast's configuration, from the settings instead of a ``feature_store.yaml``: the same
    code runs with a local or an S3 registry, a SQLite or a Redis online store."""
    online: dict[str, Any] = (
        {"type": "redis", "connection_string": settings.redis_connection}
        if settings.online_store == "redis"
        else {"type": "sqlite", "path": settings.online_path}
    )
    return RepoConfig(
        project=settings.feature_project,
        provider="local",
        registry={
            "registry_type": "file",
            "path": settings.registry_path,
            "cache_ttl_seconds": settings.feature_registry_ttl,
        },
        online_store=online,
        offline_store={"type": "file"},
        entity_key_serialization_version=3,
        repo_path=settings.feature_repo,
    )


def feature_store(settings: Settings) -> FeatureStore:
    """The platform's Feast store (its folder is created if missing)."""
    Path(settings.feature_repo).mkdir(parents=True, exist_ok=True)
    return FeatureStore(config=repo_config(settings))


def offline_frame(gold: pd.DataFrame, cohort: str) -> pd.DataFrame:
    """The gold rows as Feast's offline source holds them: id, features, event timestamp."""
    frame = gold[["msno", *FEATURES]].copy()
    frame["msno"] = frame["msno"].astype(str)
    frame["gender"] = frame["gender"].astype(object)
    frame[TIMESTAMP] = pd.Timestamp(cohort_start(cohort))
    return frame


def definitions(
    cohort: str, gold_hash: str, source_uri: str, s3_endpoint: str | None = None
) -> tuple[FeatureView, FeatureService]:
    """The feature view of one gold version, over its offline Parquet, and the feature service
    that serves it."""
    name = view_name(cohort, gold_hash)
    source = FileSource(
        name=name,
        path=source_uri,
        timestamp_field=TIMESTAMP,
        s3_endpoint_override=s3_endpoint,
    )
    view = FeatureView(
        name=name,
        entities=[ENTITY],
        ttl=timedelta(0),
        schema=[Field(name=f, dtype=String if f == "gender" else Float64) for f in FEATURES],
        source=source,
        online=True,
        tags={"cohort": cohort, "gold_hash": gold_hash},
    )
    return view, FeatureService(name=service_name(cohort), features=[view], tags={"cohort": cohort})


@dataclass(frozen=True)
class Published:
    cohort: str
    view: str
    rows: int
    changed: bool


def served_view(store: FeatureStore, cohort: str) -> str | None:
    """The feature view the cohort's feature service names, or None if there is none."""
    try:
        service = store.get_feature_service(service_name(cohort), allow_cache=False)
    except FeatureServiceNotFoundException:
        return None
    return service.feature_view_projections[0].name


def publish_cohort(
    store: FeatureStore,
    online: OnlineStore,
    cohort: str,
    gold_hash: str,
    source_uri: str,
    rows: int,
    s3_endpoint: str | None = None,
) -> Published:
    """Apply the gold version's view, materialize it, then serve it: the feature service and the
    view ``online`` serves the cohort from move to the new view only once every row is in the
    online store."""
    view, service = definitions(cohort, gold_hash, source_uri, s3_endpoint)
    if served_view(store, cohort) == view.name and online.served().get(cohort) == view.name:
        log.info("%s already serves %s: nothing to do", service.name, view.name)
        return Published(cohort, view.name, rows, changed=False)
    store.apply([ENTITY, view])
    start = cohort_start(cohort)
    store.materialize(start, start + timedelta(seconds=1), feature_views=[view.name])
    store.apply([service])
    online.point(cohort, view.name)
    log.info("%s now serves %s (%d rows)", service.name, view.name, rows)
    return Published(cohort, view.name, rows, changed=True)
