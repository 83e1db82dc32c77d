"""The challenger judged on live traffic (``monitoring.challenger``): traffic logs written by the
service's own writer with both models' probabilities, for subscribers whose labels the test
knows; the challenger promoted when it wins there, retired when it does not, on a real registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from churn_transform.monitoring.challenger import (
    Verdict,
    compare_live,
    judge,
    judge_challenger,
)
from churn_transform.serving.traffic import TrafficLog, read_traffic
from churn_transform.settings import Settings
from tests.conftest import tracking_store

USERS = 400


def _labels(seed: int = 0) -> pd.Series:
    rng = np.random.default_rng(seed)
    ids = [f"user{i:04d}" for i in range(USERS)]
    return pd.Series((rng.random(USERS) < 0.3).astype(int), index=pd.Index(ids, name="msno"))


def _probabilities(labels: pd.Series, signal: float, seed: int) -> np.ndarray:
    """Probabilities that follow the labels as closely as ``signal`` (0: noise, 1: the label)."""
    noise = np.random.default_rng(seed).random(len(labels))
    return np.clip(signal * labels.to_numpy() + (1 - signal) * noise, 0.01, 0.99)


def _log(
    folder: Path, labels: pd.Series, answered: np.ndarray, shadowed: np.ndarray, **versions: str
) -> pd.DataFrame:
    """Every subscriber's entry as the service logs it, written by the service's writer."""
    log = TrafficLog(folder)
    log.append(
        {
            "ts": 1.0,
            "msno": msno,
            "features": {},
            "model_version": versions.get("champion", "1"),
            "churn_probability": float(p),
            "churn": bool(p >= 0.5),
            "challenger_version": versions.get("challenger", "2"),
            "challenger_probability": float(q),
        }
        for msno, p, q in zip(labels.index, answered, shadowed, strict=True)
    )
    log.close()
    return read_traffic(folder, "2000-01-01", "2999-12-31")[0]


def test_both_models_are_scored_on_the_same_labelled_subscribers(tmp_path: Path) -> None:
    labels = _labels()
    champion, challenger = _probabilities(labels, 0.2, 1), _probabilities(labels, 0.6, 2)
    traffic = _log(tmp_path, labels, champion, challenger)
    compared = compare_live(traffic, labels, "1", "2")
    truth = labels.to_numpy()
    assert (compared.n, compared.churners) == (USERS, int(truth.sum()))
    assert compared.champion is not None and compared.challenger is not None
    assert compared.champion.roc_auc == pytest.approx(roc_auc_score(truth, champion))
    assert compared.challenger.roc_auc == pytest.approx(roc_auc_score(truth, challenger))
    assert compared.challenger.log_loss == pytest.approx(log_loss(truth, challenger))


def test_a_subscriber_asked_about_twice_counts_once_and_other_versions_not_at_all(
    tmp_path: Path,
) -> None:
    labels = _labels()
    champion, challenger = _probabilities(labels, 0.2, 1), _probabilities(labels, 0.6, 2)
    first = _log(tmp_path / "a", labels, champion, challenger)
    again = _log(tmp_path / "b", labels, champion, challenger).assign(ts=2.0)
    other = _log(tmp_path / "c", labels, champion, champion, challenger="3")
    unlabelled = first.head(5).assign(msno=[f"stranger{i}" for i in range(5)])
    traffic = pd.concat([first, again, other, unlabelled], ignore_index=True)
    compared = compare_live(traffic, labels, "1", "2")
    alone = compare_live(first, labels, "1", "2")
    assert compared == alone and compared.n == USERS


def test_traffic_without_a_challenger_compares_nobody(tmp_path: Path) -> None:
    labels = _labels()
    traffic = _log(tmp_path, labels, _probabilities(labels, 0.2, 1), _probabilities(labels, 0, 2))
    plain = traffic.drop(columns=["challenger_version", "challenger_probability"])
    compared = compare_live(plain, labels, "1", "2")
    assert compared.n == 0 and compared.champion is None
    assert judge(compared, 0.005, 100).verdict is Verdict.WAITING


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Versions 1 (the champion) and 2 (the challenger) of the model, in a store of its own."""
    uri = tracking_store(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    settings = Settings(tracking_uri=uri, traffic_log_uri=str(tmp_path / "traffic"))
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("live", artifact_location=str(tmp_path / "artifacts"))
    client.create_registered_model(settings.model_name)
    for _ in ("1", "2"):
        run = client.create_run(experiment)
        source = f"runs:/{run.info.run_id}/model"
        client.create_model_version(settings.model_name, source, run.info.run_id)
    client.set_registered_model_alias(settings.model_name, settings.champion_alias, "1")
    client.set_registered_model_alias(settings.model_name, settings.challenger_alias, "2")
    yield settings
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]


