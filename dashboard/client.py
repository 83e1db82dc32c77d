"""What the dashboard reads, each source on its own: the service, the MLflow registry, the traffic
log and the files the steps leave in the lake. Every function answers ``None`` (or an empty list)
with a reason when its source is missing, so the page can say what to run instead of failing.
Nothing here caches: ``dashboard/reads.py`` does, keyed on what each answer depends on.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import requests

from churn_transform.lake import lake_of
from churn_transform.monitoring.predictions import read_campaign_list, read_scored
from churn_transform.monitoring.verdict import newest_verdict
from churn_transform.serving.traffic import read_served, read_traffic
from churn_transform.settings import Settings, masked

#: MLflow's HTTP client retries a failed call 7 times with a backoff of 2 (about 4 minutes a
#: call, made for rate-limited servers), and waits 120 s for an answer: a registry that is down
#: held the page for 502 s. The dashboard asks once more at once and waits 5 s, unless the user
#: set MLflow's own variables.
REGISTRY_PATIENCE = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
}


def bound_registry_calls() -> None:
    """Bound the time of each MLflow call this process makes (``REGISTRY_PATIENCE``)."""
    for name, value in REGISTRY_PATIENCE.items():
        os.environ.setdefault(name, value)


@dataclass
class Answer:
    """A value, or why there is none."""

    value: Any = None
    problem: str = ""


@dataclass(frozen=True)
class LakeFile:
    """A file a step wrote in the lake: where, when, and the cohort its path names, if any."""

    path: str
    modified: float
    cohort: str = ""


def service_metadata(settings: Settings) -> Answer:
    try:
        answer = requests.post(
            f"{settings.service_url}/metadata",
            json={},
            headers=settings.service_headers(),
            timeout=3,
        )
        answer.raise_for_status()
        return Answer(answer.json())
    except requests.RequestException as err:
        reason = type(err).__name__
        return Answer(
            problem=masked(f"the service at {settings.service_url} does not answer ({reason})")
        )


def _registry_problem(settings: Settings, what: str, err: Exception) -> Answer:
    reason = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
    return Answer(problem=masked(f"{what} in the registry at {settings.tracking_uri} ({reason})"))


def champion_version(settings: Settings) -> Answer:
    """The version the champion alias names now: ``registry_version`` and ``run_id``."""
    import mlflow

    try:
        client = mlflow.MlflowClient(settings.tracking_uri)
        version = client.get_model_version_by_alias(settings.model_name, settings.champion_alias)
    except Exception as err:  # noqa: BLE001 (any failure means: no champion to show)
        return _registry_problem(settings, "no champion", err)
    return Answer({"registry_version": str(version.version), "run_id": version.run_id})


def champion_run(settings: Settings, run_id: str) -> Answer:
    """What the champion's training run logged: data version, metrics, start time."""
    import mlflow

    try:
        run = mlflow.MlflowClient(settings.tracking_uri).get_run(run_id)
    except Exception as err:  # noqa: BLE001
        return _registry_problem(settings, f"no run {run_id}", err)
    return Answer(
        {
            "data_version": run.data.tags.get("gold_hash.train", "")[:12],
            "metrics": dict(run.data.metrics),
            "trained_at": run.info.start_time,
        }
    )


def champion_segments(settings: Settings, run_id: str) -> Answer:
    """The champion's metrics per segment on its evaluation cohort, logged by ``train``."""
    import mlflow

    try:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id,
            artifact_path="evaluation/segments.json",
            tracking_uri=settings.tracking_uri,
        )
    except Exception as err:  # noqa: BLE001 (any failure means: nothing to show)
        return _registry_problem(settings, "no segment metrics of the champion", err)
    return Answer(pd.read_json(path, orient="split"))


def _call(settings: Settings, endpoint: str, body: dict[str, Any]) -> tuple[int, Any]:
    """The service's status and answer (its own error body on a 4xx) for ``body``."""
    answer = requests.post(
        f"{settings.service_url}/{endpoint}",
        json=body,
        headers=settings.service_headers(),
        timeout=10,
    )
    try:
        return answer.status_code, answer.json()
    except ValueError:
        return answer.status_code, answer.text


def score(settings: Settings, record: dict[str, Any]) -> tuple[int, Any]:
    """The service's status and answer for one record."""
    return _call(settings, "predict", {"records": [record]})


def _by_id(msno: str, cohort: str | None) -> dict[str, Any]:
    return {"ids": [msno], **({"cohort": cohort} if cohort else {})}


def score_id(settings: Settings, msno: str, cohort: str | None) -> tuple[int, Any]:
    """The service's status and answer for one subscriber id, its features looked up in the
    online feature store (in ``cohort``, or the newest served)."""
    return _call(settings, "predict_ids", _by_id(msno, cohort))


def explain(settings: Settings, record: dict[str, Any]) -> tuple[int, Any]:
    """The service's answer with reasons for one record (``POST /explain``)."""
    return _call(settings, "explain", {"records": [record]})


