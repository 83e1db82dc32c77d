"""The dashboard's reads, cached for every session of the server, each keyed on what its answer
depends on: what may change at any time (the service's answer, the champion alias, the lake's
listings, the traffic) for a few seconds; what never changes once written (a training run's
metrics, a file at a given modification time) until it leaves the cache. The page's "Refresh"
button empties them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from churn_transform.settings import Settings
from dashboard import client
from dashboard.client import Answer, LakeFile

#: Settings are hashed by their values: two sessions with the same settings share the caches.
_BY_VALUE: dict[str | type[Any], Callable[[Any], Any]] = {
    Settings: lambda settings: settings.model_dump_json()
}
#: The service checks the champion alias every 30 s by default (KKBOX_CHAMPION_POLL_SECONDS); a
#: step's new file in the lake is seen as soon.
LISTING_TTL = 30
TRAFFIC_TTL = 15


def _cached(**options: Any) -> Any:
    return st.cache_data(hash_funcs=_BY_VALUE, show_spinner=False, **options)


@_cached(ttl=LISTING_TTL)
def service_metadata(settings: Settings) -> Answer:
    return client.service_metadata(settings)


@_cached(ttl=LISTING_TTL)
def champion_version(settings: Settings) -> Answer:
    return client.champion_version(settings)


@_cached(max_entries=16)
def champion_run(settings: Settings, run_id: str) -> Answer:
    return client.champion_run(settings, run_id)


@_cached(max_entries=16)
def champion_segments(settings: Settings, run_id: str) -> Answer:
    return client.champion_segments(settings, run_id)


def champion(settings: Settings) -> tuple[Answer, Answer]:
    """The champion as the service serves it, else as the registry names it; and the service's
    own answer (its problem says why the registry was asked)."""
    served = service_metadata(settings)
    if served.value:
        return served, served
    version = champion_version(settings)
    if not version.value:
        return version, served
    run = champion_run(settings, version.value["run_id"])
    if not run.value:
        return run, served
    return Answer({**version.value, **run.value}), served


@_cached(ttl=TRAFFIC_TTL, max_entries=8)
def traffic(settings: Settings, days: int) -> Answer:
    return client.traffic(settings, days)


@_cached(ttl=TRAFFIC_TTL, max_entries=8)
def served(settings: Settings, days: int) -> Answer:
    return client.served(settings, days)


@_cached(ttl=LISTING_TTL)
def champion_events(settings: Settings) -> Answer:
    return client.champion_events(settings)


@_cached(ttl=LISTING_TTL, max_entries=32)
def lake_files(settings: Settings, *pattern: str) -> list[LakeFile]:
    return client.lake_files(settings, *pattern)


@_cached(max_entries=256)
def lake_json(settings: Settings, path: str, modified: float) -> Any:
    return client.read_json(settings, path)


@_cached(max_entries=2)
def report_html(settings: Settings, path: str, modified: float) -> str:
    return client.report_html(settings, path)


@_cached(max_entries=8)
def campaign(settings: Settings, path: str, modified: float) -> pd.DataFrame:
    return client.read_campaign(settings, path)


@_cached(max_entries=4)
def scored_cohort(settings: Settings, campaign_path: str, cohort: str, modified: float) -> Answer:
    return client.scored_cohort(settings, campaign_path, cohort)


@_cached(ttl=LISTING_TTL)
def campaign_verdict(settings: Settings) -> Answer:
    return client.campaign_verdict(settings)


@_cached(max_entries=4)
def quality_history(
    settings: Settings, tables: tuple[LakeFile, ...], cycles: tuple[LakeFile, ...]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    return client.quality_history(
        settings, [file.path for file in tables], [file.path for file in cycles]
    )


@_cached(ttl=LISTING_TTL)
def increment_months(settings: Settings) -> list[str]:
    return client.increment_months(settings)


def newest_campaign(settings: Settings, cohort: str | None = None) -> tuple[LakeFile | None, str]:
    """The campaign list of the newest cohort scored (or of ``cohort``), the last one ``score``
    wrote for it; or why there is none. (Scoring a past cohort again, to measure it, does not
    make its list the one to act on.)"""
    files = [
        file
        for file in lake_files(settings, "predictions", "*", "*", "campaign.csv")
        if cohort in (None, file.cohort)
    ]
    if not files:
        where = f"predictions/{cohort}" if cohort else "predictions"
        return None, f"no campaign list under {where} in the lake"
    return max(files, key=lambda file: (file.cohort, file.modified)), ""


def clear() -> None:
    st.cache_data.clear()