def _registry(settings: Settings) -> tuple[dict[str, str], dict[str, Any]]:
    client = mlflow.MlflowClient(settings.tracking_uri)
    aliases = client.get_registered_model(settings.model_name).aliases
    tags = client.get_model_version(settings.model_name, "2").tags
    return {alias: str(version) for alias, version in aliases.items()}, dict(tags)


def test_a_challenger_that_wins_on_live_traffic_is_promoted(registry: Settings) -> None:
    labels = _labels()
    champion, challenger = _probabilities(labels, 0.2, 1), _probabilities(labels, 0.6, 2)
    _log(Path(registry.traffic_log_uri), labels, champion, challenger)
    judgement = judge_challenger(registry, labels, margin=0.005, min_users=200)
    assert judgement is not None and judgement.verdict is Verdict.PROMOTED
    assert judgement.comparison.n == USERS
    aliases, tags = _registry(registry)
    assert aliases == {"champion": "2"}
    assert tags["role"] == "champion" and '"verdict": "promoted"' in tags["live_comparison"]


def test_a_challenger_that_loses_on_live_traffic_is_retired_with_the_reason(
    registry: Settings,
) -> None:
    labels = _labels()
    champion, challenger = _probabilities(labels, 0.6, 1), _probabilities(labels, 0.2, 2)
    _log(Path(registry.traffic_log_uri), labels, champion, challenger)
    judgement = judge_challenger(registry, labels, margin=0.005, min_users=200)
    assert judgement is not None and judgement.verdict is Verdict.RETIRED
    aliases, tags = _registry(registry)
    assert aliases == {"champion": "1"}
    assert tags["role"] == "retired" and tags["retirement"] == judgement.reason
    assert tags["retirement"].startswith(f"it does not win live: on {USERS} labelled subscribers")


def test_a_challenger_that_wins_by_less_than_the_margin_is_retired(registry: Settings) -> None:
    labels = _labels()
    same = _probabilities(labels, 0.4, 1)
    _log(Path(registry.traffic_log_uri), labels, same, same)
    judgement = judge_challenger(registry, labels, margin=0.005, min_users=200)
    assert judgement is not None and judgement.verdict is Verdict.RETIRED


def test_a_challenger_with_too_few_labelled_subscribers_waits(registry: Settings) -> None:
    labels = _labels()
    champion, challenger = _probabilities(labels, 0.2, 1), _probabilities(labels, 0.6, 2)
    _log(Path(registry.traffic_log_uri), labels, champion, challenger)
    judgement = judge_challenger(registry, labels, margin=0.005, min_users=USERS + 1)
    assert judgement is not None and judgement.verdict is Verdict.WAITING
    assert judgement.reason.startswith(f"{USERS} labelled subscribers")
    assert _registry(registry)[0] == {"champion": "1", "challenger": "2"}


def test_no_challenger_named_is_no_judgement(registry: Settings) -> None:
    client = mlflow.MlflowClient(registry.tracking_uri)
    client.delete_registered_model_alias(registry.model_name, registry.challenger_alias)
    assert judge_challenger(registry, _labels(), margin=0.005, min_users=1) is None