def explain_id(settings: Settings, msno: str, cohort: str | None) -> tuple[int, Any]:
    """The answer with reasons for one subscriber id (``POST /explain_ids``), its features
    looked up as ``score_id`` looks them up; 404 naming an unknown id."""
    return _call(settings, "explain_ids", _by_id(msno, cohort))


def traffic(settings: Settings, days: int, max_rows: int = 100_000) -> Answer:
    last = datetime.now(UTC).date()
    first = last - timedelta(days=days - 1)
    source = settings.traffic_uri  # every replica's shipped files, or the local folder
    frame, seen = read_traffic(
        source,
        str(first),
        str(last),
        max_rows=max_rows,
        storage_options=settings.storage_options(source),
    )
    if frame.empty:
        return Answer(problem=f"no predictions logged under {masked(source)} since {first}")
    frame["time"] = pd.to_datetime(frame["ts"], unit="s", utc=True)
    return Answer(frame.sort_values("time", ignore_index=True))


def served(settings: Settings, days: int) -> Answer:
    """The time and model version of every prediction logged in the last ``days`` days."""
    last = datetime.now(UTC).date()
    first = last - timedelta(days=days - 1)
    source = settings.traffic_uri
    options = settings.storage_options(source)
    frame = read_served(source, str(first), str(last), storage_options=options)
    if frame.empty:
        return Answer(problem=f"no predictions logged under {masked(source)} since {first}")
    return Answer(frame)


def champion_events(settings: Settings) -> Answer:
    """Every promotion and rollback of the champion the registry's tags keep, oldest first."""
    from churn_transform.modelling.rollback import champion_events as events

    try:
        return Answer(events(settings))
    except Exception as err:  # noqa: BLE001 (any failure means: no history to show)
        return _registry_problem(settings, "no champion history", err)


def lake_files(settings: Settings, *pattern: str) -> list[LakeFile]:
    """The lake's files matching ``pattern`` (parts under the lake's root, globs allowed),
    oldest path first; the cohort is the first part under the root that reads YYYY-MM."""
    lake = lake_of(settings)
    root = lake.path_of(lake.url())
    try:
        found = sorted(lake.fs.glob(lake.path_of(lake.url(*pattern))))
    except FileNotFoundError:
        return []
    return [
        LakeFile(path, lake.fs.modified(path).timestamp(), _month_in(path[len(root) :]))
        for path in found
    ]


def _month_in(path: str) -> str:
    """The first part of ``path`` that reads YYYY-MM, or an empty string."""
    found = re.search(r"(?:^|/)(\d{4}-(?:0[1-9]|1[0-2]))(?:/|$)", path)
    return found[1] if found else ""


def read_json(settings: Settings, path: str) -> Any:
    return json.loads(lake_of(settings).fs.cat_file(path))


def report_html(settings: Settings, path: str) -> str:
    with lake_of(settings).fs.open(path, "rb") as handle:
        return handle.read().decode()


def read_campaign(settings: Settings, path: str) -> pd.DataFrame:
    """A campaign list ``score`` wrote: every subscriber of the cohort, ranked."""
    return read_campaign_list(lake_of(settings), path)


def scored_cohort(settings: Settings, campaign_path: str, cohort: str) -> Answer:
    """The scored cohort a campaign list was built from (the scores of its run, with the plans of
    the gold they were made from: ``monitoring.predictions.read_scored``), or why not."""
    run_id = posixpath.basename(posixpath.dirname(campaign_path))
    try:
        return Answer(read_scored(lake_of(settings), cohort, run_id))
    except FileNotFoundError as err:
        return Answer(problem=str(err))


def campaign_verdict(settings: Settings) -> Answer:
    """The verdict of the newest cohort a campaign was played on (``quality`` writes it once the
    cohort's labels land: ``monitoring.verdict``), or why there is none."""
    try:
        found = newest_verdict(lake_of(settings))
    except ValueError as err:
        return Answer(problem=f"the newest campaign verdict cannot be read: {err}")
    if found is None:
        return Answer(problem="no campaign has been judged yet")
    return Answer(found)


def quality_history(
    settings: Settings, tables: list[str], cycles: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every cohort's realized quality (the overall rows of ``quality``'s tables) and every
    monthly cycle's record, oldest first."""
    lake = lake_of(settings)
    history = pd.concat(
        [pd.read_parquet(path, filesystem=lake.fs) for path in tables], ignore_index=True
    )
    history = history[history["segment"] == "all"].drop(columns=["segment", "value"])
    records = pd.DataFrame([read_json(settings, path) for path in cycles])
    return history.sort_values(["cohort", "source", "model_version"]), records


def increment_months(settings: Settings) -> list[str]:
    """The months whose increments landed under the raw folder (``<raw>/increments/<YYYY-MM>``)."""
    import fsspec

    source = settings.raw_dir
    fs, root = fsspec.core.url_to_fs(source, **settings.storage_options(source))
    try:
        found = fs.ls(f"{root}/increments", detail=False)
    except FileNotFoundError:
        return []
    return sorted(m for path in found if (m := _month_in(posixpath.basename(path))))
