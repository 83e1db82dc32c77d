"""What the dashboard reads, each source on its own: the service, the MLflow registry, the traffic
log and the drift reports in the lake. Every function answers ``None`` (or an empty frame) with
a reason when its source is missing, so the page can say what to run instead of failing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import requests

from churn_transform.lake import lake_of
from churn_transform.settings import Settings, masked
from churn_transform.traffic import read_traffic


@dataclass
class Answer:
    """A value, or why there is none."""

    value: Any = None
    problem: str = ""


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


def registry_champion(settings: Settings) -> Answer:
    """The champion as the MLflow registry knows it, when the service is not there to ask."""
    import mlflow

    try:
        client = mlflow.MlflowClient(settings.tracking_uri)
        version = client.get_model_version_by_alias(settings.model_name, settings.champion_alias)
        run = client.get_run(version.run_id)
    except Exception as err:  # noqa: BLE001 (any failure means: no champion to show)
        reason = str(err).splitlines()[0][:120]
        return Answer(
            problem=masked(f"no champion in the registry at {settings.tracking_uri} ({reason})")
        )
    return Answer(
        {
            "registry_version": str(version.version),
            "run_id": version.run_id,
            "data_version": run.data.tags.get("gold_hash.train", "")[:12],
            "metrics": dict(run.data.metrics),
            "trained_at": run.info.start_time,
        }
    )


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


def score_id(settings: Settings, msno: str, cohort: str | None) -> tuple[int, Any]:
    """The service's status and answer for one subscriber id, its features looked up in the
    online feature store (in ``cohort``, or the newest served)."""
    body: dict[str, Any] = {"ids": [msno], **({"cohort": cohort} if cohort else {})}
    return _call(settings, "predict_ids", body)


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


def drift_reports(settings: Settings) -> Answer:
    """Every drift summary in the lake, oldest first, each with the URL of its HTML report."""
    lake = lake_of(settings)
    root = lake.path_of(lake.url("monitoring", "drift"))
    try:
        paths = sorted(lake.fs.glob(f"{root}/*/summary.json"))
    except FileNotFoundError:
        paths = []
    summaries = []
    for path in paths:
        with lake.fs.open(path) as handle:
            summary = json.load(handle)
        summaries.append({**summary, "report_path": path.rsplit("/", 1)[0] + "/report.html"})
    if not summaries:
        return Answer(problem=f"no drift report in {lake.url('monitoring', 'drift')}")
    return Answer(summaries)


def report_html(settings: Settings, path: str) -> str:
    lake = lake_of(settings)
    with lake.fs.open(path, "rb") as handle:
        return handle.read().decode()


def explain(settings: Settings, record: dict[str, Any]) -> tuple[int, Any]:
    """The service's answer with reasons for one record (``POST /explain``)."""
    return _call(settings, "explain", {"records": [record]})


def latest_campaign(settings: Settings) -> Answer:
    """The newest campaign list ``score`` wrote in the lake, and where it lies."""
    lake = lake_of(settings)
    root = lake.path_of(lake.url("predictions"))
    try:
        paths = lake.fs.glob(f"{root}/*/*/campaign.csv")
    except FileNotFoundError:
        paths = []
    if not paths:
        return Answer(problem=f"no campaign list in {lake.url('predictions')}")
    newest = max(paths, key=lambda path: lake.fs.modified(path))
    with lake.fs.open(newest) as handle:
        listed = pd.read_csv(handle, keep_default_na=False, na_values=[""])
    return Answer((newest, listed))


def champion_segments(settings: Settings) -> Answer:
    """The champion's metrics per segment on its evaluation cohort, logged by ``train``."""
    import mlflow

    try:
        client = mlflow.MlflowClient(settings.tracking_uri)
        version = client.get_model_version_by_alias(settings.model_name, settings.champion_alias)
        path = mlflow.artifacts.download_artifacts(
            run_id=version.run_id,
            artifact_path="evaluation/segments.json",
            tracking_uri=settings.tracking_uri,
        )
    except Exception as err:  # noqa: BLE001 (any failure means: nothing to show)
        reason = str(err).splitlines()[0][:120]
        return Answer(problem=masked(f"no segment metrics of the champion ({reason})"))
    return Answer(pd.read_json(path, orient="split"))


def quality_history(settings: Settings) -> Answer:
    """Every cohort's realized quality (``quality``'s tables in the lake, the overall rows) and
    every monthly cycle's record, oldest first."""
    lake = lake_of(settings)
    try:
        paths = sorted(lake.fs.glob(f"{lake.path_of(lake.url('quality'))}/*/quality.parquet"))
    except FileNotFoundError:
        paths = []
    if not paths:
        return Answer(problem=f"no realized quality in {lake.url('quality')}")
    tables = [pd.read_parquet(path, filesystem=lake.fs) for path in paths]
    history = pd.concat(tables, ignore_index=True)
    history = history[history["segment"] == "all"].drop(columns=["segment", "value"])
    records = sorted(lake.fs.glob(f"{lake.path_of(lake.url('cycles'))}/*.json"))
    cycles = pd.DataFrame([json.loads(lake.fs.cat_file(path)) for path in records])
    return Answer((history.sort_values(["cohort", "source", "model_version"]), cycles))
